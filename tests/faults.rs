//! Faults from outside: containers in the way that kolla does not own,
//! concurrent operators upgrading one service, and SIGKILLs of kolla at
//! random moments of upgrades and rollbacks. What must hold each time:
//! nobody else's container is touched, the lock is never broken, a
//! bootstrap job is never killed, and after the next command exactly one
//! container serves with the data intact.
//!
//! The concurrency and SIGKILL tests need the `fault-injection` feature
//! (tools/test enables it): a pair's first upgrade is held with its lock
//! taken while the second runs, so the two provably overlap, and each
//! kill's step is read from a trace of the fault points, so the sweep can
//! show it reached inside the swap.

mod common;

use common::{Deployment, describe, stderr};
use kolla::deploy::spec::ContainerSpec;

/// A container kolla does not own, removed (by id) when dropped.
struct Foreign<'a> {
    d: &'a Deployment,
    id: String,
}

impl<'a> Foreign<'a> {
    /// An unlabelled running container named `name`.
    fn new(d: &'a Deployment, name: &str) -> Foreign<'a> {
        let spec = ContainerSpec {
            name: name.to_string(),
            image: d.env("IMAGE").to_string(),
            command: Some(vec!["sleep".into(), "3600".into()]),
            labels: [("kolla-test.foreign".to_string(), d.project.clone())].into(),
            ..ContainerSpec::default()
        };
        let rt = common::runtime();
        let engine = &d.images.engine;
        let id = rt.block_on(engine.create_container(&spec)).unwrap();
        rt.block_on(engine.start_container(&id)).unwrap();
        Foreign { d, id }
    }

    /// Still there, still running, still under its name.
    fn untouched(&self, name: &str) {
        let details = common::runtime()
            .block_on(self.d.images.engine.inspect(&self.id))
            .unwrap()
            .unwrap_or_else(|| panic!("kolla removed {name}, a container it does not own"));
        assert!(details.running, "kolla stopped {name}");
        assert_eq!(details.name, name, "kolla renamed {name}");
    }
}

impl Drop for Foreign<'_> {
    fn drop(&mut self) {
        let rt = common::runtime();
        let _ = rt.block_on(self.d.images.engine.remove_container(&self.id, true));
    }
}

fn deployed(name: &str) -> Deployment {
    let d = common::swap_deployment(name, &["1.0.0", "2.0.0"]);
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    d.write_data("/data/precious", "customer data");
    d
}

