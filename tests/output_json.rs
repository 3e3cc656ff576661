//! `--output json` of deploy (and its dry run), prechecks, pull and
//! recover, against the real engine: stdout is one JSON document an
//! element per node (the progress and the plan's text stay on stderr),
//! each service's action, cause and result as the human output says them;
//! a dry run's document changes nothing on the engine.

mod common;

use common::{Deployment, OwnTag, Registry, describe, docker, stderr, stdout_of, swap_deployment};
use serde_json::Value;

/// `kolla VERB ARGS --output json` on `d`, which must exit `code`: its
/// document, parsed.
fn json_of(d: &Deployment, verb: &str, args: &[&str], code: i32) -> Value {
    let mut args = args.to_vec();
    args.extend(["--output", "json"]);
    let output = d.kolla(verb, &args);
    assert_eq!(output.status.code(), Some(code), "{}", describe(&output));
    serde_json::from_str(&stdout_of(&output)).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}",
            describe(&output)
        )
    })
}

/// The element of node `node` in a node-by-node document.
fn node<'a>(document: &'a Value, node: &str) -> &'a Value {
    let nodes = document.as_array().expect("an array of nodes");
    nodes
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("no node {node} in {document:#}"))
}

/// Service `service`'s record in a node's element of `deploy`.
fn service<'a>(node: &'a Value, service: &str) -> &'a Value {
    node["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["service"] == service)
        .unwrap_or_else(|| panic!("no service {service} in {node:#}"))
}

/// (action, cause, result) of `service` in node `local`'s element.
fn action_of(document: &Value, name: &str) -> (String, String, String) {
    let s = service(node(document, "local"), name);
    let text = |key: &str| s[key].as_str().unwrap_or_default().to_string();
    (text("action"), text("cause"), text("result"))
}

fn ids(d: &Deployment) -> Vec<(String, String)> {
    d.containers()
        .into_iter()
        .map(|(name, (id, _))| (name, id))
        .collect()
}

/// Globals of the swap fixture with `tag` as the image tag.
fn set_tag(d: &Deployment, tag: &str) {
    let path = d.images.config_dir.join("globals.yml");
    let globals = std::fs::read_to_string(&path).expect("globals.yml");
    assert!(globals.contains("tag: \"1.0.0\""), "{globals}");
    std::fs::write(
        &path,
        globals.replace("tag: \"1.0.0\"", &format!("tag: \"{tag}\"")),
    )
    .expect("globals.yml");
}

#[test]
fn deploy_reports_each_action_its_cause_and_result_and_a_dry_run_its_plan() {
    let d = swap_deployment("json-deploy", &["1.0.0", "2.0.0"]);

    let output = d.kolla("deploy", &["--output", "json"]);
    assert!(output.status.success(), "{}", describe(&output));
    // The plan's text and the node's line are on stderr, not in the JSON.
    assert!(
        stderr(&output).contains("level 0:") && stderr(&output).contains("node local: "),
        "{}",
        describe(&output)
    );
    let first: Value = serde_json::from_str(&stdout_of(&output)).expect("one JSON document");
    let local = node(&first, "local");
    assert_eq!(local["result"], "ok", "{first:#}");
    assert_eq!(local["dry_run"], false);
    assert_eq!(local["errors"], serde_json::json!([]));
    assert_eq!(
        action_of(&first, "webdata"),
        ("create-data".into(), "not created".into(), "ok".into())
    );
    assert_eq!(
        action_of(&first, "web"),
        ("create".into(), "not created".into(), "ok".into())
    );
    assert_eq!(service(local, "web")["to_generation"], 1);
    assert_eq!(d.serving().as_deref(), Some("version 1.0.0\n"));

    // Again: nothing to do, and it says so.
    let again = json_of(&d, "deploy", &[], 0);
    assert_eq!(
        action_of(&again, "web"),
        ("keep".into(), "up to date".into(), "ok".into())
    );
    assert_eq!(action_of(&again, "webdata").0, "keep");

    // A new image: the dry run plans the replace and changes nothing.
    set_tag(&d, "2.0.0");
    let before = ids(&d);
    let plan = json_of(&d, "deploy", &["--dry-run"], 0);
    assert_eq!(ids(&d), before, "a dry run changed containers");
    assert_eq!(node(&plan, "local")["dry_run"], true);
    assert_eq!(
        action_of(&plan, "web"),
        ("replace".into(), "image changed".into(), "planned".into())
    );
    let web = service(node(&plan, "local"), "web");
    assert_eq!(web["from_generation"], 1, "{web:#}");
    assert_eq!(web["to_generation"], 2, "{web:#}");
    let (from, to) = (&web["image"]["from"], &web["image"]["to"]);
    let reference = |r: &Value| r["reference"].as_str().unwrap_or_default().to_string();
    assert!(reference(from).ends_with("/fx-web:1.0.0"), "{web:#}");
    assert!(reference(to).ends_with("/fx-web:2.0.0"), "{web:#}");
    assert!(from["id"].is_string() && to["id"].is_string(), "{web:#}");
    assert_ne!(from["id"], to["id"], "{web:#}");
    assert_eq!(d.serving().as_deref(), Some("version 1.0.0\n"));

    // The deploy replaces it, and says how long it was dark.
    let swapped = json_of(&d, "deploy", &[], 0);
    assert_eq!(
        action_of(&swapped, "web"),
        ("replace".into(), "image changed".into(), "ok".into())
    );
    let web = service(node(&swapped, "local"), "web");
    assert!(web["dark_window_secs"].as_f64().is_some(), "{web:#}");
    assert_eq!(d.serving().as_deref(), Some("version 2.0.0\n"));
}

