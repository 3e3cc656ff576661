//! The deployer: from a node's compose files and what its engine runs, a
//! plan (`plan`, pure), and its execution (`apply`). Containers carry all
//! the state (`labels`); nothing is kept in local files.

pub mod apply;
pub mod config_files;
pub mod labels;
pub mod lock;
pub mod node;
pub mod plan;
pub mod spec;
pub mod upgrade;
