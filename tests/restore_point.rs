//! Restore points on the real engine: an upgrade whose bootstrap job
//! migrates the fixture's "database" first dumps it (in the database's own
//! container) and keeps the dump on the node; `rollback --restore-db` loads
//! it back with the service stopped; a rollback without the flag warns that
//! the schema is newer. A dump that fails stops the upgrade before anything
//! changes; a load that fails leaves neither generation running. Restore
//! points follow the kept generations and survive `destroy` until
//! `--purge-data`.

mod common;

use common::{Deployment, describe, docker, stdout_of};

const V1: &str = "schema 1\nmigrated to version 1.0.0\n";
const V2: &str = "schema 1\nmigrated to version 1.0.0\nmigrated to version 2.0.0\n";

fn deployed(name: &str, tags: &[&str]) -> Deployment {
    let d = common::swap_deployment_of("restore-point", name, tags);
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(schema(&d), V1, "the first deploy's bootstrap migrates once");
    d
}

/// The fixture database's schema file, read in its own container.
fn schema(d: &Deployment) -> String {
    let output = docker(&["exec", &d.container("db"), "cat", "/db/schema"]);
    assert!(output.status.success(), "{}", describe(&output));
    stdout_of(&output)
}

fn in_db(d: &Deployment, command: &str) {
    let output = docker(&["exec", &d.container("db"), "sh", "-c", command]);
    assert!(output.status.success(), "{}", describe(&output));
}