#[test]
fn containers_kolla_does_not_own_are_never_touched() {
    let d = deployed("foreign");
    let v1 = d.containers()[&d.container("web")].0.clone();
    for suffix in [
        ".kolla-new",
        ".kolla-lock",
        ".kolla-bootstrap",
        ".kolla-gen-1",
    ] {
        let name = d.container(&format!("web{suffix}"));
        let foreign = Foreign::new(&d, &name);
        let output = d.kolla("upgrade", &["web", "--tag", "2.0.0"]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{name}: {}",
            describe(&output)
        );
        let err = stderr(&output);
        assert!(
            err.contains(&format!("container {name} is in the way")),
            "{name}: {err}"
        );
        foreign.untouched(&name);
        assert_eq!(d.serving().as_deref(), Some("version 1.0.0\n"), "{name}");
        assert_eq!(d.containers()[&d.container("web")].0, v1, "{name}");
        if suffix == ".kolla-lock" {
            d.expect("unlock", &["web"], 1, &["is in the way"]);
            foreign.untouched(&name);
            let output = d.kolla("recover", &[]);
            assert!(output.status.success(), "{}", describe(&output));
            foreign.untouched(&name);
        }
    }
    // With nothing in the way, the upgrade goes through.
    let output = d.kolla("upgrade", &["web", "--tag", "2.0.0"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(d.serving().as_deref(), Some("version 2.0.0\n"));
}

#[test]
fn a_foreign_container_under_a_new_service_name_stops_the_first_deploy() {
    let d = common::swap_deployment("foreign-create", &["1.0.0"]);
    let name = d.container("web");
    let foreign = Foreign::new(&d, &name);
    d.expect(
        "deploy",
        &[],
        1,
        &[&format!("container {name} is in the way")],
    );
    foreign.untouched(&name);
    assert!(
        !d.containers()
            .keys()
            .any(|n| n.ends_with(".kolla-new") || n.ends_with(".kolla-lock")),
        "{:?}",
        d.containers()
    );
}

/// The tests that hold, trace or kill kolla at its fault points: ignored
/// unless run against the `fault-injection` build of kolla (tools/test
/// builds it and sets KOLLA_TEST_KOLLA); `fault_point_tests_left_out`
/// counts them.
mod fault_points {
    use super::*;
    use crate::common::{FaultPoint, expect_exit};
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Child, Command, Stdio};
    use std::sync::mpsc::Receiver;
    use std::time::{Duration, Instant};

    /// A kolla run whose stderr a thread reads line by line, so a test can
    /// act on what it says while it runs.
    struct Watched {
        child: Child,
        lines: Receiver<String>,
        seen: Vec<String>,
    }

    impl Watched {
        fn spawn(mut command: Command) -> Watched {
            let mut child = command
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let stderr = child.stderr.take().unwrap();
            let (tx, lines) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            Watched {
                child,
                lines,
                seen: Vec::new(),
            }
        }

        /// The lines said since the last call (waiting up to `wait` for one).
        fn fresh(&mut self, wait: Duration) -> &[String] {
            let before = self.seen.len();
            if let Ok(line) = self.lines.recv_timeout(wait) {
                self.seen.push(line);
                self.seen.extend(self.lines.try_iter());
            }
            &self.seen[before..]
        }

        /// Whether the run said `what` before it ended or `limit` passed.
        fn said(&mut self, what: &str, limit: Duration) -> bool {
            let started = Instant::now();
            while started.elapsed() < limit {
                if self
                    .fresh(Duration::from_millis(20))
                    .iter()
                    .any(|l| l.contains(what))
                {
                    return true;
                }
                if self.child.try_wait().unwrap().is_some() {
                    return self.rest().contains(what);
                }
            }
            false
        }

        /// Everything it said, once it has ended (its stderr closes with it).
        fn rest(&mut self) -> String {
            self.seen.extend(self.lines.iter());
            self.seen.join("\n")
        }
    }

    /// The first upgrade of a pair, held inside its critical section (the
    /// lock taken) until `release` exists. Dropped early (a failed check), it
    /// is released and, if still running, killed: no run is left waiting.
    struct Held {
        run: Watched,
        release: std::path::PathBuf,
    }

    impl Held {
        fn start(mut command: Command, release: std::path::PathBuf) -> Held {
            common::set_fault(&mut command, FaultPoint::Locked.hold_until(&release));
            Held {
                run: Watched::spawn(command),
                release,
            }
        }

        /// Let it go on; its exit status and stderr once it ends.
        fn finish(&mut self) -> (std::process::ExitStatus, String) {
            std::fs::write(&self.release, "").unwrap();
            let status = self.run.child.wait().unwrap();
            (status, self.run.rest())
        }
    }

    impl Drop for Held {
        fn drop(&mut self) {
            let _ = std::fs::write(&self.release, "");
            if let Ok(None) = self.run.child.try_wait() {
                let _ = self.run.child.kill();
                let _ = self.run.child.wait();
            }
        }
    }

    /// What the swap fixture's history says, as (from, to, result) rows.
    fn history(d: &Deployment) -> Vec<(u64, u64, String)> {
        let output = d.kolla("history", &["web", "--output", "json"]);
        assert!(output.status.success(), "{}", describe(&output));
        let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        json["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["from_generation"].as_u64().unwrap(),
                    r["to_generation"].as_u64().unwrap(),
                    r["result"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The swaps the history records as done, as (from, to) generations.
    fn swaps_done(d: &Deployment) -> Vec<(u64, u64)> {
        history(d)
            .into_iter()
            .filter(|(_, _, result)| result == "ok")
            .map(|(from, to, _)| (from, to))
            .collect()
    }

    /// How long the second upgrade of a pair has to meet the held lock.
    const MEET_THE_LOCK: Duration = Duration::from_secs(60);

    /// Pairs of upgrades of one service that provably overlap: the first is
    /// held with its lock taken (fault point `locked`) while the second runs.
    /// The second must be refused at once (exit 4, naming the first as the
    /// holder), or wait and, once the first is let go, find nothing to do.
    /// Each pair makes exactly one swap, each swap starts from the generation
    /// the previous one ended at, no job is cut short, no lock or candidate is
    /// left.
    fn concurrent_pairs(name: &str, pairs: usize) {
        let d = deployed(name);
        let hold = tempfile::tempdir().unwrap();
        for i in 0..pairs {
            let (tag, extra): (&str, &[&str]) = if i % 2 == 0 {
                ("2.0.0", &[])
            } else {
                ("1.0.0", &["--allow-downgrade"])
            };
            let mut args = vec!["web", "--tag", tag];
            args.extend(extra);
            let mut first = d.command("upgrade", &args);
            first.env("BOOTSTRAP_SLEEP", "0.2");
            let mut first = Held::start(first, hold.path().join(format!("release-{i}")));
            let holder = format!("(pid {})", first.run.child.id());
            assert!(
                first
                    .run
                    .said("paused after locked", Duration::from_secs(120)),
                "pair {i}: the first upgrade never held the lock:\n{}",
                first.run.rest()
            );
            let mut second = d
                .command("upgrade", &args)
                .env("BOOTSTRAP_SLEEP", "0.2")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let met = Instant::now();
            while second.try_wait().unwrap().is_none() && met.elapsed() < MEET_THE_LOCK {
                std::thread::sleep(Duration::from_millis(20));
            }
            let refused_while_held = second.try_wait().unwrap().is_some();
            let (status, first_err) = first.finish();
            assert!(status.success(), "pair {i}: the held upgrade: {first_err}");
            let second = second.wait_with_output().unwrap();
            if refused_while_held {
                assert_eq!(
                    second.status.code(),
                    Some(4),
                    "pair {i}: the second upgrade went on while the first held the lock:\n{}",
                    describe(&second)
                );
                let err = expect_exit(&second, 4, &["service web is locked by"]);
                assert!(
                    err.contains(&holder),
                    "pair {i}: not naming {holder}: {err}"
                );
                eprintln!("pair {i}: the second was refused while the first held the lock");
            } else {
                eprintln!("pair {i}: the second waited for the held first");
                assert!(second.status.success(), "pair {i}: {}", describe(&second));
            }
            // One swap per pair: a second that waited found nothing to do.
            assert_eq!(swaps_done(&d).len(), i + 1, "pair {i}: {:?}", history(&d));
            d.assert_one_live_and_no_leftovers("web", &format!("pair {i}"));
            assert_eq!(
                d.serving().as_deref(),
                Some(format!("version {tag}\n").as_str()),
                "pair {i}"
            );
        }
        d.assert_data_intact_and_jobs_whole("after the pairs");
        // Every swap that went through started where the previous one ended.
        let swaps = swaps_done(&d);
        for window in swaps.windows(2) {
            assert_eq!(window[0].1, window[1].0, "two swaps overlapped: {swaps:?}");
        }
    }

    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn concurrent_upgrades_never_break_the_lock() {
        concurrent_pairs("pairs", 12);
    }

    /// The full count, as a soak: only with KOLLA_SOAK=1 (`tools/test
    /// --soak`), never in CI.
    #[test]
    #[ignore = "soak test: 100 pairs take minutes; runs only with KOLLA_SOAK=1 (tools/test --soak)"]
    fn a_hundred_concurrent_upgrade_pairs_never_break_the_lock() {
        if std::env::var("KOLLA_SOAK").as_deref() != Ok("1") {
            // Straight to stderr, past the test harness's capture: a soak left
            // out must say so, not pass in silence.
            let _ = writeln!(
                std::io::stderr(),
                "a_hundred_concurrent_upgrade_pairs_never_break_the_lock: LEFT OUT, \
                 KOLLA_SOAK is unset (set KOLLA_SOAK=1, or run tools/test --soak)"
            );
            return;
        }
        concurrent_pairs("pairs100", 100);
    }

    /// A small deterministic generator, so a failing sweep can be replayed
    /// from the seed it prints.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, below: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % below
        }
    }

    /// The steps from the old container's stop to the new one's gate (the
    /// `gated` point comes after it): a kill after one of these and before
    /// `gated` landed inside the swap, while the service was dark.
    const IN_THE_SWAP: &[FaultPoint] = &[
        FaultPoint::OldStopped,
        FaultPoint::OldRenamed,
        FaultPoint::NewRenamed,
        FaultPoint::NewStarted,
    ];

    /// Where a kill of the sweep is aimed.
    #[derive(Clone, Copy, Debug)]
    enum Aim {
        /// This long after the run started.
        Anywhere(Duration),
        /// This long after the run (or its swap helper) said the old container
        /// stopped.
        IntoSwap(Duration),
    }

    /// One kill of the sweep, and where it landed.
    struct Kill {
        iteration: usize,
        command: String,
        aim: Aim,
        /// When the SIGKILL went (unix ms); None if the run ended first.
        at: Option<u128>,
        /// The fault points passed, kolla's and its helper's, in time order.
        steps: Vec<(u128, FaultPoint)>,
    }

    impl Kill {
        /// The last step passed before the kill.
        fn interrupted(&self) -> Option<FaultPoint> {
            let at = self.at?;
            self.steps
                .iter()
                .rfind(|(t, _)| *t <= at)
                .map(|(_, step)| *step)
        }

        fn in_swap(&self) -> bool {
            self.interrupted().is_some_and(|s| IN_THE_SWAP.contains(&s))
        }

        /// Its line of the sweep's table.
        fn row(&self) -> String {
            let landed = match (self.at, self.interrupted()) {
                (None, _) => "(ended first)",
                (Some(_), None) => "(before any step)",
                (Some(_), Some(step)) => step.name(),
            };
            let at = self.at.unwrap_or(u128::MAX);
            let after: Vec<&str> = self
                .steps
                .iter()
                .filter(|(t, _)| *t > at)
                .map(|(_, s)| s.name())
                .collect();
            format!(
                "{:>3}  {:<42} {:<22} {:<18} {:<7} {}",
                self.iteration,
                self.command,
                format!("{:?}", self.aim),
                landed,
                if self.in_swap() { "yes" } else { "no" },
                after.join(" ")
            )
        }
    }

    const TABLE_HEADER: &str = "  #  command                                    aim                    after step         in swap then (the helper)";

    fn unix_ms() -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    }

    /// The steps a trace (KOLLA_FAULT=trace) says were passed, once each, in
    /// time order: (unix ms, step).
    fn steps_said(text: &str) -> Vec<(u128, FaultPoint)> {
        let mut steps: Vec<(u128, FaultPoint)> = Vec::new();
        for line in text.lines() {
            let Some((_, passed)) = line.split_once("fault injection: passed ") else {
                continue;
            };
            let Some((step, at)) = passed.split_once(" at unix-ms ") else {
                continue;
            };
            let step = FaultPoint::named(step)
                .unwrap_or_else(|| panic!("a trace names a step kolla has not: {step:?}"));
            let step = (at.trim().parse().unwrap(), step);
            // The helper's lines come both through kolla and from its log.
            if !steps.contains(&step) {
                steps.push(step);
            }
        }
        steps.sort_by_key(|(t, _)| *t);
        steps
    }

    /// `kolla VERB ARGS` with every step traced, killed with SIGKILL where
    /// `aim` says unless it ends first; then, once a swap helper it left has
    /// finished the swap on the node, what was passed before and after.
    fn kill_aimed(d: &Deployment, iteration: usize, verb: &str, args: &[&str], aim: Aim) -> Kill {
        let mut command = d.command(verb, args);
        common::set_fault(&mut command, "trace".into());
        let mut run = Watched::spawn(command);
        let started = Instant::now();
        let mut deadline = match aim {
            Aim::Anywhere(after) => Some(started + after),
            Aim::IntoSwap(_) => None,
        };
        let mut at = None;
        loop {
            let stopped = run.fresh(Duration::from_millis(2)).iter().any(|l| {
                l.contains(&format!(
                    "fault injection: passed {} ",
                    FaultPoint::OldStopped
                ))
            });
            if let (Aim::IntoSwap(after), None, true) = (aim, deadline, stopped) {
                deadline = Some(Instant::now() + after);
            }
            if run.child.try_wait().unwrap().is_some() {
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                at = Some(unix_ms());
                run.child.kill().unwrap();
                run.child.wait().unwrap();
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "iteration {iteration}: {verb} runs on:\n{}",
                run.seen.join("\n")
            );
        }
        let mut said = run.rest();
        said.push('\n');
        said.push_str(&helper_finished(d));
        if at.is_some() {
            requests_landed(d);
        }
        Kill {
            iteration,
            command: format!("{verb} {}", args.join(" ")),
            aim,
            at,
            steps: steps_said(&said),
        }
    }

    /// How long the engine's listing of the deployment must stay the same
    /// before a killed run's last requests count as landed.
    const QUIET: Duration = Duration::from_secs(1);

    /// Wait for the requests a killed run had in flight to land: the engine
    /// goes on with a create whose client is gone, so a lock the run was
    /// taking may appear a moment after the kill (on two busy cores, after
    /// the next command had looked and found nothing to recover: a CI run).
    /// An operator's next command comes seconds later; the test's must
    /// too, or it blames that command for a container it never saw. Waits
    /// until the listing is unchanged for `QUIET`, at most 10 s.
    fn requests_landed(d: &Deployment) {
        let waiting = Instant::now();
        let mut last = d.containers();
        let mut since = Instant::now();
        while since.elapsed() < QUIET && waiting.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
            let now = d.containers();
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
    }

    /// How long a helper left "created" by a kill may still be started by
    /// the request kolla sent before it (seconds on a loaded machine).
    const CREATED_HELPER_MAY_START: Duration = Duration::from_secs(10);

    /// Wait for the swap helper a killed run left (a swap under way finishes
    /// on the node); what it said, or nothing if there is none.
    fn helper_finished(d: &Deployment) -> String {
        let helper = d.container("web.kolla-swap");
        let waiting = Instant::now();
        loop {
            let state = d.containers().get(&helper).map(|(_, s)| s.clone());
            match state.as_deref() {
                Some("running") => assert!(
                    waiting.elapsed() < Duration::from_secs(60),
                    "the helper runs on"
                ),
                // A start kolla sent just before its kill may land after
                // it (the engine goes on with a request whose client is
                // gone): a helper still "created" may yet run the swap.
                // One kolla never started stays created; it does nothing.
                Some("created") if waiting.elapsed() < CREATED_HELPER_MAY_START => {}
                _ => break,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !d.containers().contains_key(&helper) {
            return String::new();
        }
        let logs = common::docker(&["logs", &helper]);
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&logs.stdout),
            String::from_utf8_lossy(&logs.stderr)
        )
    }

    /// 30 upgrades and rollbacks, each killed with SIGKILL: every other one
    /// aimed into the swap (0 to 500 ms after the old container stopped), the
    /// rest at a random moment of the run. Each kill's step is read from the
    /// trace of fault points, and at least a third must land between the old
    /// container's stop and the new one's gate. The swap helper finishes
    /// whatever swap the kill interrupted, so the service is never left dark,
    /// with no command run after the kill; the next command must succeed and
    /// leave one serving container with the data intact.
    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn random_sigkills_of_upgrades_and_rollbacks() {
        let d = deployed("sweep");
        let seed = std::env::var("KOLLA_SWEEP_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| unix_ms() as u64);
        eprintln!("sweep seed {seed} (KOLLA_SWEEP_SEED replays it)");
        let mut random = Lcg(seed);
        let mut kills = Vec::new();
        let mut dark_after_kill = 0;
        let iterations = 30;
        for i in 0..iterations {
            // Upgrades go to the tag not served, so each has a swap to cut.
            let (verb, args): (&str, &[&str]) = match (i % 3, d.serving().as_deref()) {
                (1, _) => ("rollback", &["web", "--force"]),
                (_, Some("version 2.0.0\n")) => {
                    ("upgrade", &["web", "--tag", "1.0.0", "--allow-downgrade"])
                }
                _ => ("upgrade", &["web", "--tag", "2.0.0"]),
            };
            let aim = if i % 2 == 0 {
                Aim::IntoSwap(Duration::from_millis(random.next(500)))
            } else {
                Aim::Anywhere(Duration::from_millis(random.next(2500)))
            };
            let kill = kill_aimed(&d, i, verb, args, aim);
            if d.serving().is_none() {
                dark_after_kill += 1;
                eprintln!("dark after the kill: {}", kill.row());
            }
            next_command_settles(&d, &mut random, &kill, seed);
            kills.push(kill);
        }
        let table: Vec<String> = kills.iter().map(Kill::row).collect();
        let table = format!("{TABLE_HEADER}\n{}", table.join("\n"));
        eprintln!("sweep (seed {seed}):\n{table}");
        let in_swap = kills.iter().filter(|k| k.in_swap()).count();
        assert!(
            in_swap * 3 >= iterations,
            "seed {seed}: {in_swap} of {iterations} kills landed between the old container's \
             stop and the new one's gate; at least a third must:\n{table}"
        );
        assert_eq!(
            dark_after_kill, 0,
            "seed {seed}: a kill left the service dark:\n{table}"
        );
    }

    /// The labels of the service's lock, if one is there: whose it is (the
    /// killed run's pid, or the next command's) tells a lock released too
    /// early from one never released.
    fn lock_holder(d: &Deployment) -> String {
        let output = common::docker(&[
            "inspect",
            "-f",
            "{{json .Config.Labels}} created {{.Created}}",
            &d.container("web.kolla-lock"),
        ]);
        if output.status.success() {
            common::stdout_of(&output).trim().to_string()
        } else {
            "none".into()
        }
    }

    /// After `kill`: one of recover, deploy, upgrade, rollback must succeed
    /// and leave one serving container, the kept ones within retain, the data
    /// intact and every job whole.
    fn next_command_settles(d: &Deployment, random: &mut Lcg, kill: &Kill, seed: u64) {
        let i = kill.iteration;
        let next: (&str, Vec<&str>) = match random.next(4) {
            0 => ("recover", vec![]),
            1 => ("deploy", vec![]),
            2 => ("upgrade", vec!["web", "--tag", "2.0.0"]),
            _ => ("recover", vec!["web"]),
        };
        let output = d.kolla(next.0, &next.1);
        assert!(
            output.status.success(),
            "iteration {i} (seed {seed}), then {}:\n{TABLE_HEADER}\n{}\n{}",
            next.0,
            kill.row(),
            describe(&output)
        );
        let context = format!(
            "iteration {i} (seed {seed}), then {} {}:\n{TABLE_HEADER}\n{}\n{}\nlock: {}",
            next.0,
            next.1.join(" "),
            kill.row(),
            describe(&output),
            lock_holder(d)
        );
        d.assert_one_live_and_no_leftovers("web", &context);
        let containers = d.containers();
        let kept = containers
            .keys()
            .filter(|n| n.contains(".kolla-gen-"))
            .count();
        assert!(
            kept <= 2,
            "iteration {i}: {kept} kept beyond retain 2: {containers:?}"
        );
        assert!(d.serving().is_some(), "iteration {i} (seed {seed}): dark");
        d.assert_data_intact_and_jobs_whole(&format!("iteration {i} (seed {seed})"));
    }
}

#[test]
#[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
fn fault_point_tests_left_out() {
    common::fault_point_tests_left_out(file!());
}

/// A live container stopped behind kolla's back (the engine killed and
/// restarted, with no swap in flight): `recover` starts it again, with its
/// restart policy, and says so.
#[test]
#[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
fn recover_starts_a_live_container_that_was_stopped() {
    let d = deployed("stopped");
    let v1 = d.containers()[&d.container("web")].0.clone();
    let output = common::docker(&["kill", &d.container("web")]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(d.serving().is_none());
    let output = d.kolla("recover", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("recovered"),
        "{}",
        describe(&output)
    );
    assert_eq!(d.serving().as_deref(), Some("version 1.0.0\n"));
    assert_eq!(d.containers()[&d.container("web")].0, v1);
    d.assert_one_live_and_no_leftovers("web", "after recover");
    let output = d.kolla("recover", &[]);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("nothing to recover"),
        "{}",
        describe(&output)
    );
}
