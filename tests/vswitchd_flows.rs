//! Open vSwitch's switch keeps its flows across its own swaps: the shipped
//! start script (images/openvswitch/kolla-ovs-vswitchd), run as its
//! container runs it, saves every bridge's flows when stopped and, on the
//! next start, restores them under the database's flow-restore-wait before
//! the switch forwards, clearing the flag whatever the restore did. The
//! Open vSwitch programs are recorders on PATH (the real switch runs in the
//! all-in-one's test, which pings a guest through its swaps); the run
//! folder is a temporary one (OVS_RUNDIR, Open vSwitch's own variable).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

const SCRIPT: &str = "images/openvswitch/kolla-ovs-vswitchd";

/// The recorders: each appends its arguments to $CALLS; `ovs-ofctl` dumps
/// two flows per bridge (with the header and ages a real dump has) and a
/// group on br-int, and appends what it is asked to add; `ovs-vswitchd`
/// sleeps until stopped. FAIL_ADD makes adding flows fail; SLOW_ADD
/// seconds makes it slow.
const RECORDERS: [(&str, &str); 4] = [
    (
        "ovs-vsctl",
        r#"#!/bin/sh
printf 'ovs-vsctl %s\n' "$*" >> "$CALLS"
case "$*" in
    *list-br*) printf 'br-ex\nbr-int\n' ;;
    *protocols*) echo '[OpenFlow10, OpenFlow13]' ;;
esac
"#,
    ),
    (
        "ovs-ofctl",
        r#"#!/bin/sh
printf 'ovs-ofctl %s\n' "$*" >> "$CALLS"
for last; do :; done
case "$*" in
    *dump-flows*)
        echo 'OFPST_FLOW reply (OF1.3) (xid=0x2):'
        echo " cookie=0x5, table=0, idle_age=3, priority=2,in_port=1 actions=drop"
        echo " cookie=0x5, table=23, hard_age=9, priority=0 actions=drop"
        ;;
    *dump-groups*br-int)
        echo 'OFPST_GROUP_DESC reply (OF1.3) (xid=0x2):'
        echo ' group_id=1,type=all,bucket=actions=drop'
        ;;
    *dump-groups*)
        echo 'OFPST_GROUP_DESC reply (OF1.3) (xid=0x2):'
        ;;
    *add-flows*|*add-groups*)
        [ -z "$FAIL_ADD" ] || exit 1
        [ -z "$SLOW_ADD" ] || sleep "$SLOW_ADD"
        sed 's/^/  added: /' "$last" >> "$CALLS"
        ;;
esac
"#,
    ),
    ("ovs-appctl", "#!/bin/sh\nexit 0\n"),
    (
        "ovs-vswitchd",
        "#!/bin/sh\necho 'ovs-vswitchd started' >> \"$CALLS\"\nexec sleep 600\n",
    ),
];

/// A node: the recorders and a run folder, in a temporary folder.
struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin folder");
        std::fs::create_dir(dir.path().join("run")).expect("run folder");
        for (name, text) in RECORDERS {
            std::fs::write(bin.join(name), text).expect("a recorder");
            let chmod = Command::new("chmod").arg("+x").arg(bin.join(name)).status();
            assert!(chmod.is_ok_and(|s| s.success()), "chmod +x {name}");
        }
        Node { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn saved(&self) -> PathBuf {
        self.path("run/kolla-saved-flows")
    }

    fn command(&self, environment: &[(&str, &str)]) -> Command {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCRIPT);
        let mut command = Command::new("bash");
        command
            .arg(script)
            .env(
                "PATH",
                format!(
                    "{}:/usr/bin:/bin:/usr/sbin:/sbin",
                    self.path("bin").display()
                ),
            )
            .env("CALLS", self.path("calls"))
            .env("OVS_RUNDIR", self.path("run"))
            .env("KOLLA_VSWITCHD_READY", self.path("ready"))
            .envs(environment.iter().copied());
        command
    }

    /// Start the switch's container and wait until it is ready; the calls
    /// of this start alone are recorded.
    fn start(&self, environment: &[(&str, &str)]) -> Running {
        let _ = std::fs::remove_file(self.path("calls"));
        let child = self.command(environment).spawn().expect("bash runs");
        let started = Instant::now();
        while !self.path("ready").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "not ready within 20 s; calls:\n{}",
                self.calls()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Running { child }
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.path("calls")).unwrap_or_default()
    }

    fn health(&self) -> bool {
        self.command(&[])
            .arg("health")
            .status()
            .expect("bash runs")
            .success()
    }
}

/// The script's process, as the container's first process.
struct Running {
    child: Child,
}

