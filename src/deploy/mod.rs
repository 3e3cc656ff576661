//! The deployer: from a node's compose files and what its engine runs, a
//! plan (`plan`, pure), and its execution (`apply`). Containers carry all
//! the state (`labels`); nothing is kept in local files.

pub mod labels;
pub mod plan;
pub mod spec;
