//! Privileged mode on a node: `privileged: auto` settles on native or
//! explicit privileges, from what the live containers show or, when they
//! show nothing, from a throwaway probe container the engine may refuse
//! (never in a dry run, which creates nothing).

use std::collections::BTreeMap;

use super::desired::Desired;
use super::error::DeployError;
use super::labels::ObservedContainer;
use super::spec;
use crate::config::Globals;
use crate::config::inventory::{Node, PrivilegedMode};
use crate::engine::{Engine, EngineError};

/// What settling a node's `privileged: auto` came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Nothing to settle (the node is not `auto`, or runs no privileged
    /// service), or the live containers said which mode.
    Known,
    /// A probe container found this mode.
    Probed(PrivilegedMode),
    /// A dry run, where nothing says which: a deploy would probe. The plan
    /// shows the node's default (native) meanwhile.
    WouldProbe,
}

/// Settle a node's `privileged: auto` against its engine. When the live
/// privileged containers were all made under one mode (their config hashes
/// say which), that mode stands: a deploy with nothing to do starts no
/// probe. Otherwise start a throwaway privileged container from a
/// privileged service's image; an engine that refuses gets the explicit
/// form. A dry run reads the live containers only: it starts no probe.
pub async fn settle_privileged(
    engine: &Engine,
    node: &Node,
    desired: &mut Desired,
    observed: &[ObservedContainer],
    (globals, dry_run): (&Globals, bool),
) -> Result<Settled, DeployError> {
    if node.privileged != PrivilegedMode::Auto || !desired.needs_privileged() {
        return Ok(Settled::Known);
    }
    if let Some(mode) = desired.settled_by(observed, globals) {
        desired.set_privileged(mode, globals);
        return Ok(Settled::Known);
    }
    let Some(image) = desired
        .services
        .values()
        .find(|d| d.service.privileged)
        .map(|d| d.digest.clone().unwrap_or_else(|| d.service.image.clone()))
    else {
        return Ok(Settled::Known);
    };
    if dry_run {
        return Ok(Settled::WouldProbe);
    }
    let outcome = probe_privileged(engine, &globals.container_prefix, &image).await;
    let mode = mode_after_probe(outcome).map_err(|source| DeployError::Engine {
        node: node.name.clone(),
        source,
    })?;
    desired.set_privileged(mode, globals);
    Ok(Settled::Probed(mode))
}

/// The mode `privileged: auto` settles on after a probe: native when the
/// engine started the privileged container, explicit when it refused to
/// start it. An engine that failed before that (unreachable, no image)
/// said nothing about privileges: an error, not an answer. Pure: each
/// engine the tests meet takes one branch only, so both are tested here.
pub fn mode_after_probe(outcome: Result<(), ProbeError>) -> Result<PrivilegedMode, EngineError> {
    match outcome {
        Ok(()) => Ok(PrivilegedMode::Native),
        Err(ProbeError::Refused(_)) => Ok(PrivilegedMode::Explicit),
        Err(ProbeError::Engine(source)) => Err(source),
    }
}

/// Why a privileged probe container did not start.
#[derive(Debug)]
pub enum ProbeError {
    /// The engine created it but refused to start it privileged.
    Refused(EngineError),
    /// The engine failed before that (unreachable, no such image, ...).
    Engine(EngineError),
}

/// Start a privileged container running `true` from `image` (named with
/// the deployment's `prefix` and this process) and remove it again,
/// whatever happened.
pub async fn probe_privileged(
    engine: &Engine,
    prefix: &str,
    image: &str,
) -> Result<(), ProbeError> {
    let name = format!("{prefix}kolla-probe-privileged-{}", std::process::id());
    let spec = spec::ContainerSpec {
        name: name.clone(),
        image: image.to_string(),
        entrypoint: Some(vec![]),
        command: Some(vec!["true".into()]),
        // As root: an engine that cannot grant every capability may still
        // start a privileged container whose user gets none of them.
        user: Some("0".into()),
        privileged: true,
        labels: BTreeMap::from([("kolla.probe".to_string(), "privileged".to_string())]),
        ..Default::default()
    };
    let outcome = async {
        engine
            .remove_container(&name, false)
            .await
            .map_err(ProbeError::Engine)?;
        engine
            .create_container(&spec)
            .await
            .map_err(ProbeError::Engine)?;
        engine
            .start_container(&name)
            .await
            .map_err(ProbeError::Refused)
    }
    .await;
    let removed = engine.remove_container(&name, true).await;
    outcome?;
    removed.map_err(ProbeError::Engine)
}
impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Refused(e) | ProbeError::Engine(e) => e.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> EngineError {
        EngineError::StreamFailed {
            what: "start probe".into(),
            message: "operation not permitted".into(),
        }
    }

    #[test]
    fn an_engine_that_starts_the_probe_gets_native_privileges() {
        assert_eq!(mode_after_probe(Ok(())).ok(), Some(PrivilegedMode::Native));
    }

    #[test]
    fn an_engine_that_refuses_the_probe_gets_explicit_privileges() {
        assert_eq!(
            mode_after_probe(Err(ProbeError::Refused(refused()))).ok(),
            Some(PrivilegedMode::Explicit)
        );
    }

    #[test]
    fn an_engine_that_fails_before_the_probe_starts_is_an_error() {
        let failed = EngineError::NotFound {
            what: "image busybox".into(),
        };
        assert!(mode_after_probe(Err(ProbeError::Engine(failed))).is_err());
    }
}
