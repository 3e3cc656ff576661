//! Waiting on containers: health gates and one-shot jobs on the engine's
//! event stream (never sleep loops), and following a container's logs.
//!
//! A health gate does not wait for the engine's own checks: the engine
//! runs the first one only an `interval` after the start, so a gate on it
//! would be dark that long, and an interval short enough for quick gates
//! costs every running container an exec every few seconds for its whole
//! life (a fifth of two cores for 16 containers checked every 2 s,
//! measured). While it waits, a gate runs the container's own healthcheck
//! command itself, soon after the start and then less and less often
//! (`probe_delay`), or every 0.5 s while the service is dark; the engine's checks, at the interval the compose file
//! sets, keep watch after that.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{EventsOptionsBuilder, LogsOptionsBuilder};
use futures_util::StreamExt;

use super::{Engine, EngineError};
use crate::container::{Health, State};
use bollard::models::HealthStatusEnum;

/// How often a wait looks at the container besides following its events.
const RECHECK: Duration = Duration::from_secs(1);

/// How long a health gate waits before its `attempt`-th run (from 0) of
/// the container's healthcheck: 0.5 s, then 0.25 s longer each time, up
/// to 2 s. An exec costs the engine about 0.1 s of CPU (measured on two
/// cores): four gates probing every 0.5 s through an OpenStack deploy
/// took most of a core from the services they waited on. A service up in
/// 10 s is probed 7 times instead of 20, and seen at most 2 s late.
pub fn probe_delay(attempt: u32) -> Duration {
    const FIRST_MS: u64 = 500;
    const STEP_MS: u64 = 250;
    const MOST_MS: u64 = 2000;
    Duration::from_millis((FIRST_MS + STEP_MS * u64::from(attempt)).min(MOST_MS))
}

/// What a healthcheck runs when the compose file gives no `timeout`: the
/// engine's own default.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// The command the engine runs for the healthcheck `test`, as an exec
/// runs it: `CMD` runs its arguments, `CMD-SHELL` its one string in the
/// container's shell. None for `NONE` or no test.
pub fn check_command(test: &[String]) -> Option<Vec<String>> {
    match test.split_first() {
        Some((kind, args)) if kind == "CMD" && !args.is_empty() => Some(args.to_vec()),
        Some((kind, [line])) if kind == "CMD-SHELL" => {
            Some(vec!["/bin/sh".into(), "-c".into(), line.clone()])
        }
        _ => None,
    }
}

/// What a wait for a container ended on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    Healthy,
    /// Running, and still running when the window closed (no healthcheck).
    StillRunning,
    Unhealthy,
    /// Exited with this code.
    Exited(i64),
    TimedOut,
}

/// What to wait for after a start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitGoal {
    /// Healthy (if the container has a healthcheck) or still running once
    /// `window` has passed (if not). `dark`: the service serves no one
    /// meanwhile (a stop-first swap's new container, an old one swapped
    /// back), so its check runs every 0.5 s rather than less and less
    /// often: the dark window ends when the check first passes.
    Up { window: Duration, dark: bool },
    /// Exited (for one-shot jobs).
    Exited,
}

