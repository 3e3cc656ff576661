//! The shipped start scripts run as their containers run them, with hostile
//! values from the operator's environment: they refuse what they do not
//! expect, naming it, before they touch the node. The node's `ip` is a
//! recorder on PATH; the script is the real one, rendered as kolla does,
//! beside the snippet it sources (kolla-datapath.sh).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The releases the L2 agent's start script is rendered for, and the
/// agent's service name (Open vSwitch's in both).
const AGENTS: [(&str, &str); 2] = [
    ("zed", "neutron-openvswitch-agent"),
    ("epoxy", "neutron-openvswitch-agent"),
];

/// One run of the L2 agent's start script (rendered for node
/// `node-under-test` and `release`) in a folder of its own, with an `ip`
/// that records its arguments and knows no link: the script stops at its
/// checks, before it writes the agent's mapping (a path only the container
/// may write) or asks Open vSwitch anything.
struct Run {
    dir: tempfile::TempDir,
    output: Output,
}

impl Run {
    fn l2_agent(release: (&str, &str), interface: &str) -> Run {
        Run::l2_agent_with(release, &[("NEUTRON_EXTERNAL_INTERFACE", interface)])
    }

    fn l2_agent_with(release: (&str, &str), environment: &[(&str, &str)]) -> Run {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let script = render_start_scripts(dir.path(), release, "kolla-l2-agent.sh");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin folder");
        std::fs::write(
            bin.join("ip"),
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$IP_CALLS\"\nexit 1\n",
        )
        .expect("the ip recorder");
        let chmod = Command::new("chmod").arg("+x").arg(bin.join("ip")).status();
        assert!(chmod.is_ok_and(|s| s.success()), "chmod +x the ip recorder");
        let output = Command::new("bash")
            .arg(&script)
            .current_dir(dir.path())
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("IP_CALLS", dir.path().join("ip-calls"))
            .envs(environment.iter().copied())
            .output()
            .expect("bash runs");
        Run { dir, output }
    }

    fn ip_calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ip-calls")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The script refused `value` before it touched anything: it failed,
    /// said each of `says`, ran no `ip` and made no file.
    fn assert_refused_untouched(&self, value: &str, says: &[&str]) {
        let stderr = self.stderr();
        assert_eq!(self.output.status.code(), Some(1), "{value:?}: {stderr}");
        for said in says {
            assert!(stderr.contains(said), "{value:?}: not {said:?} in {stderr}");
        }
        assert_eq!(self.ip_calls(), "", "{value:?}: ip ran");
        assert_eq!(
            self.made(),
            Vec::<String>::new(),
            "{value:?}: files appeared"
        );
    }

    /// What the folder holds besides what the test put there.
    fn made(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .expect("the run's folder")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                !["bin", "ip-calls"].contains(&n.as_str()) && !SCRIPTS.contains(&n.as_str())
            })
            .collect();
        names.sort();
        names
    }
}

/// The start scripts of the neutron folder the tests run, and the snippet
/// both source.
const SCRIPTS: [&str; 4] = [
    "kolla-l2-agent.sh",
    "kolla-ns-agent.sh",
    "kolla-datapath.sh",
    "kolla-cleanup.sh",
];

/// Every script of `SCRIPTS` rendered for `release` and `service` into
/// `dir`, as kolla renders the config folder; the path of `script`.
fn render_start_scripts(dir: &Path, (release, service): (&str, &str), script: &str) -> PathBuf {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("compose/neutron");
    for name in SCRIPTS {
        let text =
            std::fs::read_to_string(folder.join(name)).expect("the shipped script is readable");
        let mut tera = kolla::templates::tera();
        tera.add_raw_template(name, &text)
            .expect("the script is a valid template");
        let mut context = tera::Context::new();
        context.insert("node_name", "node-under-test");
        context.insert("openstack_release", release);
        context.insert("service_name", service);
        let rendered = tera.render(name, &context).expect("the script renders");
        std::fs::write(dir.join(name), rendered).expect("the rendered script is written");
    }
    dir.join(script)
}

#[test]
fn a_provider_interface_that_is_not_an_interface_name_is_refused_before_anything_runs() {
    let hostile = [
        "eth0; touch pwned",
        "$(touch pwned)",
        "`touch pwned`",
        "eth0\nphysical_interface_mappings = physnet2:lo",
        "-all",
        "--help",
        ".",
        "..",
        "../../etc",
        "eth 0",
        "eth0:1",
        "a-name-of-16-chr",
        "eth0\t",
    ];
    for (value, agent) in hostile.iter().flat_map(|v| AGENTS.map(|a| (*v, a))) {
        let run = Run::l2_agent(agent, value);
        let setting = format!("{}: NEUTRON_EXTERNAL_INTERFACE=", agent.1);
        run.assert_refused_untouched(value, &[&setting, "is not an interface name"]);
    }
}

