//! `kolla history` against the real engine: a history log with bytes that
//! are not UTF-8 and lines that are not records is read around them (they
//! are counted, never fatal), records old and new read as RFC 3339 times,
//! the operator, duration and releases (the table and `--output json`
//! alike), and a service that no compose file, log record or container
//! names is refused as bad input, naming the ones that are known.

mod common;

use common::{Deployment, Sandbox, expect_exit, stdout_of};

/// One line of the history log, as kolla writes it.
fn record(service: &str, to: u64) -> String {
    serde_json::json!({
        "time": 1_700_000_000 + to,
        "node": "local",
        "service": service,
        "action": "upgrade",
        "from_generation": to - 1,
        "to_generation": to,
        "image": format!("example/{service}:{to}"),
        "digest": "sha256:0",
        "user": "tester",
        "result": "ok",
        "dark_window_secs": 0.25
    })
    .to_string()
}

/// A deployment of the compose fixture with nothing deployed or built (the
/// project has no container; its compose files only have to read), and
/// `log` as its history log.
fn with_log(name: &str, log: &[u8]) -> Deployment {
    let d = Deployment::of(Sandbox::new(name), name, "compose", "");
    let state = d.images.dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state folder");
    std::fs::write(state.join("history.jsonl"), log).expect("history log");
    d
}

#[test]
fn history_skips_and_counts_unreadable_lines() {
    let mut log = Vec::new();
    log.extend(record("web", 2).into_bytes());
    log.push(b'\n');
    // Line 2: a record with one byte that is not UTF-8 in it.
    let mut bad_byte = record("web", 3).into_bytes();
    bad_byte.insert(12, 0xff);
    log.extend(bad_byte);
    // Line 3: a record cut short.
    log.extend(b"\n{\"time\": 1, \"node\": \n");
    log.extend(record("web", 4).into_bytes());
    log.push(b'\n');
    let d = with_log("history-lines", &log);
    let compose = d.compose_dir.to_str().expect("a UTF-8 path");
    let out = d.kolla("history", &["--compose-dir", compose, "web"]);
    expect_exit(
        &out,
        0,
        &["history: 2 unreadable lines skipped in", "(lines 2, 3)"],
    );
    let shown = stdout_of(&out);
    assert!(shown.contains("example/web:2"), "{shown}");
    assert!(shown.contains("example/web:4"), "{shown}");
    assert!(!shown.contains("example/web:3"), "{shown}");
}

#[test]
fn history_shows_times_operators_and_changes_of_old_and_new_records() {
    // A record as kolla writes it now, then one from before the host,
    // duration and releases were kept, then a line that is no record.
    let mut new: serde_json::Value = serde_json::from_str(&record("web", 3)).expect("JSON");
    new["from_image"] = "example/web:2".into();
    new["host"] = "deployer-1".into();
    new["duration_secs"] = 4.5.into();
    new["from_release"] = "zed".into();
    new["to_release"] = "epoxy".into();
    let log = format!("{}\n{new}\nnot a record\n", record("web", 2));
    let d = with_log("history-columns", log.as_bytes());
    let compose = d.compose_dir.to_str().expect("a UTF-8 path");
    let out = d.kolla("history", &["--compose-dir", compose, "web"]);
    expect_exit(
        &out,
        0,
        &["history: 1 unreadable line skipped in", "(line 3)"],
    );
    let shown = stdout_of(&out);
    let lines: Vec<&str> = shown.lines().collect();
    let header = ["TIME (UTC)", "OPERATOR", "TOOK", "DARK", "RELEASE", "TAG"];
    for column in header {
        assert!(lines[0].contains(column), "{column}: {shown}");
    }
    // 1_700_000_002 and 1_700_000_003 seconds after the epoch, in UTC.
    assert!(lines[1].starts_with("2023-11-14T22:13:22Z "), "{shown}");
    assert!(lines[1].contains(" tester "), "{shown}");
    assert!(lines[2].starts_with("2023-11-14T22:13:23Z "), "{shown}");
    for part in [
        " tester@deployer-1 ",
        " 4.5s ",
        " 0.250s ",
        " zed->epoxy ",
        " 2->3 ",
    ] {
        assert!(lines[2].contains(part), "{part}: {shown}");
    }

    let out = d.kolla(
        "history",
        &["--compose-dir", compose, "web", "--output", "json"],
    );
    expect_exit(&out, 0, &["history: 1 unreadable line skipped in"]);
    let json: serde_json::Value = serde_json::from_str(&stdout_of(&out)).expect("JSON");
    let records = json["history"].as_array().expect("records");
    assert_eq!(records.len(), 2, "{json}");
    assert_eq!(records[0]["time"], "2023-11-14T22:13:22Z");
    assert_eq!(records[0]["operator"], "tester");
    assert_eq!(records[0]["from_image"], serde_json::Value::Null);
    assert_eq!(records[1]["operator"], "tester@deployer-1");
    assert_eq!(records[1]["duration_secs"], 4.5);
    assert_eq!(records[1]["from_tag"], "2");
    assert_eq!(records[1]["to_tag"], "3");
    assert_eq!(records[1]["to_release"], "epoxy");
    assert_eq!(json["unreadable_lines"], serde_json::json!([3]));
}

#[test]
fn history_refuses_a_service_nothing_knows_naming_the_known_ones() {
    let d = with_log(
        "history-unknown",
        format!("{}\n", record("retired", 7)).as_bytes(),
    );
    let compose = d.compose_dir.to_str().expect("a UTF-8 path");
    // Known from the log alone (its compose entry is gone), or from a
    // compose file alone (never swapped yet): shown, not refused.
    let out = d.kolla("history", &["--compose-dir", compose, "retired"]);
    expect_exit(&out, 0, &[]);
    assert!(stdout_of(&out).contains("example/retired:7"));
    let out = d.kolla("history", &["--compose-dir", compose, "api"]);
    expect_exit(&out, 0, &[]);

    // Known nowhere: bad input, with what is known.
    let out = d.kolla("history", &["--compose-dir", compose, "wbe"]);
    let said = expect_exit(&out, 2, &["service \"wbe\"", "the services known: "]);
    let known = said
        .split("the services known: ")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default();
    let known: Vec<&str> = known.split(", ").collect();
    for service in ["api", "retired", "web", "webdata"] {
        assert!(known.contains(&service), "{service} in {known:?}");
    }
    assert!(stdout_of(&out).is_empty(), "{}", stdout_of(&out));
}