impl Engine {
    /// Every line a container prints (stdout and stderr), as it prints it,
    /// until it exits; `on_line` gets each with whether it came on stdout.
    /// A container quiet for longer than `quiet` ends the following with
    /// an error (the engine, or the container, stopped saying anything).
    pub async fn follow_logs(
        &self,
        name: &str,
        quiet: Duration,
        mut on_line: impl FnMut(&str, bool),
    ) -> Result<(), EngineError> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(true)
            .build();
        let mut logs = self.docker.logs(name, Some(options));
        let mut pending = [String::new(), String::new()];
        let what = format!("logs of {name}");
        while let Some(item) = self.next_within(&what, quiet, &mut logs).await? {
            let chunk = item.map_err(|e| EngineError::from_api(&what, e))?;
            let stdout = matches!(chunk, bollard::container::LogOutput::StdOut { .. });
            let buffer = &mut pending[usize::from(stdout)];
            buffer.push_str(&chunk.to_string());
            while let Some(end) = buffer.find('\n') {
                let line: String = buffer.drain(..=end).collect();
                on_line(line.trim_end_matches('\n'), stdout);
            }
        }
        for (i, rest) in pending.iter().enumerate() {
            if !rest.is_empty() {
                on_line(rest, i == 1);
            }
        }
        Ok(())
    }

    /// State, health and exit code of one container.
    async fn container_status(&self, name: &str) -> Result<Look, EngineError> {
        let inspect = self
            .within(
                &format!("inspect container {name}"),
                self.deadlines.answer,
                self.docker.inspect_container(name, None),
            )
            .await?
            .map_err(|e| EngineError::from_api(format!("container {name}"), e))?;
        let healthcheck = inspect.config.as_ref().and_then(|c| c.healthcheck.as_ref());
        let has_healthcheck = healthcheck
            .and_then(|h| h.test.as_ref())
            .is_some_and(|t| t.first().map(String::as_str) != Some("NONE"));
        let check = healthcheck.and_then(|h| {
            let command = check_command(h.test.as_deref()?)?;
            let timeout = match h.timeout {
                Some(ns) if ns > 0 => Duration::from_nanos(ns.unsigned_abs()),
                _ => CHECK_TIMEOUT,
            };
            Some((command, timeout))
        });
        let state = inspect.state.unwrap_or_default();
        let health = state.health.and_then(|h| h.status).and_then(|h| match h {
            HealthStatusEnum::HEALTHY => Some(Health::Healthy),
            HealthStatusEnum::UNHEALTHY => Some(Health::Unhealthy),
            HealthStatusEnum::STARTING => Some(Health::Starting),
            _ => None,
        });
        Ok(Look {
            state: State::parse(&state.status.map(|s| s.to_string()).unwrap_or_default()),
            health,
            exit_code: state.exit_code.unwrap_or(0),
            has_healthcheck,
            check,
        })
    }

    /// Returns once `command` (a healthcheck's) exits 0 in `name`, run
    /// after each `probe_delay` (the first one each time while `dark`),
    /// each run given `limit`. A run that fails,
    /// cannot start, or outlasts its limit is a check not passed yet: the
    /// caller bounds the whole wait and sees the container die by its
    /// events.
    async fn passes_its_check(&self, name: &str, command: &[String], limit: Duration, dark: bool) {
        let mut attempt: u32 = 0;
        loop {
            let delay = match dark {
                true => probe_delay(0),
                false => probe_delay(attempt),
            };
            tokio::time::sleep(delay).await;
            attempt = attempt.saturating_add(1);
            let run = self.exec(name, command, "", &[]);
            if let Ok(Ok(output)) = tokio::time::timeout(limit, run).await
                && output.exit_code == 0
            {
                return;
            }
        }
    }

    /// Wait for a started container to reach `goal`, following the
    /// engine's event stream (health_status, die) rather than polling; give
    /// up after `timeout`.
    pub async fn wait_for(
        &self,
        name: &str,
        goal: WaitGoal,
        timeout: Duration,
    ) -> Result<WaitOutcome, EngineError> {
        let filters = HashMap::from([("container", vec![name]), ("type", vec!["container"])]);
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        let mut events = self.docker.events(Some(options));
        let deadline = tokio::time::Instant::now() + timeout;
        let (up_window, dark) = match goal {
            WaitGoal::Up { window, dark } => (Some(window), dark),
            WaitGoal::Exited => (None, false),
        };
        // A container the engine is restarting has already exited once: a
        // crash loop is a failure, whatever its healthcheck says.
        let status = self.container_status(name).await?;
        if let Some(outcome) = settled(&status, up_window.is_some()) {
            return Ok(outcome);
        }
        let has_healthcheck = status.has_healthcheck;
        let probing = self.gate_probe(name, &status, up_window.is_some(), dark);
        tokio::pin!(probing);
        // Without a healthcheck "up" means still running when the window
        // closes; with one, the window does not apply.
        let window_end = match up_window {
            Some(window) if !has_healthcheck => Some(tokio::time::Instant::now() + window),
            _ => None,
        };
        loop {
            // The event stream is only subscribed once it is first polled,
            // so an event can fall between the look above and the
            // subscription; a look every RECHECK catches what it missed.
            let recheck = tokio::time::Instant::now() + RECHECK;
            let until = window_end
                .map_or(deadline, |w| w.min(deadline))
                .min(recheck);
            let next = tokio::select! {
                biased;
                () = &mut probing => return Ok(WaitOutcome::Healthy),
                next = tokio::time::timeout_at(until, events.next()) => next,
            };
            let event = match next {
                Err(_) if until == recheck && recheck < deadline => {
                    let status = self.container_status(name).await?;
                    if let Some(outcome) = settled(&status, up_window.is_some()) {
                        return Ok(outcome);
                    }
                    continue;
                }
                Err(_) if window_end.is_some_and(|w| w <= deadline) => {
                    let look = self.container_status(name).await?;
                    return Ok(if look.state == State::Running {
                        WaitOutcome::StillRunning
                    } else {
                        WaitOutcome::Exited(look.exit_code)
                    });
                }
                Err(_) => return Ok(WaitOutcome::TimedOut),
                Ok(None) => return Ok(WaitOutcome::TimedOut),
                Ok(Some(Err(e))) => {
                    return Err(EngineError::from_api(format!("events of {name}"), e));
                }
                Ok(Some(Ok(event))) => event,
            };
            if let Some(outcome) = event_outcome(event, up_window.is_some() && has_healthcheck) {
                return Ok(outcome);
            }
        }
    }

    /// A health gate's own run of the container's check (see the module's
    /// header): finishes once it passes; never, for a wait that is not a
    /// health gate or a container without a check (`check` is None for
    /// `NONE`).
    async fn gate_probe(&self, name: &str, look: &Look, gate: bool, dark: bool) {
        match &look.check {
            Some((command, limit)) if gate => {
                self.passes_its_check(name, command, *limit, dark).await
            }
            _ => std::future::pending().await,
        }
    }
}

