//! Reading and validating the operator's files. Nothing here talks to Docker;
//! everything returns typed values or an error that names the file and line.

pub mod clouds;
pub mod compose;
pub mod duration;
pub mod globals;
pub mod interpolate;
pub mod inventory;
pub mod names;
pub mod passwords;
pub mod reference;
pub mod release;
pub mod since;
pub mod yaml;

pub use globals::Globals;
pub use inventory::Inventory;

pub use crate::container::is_loopback_url;

use std::path::PathBuf;

/// A configuration file that could not be used. Every variant names the file
/// so the operator knows where to look; YAML errors carry line and column.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("config directory {0} does not exist (pass --config-dir or create it)")]
    MissingDir(PathBuf),
    /// Every error found in one file (up to a limit), one per line.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Several(Vec<ConfigError>),
}
