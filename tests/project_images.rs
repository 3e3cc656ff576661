//! The project's own image tree, for each release from the Debian base
//! that tools/make-base-image imports for it, into the heavy tests' cache
//! (the namespace named by the tree's content, `Sandbox::for_project_images`):
//! tools/test runs the Epoxy tree beside the fast suite, so that both heavy
//! tests find every image up to date, and the Zed tree once the fast suite
//! is done, for the Zed all-in-one. Every shipped image is built or found up
//! to date, and the builds' downloads went through the run's package
//! cache, each file from the archive once. Ignored by default (minutes;
//! it needs the Debian mirror); tools/test and CI run it.

mod common;

use std::time::Instant;

use common::{Sandbox, describe};
use kolla::config::release::Release;

#[test]
#[ignore = "heavy: builds the real OpenStack images; tools/test runs it"]
fn the_epoxy_image_tree_builds_with_one_package_cache() {
    the_tree_builds_with_one_package_cache(Release::Epoxy);
}

#[test]
#[ignore = "heavy: builds the real OpenStack images; tools/test runs it"]
fn the_zed_image_tree_builds_with_one_package_cache() {
    the_tree_builds_with_one_package_cache(Release::Zed);
}

fn the_tree_builds_with_one_package_cache(release: Release) {
    let images = Sandbox::for_project_images("tree", release);
    let started = Instant::now();
    let (output, summary) = images.build_with_summary(&[]);
    let took = started.elapsed();
    assert!(output.status.success(), "{}", describe(&output));
    let expected = common::release_images(release);
    let shipped = expected.len();
    let results = summary["images"].as_array().expect("the summary's images");
    let mut names: Vec<&str> = results.iter().filter_map(|i| i["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, expected, "{summary}");
    let built = results.iter().filter(|i| i["status"] == "built").count();
    let up_to_date = results
        .iter()
        .filter(|i| i["status"] == "up_to_date")
        .count();
    assert_eq!(built + up_to_date, shipped, "{summary}");
    // Each image's place in the run, so that a CI log shows the longest
    // chain of parents and what ran beside it.
    let mut timeline: Vec<(f64, f64, &str)> = results
        .iter()
        .map(|i| {
            (
                i["started_secs"].as_f64().unwrap_or(0.0),
                i["finished_secs"].as_f64().unwrap_or(0.0),
                i["name"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    timeline.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (started, finished, name) in timeline {
        eprintln!(
            "  {name:<28} {started:6.0}s .. {finished:6.0}s ({:.0}s)",
            finished - started
        );
    }
    let said = common::stderr(&output);
    eprintln!(
        "the {release} image tree: {built} built, {up_to_date} up to date, in {:.0}s",
        took.as_secs_f64()
    );
    let cache_line = said
        .lines()
        .find(|l| l.starts_with("package cache: "))
        .unwrap_or_else(|| panic!("no package cache line:\n{said}"));
    eprintln!("{cache_line}");
    // Only images that install packages ask the cache anything: with at
    // least the base built, apt asked, and (with another image that
    // installs packages) some files came from the cache, not the archive.
    let numbers: Vec<u64> = cache_line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let (requests, hits) = (numbers[0], numbers[1]);
    if built >= 2 {
        assert!(requests > 0 && hits > 0, "{cache_line}");
    }
}