/// The restore points `kolla history web --output json` lists: generations.
fn restore_points(d: &Deployment) -> Vec<u64> {
    let output = d.kolla("history", &["web", "--output", "json"]);
    assert!(output.status.success(), "{}", describe(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("history JSON");
    json["restore_points"]["local"]
        .as_array()
        .map(|points| {
            points
                .iter()
                .filter_map(|p| p["generation"].as_u64())
                .collect()
        })
        .unwrap_or_default()
}

fn state_of(d: &Deployment, name: &str) -> Option<String> {
    d.containers().get(name).map(|(_, state)| state.clone())
}

#[test]
fn rollback_restore_db_loads_the_schema_the_old_generation_ran_on() {
    let d = deployed("restore", &["1.0.0", "2.0.0"]);
    assert!(
        restore_points(&d).is_empty(),
        "a first deploy has nothing to go back to"
    );
    d.expect("upgrade", &["web", "--tag", "2.0.0"], 0, &["restore point"]);
    assert_eq!(schema(&d), V2, "the new generation's job migrated");
    assert_eq!(
        restore_points(&d),
        vec![1],
        "taken before generation 2's job"
    );
    // Written after the upgrade: a restore loses it, as the flag says.
    in_db(&d, "echo 'row written by generation 2' >> /db/schema");
    let output = d.expect(
        "rollback",
        &["web", "--restore-db"],
        0,
        &["database restored"],
    );
    assert_eq!(schema(&d), V1, "{}", describe(&output));
    assert_eq!(d.serving().as_deref(), Some("version 1.0.0\n"));
    d.assert_one_live_and_no_leftovers("web", "after rollback --restore-db");
    // The staged dump does not stay in the database's container.
    let staged = docker(&[
        "exec",
        &d.container("db"),
        "test",
        "-e",
        "/tmp/kolla-restore-point",
    ]);
    assert!(!staged.status.success(), "the staged dump was left behind");
    // The reported dark window covers the restore: the service was down
    // from the stop before the load.
    let json = d.kolla("history", &["web", "--output", "json"]);
    let history: serde_json::Value = serde_json::from_slice(&json.stdout).expect("history JSON");
    let last = history["history"]
        .as_array()
        .and_then(|records| records.last())
        .cloned()
        .expect("a rollback record");
    assert_eq!(last["action"], "rollback");
    assert!(
        last["dark_window_secs"].as_f64().is_some_and(|s| s > 0.0),
        "{last}"
    );
}

#[test]
fn a_rollback_across_a_migration_without_the_flag_warns_and_keeps_the_schema() {
    let d = deployed("restore-warn", &["1.0.0", "2.0.0"]);
    d.expect("upgrade", &["web", "--tag", "2.0.0"], 0, &[]);
    let output = d.kolla("rollback", &["web"]);
    assert!(output.status.success(), "{}", describe(&output));
    let said = common::stderr(&output);
    assert!(
        said.contains("schema may be newer") && said.contains("--restore-db"),
        "{}",
        describe(&output)
    );
    assert_eq!(schema(&d), V2, "nothing restored without the flag");
    assert_eq!(d.serving().as_deref(), Some("version 1.0.0\n"));
}

#[test]
fn a_failing_dump_stops_the_upgrade_before_anything_changes() {
    let mut d = deployed("restore-dumpfail", &["1.0.0", "2.0.0"]);
    let before = d.containers();
    d.env.push(("FAIL_DUMP".into(), "1".into()));
    let output = d.expect(
        "upgrade",
        &["web", "--tag", "2.0.0"],
        1,
        &["restore point", "the dump", "exited 1"],
    );
    assert_eq!(schema(&d), V1, "the job never ran: {}", describe(&output));
    assert_eq!(d.serving().as_deref(), Some("version 1.0.0\n"));
    assert_eq!(
        d.containers(),
        before,
        "nothing was created, removed or stopped"
    );
    assert!(restore_points(&d).is_empty());
}

#[test]
fn a_failing_restore_starts_neither_generation_and_a_rerun_finishes() {
    let d = deployed("restore-loadfail", &["1.0.0", "2.0.0"]);
    d.expect("upgrade", &["web", "--tag", "2.0.0"], 0, &[]);
    in_db(&d, "touch /db/readonly");
    d.expect(
        "rollback",
        &["web", "--restore-db"],
        1,
        &[
            "neither runs on a half-restored database",
            "kolla rollback web --restore-db",
        ],
    );
    let web = d.container("web");
    let kept = format!("{web}.kolla-gen-1");
    assert_ne!(
        state_of(&d, &web).as_deref(),
        Some("running"),
        "generation 2 was stopped"
    );
    assert_ne!(
        state_of(&d, &kept).as_deref(),
        Some("running"),
        "generation 1 was not started"
    );
    assert!(d.serving().is_none());
    // Once the operator fixes the cause, the same command finishes.
    in_db(&d, "rm /db/readonly");
    d.expect(
        "rollback",
        &["web", "--restore-db"],
        0,
        &["database restored"],
    );
    assert_eq!(schema(&d), V1);
    assert_eq!(d.serving().as_deref(), Some("version 1.0.0\n"));
    d.assert_one_live_and_no_leftovers("web", "after the second rollback");
}

#[test]
fn restore_points_follow_the_kept_generations_and_outlive_destroy_until_purge() {
    let d = deployed("restore-retain", &["1.0.0", "2.0.0", "3.0.0"]);
    d.expect(
        "upgrade",
        &["web", "--tag", "2.0.0", "--retain", "1"],
        0,
        &[],
    );
    d.expect(
        "upgrade",
        &["web", "--tag", "3.0.0", "--retain", "1"],
        0,
        &[],
    );
    // Generation 1 is no longer kept: its restore point went with it.
    assert_eq!(restore_points(&d), vec![2]);
    let output = d.expect("destroy", &[], 0, &[]);
    assert!(
        stdout_of(&output).contains("restore points kept")
            || common::stderr(&output).contains("restore points kept"),
        "{}",
        describe(&output)
    );
    assert_eq!(restore_points(&d), vec![2], "destroy keeps data");
    d.expect(
        "destroy",
        &["--purge-data", "--yes-i-really-mean-it"],
        0,
        &[],
    );
    assert!(restore_points(&d).is_empty(), "--purge-data removes them");
}

#[test]
fn a_container_kolla_does_not_own_in_a_restore_point_name_stops_the_upgrade_first() {
    let d = deployed("restore-inway", &["1.0.0", "2.0.0"]);
    let in_the_way = format!("{}.kolla-restore-1.writing", d.container("web"));
    let image = d.env("IMAGE").to_string();
    let made = docker(&[
        "create",
        "--name",
        &in_the_way,
        "--label",
        "kolla.test=in-the-way",
        &image,
        "true",
    ]);
    assert!(made.status.success(), "{}", describe(&made));
    let output = d.kolla("upgrade", &["web", "--tag", "2.0.0"]);
    let _ = docker(&["rm", "-f", "-v", &in_the_way]);
    common::expect_exit(&output, 1, &[&in_the_way, "not kolla's"]);
    assert_eq!(schema(&d), V1, "the job never ran");
    assert_eq!(d.serving().as_deref(), Some("version 1.0.0\n"));
    assert!(restore_points(&d).is_empty());
}

/// A plain build leaves the fault-point tests out; this says how many.
#[test]
fn fault_point_tests_left_out() {
    common::fault_point_tests_left_out(file!());
}

/// The tests that freeze kolla at a fault point (`KOLLA_FAULT`): ignored
/// unless run against the `fault-injection` build of kolla (tools/test
/// builds it and sets KOLLA_TEST_KOLLA); `fault_point_tests_left_out`
/// counts them.
mod fault_points {
    use super::*;
    use crate::common::FaultPoint;

    /// A `rollback --restore-db` killed (SIGKILL) after it stopped the newer
    /// generation, after the load, or in the middle of its swap: the next
    /// command's recovery never starts the newer generation on a database that
    /// may be half restored. It loads the restore point again, whole, and
    /// finishes the rollback the operator asked for.
    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn a_restore_killed_at_any_step_is_finished_by_recovery() {
        for step in [
            FaultPoint::RestoreStopped,
            FaultPoint::Restored,
            FaultPoint::OldRenamed,
        ] {
            let d = deployed(&format!("restore-kill-{step}"), &["1.0.0", "2.0.0"]);
            // The swap's steps in kolla itself, not in a helper that would
            // finish it alone.
            d.without_helper();
            d.expect("upgrade", &["web", "--tag", "2.0.0"], 0, &[]);
            common::kill_at(d.command("rollback", &["web", "--restore-db"]), step);
            assert!(d.serving().is_none(), "{step}: generation 2 was stopped");
            // Whatever the load left, the restore point loads whole.
            in_db(&d, "echo 'half restored' > /db/schema");
            let output = d.kolla("recover", &[]);
            assert!(output.status.success(), "{step}: {}", describe(&output));
            let said = format!("{}{}", stdout_of(&output), common::stderr(&output));
            assert!(
                said.contains("finished the interrupted `rollback --restore-db`"),
                "{step}: {said}"
            );
            assert_eq!(schema(&d), V1, "{step}: {said}");
            assert_eq!(
                d.serving().as_deref(),
                Some("version 1.0.0\n"),
                "{step}: {said}"
            );
            d.assert_one_live_and_no_leftovers("web", step.name());
        }
    }

    /// An upgrade killed (SIGKILL) while it writes its restore point leaves a
    /// half-written dump under its `.writing` name: never listed, never
    /// restored from. Recovery removes it, and the upgrade run again takes a
    /// whole restore point and swaps.
    #[test]
    #[ignore = "a fault-point test: needs the fault-injection build of kolla (KOLLA_TEST_KOLLA); tools/test runs it"]
    fn a_dump_cut_short_is_never_a_restore_point_and_recovery_removes_it() {
        let d = deployed("restore-kill-dump", &["1.0.0", "2.0.0"]);
        common::kill_at(
            d.command("upgrade", &["web", "--tag", "2.0.0"]),
            FaultPoint::DumpWritten,
        );
        let writing = format!("{}.kolla-restore-1.writing", d.container("web"));
        assert!(
            state_of(&d, &writing).is_some(),
            "the kill left the dump half written: {:?}",
            d.containers().keys().collect::<Vec<_>>()
        );
        assert!(
            restore_points(&d).is_empty(),
            "a half-written dump is listed"
        );
        assert_eq!(d.serving().as_deref(), Some("version 1.0.0\n"));
        let output = d.kolla("recover", &[]);
        assert!(output.status.success(), "{}", describe(&output));
        assert!(state_of(&d, &writing).is_none(), "recovery left {writing}");
        d.expect("upgrade", &["web", "--tag", "2.0.0"], 0, &[]);
        assert_eq!(restore_points(&d), vec![1]);
        assert_eq!(schema(&d), V2);
        d.expect("rollback", &["web", "--restore-db"], 0, &[]);
        assert_eq!(schema(&d), V1, "the restore point taken again loads whole");
    }
}
