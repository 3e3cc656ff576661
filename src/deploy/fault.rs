//! Fault injection for the crash-safety tests: with the `fault-injection`
//! feature, `point("old-stopped")` freezes the process there when
//! KOLLA_FAULT names that step, so a test can kill it with SIGKILL at a
//! known place in a swap. Without the feature it compiles to nothing.

/// Freeze here if KOLLA_FAULT names `step` (feature `fault-injection`).
#[cfg(feature = "fault-injection")]
pub fn point(step: &str) {
    if std::env::var("KOLLA_FAULT").is_ok_and(|v| v == step) {
        eprintln!("kolla: fault injection: frozen after {step}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_step: &str) {}

/// The step KOLLA_FAULT names, to hand on to the swap helper (feature
/// `fault-injection`; None without it).
#[cfg(feature = "fault-injection")]
pub fn active() -> Option<String> {
    std::env::var("KOLLA_FAULT").ok()
}

#[cfg(not(feature = "fault-injection"))]
pub fn active() -> Option<String> {
    None
}
