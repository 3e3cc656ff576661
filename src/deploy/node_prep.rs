//! Preparing a node for a service: the one-shot containers that change the
//! node itself (`x-kolla.host_sysctls`, `x-kolla.host_shared_mounts`) and
//! the one that only looks (for `kolla prechecks`). Pure: each function
//! returns the container to run; the deploy's steps and the prechecks run
//! it and read its exit code and output.
//!
//! Every value reaching a shell here was checked when the compose file was
//! read (plain sysctl keys and values, plain absolute folders) and is
//! passed as an argument, never as code. The scripts are files beside this
//! one (`node_prep/*.sh`, linted by shellcheck in CI), each given whole to
//! `sh -c`: a script run inside another is its argument, never quoted
//! into it.

use std::collections::BTreeMap;

use super::labels;
use crate::container::ContainerSpec;

/// Who runs the job: names it and labels it with the deployment.
pub struct JobOwner<'a> {
    /// The deployment's container prefix (placement prefix).
    pub prefix: &'a str,
    pub project: &'a str,
    pub service: &'a str,
    /// The service's image (any image with a POSIX shell, readlink, cat
    /// and nsenter does; busybox's will).
    pub image: &'a str,
}

/// Write `settings` (`net.*` keys) into the host network namespace's
/// /proc/sys: NET_ADMIN and a writable /proc/sys, nothing more.
pub fn sysctl_job(owner: &JobOwner, settings: &BTreeMap<String, String>) -> ContainerSpec {
    let mut command: Vec<String> = ["sh", "-c", SYSCTL, "sh"].map(String::from).to_vec();
    for (key, value) in settings {
        command.push(key.replace('.', "/"));
        command.push(value.clone());
    }
    let mut spec = job(owner, "sysctl", command);
    spec.cap_add = vec!["NET_ADMIN".into()];
    spec.security_opt = vec![crate::container::SYSTEMPATHS_UNCONFINED.into()];
    spec
}

/// Make each of `paths` a shared mount of the node (a bind mount onto
/// itself where it is no mount point yet, as `ip netns` does for
/// /run/netns), creating the folder where it is missing. Repeating it
/// changes nothing.
pub fn shared_mounts_job(owner: &JobOwner, paths: &[String]) -> ContainerSpec {
    in_node_mounts(owner, "mounts", SHARED_MOUNTS, paths)
}

/// Print, for each of `paths`, `shared PATH`, `private PATH` (a mount
/// point, not shared) or `none PATH` (no mount point, or missing). Run with
/// the privileges `shared_mounts_job` needs, so that it also proves the
/// engine grants them.
pub fn shared_mounts_check(owner: &JobOwner, paths: &[String]) -> ContainerSpec {
    in_node_mounts(owner, "mounts-check", MOUNTS_CHECK, paths)
}

/// What one line of `shared_mounts_check`'s output says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountState {
    Shared,
    /// A mount point whose propagation is not shared.
    Private,
    /// No mount point there (or no such folder).
    None,
}

/// Read `shared_mounts_check`'s output: each path and its state; lines it
/// does not recognise are left out.
pub fn parse_mounts_check(output: &str) -> Vec<(String, MountState)> {
    output
        .lines()
        .filter_map(|line| {
            let (state, path) = line.trim().split_once(' ')?;
            let state = match state {
                "shared" => MountState::Shared,
                "private" => MountState::Private,
                "none" => MountState::None,
                _ => return None,
            };
            Some((path.to_string(), state))
        })
        .collect()
}

const SYSCTL: &str = include_str!("node_prep/sysctl.sh");
const SHARED_MOUNTS: &str = include_str!("node_prep/shared-mounts.sh");
const MOUNTS_CHECK: &str = include_str!("node_prep/mounts-check.sh");
const IN_NODE_MOUNTS: &str = include_str!("node_prep/in-node-mounts.sh");

/// `script` (a loop over its arguments) run by the node's own `sh` in the
/// node's mount namespace (`in-node-mounts.sh`): the host's PID
/// namespace, SYS_ADMIN (mounting), SYS_PTRACE (another process's
/// namespaces) and SYS_CHROOT (entering a mount namespace), AppArmor and
/// seccomp unconfined.
fn in_node_mounts(owner: &JobOwner, kind: &str, script: &str, paths: &[String]) -> ContainerSpec {
    let mut command: Vec<String> = ["sh", "-c", IN_NODE_MOUNTS, "sh", script]
        .map(String::from)
        .to_vec();
    command.extend(paths.iter().cloned());
    let mut spec = job(owner, kind, command);
    spec.pid_mode = Some("host".into());
    spec.cap_add = ["SYS_ADMIN", "SYS_CHROOT", "SYS_PTRACE"]
        .map(String::from)
        .to_vec();
    spec.security_opt = ["apparmor=unconfined", "seccomp=unconfined"]
        .map(String::from)
        .to_vec();
    spec
}

