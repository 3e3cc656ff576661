//! The per node+service lock: a container named `<svc>.kolla-lock`, created
//! (never started) from an image already on the node. The engine's unique
//! names make creating it an atomic test-and-set on the node itself, so two
//! operators on two machines cannot swap one service at once.

use std::collections::BTreeMap;

use super::labels::{self, Role};
use super::spec::ContainerSpec;
use super::{current_user, now_secs};
use crate::engine::{Engine, EngineError};

pub const LOCK_OWNER: &str = "kolla.lock-owner";
pub const LOCK_HOST: &str = "kolla.lock-host";
pub const LOCK_PID: &str = "kolla.lock-pid";
pub const LOCK_SINCE: &str = "kolla.lock-since";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "service {service} is locked by {owner}@{host} (pid {pid}) for {age}s\n  hint: if that run is gone, `kolla unlock {service}` clears the lock"
    )]
    Held {
        service: String,
        owner: String,
        host: String,
        pid: String,
        age: u64,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A held lock; `release` it on every path.
#[derive(Debug)]
pub struct Lock {
    name: String,
}

/// Take the lock of `service`, creating its lock container from `image`.
pub async fn acquire(
    engine: &Engine,
    prefix: &str,
    project: &str,
    service: &str,
    image: &str,
) -> Result<Lock, LockError> {
    let name = labels::container_name(prefix, service, Role::Lock);
    let owner = current_user();
    let host = this_host();
    let spec = ContainerSpec {
        name: name.clone(),
        image: image.to_string(),
        labels: BTreeMap::from([
            (labels::PROJECT.to_string(), project.to_string()),
            (labels::SERVICE.to_string(), service.to_string()),
            (LOCK_OWNER.to_string(), owner),
            (LOCK_HOST.to_string(), host),
            (LOCK_PID.to_string(), std::process::id().to_string()),
            (LOCK_SINCE.to_string(), now_secs().to_string()),
        ]),
        // Never started; a harmless command in case someone does.
        command: Some(vec!["true".into()]),
        entrypoint: Some(vec![]),
        ..ContainerSpec::default()
    };
    match engine.create_container(&spec).await {
        Ok(_) => Ok(Lock { name }),
        Err(EngineError::Conflict { .. }) => match holder(engine, prefix, service).await? {
            Some(holder) => Err(holder.into_error(service)),
            // Released between our create and our look: just say so.
            None => Err(LockError::Held {
                service: service.to_string(),
                owner: "?".into(),
                host: "?".into(),
                pid: "?".into(),
                age: 0,
            }),
        },
        Err(e) => Err(e.into()),
    }
}

/// Release a lock taken by this run.
pub async fn release(engine: &Engine, lock: Lock) -> Result<(), EngineError> {
    engine.remove_container(&lock.name, false).await
}

/// Clear a lock whatever holds it (`kolla unlock`).
pub async fn clear(engine: &Engine, prefix: &str, service: &str) -> Result<bool, EngineError> {
    let name = labels::container_name(prefix, service, Role::Lock);
    let existed = engine.container_details(&name).await?.is_some();
    engine.remove_container(&name, false).await?;
    Ok(existed)
}

/// Who holds the lock of `service`, if anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub owner: String,
    pub host: String,
    pub pid: String,
    pub since: u64,
}

impl Holder {
    /// A lock taken on this machine by a process that no longer exists
    /// was left by a crash. A lock from another machine cannot be judged
    /// from here.
    pub fn is_stale(&self) -> bool {
        self.host == this_host() && !std::path::Path::new("/proc").join(&self.pid).exists()
    }

    pub fn into_error(self, service: &str) -> LockError {
        LockError::Held {
            service: service.to_string(),
            owner: self.owner,
            host: self.host,
            pid: self.pid,
            age: now_secs().saturating_sub(self.since),
        }
    }
}

fn this_host() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

pub async fn holder(
    engine: &Engine,
    prefix: &str,
    service: &str,
) -> Result<Option<Holder>, EngineError> {
    let name = labels::container_name(prefix, service, Role::Lock);
    Ok(engine.container_details(&name).await?.map(|(labels, _)| {
        let get = |k: &str| labels.get(k).cloned().unwrap_or_else(|| "?".into());
        Holder {
            owner: get(LOCK_OWNER),
            host: get(LOCK_HOST),
            pid: get(LOCK_PID),
            since: labels
                .get(LOCK_SINCE)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        }
    }))
}