#[test]
fn a_provider_interface_the_node_lacks_is_named_with_the_node() {
    for agent in AGENTS {
        let run = Run::l2_agent(agent, "eth-missing");
        assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
        assert!(
            run.stderr()
                .contains(&format!("{}: the provider interface eth-missing (NEUTRON_EXTERNAL_INTERFACE) does not exist on node node-under-test", agent.1)),
            "{}",
            run.stderr()
        );
        assert_eq!(run.ip_calls(), "link show eth-missing\n");
    }
}

#[test]
fn a_tunnel_interface_that_is_not_an_interface_name_is_refused_before_anything_runs() {
    for agent in AGENTS {
        for value in [
            "eth1; touch pwned",
            "$(touch pwned)",
            "-all",
            "eth1\nlocal_ip = 1.2.3.4",
        ] {
            let run = Run::l2_agent_with(agent, &[("NEUTRON_TUNNEL_INTERFACE", value)]);
            let setting = format!("{}: NEUTRON_TUNNEL_INTERFACE=", agent.1);
            run.assert_refused_untouched(value, &[&setting, "is not an interface name"]);
        }
        let run = Run::l2_agent_with(agent, &[("NEUTRON_TUNNEL_INTERFACE", "eth-gone")]);
        assert_eq!(run.output.status.code(), Some(1), "{}", run.stderr());
        assert!(
            run.stderr().contains(&format!(
                "{}: the tunnel interface eth-gone (NEUTRON_TUNNEL_INTERFACE) does not exist on node node-under-test",
                agent.1
            )),
            "{}",
            run.stderr()
        );
        assert_eq!(run.ip_calls(), "link show eth-gone\n");
    }
}

#[test]
fn a_datapath_that_is_not_one_of_the_three_is_refused_before_anything_runs() {
    let epoxy = AGENTS[1];
    for value in [
        "kernel",
        "system; touch pwned",
        "$(touch pwned)",
        "netdev\n",
        "",
    ] {
        let run = Run::l2_agent_with(epoxy, &[("NEUTRON_OVS_DATAPATH", value)]);
        if value.is_empty() {
            // Unset and empty mean auto: the script goes on to the interface.
            assert!(
                run.ip_calls().starts_with("link show kolla-ext"),
                "{}",
                run.stderr()
            );
            assert!(
                !run.stderr().contains("NEUTRON_OVS_DATAPATH="),
                "{}",
                run.stderr()
            );
            continue;
        }
        run.assert_refused_untouched(
            value,
            &["NEUTRON_OVS_DATAPATH=", "say system, netdev or auto"],
        );
    }
}

#[test]
fn names_the_kernel_takes_pass_the_check() {
    for (value, agent) in ["eth0.100", "enp0s31f6", "bond_1", "a-name-of-15-ch"]
        .iter()
        .flat_map(|v| AGENTS.map(|a| (*v, a)))
    {
        let run = Run::l2_agent(agent, value);
        assert!(
            run.stderr()
                .contains(&format!("the provider interface {value} (")),
            "{value:?} refused as a name: {}",
            run.stderr()
        );
        assert_eq!(run.ip_calls(), format!("link show {value}\n"), "{value:?}");
    }
}

/// The DHCP and L3 agents' start script: on the userspace datapath their
/// namespaces' ports are veth pairs (a restarted ovs-vswitchd would orphan
/// its tap devices there), on the kernel's Open vSwitch's internal ports;
/// then the agent's own command runs, with that setting's file added. A
/// datapath it does not know is refused before the agent starts.
#[test]
fn the_namespace_agents_plug_veth_pairs_on_the_userspace_datapath() {
    for (release, setting, veth) in [
        ("zed", "netdev", "true"),
        ("epoxy", "netdev", "true"),
        ("epoxy", "system", "false"),
    ] {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let script = render_start_scripts(
            dir.path(),
            (release, "neutron-l3-agent"),
            "kolla-ns-agent.sh",
        );
        let output = Command::new("bash")
            .arg(&script)
            .args([
                "echo",
                "neutron-l3-agent",
                "--config-file",
                "/etc/neutron/l3_agent.ini",
            ])
            .env("NEUTRON_OVS_DATAPATH", setting)
            .output()
            .expect("bash runs");
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{setting}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let written = dir.path().join("datapath.ini");
        assert_eq!(
            said.trim(),
            format!(
                "neutron-l3-agent --config-file /etc/neutron/l3_agent.ini --config-file {}",
                written.display()
            ),
            "{setting}: the agent's command line"
        );
        let ini = std::fs::read_to_string(&written).expect("the datapath's settings");
        assert_eq!(
            ini,
            format!("[DEFAULT]\novs_use_veth = {veth}\n"),
            "{release} {setting}"
        );
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let script = render_start_scripts(
        dir.path(),
        ("epoxy", "neutron-dhcp-agent"),
        "kolla-ns-agent.sh",
    );
    let output = Command::new("bash")
        .arg(&script)
        .args(["touch", "started"])
        .env("NEUTRON_OVS_DATAPATH", "dpdk")
        .current_dir(dir.path())
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "neutron-dhcp-agent: NEUTRON_OVS_DATAPATH='dpdk': say system, netdev or auto"
        ),
        "{stderr}"
    );
    assert!(
        !dir.path().join("datapath.ini").exists(),
        "settings written for a refused datapath"
    );
    assert!(!dir.path().join("started").exists(), "the agent started");
}

