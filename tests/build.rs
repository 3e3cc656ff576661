//! `kolla build` against the real engine, on the busybox fixture tree:
//! fx-base -> fx-lib -> fx-app-{a,b,c,d,e}; fx-base -> fx-tool, fx-tool-b;
//! fx-base -> fx-broken (fails) -> fx-broken-child.

mod common;

use std::collections::BTreeMap;

use common::{Bounded, Sandbox, describe, stderr};
use serde_json::Value;

/// name -> the image's summary entry.
fn by_name(summary: &Value) -> BTreeMap<String, Value> {
    summary["images"]
        .as_array()
        .expect("images array")
        .iter()
        .map(|i| (i["name"].as_str().expect("name").to_string(), i.clone()))
        .collect()
}

fn names_with(summary: &Value, status: &str) -> Vec<String> {
    by_name(summary)
        .into_iter()
        .filter(|(_, i)| i["status"] == status)
        .map(|(n, _)| n)
        .collect()
}

/// Every fixture image but the broken branch, sorted.
const ALL_GOOD: [&str; 9] = [
    "fx-app-a",
    "fx-app-b",
    "fx-app-c",
    "fx-app-d",
    "fx-app-e",
    "fx-base",
    "fx-lib",
    "fx-tool",
    "fx-tool-b",
];

fn parents() -> Vec<(&'static str, &'static str)> {
    vec![
        ("fx-lib", "fx-base"),
        ("fx-tool", "fx-base"),
        ("fx-broken", "fx-base"),
        ("fx-app-a", "fx-lib"),
        ("fx-app-b", "fx-lib"),
        ("fx-app-c", "fx-lib"),
        ("fx-app-d", "fx-lib"),
        ("fx-app-e", "fx-lib"),
        ("fx-tool-b", "fx-base"),
        ("fx-broken-child", "fx-broken"),
    ]
}

