//! `destroy` runs each service's cleanup job (`x-kolla.cleanup`) once the
//! node's containers are stopped and before they go: from the service's own
//! image, with its binds and config files, so what the service made on the
//! node outside its containers goes too. Here a service leaves a file in a
//! host folder (as Neutron's agents leave namespaces in /run/netns); its
//! cleanup, a config template, removes it. A cleanup that fails is said and
//! the destroy goes on; a service that never ran on the node runs none.

mod common;

use common::{Deployment, describe, stdout_of};

/// A deployment of `app` (leaves `made-by-app` in a host folder), `broken`
/// (its cleanup exits 3) and `never` (in a profile not active: never
/// deployed, its cleanup never runs); the host folder.
fn deployment(name: &str) -> (Deployment, tempfile::TempDir) {
    let d = Deployment::new(name);
    let host = tempfile::tempdir().expect("a host folder");
    std::fs::create_dir_all(d.compose_dir.join("app")).expect("template folder");
    std::fs::write(
        d.compose_dir.join("app/clean.sh"),
        "rm /mark/made-by-{{ service_name }} && echo removed made-by-{{ service_name }}\n",
    )
    .expect("cleanup template");
    let service = |name: &str, cleanup: &str, extra: &str| {
        format!(
            "  {name}:\n    image: ${{IMAGE}}\n    command: [sh, -c, \"touch /mark/made-by-{name} && exec sleep 3600\"]\n    volumes: [\"{}:/mark\"]\n{extra}    x-kolla:\n      config: {{src: app/, dest: /etc/app}}\n      cleanup: {{command: {cleanup}}}\n",
            host.path().display()
        )
    };
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        format!(
            "services:\n{}{}{}",
            service("app", "[sh, /etc/app/clean.sh]", ""),
            service("broken", "[sh, -c, \"echo cannot; exit 3\"]", ""),
            service(
                "never",
                "[sh, /etc/app/clean.sh]",
                "    profiles: [later]\n"
            ),
        ),
    )
    .expect("compose file");
    (d, host)
}

#[test]
fn destroy_runs_each_deployed_services_cleanup_and_goes_on_past_a_failed_one() {
    let (d, host) = deployment("cleanup");
    // What a never-deployed service would remove is there from the start.
    std::fs::write(host.path().join("made-by-never"), "").expect("a file");
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(host.path().join("made-by-app").exists());
    assert!(host.path().join("made-by-broken").exists());

    let output = d.kolla("destroy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let said = format!("{}{}", stdout_of(&output), common::stderr(&output));
    assert!(
        !host.path().join("made-by-app").exists(),
        "app's cleanup did not run:\n{said}"
    );
    assert!(
        said.contains("app: cleaned up: removed made-by-app"),
        "{said}"
    );
    // The failed cleanup is said with its lines; the rest went on.
    assert!(said.contains("broken: cleanup exited 3"), "{said}");
    assert!(said.contains("| cannot"), "{said}");
    assert!(host.path().join("made-by-broken").exists());
    assert!(host.path().join("made-by-never").exists(), "{said}");
    // No container is left, a cleanup job's neither.
    assert!(d.containers().is_empty(), "{:?}", d.containers());
}

/// Compose files that cannot be read (one is not a map of services) do not stop
/// a destroy: it says no cleanup runs and removes the containers.
#[test]
fn destroy_without_readable_compose_files_still_removes_the_containers() {
    let (d, host) = deployment("cleanup-unread");
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    std::fs::write(
        d.compose_dir.join("controller.yml"),
        "services: [not, a, map]\n",
    )
    .expect("a broken compose file");
    let output = d.kolla("destroy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let said = common::stderr(&output);
    assert!(said.contains("no cleanup job runs"), "{said}");
    assert!(said.contains("controller.yml"), "the file is named: {said}");
    assert!(d.containers().is_empty(), "{:?}", d.containers());
    // The cleanup did not run: the file is still there.
    assert!(host.path().join("made-by-app").exists());
}
