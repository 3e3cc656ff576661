//! The deployer. Data flows one way: `desired` (compose files + inventory
//! -> desired services, with their `config_files` rendered), `supply` (each
//! service's image found, pulled or copied onto its node) and `observe`
//! (one list call -> observed containers) feed `plan` (pure: actions with
//! causes, in the levels `crate::graph` computes, as `node_order`'s are)
//! and `recovery::plan` (pure: steps for leftovers of a crash), and
//! `lifecycle` (pure: what a start or restart does); `execute`
//! runs the actions and `recovery::run` the steps, each change to a
//! service in a `session` (lock -> work -> record -> release) made of
//! `steps` and, for a swap, the `critical` section (run on the node by
//! `helper` when it can). `pipeline` is the one owner of that order for a
//! node: supply, observe, recover first, settle privileges, then the
//! intent (deploy, upgrade, rollback, recover, start). The executor decides
//! nothing: under a service's lock it runs what the plan's action says
//! once rechecked against the node (`plan::Action::recheck`). Containers
//! carry all the state (`labels`); only the history is a local file.
//! `unused_images` (pure) says which images `kolla prune-images` removes;
//! `cleanup` runs the jobs `kolla destroy` runs before it removes a node's
//! containers.

pub mod cleanup;
pub mod config_files;
pub mod context;
pub mod critical;
pub mod desired;
pub mod error;
pub mod execute;
pub mod fault;
pub mod guests;
pub mod helper;
pub mod history;
pub mod labels;
pub mod lifecycle;
pub mod lock;
pub mod node_order;
pub mod node_prep;
pub mod observe;
pub mod owned;
pub mod pipeline;
pub mod plan;
pub mod privileged;
pub mod recovery;
pub mod restore_point;
pub mod service;
pub mod session;
pub mod spec;
pub mod steps;
pub mod supply;

pub mod tags;
pub mod unused_images;
pub mod upgrade_order;
pub mod volumes;

/// Seconds since the Unix epoch, for history records and lock ages.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