/// `ip` and `iptables` that know a node with two of Neutron's namespaces, one
/// of the operator's, the switch's devices, and Neutron's chains with a
/// jump into them (a comment with spaces, quoted as iptables quotes it)
/// beside the node's own rule: each call is recorded.
const NODE_RECORDERS: [(&str, &str); 2] = [
    (
        "ip",
        r#"#!/bin/sh
printf 'ip %s\n' "$*" >> "$CALLS"
case "$*" in
    "netns list") printf 'qdhcp-11 (id: 0)\nqrouter-22 (id: 1)\nmy-qdhcp-own\n' ;;
    "link show kolla-ext"|"link show br-int"|"link show ovs-netdev") exit 0 ;;
    "link show "*) exit 1 ;;
esac
exit 0
"#,
    ),
    (
        "iptables",
        r#"#!/bin/sh
{ printf 'iptables'; printf ' [%s]' "$@"; echo; } >> "$CALLS"
case "$*" in
    "-t filter -S")
        echo '-P INPUT ACCEPT'
        echo '-N neutron-openvswi-INPUT'
        echo '-N neutron-filter-top'
        echo '-A INPUT -m comment --comment "neutron jump here" -j neutron-openvswi-INPUT'
        echo '-A INPUT -p tcp --dport 22 -j ACCEPT'
        echo '-A neutron-filter-top -j RETURN'
        ;;
esac
exit 0
"#,
    ),
];

/// The cleanup `kolla destroy` runs for the agents: it removes Neutron's
/// namespaces of the prefixes asked and no other, the switch's devices
/// present and no other, the jump into Neutron's chains (its quoted
/// comment kept whole) and the chains, and never the node's own rule.
#[test]
fn the_cleanup_removes_what_neutron_made_and_nothing_else() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let script = render_start_scripts(
        dir.path(),
        ("epoxy", "neutron-l3-agent"),
        "kolla-cleanup.sh",
    );
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin folder");
    for (name, text) in NODE_RECORDERS {
        std::fs::write(bin.join(name), text).expect("a recorder");
        let chmod = Command::new("chmod").arg("+x").arg(bin.join(name)).status();
        assert!(chmod.is_ok_and(|s| s.success()), "chmod +x {name}");
    }
    let calls = dir.path().join("calls");
    let run = |args: &[&str]| {
        let _ = std::fs::remove_file(&calls);
        let output = Command::new("bash")
            .arg(&script)
            .args(args)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("CALLS", &calls)
            .env("OVS_RUNDIR", dir.path())
            .output()
            .expect("bash runs");
        let said = std::fs::read_to_string(&calls).unwrap_or_default();
        (output, said)
    };

    let (output, said) = run(&["namespaces", "qdhcp-"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("ip netns delete qdhcp-11\n"), "{said}");
    assert!(
        !said.contains("qrouter-22") && !said.contains("delete my-qdhcp-own"),
        "{said}"
    );
    let (_, said) = run(&["namespaces", "qrouter-", "snat-", "fip-"]);
    assert!(said.contains("ip netns delete qrouter-22\n"), "{said}");
    assert!(!said.contains("delete qdhcp-11"), "{said}");

    let saved = dir.path().join("kolla-saved-flows");
    std::fs::create_dir(&saved).expect("the switch's saved flows");
    let (output, said) = run(&["switch"]);
    assert!(!saved.exists(), "the switch's saved flows were left");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for removed in [
        "ip link delete kolla-ext",
        "ip link delete br-int",
        "ip link delete ovs-netdev",
    ] {
        assert!(said.contains(removed), "{removed}: {said}");
    }
    assert!(
        !said.contains("ip link delete br-ex"),
        "a device not there: {said}"
    );
    assert!(
        said.contains("iptables [-t] [filter] [-D] [INPUT] [-m] [comment] [--comment] [neutron jump here] [-j] [neutron-openvswi-INPUT]"),
        "the jump, its comment one argument: {said}"
    );
    assert!(!said.contains("--dport 22"), "the node's own rule: {said}");
    for chain in ["neutron-openvswi-INPUT", "neutron-filter-top"] {
        assert!(
            said.contains(&format!("iptables [-t] [filter] [-X] [{chain}]")),
            "{chain}: {said}"
        );
    }

    let (output, said) = run(&["everything"]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(said, "", "an unknown mode touched the node");
}