impl Running {
    /// What the engine's stop sends.
    fn stop(mut self) -> ExitStatus {
        let term = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        assert!(term.is_ok_and(|s| s.success()), "kill -TERM");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the script did not end within 20 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The line numbers of the calls containing each of `calls`, failing the
/// test if one is missing.
fn positions(all: &str, calls: &[&str]) -> Vec<usize> {
    calls
        .iter()
        .map(|call| {
            all.lines()
                .position(|line| line.contains(call))
                .unwrap_or_else(|| panic!("no call {call:?} in:\n{all}"))
        })
        .collect()
}

const SET_WAIT: &str =
    "ovs-vsctl --timeout=5 --no-wait set Open_vSwitch . other_config:flow-restore-wait=true";
const CLEAR_WAIT: &str = "remove Open_vSwitch . other_config flow-restore-wait";

#[test]
fn a_stop_saves_the_flows_and_the_next_start_restores_them_before_forwarding() {
    let node = Node::new();
    // A first start: nothing saved, the flag cleared in case a start was
    // killed mid-restore, nothing restored.
    let first = node.start(&[]);
    let calls = node.calls();
    assert!(!calls.contains(SET_WAIT), "{calls}");
    assert!(calls.contains(CLEAR_WAIT), "{calls}");
    assert!(!calls.contains("add-flows"), "{calls}");
    assert!(node.health(), "ready, yet not healthy");

    let status = first.stop();
    assert!(status.success(), "the stop ended with {status}");
    let saved = node.saved();
    let flows = std::fs::read_to_string(saved.join("br-int.flows")).expect("br-int's flows saved");
    assert_eq!(
        flows,
        " cookie=0x5, table=0, priority=2,in_port=1 actions=drop\n cookie=0x5, table=23, priority=0 actions=drop\n",
        "the dump without its header and ages"
    );
    assert!(saved.join("br-ex.flows").exists(), "br-ex's flows saved");
    assert_eq!(
        std::fs::read_to_string(saved.join("br-int.version")).expect("version"),
        "OpenFlow13\n"
    );
    assert_eq!(
        std::fs::read_to_string(saved.join("br-int.groups")).expect("groups"),
        " group_id=1,type=all,bucket=actions=drop\n"
    );

    // The next start: the flag before the switch, the groups and flows
    // back, then the flag cleared, then ready; the saved flows are used up.
    std::fs::remove_file(node.path("ready")).expect("the first container's mark");
    let second = node.start(&[]);
    let calls = node.calls();
    let at = positions(
        &calls,
        &[
            SET_WAIT,
            "ovs-vswitchd started",
            "add-groups br-int",
            "add-flows br-int",
            CLEAR_WAIT,
        ],
    );
    assert!(at.windows(2).all(|w| w[0] < w[1]), "out of order:\n{calls}");
    assert!(
        calls.contains("  added:  cookie=0x5, table=23, priority=0 actions=drop"),
        "the saved flows were not the ones added:\n{calls}"
    );
    assert!(calls.contains("add-flows br-ex"), "{calls}");
    assert!(
        !saved.exists(),
        "the saved flows were left for a later start"
    );
    assert!(second.stop().success());
}

#[test]
fn flows_saved_long_ago_are_not_restored() {
    let node = Node::new();
    assert!(node.start(&[]).stop().success());
    assert!(node.saved().exists());
    let touch = Command::new("touch")
        .args(["-d", "10 minutes ago"])
        .arg(node.saved())
        .status();
    assert!(touch.is_ok_and(|s| s.success()));
    std::fs::remove_file(node.path("ready")).expect("mark");
    let running = node.start(&[]);
    let calls = node.calls();
    assert!(!calls.contains(SET_WAIT), "{calls}");
    assert!(!calls.contains("add-flows"), "{calls}");
    assert!(calls.contains(CLEAR_WAIT), "{calls}");
    assert!(!node.saved().exists(), "stale flows kept");
    drop(running);
}

#[test]
fn a_failed_restore_still_clears_the_flag_so_the_switch_forwards() {
    let node = Node::new();
    assert!(node.start(&[]).stop().success());
    std::fs::remove_file(node.path("ready")).expect("mark");
    let running = node.start(&[("FAIL_ADD", "1")]);
    let calls = node.calls();
    let at = positions(&calls, &[SET_WAIT, "add-flows br-int", CLEAR_WAIT]);
    assert!(at.windows(2).all(|w| w[0] < w[1]), "out of order:\n{calls}");
    assert!(node.health());
    drop(running);
}

#[test]
fn not_healthy_before_the_restore_is_over() {
    let node = Node::new();
    assert!(!node.health(), "healthy before the script made it ready");
    assert!(node.start(&[]).stop().success());
    std::fs::remove_file(node.path("ready")).expect("mark");
    std::fs::remove_file(node.path("calls")).expect("calls");
    // A restore that takes its time: while the flows are being added, the
    // switch answers but the container is not healthy.
    let mut child = node
        .command(&[("SLOW_ADD", "2")])
        .spawn()
        .expect("bash runs");
    let started = Instant::now();
    while !node.calls().contains("add-flows") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no restore began"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !node.health(),
        "healthy while the flows were being restored"
    );
    let running = Running {
        child: {
            while !node.path("ready").exists() {
                assert!(started.elapsed() < Duration::from_secs(30), "never ready");
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(
                child.try_wait().expect("wait").is_none(),
                "the script ended"
            );
            child
        },
    };
    let calls = node.calls();
    let at = positions(&calls, &["add-flows br-int", CLEAR_WAIT]);
    assert!(at[0] < at[1], "{calls}");
    assert!(node.health());
    drop(running);
}
