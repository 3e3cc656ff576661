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

/// Act on `step` as KOLLA_FAULT says (feature `fault-injection`).
#[cfg(feature = "fault-injection")]
pub fn point(step: &str) {
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
pub fn point(_step: &str) {}

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
