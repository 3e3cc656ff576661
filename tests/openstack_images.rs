//! The heavy end-to-end check of the real image tree: build `base`,
//! `openstack-base` and `keystone` from the Debian base that
//! tools/make-base-image imports, then run `keystone-manage --version` in a
//! container of the result. Ignored by default (minutes, and it needs the
//! Debian mirror for apt); tools/test and CI run it with --include-ignored.

mod common;

use std::collections::HashMap;

use common::{Sandbox, describe};

const BASE_IMAGE: &str = "debian:bookworm";

#[test]
#[ignore = "heavy: builds real OpenStack images; tools/test runs it"]
fn keystone_image_runs_keystone_manage() {
    let sandbox = Sandbox::for_project_images("keystone", BASE_IMAGE);
    assert!(
        sandbox.image(BASE_IMAGE).is_some(),
        "the base image {BASE_IMAGE} is missing: run tools/make-base-image (tools/test does)"
    );
    let (output, summary) = sandbox.build_with_summary(&["^keystone$", "--threads", "2"]);
    assert!(output.status.success(), "{}", describe(&output));
    let built: Vec<&str> = summary["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(built, vec!["base", "openstack-base", "keystone"]);

    let image = sandbox.image_ref("keystone");
    let labels = HashMap::from([("kolla.test".to_string(), sandbox.namespace.clone())]);
    let name = format!("{}-keystone-manage", sandbox.namespace);
    let run = common::runtime()
        .block_on(sandbox.engine.run_to_completion(
            &name,
            &image,
            &["keystone-manage", "--version"],
            labels,
        ))
        .expect("run keystone-manage");
    assert_eq!(run.exit_code, 0, "keystone-manage failed:\n{}", run.output);
    let version = run.output.trim();
    let looks_like_version = regex::Regex::new(r"^\d+\.\d+\.\d+").unwrap();
    assert!(
        looks_like_version.is_match(version),
        "unexpected output: {version:?}"
    );
}
