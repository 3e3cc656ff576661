//! `kolla completions` and `kolla manpage` through the binary, no engine:
//! the bash script parses (`bash -n`) and, sourced, completes a verb from
//! its first letters; the zsh and fish scripts are made; the man page
//! lists the verbs and a verb's page its flags; an unknown verb is bad
//! input naming the closest. None of them reads a setting: a config
//! folder that does not exist stops none of them.

mod common;

use std::process::Output;

use common::{Bounded, describe, kolla_command, stderr, stdout_of};

/// `kolla ARGS` with a config folder that does not exist (every verb that
/// reads the settings refuses it).
fn kolla(args: &[&str]) -> Output {
    kolla_command()
        .args(["--config-dir", "/nonexistent/kolla-config"])
        .args(args)
        .bounded_output()
        .expect("run the kolla binary")
}

fn succeeded(args: &[&str]) -> String {
    let output = kolla(args);
    assert!(output.status.success(), "{args:?}: {}", describe(&output));
    stdout_of(&output)
}

#[test]
fn the_bash_script_parses_and_completes_verbs() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let script = dir.path().join("kolla.bash");
    std::fs::write(&script, succeeded(&["completions", "bash"])).expect("write the script");
    let parsed = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .bounded_output()
        .expect("run bash -n");
    assert!(parsed.status.success(), "bash -n: {}", describe(&parsed));

    // Sourced, it completes as bash would call it: `kolla hi<TAB>`, then
    // `kolla history --ou<TAB>`.
    let complete = |words: &str| {
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _kolla kolla \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             echo \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let output = std::process::Command::new("bash")
            .args(["-c", &program])
            .bounded_output()
            .expect("run bash");
        assert!(output.status.success(), "{words}: {}", describe(&output));
        stdout_of(&output).trim().to_string()
    };
    assert_eq!(complete("kolla hi"), "history");
    assert_eq!(complete("kolla history --ou"), "--output");
    let all = complete("kolla ''");
    for verb in ["deploy", "upgrade", "rollback", "logs", "manpage"] {
        assert!(all.split(' ').any(|w| w == verb), "{verb} in {all}");
    }
    assert!(!all.contains("swap-helper"), "{all}");
}

#[test]
fn zsh_and_fish_get_scripts_of_their_own() {
    let zsh = succeeded(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef kolla"), "{zsh}");
    let fish = succeeded(&["completions", "fish"]);
    assert!(fish.contains("complete -c kolla"), "{fish}");
    for script in [&zsh, &fish] {
        assert!(script.contains("genpwd") && script.contains("history"));
    }
    let output = kolla(&["completions", "tcsh"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
}

#[test]
fn the_man_page_lists_the_verbs_and_a_verbs_page_its_flags() {
    let page = succeeded(&["manpage"]);
    assert!(page.contains(".TH kolla 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    for verb in [
        "build", "deploy", "upgrade", "rollback", "history", "genpwd",
    ] {
        assert!(page.contains(&format!("kolla\\-{verb}(1)")), "{verb}");
    }
    let deploy = succeeded(&["manpage", "deploy"]);
    assert!(deploy.contains(".TH kolla-deploy 1"), "{deploy}");
    assert!(deploy.contains("\\-\\-dry\\-run"), "{deploy}");

    let output = kolla(&["manpage", "deplyo"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        stderr(&output).contains("kolla has no verb \"deplyo\"; the verbs: deploy, "),
        "{}",
        describe(&output)
    );
}
