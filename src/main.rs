//! The `kolla` binary: parse the command line, run the verb on a tokio
//! runtime, and turn the result into an exit code (0 ok, 1 failed, 2 bad
//! input or usage, 3 a failure left work for `kolla recover`, 130
//! interrupted).

use std::process::ExitCode;

use clap::Parser;
use kolla::cli::Cli;
use kolla::run::{self, Outcome, exit};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(run::run(cli)) {
        Ok(Outcome::Success) => ExitCode::from(exit::OK),
        Ok(Outcome::Failed) => ExitCode::from(exit::FAILED),
        Ok(Outcome::Interrupted) => ExitCode::from(exit::INTERRUPTED),
        Ok(Outcome::NeedsRecovery) => ExitCode::from(exit::NEEDS_RECOVERY),
        Err(error) => {
            eprintln!("error: {}", run::describe_error(&error));
            ExitCode::from(if run::is_usage_error(&error) {
                exit::USAGE
            } else {
                exit::FAILED
            })
        }
    }
}