#[test]
fn a_failed_action_says_failed_with_its_error() {
    let mut d = swap_deployment("json-fail", &["1.0.0"]);
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    // New config whose bootstrap job fails: the replace fails, v1 stays.
    d.env.push(("FAIL_BOOTSTRAP".into(), "yes".into()));
    let failed = json_of(&d, "deploy", &[], 1);
    let local = node(&failed, "local");
    assert_eq!(local["result"], "failed", "{failed:#}");
    let errors = local["errors"].as_array().expect("errors");
    assert!(
        errors.iter().any(|e| e
            .as_str()
            .is_some_and(|e| e.contains("bootstrap job exited"))),
        "{failed:#}"
    );
    assert_eq!(
        action_of(&failed, "web"),
        (
            "replace".into(),
            "config changed: environment FAIL_BOOTSTRAP".into(),
            "failed".into()
        )
    );
    let web = service(local, "web");
    assert!(
        web["error"]
            .as_str()
            .is_some_and(|e| e.contains("service web: the bootstrap job exited")),
        "{web:#}"
    );
    assert!(web["image"].is_null(), "same image: {web:#}");
    assert_eq!(d.serving().as_deref(), Some("version 1.0.0\n"));
}

#[test]
fn prechecks_name_each_node_and_each_check_as_the_human_output_does() {
    let d = swap_deployment("json-prechecks", &["1.0.0"]);
    std::fs::write(
        &d.inventory,
        "nodes:\n  local:\n    roles: [controller]\n  second:\n    roles: [controller]\n",
    )
    .expect("inventory");
    let human = d.kolla("prechecks", &[]);
    let code = human.status.code().expect("an exit code");
    let document = json_of(&d, "prechecks", &[], code);
    let human = stdout_of(&human);
    for name in ["local", "second"] {
        let element = node(&document, name);
        let checks = element["checks"].as_array().expect("checks");
        let failed = checks.iter().any(|c| c["status"] == "failed");
        assert_eq!(
            element["result"],
            if failed { "failed" } else { "ok" },
            "{element:#}"
        );
        assert!(
            checks
                .iter()
                .any(|c| c["name"] == "engine" && c["status"] == "passed"),
            "{element:#}"
        );
        assert!(
            checks.iter().any(|c| c["name"] == "image"
                && c["status"] == "passed"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("/fx-web:1.0.0 present"))),
            "{element:#}"
        );
        // Each check is a line of the human output, in the same order
        // (the free disk space may move between the runs).
        let lines: Vec<&str> = human
            .lines()
            .filter(|l| l.starts_with(&format!("{name}: ")))
            .collect();
        assert_eq!(lines.len(), checks.len(), "{human}\n{element:#}");
        for (line, check) in lines.iter().zip(checks) {
            let mark = if check["status"] == "failed" {
                "FAIL"
            } else {
                "ok  "
            };
            let message = check["message"].as_str().unwrap_or_default();
            let said = format!("{name}: {mark} {message}");
            if check["name"] == "disk" {
                assert!(line.starts_with(&format!("{name}: {mark} ")), "{line}");
            } else {
                assert_eq!(*line, said);
            }
        }
    }
    assert_eq!(
        code == 1,
        document
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["result"] == "failed")
    );
}

