//! kolla_reuseport (images/openstack-base), the module every OpenStack API
//! image loads to keep a start-first swap's new generation from taking
//! connections before it can answer, against the running kernel: the
//! oldest listener of a shared port takes every new connection, the next
//! one takes them all once it closes, the program outlives the listener
//! that attached it, and a stopping generation's listener shut down (by a
//! process that still holds it) hands its queue and its port over at once.

use std::process::Command;

fn spread() -> Vec<(String, Vec<u32>)> {
    let root = env!("CARGO_MANIFEST_DIR");
    let output = Command::new("python3")
        .arg(format!("{root}/tests/fixtures/reuseport/spread.py"))
        .arg(format!("{root}/images/openstack-base"))
        .output()
        .expect("python3 runs (tools/setup installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "spread.py failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(case, counts)| {
            let counts = counts
                .split(' ')
                .map(|n| n.parse().expect("a count"))
                .collect();
            (case.to_string(), counts)
        })
        .collect()
}

#[test]
fn the_oldest_listener_of_a_shared_port_takes_its_new_connections() {
    let migrate = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req")
        .expect("this kernel has net.ipv4.tcp_migrate_req");
    let cases = spread();
    let case = |name: &str| -> Vec<u32> {
        cases
            .iter()
            .find(|(case, _)| case == name)
            .map(|(_, counts)| counts.clone())
            .unwrap_or_else(|| panic!("no case {name} in {cases:?}"))
    };
    // Without the program both listeners get some: what is measured can
    // tell the two apart.
    let unsteered = case("unsteered");
    assert!(unsteered.iter().all(|&n| n > 0), "{cases:?}");
    assert_eq!(case("old and new"), vec![64, 0], "{cases:?}");
    assert_eq!(case("new alone"), vec![64], "{cases:?}");
    // Nobody attached it again: the group kept it.
    assert_eq!(case("new and newer"), vec![64, 0], "{cases:?}");
    // The stop: three connections queued on the old generation (which
    // never accepts) while the new one listens beside it...
    assert_eq!(case("queued, new took"), vec![0], "{cases:?}");
    // ...move to the new one when the old one shuts its listener down
    // (and are reset without net.ipv4.tcp_migrate_req), though its
    // process still holds it; every later connection goes there.
    let moved = if migrate.trim() == "1" { 3 } else { 0 };
    assert_eq!(case("moved to new"), vec![moved], "{cases:?}");
    assert_eq!(
        case("after the old one's shutdown, new"),
        vec![64],
        "{cases:?}"
    );
}