/// What one of the container's events ends a wait with: its death, or
/// (`gated`: a health gate on a container with a healthcheck) the
/// engine's verdict on its health. None: keep waiting.
fn event_outcome(event: bollard::models::EventMessage, gated: bool) -> Option<WaitOutcome> {
    let action = event.action.unwrap_or_default();
    if action == "die" {
        let code = event
            .actor
            .and_then(|a| a.attributes)
            .and_then(|a| a.get("exitCode").and_then(|c| c.parse().ok()))
            .unwrap_or(-1);
        return Some(WaitOutcome::Exited(code));
    }
    match action.as_str() {
        "health_status: healthy" if gated => Some(WaitOutcome::Healthy),
        "health_status: unhealthy" if gated => Some(WaitOutcome::Unhealthy),
        _ => None,
    }
}

/// A container at one moment, as a wait looks at it.
struct Look {
    state: State,
    health: Option<Health>,
    exit_code: i64,
    has_healthcheck: bool,
    /// The healthcheck's command as an exec runs it, and its time limit.
    check: Option<(Vec<String>, Duration)>,
}

/// What a look at a container says a wait is over with: it exited (or is
/// being restarted), or, when waiting for it to be up with a healthcheck,
/// its health is decided. None: keep waiting.
fn settled(look: &Look, up: bool) -> Option<WaitOutcome> {
    if matches!(look.state, State::Exited | State::Dead | State::Restarting) {
        return Some(WaitOutcome::Exited(look.exit_code));
    }
    match look.health {
        Some(Health::Healthy) if up && look.has_healthcheck => Some(WaitOutcome::Healthy),
        Some(Health::Unhealthy) if up && look.has_healthcheck => Some(WaitOutcome::Unhealthy),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn probes_come_soon_then_less_often_never_rarer_than_every_two_seconds() {
        let delays: Vec<u64> = (0..10).map(|a| probe_delay(a).as_millis() as u64).collect();
        assert_eq!(delays[0], 500);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        assert_eq!(probe_delay(u32::MAX), Duration::from_secs(2));
        let first_ten_seconds = delays.iter().scan(0, |t, d| {
            *t += d;
            Some(*t)
        });
        assert_eq!(first_ten_seconds.take_while(|t| *t <= 10_000).count(), 7);
    }

    #[test]
    fn a_healthcheck_runs_through_exec_as_the_engine_runs_it() {
        assert_eq!(
            check_command(&strings(&["CMD", "curl", "-fsS", "http://x"])),
            Some(strings(&["curl", "-fsS", "http://x"]))
        );
        assert_eq!(
            check_command(&strings(&["CMD-SHELL", "test -f /ready && echo ok"])),
            Some(strings(&["/bin/sh", "-c", "test -f /ready && echo ok"]))
        );
        for none in [
            &["NONE"][..],
            &[],
            &["CMD"],
            &["CMD-SHELL", "a", "b"],
            &["SHELL", "x"],
        ] {
            assert_eq!(check_command(&strings(none)), None, "{none:?}");
        }
    }
}
