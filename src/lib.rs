//! kolla: build one container image per cloud service, and deploy, upgrade
//! and roll back each service on Docker hosts.
//!
//! The binary (`main.rs`) is a thin shell over this library so that the
//! integration tests drive the same code paths the operator does. Data flows
//! one way: `cli` (what the user typed) -> `settings` (resolved once) ->
//! `config` (typed, validated files) -> `images::render` / `deploy::plan`
//! (pure) -> `images::build` / `deploy::execute` + `engine` (effects) ->
//! `progress` (what the user sees). `verbs` holds one file per verb family.

/// `print!` to standard output that never panics (`progress::write_out`).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::progress::write_out(format_args!($($arg)*))
    };
}

/// `println!` to standard output that never panics.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::progress::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub mod certs;
pub mod cli;
pub mod config;
pub mod container;
pub mod credentials;
pub mod deploy;
pub mod engine;
pub mod files;
pub mod graph;
pub mod images;
pub mod progress;
pub mod settings;
pub mod templates;
pub mod verbs;