#[test]
fn pull_says_of_each_image_pulled_already_present_or_failed() {
    let registry = Registry::start();
    let d = swap_deployment("json-pull", &["1.0.0"]);
    // The fixture's image pushed to the registry, the local copy under
    // the registry's name removed: the pull must fetch it.
    let local = format!("{}/fx-web:1.0.0", d.images.namespace);
    let image = OwnTag(format!("{}/{local}", registry.address));
    for args in [
        vec!["tag", local.as_str(), image.0.as_str()],
        vec!["push", image.0.as_str()],
        vec!["rmi", image.0.as_str()],
    ] {
        let output = docker(&args);
        assert!(output.status.success(), "{args:?}: {}", describe(&output));
    }
    let missing = format!(
        "{}/{}/fx-missing:1.0.0",
        registry.address, d.images.namespace
    );
    // Two services that sleep: one of the pushed image, one of an image
    // the registry lacks.
    let services =
        [("fetched", image.0.as_str()), ("absent", missing.as_str())].map(|(name, image)| {
            format!("  {name}:\n    image: {image}\n    command: [sleep, \"3600\"]\n")
        });
    let compose = format!("services:\n{}", services.concat());
    std::fs::write(d.compose_dir.join("controller.yml"), compose).expect("compose file");

    let result_of = |document: &Value, reference: &str| {
        let images = node(document, "local")["images"]
            .as_array()
            .expect("images")
            .clone();
        images
            .into_iter()
            .find(|i| i["image"] == reference)
            .unwrap_or_else(|| panic!("no image {reference} in {document:#}"))
    };
    let first = json_of(&d, "pull", &[], 1);
    assert_eq!(node(&first, "local")["result"], "failed", "{first:#}");
    assert_eq!(result_of(&first, &image.0)["result"], "pulled", "{first:#}");
    let absent = result_of(&first, &missing);
    assert_eq!(absent["result"], "failed", "{first:#}");
    assert!(
        absent["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{first:#}"
    );
    assert!(d.images.image(&image.0).is_some(), "not pulled");

    let again = json_of(&d, "pull", &["fetched"], 0);
    assert_eq!(node(&again, "local")["result"], "ok", "{again:#}");
    let fetched = result_of(&again, &image.0);
    assert_eq!(fetched["result"], "already present", "{again:#}");
    assert!(fetched["error"].is_null(), "{again:#}");
    assert_eq!(
        node(&again, "local")["images"].as_array().map(Vec::len),
        Some(1),
        "{again:#}"
    );
    assert!(d.containers().is_empty(), "a pull created containers");
}

#[test]
fn recover_lists_each_service_with_leftovers_and_what_it_did() {
    let d = swap_deployment("json-recover", &["1.0.0"]);
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));

    let clean = json_of(&d, "recover", &[], 0);
    let local = node(&clean, "local");
    assert_eq!(local["result"], "ok", "{clean:#}");
    assert_eq!(local["services"], serde_json::json!([]), "{clean:#}");

    // Left as a run that died would leave it: the live container stopped,
    // and its lock held.
    let stopped = docker(&["stop", "-t", "1", &d.container("web")]);
    assert!(stopped.status.success(), "{}", describe(&stopped));
    let _lock = d.take_lock("web");
    let recovered = json_of(&d, "recover", &["--force"], 0);
    let local = node(&recovered, "local");
    assert_eq!(local["result"], "ok", "{recovered:#}");
    let services = local["services"].as_array().expect("services");
    assert_eq!(services.len(), 1, "{recovered:#}");
    let web = &services[0];
    assert_eq!(web["service"], "web");
    assert_eq!(web["result"], "recovered", "{recovered:#}");
    let steps: Vec<&str> = web["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        steps.iter().any(|s| s.starts_with("took over the lock")),
        "{recovered:#}"
    );
    assert!(
        steps.iter().any(|s| s.starts_with("started ")),
        "{recovered:#}"
    );
    assert_eq!(d.serving().as_deref(), Some("version 1.0.0\n"));
    d.assert_one_live_and_no_leftovers("web", "after recover --output json");
}
