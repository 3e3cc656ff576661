//! The node-preparation jobs kolla runs (`src/deploy/node_prep/*.sh`), run
//! on this engine as a deploy and `kolla prechecks` run them: a folder
//! whose name has a space, quotes and a backslash becomes a shared mount of the node,
//! the check reads it back as shared, and the folder is an argument of the
//! scripts, never code. The folder is this test's own (a unique name under
//! the temporary folder); the test unmounts and removes it.

mod common;

use std::time::Duration;

use kolla::deploy::node_prep::{self, JobOwner, MountState};

const IMAGE: &str = "debian:bookworm";

#[test]
fn the_shared_mount_job_shares_a_folder_and_the_check_reads_it_back() {
    let engine = common::engine();
    let rt = common::runtime();
    assert!(
        rt.block_on(engine.image(IMAGE)).ok().flatten().is_some(),
        "the jobs run in {IMAGE}: run tools/make-base-image debian:bookworm (tools/test does)"
    );
    let folder = std::env::temp_dir()
        .join(common::unique_name("kolla test", "mount 'a\"b\\c"))
        .to_string_lossy()
        .into_owned();
    let project = common::unique_name("kt", "node-prep");
    let owner = JobOwner {
        prefix: "kt-",
        project: &project,
        service: "node-prep",
        image: IMAGE,
    };
    let run = |spec: kolla::container::ContainerSpec| {
        rt.block_on(engine.run_spec_to_completion(&spec, Duration::from_secs(60)))
            .unwrap_or_else(|e| panic!("{}: {e}", spec.name))
    };
    let paths = [folder.clone()];

    let before = run(node_prep::shared_mounts_check(&owner, &paths));
    let made = run(node_prep::shared_mounts_job(&owner, &paths));
    let again = run(node_prep::shared_mounts_job(&owner, &paths));
    let after = run(node_prep::shared_mounts_check(&owner, &paths));
    // Undone in the node's mount namespace, as the job did it: the same
    // privileges, another script.
    let mut undo = node_prep::shared_mounts_check(&owner, &paths);
    if let Some(command) = undo.command.as_mut() {
        command[4] = r#"for p; do umount "$p" && rmdir "$p"; done"#.into();
    }
    let undone = run(undo);

    assert_eq!(made.exit_code, 0, "{made:?}");
    assert_eq!(
        again.exit_code, 0,
        "a second run changes nothing: {again:?}"
    );
    assert_eq!(
        node_prep::parse_mounts_check(&before.output),
        [(folder.clone(), MountState::None)],
        "{before:?}"
    );
    assert_eq!(
        node_prep::parse_mounts_check(&after.output),
        [(folder.clone(), MountState::Shared)],
        "{after:?}"
    );
    assert_eq!(undone.exit_code, 0, "{undone:?}");
}
