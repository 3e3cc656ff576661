//! The `kolla` binary: parse the command line, run the verb on a tokio
//! runtime, and turn its typed outcome into an exit code (see
//! `verbs::exit`: 0 ok, 1 failed, 2 bad input or usage, 3 a failure left
//! work for `kolla recover`, 4 a lock held by another run, 130
//! interrupted).

use std::process::ExitCode;

use clap::Parser;
use kolla::cli::Cli;
use kolla::verbs::{self, exit};

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
    match runtime.block_on(verbs::run(cli)) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(error) => {
            eprintln!("error: {}", verbs::describe_error(&error));
            ExitCode::from(verbs::exit_code_of(&error))
        }
    }
}
