//! Bad input to `kolla build`: each case is a clear error naming the file
//! (and line), exit code 2, and not one image built.

mod common;

use common::{Sandbox, describe, stderr};

/// Run `kolla build` with `args` on a sandbox prepared by `prepare`; check
/// exit 2, that stderr contains every one of `expected`, and that nothing
/// was built.
fn refused(name: &str, prepare: impl FnOnce(&Sandbox), args: &[&str], expected: &[&str]) {
    let sandbox = Sandbox::new(name);
    prepare(&sandbox);
    let output = sandbox.build(args);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{name}: {}",
        describe(&output)
    );
    let err = stderr(&output);
    for want in expected {
        assert!(err.contains(want), "{name}: stderr lacks {want:?}:\n{err}");
    }
    assert!(
        sandbox.own_tags().is_empty(),
        "{name}: images were built: {:?}",
        sandbox.own_tags()
    );
}

fn write(sandbox: &Sandbox, relative: &str, text: &str) {
    let path = sandbox.images_dir.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn template_syntax_error() {
    refused(
        "syntax",
        |s| {
            write(
                s,
                "fx-tool/Dockerfile.tera",
                "FROM {{ image_prefix }}fx-base:{{ tag }}\nRUN {% if %}\n",
            )
        },
        &[],
        &["fx-tool/Dockerfile.tera", ":2:"],
    );
}

#[test]
fn undefined_template_variable() {
    refused(
        "undefined",
        |s| {
            write(
                s,
                "fx-lib/Dockerfile.tera",
                "FROM {{ image_prefix }}fx-base:{{ tag }}\n\nRUN echo {{ no_such_setting }}\n",
            )
        },
        &[],
        &["fx-lib/Dockerfile.tera", "no_such_setting", ":3:"],
    );
}

#[test]
fn from_names_an_unknown_image() {
    refused(
        "unknown-from",
        |s| {
            write(
                s,
                "fx-tool/Dockerfile.tera",
                "# tool\nFROM {{ image_prefix }}fx-nowhere:{{ tag }}\n",
            )
        },
        &[],
        &[
            "fx-tool/Dockerfile.tera:2: FROM",
            "fx-nowhere",
            "neither in the tree nor the base image",
        ],
    );
}

#[test]
fn parent_cycle() {
    refused(
        "cycle",
        |s| {
            write(
                s,
                "fx-base/Dockerfile.tera",
                "FROM {{ image_prefix }}fx-app-a:{{ tag }}\n",
            )
        },
        &[],
        &["cycle", "fx-base", "fx-lib", "fx-app-a"],
    );
}

#[test]
fn unknown_profile() {
    refused(
        "profile",
        |_| {},
        &["--profile", "nosuch"],
        &["unknown profile \"nosuch\"", "default, infra, main"],
    );
}

#[test]
fn regex_matching_nothing() {
    refused(
        "nomatch",
        |_| {},
        &["^fx-tool$", "^swift"],
        &["\"^swift\" matches no image"],
    );
}

#[test]
fn invalid_regex() {
    refused(
        "badregex",
        |_| {},
        &["fx-("],
        &["\"fx-(\" is not a valid regex"],
    );
}

#[test]
fn globals_unknown_key_names_file_and_line() {
    refused(
        "globals",
        |s| {
            std::fs::write(
                s.config_dir.join("globals.yml"),
                "tag: zed\nnamespce: typo\n",
            )
            .unwrap()
        },
        &[],
        &["globals.yml", "line 2", "namespce"],
    );
}

#[test]
fn bad_override_names_the_override_file() {
    refused(
        "override",
        |s| {
            std::fs::write(
                s.dir.path().join("o.tera"),
                "{% extends \"fx-tool/Dockerfile.tera\" %}{% block no_such_block %}x{% endblock %}",
            )
            .unwrap()
        },
        &["--template-override", "/nonexistent/o.tera"],
        &["/nonexistent/o.tera", "cannot read"],
    );
    let sandbox = Sandbox::new("override-block");
    let file = sandbox.dir.path().join("o.tera");
    std::fs::write(
        &file,
        "{% extends \"fx-tool/Dockerfile.tera\" %}{% block no_such_block %}x{% endblock %}",
    )
    .unwrap();
    let output = sandbox.build(&["--template-override", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        stderr(&output).contains("o.tera") && stderr(&output).contains("no_such_block"),
        "{}",
        describe(&output)
    );
    assert!(sandbox.own_tags().is_empty());
}

#[test]
fn skip_parents_without_built_parents() {
    refused(
        "skip-parents",
        |_| {},
        &["^fx-tool$", "--skip-parents"],
        &["fx-tool needs fx-base", "drop --skip-parents"],
    );
}

#[test]
fn invalid_tag() {
    refused(
        "tag",
        |_| {},
        &["--tag", "not a tag"],
        &["tag \"not a tag\" is not a valid Docker tag"],
    );
}
