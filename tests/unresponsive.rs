//! Engines that do not answer: a black hole (takes the connection, never
//! says a word) and a half answer (answers `/_ping` and `/version`, then
//! hangs) as nodes of an inventory, beside this machine's healthy engine.
//! kolla names each silent node with the request it was waiting on, within
//! its deadline, exits non-zero, and still does and reports the healthy
//! node's work. Also: endpoints written wrong in the inventory (a malformed
//! `ssh://` URL, TLS files that are not there) are bad input, exit 2.

mod common;

use std::time::Duration;

use common::*;

/// An inventory of this machine's engine (`local`) and `silent` nodes.
fn inventory(d: &Deployment, silent: &[(&str, &SilentEngine)]) {
    let mut text = "nodes:\n  local:\n    roles: [controller]\n".to_string();
    for (name, engine) in silent {
        text.push_str(&format!(
            "  {name}:\n    docker: {}\n    roles: [controller]\n",
            engine.url
        ));
    }
    std::fs::write(&d.inventory, text).expect("inventory");
}

fn one_service(d: &Deployment) {
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        "services:\n  web:\n    image: ${IMAGE}\n    command: [sleep, \"3600\"]\n",
    )
    .expect("compose file");
}

/// The deadline of an answer when no flag or variable sets it.
const DEFAULT_SECS: u64 = kolla::engine::DEFAULT_ANSWER.as_secs();
/// Long enough for a deadline (DEFAULT_SECS) and the healthy node's work;
/// far below an engine that is never given up on.
const PROMPT: Duration = Duration::from_secs(60);

#[test]
fn silent_engines_are_named_with_the_request_they_did_not_answer() {
    let d = Deployment::new("silent");
    one_service(&d);
    let (hole, half) = (black_hole(), half_answer());
    inventory(&d, &[("hole", &hole), ("half", &half)]);

    let (output, _) = run_within(d.command("deploy", &[]), PROMPT);
    let said = expect_exit(
        &output,
        1,
        &[
            &format!(
                "node hole: the engine at {} did not answer `version` within {}s",
                hole.url, DEFAULT_SECS
            ),
            &format!(
                "node half: the engine at {} did not answer `inspect image",
                half.url
            ),
        ],
    );
    assert!(said.contains(&format!("within {DEFAULT_SECS}s")), "{said}");
    let out = stdout_of(&output);
    assert!(out.contains("node hole: FAILED"), "{out}");
    assert!(out.contains("node half: FAILED"), "{out}");
    // The healthy node's deploy is done and reported.
    assert!(
        out.contains("node local: 1 create (0 unchanged)"),
        "{}",
        describe(&output)
    );
    let web = d.container("web");
    assert_eq!(
        d.containers().get(&web).map(|(_, state)| state.as_str()),
        Some("running"),
        "{}",
        describe(&output)
    );

    // ps: the list the half answer hangs on is named; local's rows shown.
    let (output, _) = run_within(d.command("ps", &[]), PROMPT);
    expect_exit(
        &output,
        1,
        &[
            &format!(
                "node hole: the engine at {} did not answer `version`",
                hole.url
            ),
            &format!(
                "node half: the engine at {} did not answer `list containers` within {}s",
                half.url, DEFAULT_SECS
            ),
        ],
    );
    assert!(stdout_of(&output).contains(&web), "{}", describe(&output));
}

/// More silent nodes than `--forks`: every engine is asked at once first,
/// so each silent node costs its fork nothing and all are named in about
/// one deadline, not one deadline per `--forks` nodes in a row.
#[test]
fn many_silent_nodes_are_named_within_a_deadline_or_two() {
    let d = Deployment::new("silentmany");
    one_service(&d);
    let hole = black_hole();
    let names: Vec<String> = (0..40).map(|i| format!("hole{i:02}")).collect();
    let silent: Vec<(&str, &SilentEngine)> = names.iter().map(|n| (n.as_str(), &hole)).collect();
    inventory(&d, &silent);
    // Forty nodes two at a time, one second each: twenty seconds in a row.
    let mut command = d.command("ps", &["--forks", "2", "--engine-timeout", "1"]);
    command.env_remove("KOLLA_ENGINE_TIMEOUT");
    let (output, took) = run_within(command, PROMPT);
    let said = expect_exit(&output, 1, &["40 of 41 nodes' engines did not answer"]);
    for name in &names {
        assert!(
            said.contains(&format!(
                "node {name}: the engine at {} did not answer `version` within 1s",
                hole.url
            )),
            "{name} not named:\n{said}"
        );
    }
    assert!(
        took < Duration::from_secs(10),
        "forty silent nodes took {took:?} at two forks:\n{said}"
    );
}

/// `kolla ps` on a one-node inventory written `node`, from a folder of its
/// own; exit 2 naming every one of `phrases`, before any engine is asked.
fn refused_inventory(node: &str, phrases: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let inventory = dir.path().join("inventory.yml");
    std::fs::write(
        &inventory,
        format!("nodes:\n  n1:\n{node}    roles: [controller]\n"),
    )
    .expect("inventory");
    let mut command = kolla_command();
    command
        .arg("--config-dir")
        .arg(dir.path())
        .arg("ps")
        .arg("-i")
        .arg(&inventory);
    let (output, _) = run_within(command, PROMPT);
    let mut phrases = phrases.to_vec();
    let path = inventory.display().to_string();
    phrases.push(&path);
    expect_exit(&output, 2, &phrases);
}

#[test]
fn a_malformed_ssh_url_is_bad_input_naming_node_and_key() {
    for url in ["ssh://host:port", "ssh://-oProxyCommand=x", "ssh://a b"] {
        refused_inventory(
            &format!("    docker: \"{url}\"\n"),
            &["node n1: docker", "expected ssh://[user@]host[:port]"],
        );
    }
}

#[test]
fn missing_tls_files_are_bad_input_naming_node_and_key() {
    // Loopback, so that nothing is sent anywhere whatever happens.
    refused_inventory(
        "    docker: tcp://127.0.0.1:9\n    tls: {ca: certs/ca.pem, cert: certs/cert.pem, key: certs/key.pem}\n",
        &[
            "node n1: tls.ca:",
            "certs/ca.pem does not exist",
            "node n1: tls.cert:",
            "node n1: tls.key:",
        ],
    );
}
