//! The deployer: from a node's compose files and what its engine runs, a
//! plan (`plan`, pure), and its execution (`apply`). Containers carry all
//! the state (`labels`); nothing is kept in local files.

pub mod apply;
pub mod config_files;
pub mod fault;
pub mod helper;
pub mod history;
pub mod labels;
pub mod lock;
pub mod node;
pub mod owned;
pub mod plan;
pub mod recover;
pub mod spec;
pub mod upgrade;

/// Seconds since the Unix epoch, for history records and lock ages.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Who runs kolla, for history records and lock owners.
pub fn current_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}
