//! What the engine did while a test ran, from the engine's own event log
//! (`docker events`): what a test checks when kolla must change nothing (a
//! dry run, a refused flag). Only events the test could have caused are
//! kept, since other tests run beside it: those of containers, volumes and
//! images whose names begin with one of the test's own prefixes (a probe
//! container kolla names but does not label is caught by its name), and
//! the network and volume events of those containers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::docker;

/// One engine event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineEvent {
    /// `container`, `image`, `volume`, `network`, ...
    pub kind: String,
    /// `create`, `start`, `pull`, `destroy`, `mount`, `connect`, ...
    pub action: String,
    /// The container's or network's id, the volume's name, the image's
    /// reference.
    pub id: String,
    pub attributes: BTreeMap<String, String>,
}

impl EngineEvent {
    fn name(&self) -> &str {
        self.attributes.get("name").map_or("", String::as_str)
    }
}

impl std::fmt::Display for EngineEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {:?}",
            self.kind, self.action, self.id, self.attributes
        )
    }
}

/// Records from when it is made: `caused` reads the engine's events from
/// then until now.
pub struct EngineEvents {
    since: Duration,
}

/// Slack after the window: the events are stamped by the engine, and
/// reading them waits until `--until` has passed (the engine and the test
/// share the machine's clock, so none is needed before the window: there
/// it would take in what the test did just before).
const SLACK: Duration = Duration::from_millis(500);

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
}

fn timestamp(at: Duration) -> String {
    format!("{}.{:09}", at.as_secs(), at.subsec_nanos())
}

impl EngineEvents {
    pub fn start() -> EngineEvents {
        EngineEvents { since: unix_now() }
    }

    /// Every event since `start` of something named with one of
    /// `prefixes` (containers, volumes, images), and the network and
    /// volume events of those containers.
    pub fn caused(&self, prefixes: &[&str]) -> Vec<EngineEvent> {
        let until = unix_now() + SLACK;
        let output = docker(&[
            "events",
            "--since",
            &timestamp(self.since),
            "--until",
            &timestamp(until),
            "--format",
            "{{json .}}",
        ]);
        assert!(
            output.status.success(),
            "docker events failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let all: Vec<EngineEvent> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(parse)
            .collect();
        in_scope(all, prefixes)
    }

    /// Fail the test if anything in scope happened since `start`.
    pub fn assert_none(&self, prefixes: &[&str], doing: &str) {
        let seen = self.caused(prefixes);
        assert!(
            seen.is_empty(),
            "{doing} made the engine do {} thing(s):\n{}",
            seen.len(),
            seen.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

fn parse(line: &str) -> Option<EngineEvent> {
    let value: Value = serde_json::from_str(line).ok()?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let actor = value.get("Actor")?;
    let attributes = actor
        .get("Attributes")
        .and_then(Value::as_object)
        .map(|a| a.iter().map(|(k, v)| (k.clone(), text(v))).collect())
        .unwrap_or_default();
    Some(EngineEvent {
        kind: text(value.get("Type")?),
        action: text(value.get("Action")?),
        id: text(actor.get("ID")?),
        attributes,
    })
}

/// The events of `all` a test with `prefixes` could have caused.
pub fn in_scope(all: Vec<EngineEvent>, prefixes: &[&str]) -> Vec<EngineEvent> {
    let ours = |name: &str| !name.is_empty() && prefixes.iter().any(|p| name.starts_with(p));
    let containers: BTreeSet<String> = all
        .iter()
        .filter(|e| e.kind == "container" && ours(e.name()))
        .map(|e| e.id.clone())
        .collect();
    let of_ours = |e: &EngineEvent| {
        e.attributes
            .get("container")
            .is_some_and(|c| containers.contains(c))
    };
    all.into_iter()
        .filter(|e| match e.kind.as_str() {
            "container" => containers.contains(&e.id),
            "volume" => ours(&e.id) || of_ours(e),
            "network" => of_ours(e),
            "image" => ours(&e.id) || ours(e.name()),
            _ => false,
        })
        .collect()
}
