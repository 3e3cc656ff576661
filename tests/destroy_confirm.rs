//! `destroy` asks for `--yes-i-really-mean-it` before it removes data
//! (`--purge-data`) or containers on more than one node: without it,
//! nothing is removed, it exits 2 and says what would have gone. On the
//! busybox fixture (a data container among eleven services), on the real
//! engine; the two-node inventory has both nodes on this engine.

mod common;

use common::{Deployment, describe, expect_exit};

#[test]
fn destroy_of_data_or_of_several_nodes_is_confirmed_first() {
    let d = Deployment::new("destroy-confirm");
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let deployed = d.containers();
    assert!(
        deployed.contains_key(&d.container("webdata")),
        "{deployed:?}"
    );

    // Data, unconfirmed: nothing goes; what would is named.
    let output = d.kolla("destroy", &["--purge-data"]);
    expect_exit(
        &output,
        2,
        &[
            "would remove",
            &d.container("webdata"),
            "volume ",
            "nothing was removed",
            "--yes-i-really-mean-it",
        ],
    );
    assert_eq!(
        d.containers(),
        deployed,
        "an unconfirmed purge removed something"
    );

    // Two nodes, unconfirmed: nothing goes either.
    let one_node = std::fs::read_to_string(&d.inventory).expect("inventory");
    std::fs::write(
        &d.inventory,
        "nodes:\n  alpha:\n    roles: [controller]\n  beta:\n    roles: [controller]\n",
    )
    .expect("inventory");
    let output = d.kolla("destroy", &[]);
    expect_exit(
        &output,
        2,
        &[
            "node alpha: would remove",
            "node beta: would remove",
            "on 2 nodes",
        ],
    );
    assert_eq!(
        d.containers(),
        deployed,
        "an unconfirmed destroy removed something"
    );
    std::fs::write(&d.inventory, one_node).expect("inventory");

    // Confirmed: everything goes, data too.
    let output = d.kolla("destroy", &["--purge-data", "--yes-i-really-mean-it"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(d.containers().is_empty(), "{:?}", d.containers());
}
