//! Fault injection for the crash-safety and concurrency tests. With the
//! `fault-injection` feature, `point("old-stopped")` does what KOLLA_FAULT
//! asks of that step; without the feature it compiles to nothing.
//! KOLLA_FAULT is a comma-separated list of directives:
//! - `STEP`: freeze there for good, so a test can kill kolla with SIGKILL
//!   at a known place in a swap;
//! - `STEP:until=PATH`: wait there until PATH exists, so a test can hold a
//!   run inside its critical section (the lock held) while it starts
//!   another, then let it go on. PATH is on this process's filesystem: the
//!   swap helper, in its container, would never see it appear;
//! - `STEP:for=MS`: wait there MS milliseconds;
//! - `trace`: say each step as it is passed, with the wall-clock time, so
//!   a test can tell which step a SIGKILL interrupted (the swap helper's
//!   lines reach kolla's stderr, or stay in the helper's log if kolla is
//!   gone).

use std::fmt;

/// The places in a run where a test may freeze or hold kolla: one name
/// shared by the code that passes them and the tests that aim at them, so
/// a renamed step cannot leave a test aiming at nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// The service's lock is taken (an upgrade or rollback).
    Locked,
    /// A bootstrap job's container has started.
    BootstrapStarted,
    /// Every bootstrap job of the service has finished.
    Bootstrapped,
    /// A new service's lock is taken (deploy of a service not yet running).
    CreateLocked,
    /// A new service's container exists with its configuration.
    CreateConfigured,
    /// A new service's container has its final name.
    CreateRenamed,
    /// The next generation's container exists under its candidate name.
    CandidateCreated,
    /// The live container's restart policy is `no`.
    RestartPolicyNo,
    /// The new generation passed its gate (start-first: beside the old).
    Gated,
    /// The old generation is stopped: the dark window is open.
    OldStopped,
    /// The old generation is renamed aside.
    OldRenamed,
    /// The new generation has the service's name.
    NewRenamed,
    /// The new generation is started.
    NewStarted,
    /// A failed swap is putting the old generation back.
    SwappingBack,
    /// A start-first rollback has the kept generation running beside.
    RollbackStartedBeside,
    /// A restore point's dump is taken (before it is written out).
    Dumped,
    /// A restore point's dump is written to its volume.
    DumpWritten,
    /// The service is stopped for a restore of its database.
    RestoreStopped,
    /// The database is restored.
    Restored,
    /// One wave of a deploy (a level of the order) is done.
    WaveDone,
}

impl FaultPoint {
    pub const ALL: [FaultPoint; 20] = [
        FaultPoint::Locked,
        FaultPoint::BootstrapStarted,
        FaultPoint::Bootstrapped,
        FaultPoint::CreateLocked,
        FaultPoint::CreateConfigured,
        FaultPoint::CreateRenamed,
        FaultPoint::CandidateCreated,
        FaultPoint::RestartPolicyNo,
        FaultPoint::Gated,
        FaultPoint::OldStopped,
        FaultPoint::OldRenamed,
        FaultPoint::NewRenamed,
        FaultPoint::NewStarted,
        FaultPoint::SwappingBack,
        FaultPoint::RollbackStartedBeside,
        FaultPoint::Dumped,
        FaultPoint::DumpWritten,
        FaultPoint::RestoreStopped,
        FaultPoint::Restored,
        FaultPoint::WaveDone,
    ];

