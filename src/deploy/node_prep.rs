//! Preparing a node for a service: the one-shot containers that change the
//! node itself (`x-kolla.host_sysctls`, `x-kolla.host_shared_mounts`) and
//! the one that only looks (for `kolla prechecks`). Pure: each function
//! returns the container to run; the deploy's steps and the prechecks run
//! it and read its exit code and output.
//!
//! Every value reaching a shell here was checked when the compose file was
//! read (plain sysctl keys and values, plain absolute folders) and is
//! passed as an argument, never as code.

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
    let mut command: Vec<String> = [
        "sh",
        "-c",
        r#"while [ $# -gt 1 ]; do printf '%s\n' "$2" > "/proc/sys/$1" || exit 1; shift 2; done"#,
        "sh",
    ]
    .map(String::from)
    .to_vec();
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
    in_node_mounts(
        owner,
        "mounts",
        r#"for p; do
  mkdir -p "$p" || exit 1
  if ! awk -v p="$p" '"'"'$5 == p { found = 1 } END { exit !found }'"'"' /proc/self/mountinfo; then
    mount --bind "$p" "$p" || exit 1
  fi
  mount --make-shared "$p" || exit 1
done"#,
        paths,
    )
}

/// Print, for each of `paths`, `shared PATH`, `private PATH` (a mount
/// point, not shared) or `none PATH` (no mount point, or missing). Run with
/// the privileges `shared_mounts_job` needs, so that it also proves the
/// engine grants them.
pub fn shared_mounts_check(owner: &JobOwner, paths: &[String]) -> ContainerSpec {
    in_node_mounts(
        owner,
        "mounts-check",
        r#"for p; do
  awk -v p="$p" '"'"'$5 == p { state = "private"; for (i = 7; $i != "-"; i++) if ($i ~ /^shared:/) state = "shared" } END { print (state ? state : "none") " " p }'"'"' /proc/self/mountinfo
done"#,
        paths,
    )
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

/// Sets `target` to the pid of the node's engine: the `dockerd` in this
/// container's PID namespace (the host's), not one of a Docker-in-Docker
/// container's, which the host's namespace shows too; PID 1 when there is
/// none. Plain shell and /proc, so any image with a shell runs it.
const FIND_ENGINE: &str = r#"self_ns=$(readlink /proc/self/ns/pid)
target=1
for d in /proc/[0-9]*; do
  [ "$(cat "$d/comm" 2>/dev/null)" = dockerd ] || continue
  [ "$(readlink "$d/ns/pid" 2>/dev/null)" = "$self_ns" ] || continue
  target=${d#/proc/}
  break
done"#;

/// `script` (a loop over its arguments) run by the node's own `sh` in the
/// node's mount namespace: its engine's, since PID 1 may refuse even root
/// a look at its namespaces (some VM and sandbox inits do). The host's PID
/// namespace, SYS_ADMIN (mounting), SYS_PTRACE (another process's
/// namespaces) and SYS_CHROOT (entering a mount namespace), AppArmor and
/// seccomp unconfined.
fn in_node_mounts(owner: &JobOwner, kind: &str, script: &str, paths: &[String]) -> ContainerSpec {
    let outer = format!(
        r#"{FIND_ENGINE}
exec nsenter -t "$target" -m -- sh -c '{script}' sh "$@""#
    );
    let mut command: Vec<String> = vec!["sh".into(), "-c".into(), outer, "sh".into()];
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