#[test]
fn cold_build_then_noop_then_one_file_changed() {
    let sandbox = Sandbox::new("cycle");
    let logs = sandbox.dir.path().join("logs");

    // Cold: everything builds but the broken image and its child.
    let (output, summary) =
        sandbox.build_with_summary(&["--threads", "2", "--logs-dir", logs.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(names_with(&summary, "built"), ALL_GOOD);
    assert_eq!(names_with(&summary, "failed"), vec!["fx-broken"]);
    assert_eq!(
        names_with(&summary, "parent_failed"),
        vec!["fx-broken-child"]
    );
    let images = by_name(&summary);
    assert!(
        images["fx-broken"]["error"]
            .as_str()
            .unwrap()
            .contains("exit code: 3"),
        "{}",
        images["fx-broken"]
    );
    assert!(
        sandbox
            .image(&sandbox.image_ref("fx-broken-child"))
            .is_none()
    );
    assert!(sandbox.image(&sandbox.image_ref("fx-broken")).is_none());

    // Parents finish before their children start.
    for (child, parent) in parents() {
        if images[child]["status"] == "parent_failed" {
            continue;
        }
        let started = images[child]["started_secs"].as_f64().unwrap();
        let parent_done = images[parent]["finished_secs"].as_f64().unwrap();
        assert!(
            started >= parent_done,
            "{child} started at {started}, before {parent} finished at {parent_done}"
        );
    }
    // Two threads, and more images ready than threads once fx-lib is
    // built (its five children): each child runs beside another image.
    // Which one depends on how long the others took (a busy machine).
    let span = |name: &str| {
        let image = &images[name];
        Some((
            image["started_secs"].as_f64()?,
            image["finished_secs"].as_f64()?,
        ))
    };
    let overlap = |a: &str, b: &str| match (span(a), span(b)) {
        (Some((a_start, a_end)), Some((b_start, b_end))) => a_start < b_end && b_start < a_end,
        _ => false,
    };
    for child in ["fx-app-a", "fx-app-b"] {
        assert!(
            images
                .keys()
                .any(|other| other != child && overlap(child, other)),
            "{child} ran alone with two threads and images ready: {images:#?}"
        );
    }

    // Every built image carries the hash the summary reports.
    let mut ids = BTreeMap::new();
    for name in names_with(&summary, "built") {
        let image = sandbox
            .image(&sandbox.image_ref(&name))
            .expect("built image exists");
        assert_eq!(
            image.labels.get("kolla.build-hash").map(String::as_str),
            images[&name]["build_hash"].as_str()
        );
        assert_eq!(Some(image.id.as_str()), images[&name]["image_id"].as_str());
        ids.insert(name, image.id);
    }
    let broken_log = std::fs::read_to_string(logs.join("fx-broken.log")).expect("fx-broken.log");
    assert!(
        broken_log.contains("fixture failing on purpose"),
        "{broken_log}"
    );
    let human = String::from_utf8_lossy(&output.stdout);
    assert!(human.contains("failed (1):\n  fx-broken"), "{human}");
    assert!(
        human.contains("parent_failed (1):\n  fx-broken-child"),
        "{human}"
    );

    // No-op: the same selection minus the broken branch is all up to date,
    // with the very same image ids (the builder was never called).
    let (output, summary) = sandbox.build_with_summary(&["^fx-app", "^fx-tool"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(names_with(&summary, "up_to_date"), ALL_GOOD);
    for (name, image) in by_name(&summary) {
        assert_eq!(image["attempts"], 0, "{name} called the builder");
        assert_eq!(image["image_id"].as_str(), Some(ids[&name].as_str()));
    }

    // One context file of fx-lib changes: fx-lib and its children rebuild.
    std::fs::write(
        sandbox.images_dir.join("fx-lib/lib.txt"),
        "fixture library v2\n",
    )
    .unwrap();
    let (output, summary) = sandbox.build_with_summary(&["^fx-app", "^fx-tool"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(
        names_with(&summary, "built"),
        vec![
            "fx-app-a", "fx-app-b", "fx-app-c", "fx-app-d", "fx-app-e", "fx-lib"
        ]
    );
    assert_eq!(
        names_with(&summary, "up_to_date"),
        vec!["fx-base", "fx-tool", "fx-tool-b"]
    );
    for name in ["fx-lib", "fx-app-a"] {
        let image = sandbox.image(&sandbox.image_ref(name)).unwrap();
        assert_ne!(image.id, ids[name], "{name} kept its old image");
    }
}

#[test]
fn template_override_changes_output_and_rebuilds_only_that_image() {
    let sandbox = Sandbox::new("override");
    let render_plain = sandbox.dir.path().join("plain");
    let output = sandbox.build(&["^fx-tool$", "--render-only", render_plain.to_str().unwrap()]);
    assert!(output.status.success(), "{}", describe(&output));
    let plain = std::fs::read_to_string(render_plain.join("fx-tool/Dockerfile")).unwrap();
    assert!(
        plain.contains(&format!("FROM {}", sandbox.image_ref("fx-base"))),
        "{plain}"
    );
    assert!(!plain.contains("overridden"), "{plain}");
    // Context files come along with the Dockerfile, executable bit and all.
    {
        use std::os::unix::fs::PermissionsExt;
        let busybox = std::fs::metadata(render_plain.join("fx-base/busybox")).unwrap();
        assert_eq!(busybox.permissions().mode() & 0o777, 0o755);
        let dockerfile = std::fs::metadata(render_plain.join("fx-base/Dockerfile")).unwrap();
        assert_eq!(dockerfile.permissions().mode() & 0o777, 0o644);
    }

    let override_file = sandbox.dir.path().join("override.tera");
    std::fs::write(
        &override_file,
        "{% extends \"fx-tool/Dockerfile.tera\" %}\n{% block fx_tool_footer %}RUN echo overridden {{ tag }} > /override.txt{% endblock %}\n",
    )
    .unwrap();
    let render_over = sandbox.dir.path().join("over");
    let output = sandbox.build(&[
        "^fx-tool$",
        "--render-only",
        render_over.to_str().unwrap(),
        "--template-override",
        override_file.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let over = std::fs::read_to_string(render_over.join("fx-tool/Dockerfile")).unwrap();
    assert!(
        over.contains(&format!(
            "RUN echo overridden {} > /override.txt",
            sandbox.release.default_tag()
        )),
        "{over}"
    );
    assert_eq!(
        std::fs::read_to_string(render_over.join("fx-base/Dockerfile")).unwrap(),
        std::fs::read_to_string(render_plain.join("fx-base/Dockerfile")).unwrap()
    );

    let (output, _) = sandbox.build_with_summary(&["^fx-tool$"]);
    assert!(output.status.success(), "{}", describe(&output));
    let (output, summary) = sandbox.build_with_summary(&[
        "^fx-tool$",
        "--template-override",
        override_file.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(names_with(&summary, "built"), vec!["fx-tool"]);
    assert_eq!(names_with(&summary, "up_to_date"), vec!["fx-base"]);
}

#[test]
fn push_to_registry_and_pull_back_by_digest() {
    let sandbox = Sandbox::new("push");
    let (output, summary) =
        sandbox.build_with_summary(&["^fx-tool$", "--registry", common::REGISTRY, "--push"]);
    assert!(
        output.status.success(),
        "push failed; is the test registry running on {} (tools/test starts it)?\n{}",
        common::REGISTRY,
        describe(&output)
    );
    let images = by_name(&summary);
    let digest = images["fx-tool"]["pushed_digest"]
        .as_str()
        .expect("a pushed digest")
        .to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let hash = images["fx-tool"]["build_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let reference = format!("{}/{}", common::REGISTRY, sandbox.image_ref("fx-tool"));

    // Drop every local copy, then pull by digest: the registry holds the
    // very image that was built.
    let rt = common::runtime();
    for tag in sandbox.own_tags() {
        rt.block_on(sandbox.engine.remove_image(&tag, true))
            .unwrap();
    }
    assert!(sandbox.image(&reference).is_none());
    let by_digest = format!(
        "{}/{}/fx-tool@{digest}",
        common::REGISTRY,
        sandbox.namespace
    );
    rt.block_on(sandbox.engine.pull(&by_digest, None))
        .expect("pull by digest");
    let pulled = sandbox.image(&by_digest).expect("pulled image");
    assert_eq!(pulled.labels.get("kolla.build-hash"), Some(&hash));
    rt.block_on(sandbox.engine.remove_image(&by_digest, true))
        .unwrap();
}

#[test]
fn push_without_registry_is_a_usage_error() {
    let sandbox = Sandbox::new("push-usage");
    let output = sandbox.build(&["--push"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        stderr(&output).contains("--push needs a registry"),
        "{}",
        describe(&output)
    );
}

#[test]
fn list_images_and_dependencies() {
    let sandbox = Sandbox::new("list");
    let output = sandbox.build(&["--list-images", "^fx-app-b$"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "fx-base\nfx-lib\nfx-app-b\n"
    );
    let output = sandbox.build(&["--list-dependencies"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "fx-base\n    fx-broken\n        fx-broken-child\n    fx-lib\n        fx-app-a\n        fx-app-b\n        fx-app-c\n        fx-app-d\n        fx-app-e\n    fx-tool\n    fx-tool-b\n"
    );
    // A profile from globals.yml selects by its regexes.
    std::fs::write(
        sandbox.config_dir.join("globals.yml"),
        "profiles:\n  tools: [\"^fx-tool$\"]\n",
    )
    .unwrap();
    let output = sandbox.build(&["--list-images", "--profile", "tools"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "fx-base\nfx-tool\n"
    );
}

#[test]
fn unreachable_engine_is_a_clear_error() {
    let sandbox = Sandbox::new("unreachable");
    let missing = sandbox.dir.path().join("no-such-docker.sock");
    let output = sandbox
        .build_command(&[])
        .env("DOCKER_HOST", format!("unix://{}", missing.display()))
        .bounded_output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let err = stderr(&output);
    assert!(
        err.contains("cannot reach the Docker engine at unix://"),
        "{err}"
    );
    assert!(err.contains("no-such-docker.sock"), "{err}");
}

#[test]
fn interrupt_cancels_the_running_build_and_prints_a_partial_summary() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};

    let sandbox = Sandbox::new("interrupt");
    let slow = sandbox.images_dir.join("fx-slow");
    std::fs::create_dir_all(&slow).unwrap();
    std::fs::write(
        slow.join("Dockerfile.tera"),
        "FROM {{ image_prefix }}fx-base:{{ tag }}\nRUN echo slow-start && sleep 60\n",
    )
    .unwrap();
    let summary_path = sandbox.dir.path().join("summary.json");
    // One thread: fx-slow runs, fx-tool waits its turn.
    let mut child = sandbox
        .build_command(&["--threads", "1", "^fx-slow$", "^fx-tool$", "--summary-json"])
        .arg(&summary_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            if line.contains("fx-slow: Step 2/") {
                let _ = seen_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    seen_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("fx-slow never reached its slow step");
    // Let the builder start the step's container before interrupting.
    std::thread::sleep(Duration::from_millis(1500));
    let signalled = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .bounded_status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(20),
            "kolla did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let waited = signalled.elapsed();
    let log = reader.join().unwrap();
    assert_eq!(exit.code(), Some(130), "{log}");
    assert!(waited < Duration::from_secs(10), "took {waited:?} to stop");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    assert_eq!(summary["cancelled"], true);
    assert_eq!(names_with(&summary, "built"), vec!["fx-base"]);
    assert_eq!(
        names_with(&summary, "cancelled"),
        vec!["fx-slow", "fx-tool"]
    );
    assert!(sandbox.image(&sandbox.image_ref("fx-slow")).is_none());
    // The engine stops the step's container once its client has gone.
    let base = sandbox.image_ref("fx-base");
    let rt = common::runtime();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = rt
            .block_on(sandbox.engine.container_ids("ancestor", &base))
            .unwrap();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "build containers still there: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn plain_tcp_to_a_remote_engine_is_refused() {
    let sandbox = Sandbox::new("insecure");
    // A documentation address: the check refuses it before any connection.
    let output = sandbox
        .build_command(&[])
        .env("DOCKER_HOST", "tcp://192.0.2.10:2375")
        .env_remove("DOCKER_TLS_VERIFY")
        .bounded_output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        stderr(&output).contains("refusing plain tcp://192.0.2.10:2375"),
        "{}",
        describe(&output)
    );
}

#[test]
fn a_build_past_its_timeout_fails_after_its_retries() {
    let sandbox = Sandbox::new("timeout");
    let slow = sandbox.images_dir.join("fx-slow");
    std::fs::create_dir_all(&slow).unwrap();
    std::fs::write(
        slow.join("Dockerfile.tera"),
        "FROM {{ image_prefix }}fx-base:{{ tag }}\nRUN sleep 60\n",
    )
    .unwrap();
    let (output, _) = sandbox.build_with_summary(&["^fx-base$"]);
    assert!(output.status.success(), "{}", describe(&output));
    let (output, summary) =
        sandbox.build_with_summary(&["^fx-slow$", "--build-timeout", "2", "--retries", "1"]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let slow = &by_name(&summary)["fx-slow"];
    assert_eq!(slow["status"], "failed");
    assert_eq!(slow["attempts"], 2);
    assert_eq!(slow["error"], "build timed out after 2s");
    assert!(slow["duration_secs"].as_f64().unwrap() >= 4.0, "{slow}");
    assert_eq!(by_name(&summary)["fx-base"]["status"], "up_to_date");
}

/// `-v` shows every line a build prints (a RUN step's own output), where
/// a plain run shows the builder's step lines only; `--quiet` shows
/// neither, but still the summary of what was built.
#[test]
fn verbose_shows_the_builders_lines_and_quiet_none() {
    let sandbox = Sandbox::new("verbosity");
    // The step line names `$((40 + N))`; only the step's own output
    // says the sum.
    let over = |n: u32| {
        let file = sandbox.dir.path().join(format!("override-{n}.tera"));
        std::fs::write(
            &file,
            format!(
                "{{% extends \"fx-tool/Dockerfile.tera\" %}}\n{{% block fx_tool_footer %}}RUN echo kolla-said-$((40 + {n})){{% endblock %}}\n"
            ),
        )
        .unwrap();
        file.to_str().unwrap().to_string()
    };
    let build = |flag: Option<&str>, n: u32| {
        let file = over(n);
        let mut args = vec!["^fx-tool$", "--template-override", file.as_str()];
        args.extend(flag);
        let output = sandbox.build(&args);
        assert!(output.status.success(), "{}", describe(&output));
        output
    };
    let loud = build(Some("-v"), 1);
    let said = common::stderr(&loud);
    assert!(said.contains("kolla-said-41"), "-v: {said}");
    assert!(said.contains("Step "), "-v: {said}");

    let plain = build(None, 2);
    let said = common::stderr(&plain);
    assert!(
        said.contains("Step ") && !said.contains("kolla-said-42"),
        "plain: {said}"
    );

    let quiet = build(Some("--quiet"), 3);
    let said = common::stderr(&quiet);
    assert!(
        !said.contains("Step ") && !said.contains("started") && !said.contains("kolla-said-43"),
        "--quiet: {said}"
    );
    assert!(
        common::stdout_of(&quiet).contains("fx-tool"),
        "--quiet still says what was built: {}",
        describe(&quiet)
    );
}