/// A root container of the service's image on the host network, named
/// `<prefix><svc>.kolla-<kind>-<pid>`, running `command`.
fn job(owner: &JobOwner, kind: &str, command: Vec<String>) -> ContainerSpec {
    ContainerSpec {
        name: format!(
            "{}{}.kolla-{kind}-{}",
            owner.prefix,
            owner.service,
            std::process::id()
        ),
        image: owner.image.to_string(),
        entrypoint: Some(vec![]),
        command: Some(command),
        user: Some("0".into()),
        network_mode: Some("host".into()),
        labels: BTreeMap::from([(labels::PROJECT.to_string(), owner.project.to_string())]),
        ..ContainerSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> JobOwner<'static> {
        JobOwner {
            prefix: "t-",
            project: "kolla",
            service: "neutron-l3-agent",
            image: "x/l3:1",
        }
    }

    #[test]
    fn paths_and_settings_are_arguments_never_code() {
        let paths = vec!["/run/netns".to_string(), "/run/other".to_string()];
        let spec = shared_mounts_job(&owner(), &paths);
        let command = spec.command.unwrap();
        assert_eq!(&command[command.len() - 2..], paths.as_slice());
        assert!(!command[2].contains("/run/netns"), "{}", command[2]);
        assert_eq!(spec.pid_mode.as_deref(), Some("host"));
        assert!(spec.name.starts_with("t-neutron-l3-agent.kolla-mounts-"));

        let settings = BTreeMap::from([("net.ipv4.tcp_migrate_req".to_string(), "1".to_string())]);
        let command = sysctl_job(&owner(), &settings).command.unwrap();
        assert_eq!(&command[4..], ["net/ipv4/tcp_migrate_req", "1"]);
    }

    /// The check's script, run here as the node's sh runs it: `/` is a
    /// mount point (shared or not), a missing folder is none, and a path
    /// with spaces and quotes is an argument like any other.
    #[test]
    fn the_check_script_reads_this_machines_mounts() {
        let odd = "/no such/'folder\"";
        let output = std::process::Command::new("sh")
            .args(["-c", MOUNTS_CHECK, "sh", "/", odd])
            .output()
            .expect("sh");
        assert!(output.status.success(), "{output:?}");
        let states = parse_mounts_check(&String::from_utf8_lossy(&output.stdout));
        assert_eq!(states.len(), 2, "{states:?}");
        assert_eq!(states[0].0, "/");
        assert_ne!(states[0].1, MountState::None, "/ is a mount point");
        assert_eq!(states[1], (odd.to_string(), MountState::None));
    }

    /// Two binds at once stack two mounts, the lower one private: the
    /// check says what the engine sees (the lower one), and the script
    /// leaves one shared mount. Run here, as root, on a folder of its own.
    #[test]
    fn stacked_binds_are_undone_to_one_shared_mount() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().to_string_lossy().into_owned();
        let sh = |script: &str| {
            let output = std::process::Command::new("sh")
                .args(["-c", script, "sh", &path])
                .output()
                .expect("sh runs");
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).into_owned()
                    + &String::from_utf8_lossy(&output.stderr),
            )
        };
        let stack = "mount --bind \"$1\" \"$1\" && mount --bind \"$1\" \"$1\" \
                     && mount --make-private \"$1\" && mount --make-shared \"$1\"";
        let (stacked, said) = sh(stack);
        assert!(stacked, "this test mounts, so it runs as root: {said}");
        let count = || {
            std::fs::read_to_string("/proc/self/mountinfo")
                .expect("mountinfo")
                .lines()
                .filter(|l| l.split(' ').nth(4) == Some(path.as_str()))
                .count()
        };
        assert_eq!(count(), 2);
        let (_, checked) = sh(MOUNTS_CHECK);
        assert_eq!(
            parse_mounts_check(&checked),
            [(path.clone(), MountState::Private)]
        );

        let (made, said) = sh(SHARED_MOUNTS);
        let left = count();
        let (_, checked) = sh(MOUNTS_CHECK);
        while count() > 0 {
            let _ = std::process::Command::new("umount").arg(&path).status();
        }
        assert!(made, "{said}");
        assert_eq!(left, 1);
        assert_eq!(parse_mounts_check(&checked), [(path, MountState::Shared)]);
    }

    #[test]
    fn the_check_says_shared_private_or_none() {
        let out = "shared /run/netns\nprivate /srv\nnone /missing\nnsenter: noise\n";
        assert_eq!(
            parse_mounts_check(out),
            [
                ("/run/netns".to_string(), MountState::Shared),
                ("/srv".to_string(), MountState::Private),
                ("/missing".to_string(), MountState::None),
            ]
        );
    }
}
