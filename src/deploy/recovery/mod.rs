//! Recovery: bring each service back to exactly one live container after
//! a run that died. `plan` is the pure half (containers and the dead run's
//! lock -> steps, golden-tested); `run` takes the lock and runs the steps.

pub mod plan;
pub mod run;
