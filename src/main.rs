//! The `kolla` binary: parse the command line and hand it to the library
//! (`verbs::main` runs the verb and maps its typed outcome to an exit code:
//! 0 ok, 1 failed, 2 bad input or usage, 3 a failure left work for `kolla
//! recover`, 4 a lock held by another run, 130 interrupted).

use std::process::ExitCode;

use clap::Parser;
use kolla::cli::Cli;

fn main() -> ExitCode {
    kolla::verbs::main(Cli::parse())
}