    /// The step's name in KOLLA_FAULT directives and trace lines.
    pub fn name(self) -> &'static str {
        match self {
            FaultPoint::Locked => "locked",
            FaultPoint::BootstrapStarted => "bootstrap-started",
            FaultPoint::Bootstrapped => "bootstrapped",
            FaultPoint::CreateLocked => "create-locked",
            FaultPoint::CreateConfigured => "create-configured",
            FaultPoint::CreateRenamed => "create-renamed",
            FaultPoint::CandidateCreated => "candidate-created",
            FaultPoint::RestartPolicyNo => "restart-policy-no",
            FaultPoint::Gated => "gated",
            FaultPoint::OldStopped => "old-stopped",
            FaultPoint::OldRenamed => "old-renamed",
            FaultPoint::NewRenamed => "new-renamed",
            FaultPoint::NewStarted => "new-started",
            FaultPoint::SwappingBack => "swapping-back",
            FaultPoint::RollbackStartedBeside => "rollback-started-beside",
            FaultPoint::Dumped => "dumped",
            FaultPoint::DumpWritten => "dump-written",
            FaultPoint::RestoreStopped => "restore-stopped",
            FaultPoint::Restored => "restored",
            FaultPoint::WaveDone => "wave-done",
        }
    }

    /// The step named `name`, as a trace line says it.
    pub fn named(name: &str) -> Option<FaultPoint> {
        FaultPoint::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The directive that freezes a run here for good.
    pub fn freeze(self) -> String {
        self.name().to_string()
    }

    /// The directive that holds a run here until `path` exists.
    pub fn hold_until(self, path: &std::path::Path) -> String {
        format!("{}:until={}", self.name(), path.display())
    }
}

impl fmt::Display for FaultPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Act on `step` as KOLLA_FAULT says (feature `fault-injection`).
#[cfg(feature = "fault-injection")]
pub fn point(point: FaultPoint) {
    let step = point.name();
    let Ok(directives) = std::env::var("KOLLA_FAULT") else {
        return;
    };
    // Said before any wait, so a trace shows where a held run is.
    if directives.split(',').any(|d| d == "trace") {
        eprintln!(
            "kolla: fault injection: passed {step} at unix-ms {}",
            unix_ms()
        );
    }
    for directive in directives.split(',') {
        match directive.split_once(':') {
            None if directive == step => freeze(step),
            Some((at, how)) if at == step => pause(step, how),
            _ => {}
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_point: FaultPoint) {}

#[cfg(feature = "fault-injection")]
fn freeze(step: &str) -> ! {
    eprintln!("kolla: fault injection: frozen after {step}");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Wait at `step` as `how` (`until=PATH` or `for=MS`) says. A blocking
/// sleep on purpose: nothing else of this run may move meanwhile.
#[cfg(feature = "fault-injection")]
fn pause(step: &str, how: &str) {
    use std::time::Duration;
    eprintln!("kolla: fault injection: paused after {step}");
    match how.split_once('=') {
        Some(("until", path)) => {
            while !std::path::Path::new(path).exists() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Some(("for", ms)) => match ms.parse() {
            Ok(ms) => std::thread::sleep(Duration::from_millis(ms)),
            Err(_) => eprintln!("kolla: fault injection: {ms:?} is no number of ms"),
        },
        _ => eprintln!("kolla: fault injection: {how:?} is no pause (until=PATH or for=MS)"),
    }
    eprintln!("kolla: fault injection: resumed after {step}");
}

#[cfg(feature = "fault-injection")]
fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_millis())
        .unwrap_or(0)
}

/// What KOLLA_FAULT says, to hand on to the swap helper (feature
/// `fault-injection`; None without it).
#[cfg(feature = "fault-injection")]
pub fn active() -> Option<String> {
    std::env::var("KOLLA_FAULT").ok()
}

#[cfg(not(feature = "fault-injection"))]
pub fn active() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_point_has_its_own_name_and_is_found_by_it() {
        let mut names: Vec<&str> = FaultPoint::ALL.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FaultPoint::ALL.len(), "{names:?}");
        for point in FaultPoint::ALL {
            assert_eq!(FaultPoint::named(point.name()), Some(point));
            assert!(
                !point.name().contains([',', ':']),
                "{point} breaks a directive"
            );
        }
        assert_eq!(FaultPoint::named("old_stopped"), None);
        assert_eq!(
            FaultPoint::Locked.hold_until(std::path::Path::new("/tmp/go")),
            "locked:until=/tmp/go"
        );
    }
}
