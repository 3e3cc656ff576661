//! A service's guests (`x-kolla.guests`): processes it runs that must
//! outlive its container, as libvirt's QEMUs do. The image's program lists
//! them (`PROGRAM list`: `NAME PID kept|in-container` lines) and stops them
//! (`PROGRAM stop SECS`). Before a swap replaces such a container, the
//! guests it would take down with it (still inside its cgroups) refuse the
//! swap unless the operator asked to stop them; after it, the guests are
//! listed again in the new container, and a guest is kept only if the same
//! process still runs it. Reading and judging are pure; the rest asks the
//! container through the engine.

use crate::engine::{Engine, EngineError};

/// How long `destroy` and `--stop-guests` let guests shut down cleanly
/// before the program pulls the plug (seconds).
pub const STOP_SECONDS: u32 = 60;

/// One running guest, as the program lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    pub name: String,
    pub pid: u32,
    /// Its process is outside the container's cgroups: it outlives it.
    pub kept: bool,
}

/// The program's `list` output. A line it cannot read is an error: a
/// guest kolla cannot see is one it cannot vouch for.
pub fn parse(stdout: &str) -> Result<Vec<Guest>, String> {
    let mut guests = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let guest = match fields.as_slice() {
            [name, pid, kept @ ("kept" | "in-container")] => pid.parse().ok().map(|pid| Guest {
                name: name.to_string(),
                pid,
                kept: *kept == "kept",
            }),
            _ => None,
        };
        guests.push(guest.ok_or_else(|| {
            format!("cannot read {line:?} (expected NAME PID kept|in-container)")
        })?);
    }
    Ok(guests)
}

/// The guests that would stop with the container.
pub fn would_stop(guests: &[Guest]) -> Vec<&Guest> {
    guests.iter().filter(|g| !g.kept).collect()
}

/// What a swap did to the guests that ran before it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The same process runs them: they never stopped.
    pub kept: Vec<String>,
    /// They run, but in another process: they were restarted.
    pub restarted: Vec<String>,
    /// They no longer run.
    pub lost: Vec<String>,
}

pub fn compare(before: &[Guest], after: &[Guest]) -> Outcome {
    let mut outcome = Outcome::default();
    for guest in before {
        match after.iter().find(|a| a.name == guest.name) {
            Some(now) if now.pid == guest.pid => outcome.kept.push(guest.name.clone()),
            Some(_) => outcome.restarted.push(guest.name.clone()),
            None => outcome.lost.push(guest.name.clone()),
        }
    }
    outcome
}

impl Outcome {
    /// One line for the operator: how many guests the swap kept running.
    pub fn summary(&self) -> String {
        let total = self.kept.len() + self.restarted.len() + self.lost.len();
        let mut text = format!(
            "guests kept running: {} of {total} (same processes; their downtime 0s)",
            self.kept.len()
        );
        if !self.restarted.is_empty() {
            text.push_str(&format!("; restarted: {}", self.restarted.join(", ")));
        }
        if !self.lost.is_empty() {
            text.push_str(&format!("; LOST: {}", self.lost.join(", ")));
        }
        text
    }
}

/// Names and pids, for messages.
pub fn named(guests: &[&Guest]) -> String {
    guests
        .iter()
        .map(|g| format!("{} (pid {})", g.name, g.pid))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `program list` in the running container `container`.
pub async fn list(engine: &Engine, container: &str, program: &str) -> Result<Vec<Guest>, String> {
    let output = run(engine, container, &[program, "list"])
        .await
        .map_err(|e| e.to_string())?;
    if output.0 != 0 {
        return Err(format!(
            "`{program} list` exited {}: {}",
            output.0,
            output.2.trim()
        ));
    }
    parse(&output.1)
}

/// `program stop SECS` in the running container `container`: every guest
/// shut down cleanly, the rest stopped after the bound.
pub async fn stop(engine: &Engine, container: &str, program: &str) -> Result<(), String> {
    let seconds = STOP_SECONDS.to_string();
    let output = run(engine, container, &[program, "stop", &seconds])
        .await
        .map_err(|e| e.to_string())?;
    match output.0 {
        0 => Ok(()),
        code => Err(format!(
            "`{program} stop` exited {code}: {}",
            output.2.trim()
        )),
    }
}

/// (exit code, stdout, stderr) of `argv` as root in `container`.
async fn run(
    engine: &Engine,
    container: &str,
    argv: &[&str],
) -> Result<(i64, String, String), EngineError> {
    let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
    // By uid: an image without /etc/passwd has no user named root.
    let output = engine.exec(container, &argv, "0", &[]).await?;
    Ok((
        output.exit_code,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        output.stderr,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(name: &str, pid: u32, kept: bool) -> Guest {
        Guest {
            name: name.into(),
            pid,
            kept,
        }
    }

    #[test]
    fn the_list_is_read_and_what_it_cannot_say_is_an_error() {
        let listed = parse("instance-1 4242 kept\n\ninstance-2 77 in-container\n").unwrap();
        assert_eq!(
            listed,
            [
                guest("instance-1", 4242, true),
                guest("instance-2", 77, false)
            ]
        );
        assert_eq!(parse(""), Ok(Vec::new()));
        for bad in ["a 1", "a x kept", "a 1 maybe", "a 1 kept extra"] {
            assert!(parse(bad).unwrap_err().contains("cannot read"), "{bad}");
        }
    }

    #[test]
    fn guests_inside_the_container_would_stop_and_are_named() {
        let listed = [
            guest("a", 1, true),
            guest("b", 2, false),
            guest("c", 3, false),
        ];
        let stopping = would_stop(&listed);
        assert_eq!(named(&stopping), "b (pid 2), c (pid 3)");
        assert!(would_stop(&listed[..1]).is_empty());
    }

    #[test]
    fn a_guest_is_kept_only_if_the_same_process_runs_it() {
        let before = [
            guest("a", 1, true),
            guest("b", 2, true),
            guest("c", 3, true),
        ];
        let after = [guest("a", 1, true), guest("b", 20, true)];
        let outcome = compare(&before, &after);
        assert_eq!(outcome.kept, ["a"]);
        assert_eq!(outcome.restarted, ["b"]);
        assert_eq!(outcome.lost, ["c"]);
        assert_eq!(
            outcome.summary(),
            "guests kept running: 1 of 3 (same processes; their downtime 0s); restarted: b; LOST: c"
        );
    }
}
