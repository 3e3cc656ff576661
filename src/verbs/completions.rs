//! `kolla completions SHELL` and `kolla manpage [VERB]`: the shell
//! completion script and the man pages, printed to standard output. All
//! are made by clap's own generators from the definitions in `cli`, never
//! written by hand, so they cannot drift from the verbs and flags. None
//! reads a setting (`verbs::run` calls them before globals.yml is read).

use anyhow::Context as _;
use clap::CommandFactory;

use super::{Outcome, suggest};
use crate::cli::{Cli, CompletionShell, CompletionsArgs, ManpageArgs};

/// The name the scripts complete and the pages are about.
const BINARY: &str = "kolla";

/// A verb `kolla manpage` has no page for (bad input: exit 2).
#[derive(Debug, thiserror::Error)]
#[error("kolla has no verb {asked:?}; the verbs: {}", .known.join(", "))]
pub struct UnknownVerb {
    pub asked: String,
    /// The verbs, closest to what was asked first.
    pub known: Vec<String>,
}

pub fn completions(args: &CompletionsArgs) -> anyhow::Result<Outcome> {
    out!("{}", completion_script(args.shell)?);
    Ok(Outcome::Success)
}

pub fn manpage(args: &ManpageArgs) -> anyhow::Result<Outcome> {
    out!("{}", man_page(args.verb.as_deref())?);
    Ok(Outcome::Success)
}

/// The completion script of `shell` for kolla.
pub fn completion_script(shell: CompletionShell) -> anyhow::Result<String> {
    use clap_complete::Shell;
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut offered(), BINARY, &mut script);
    String::from_utf8(script).context("the completion script clap wrote is not UTF-8")
}

/// kolla's command line as completions offer it: the global flags and the
/// verbs but the hidden helper (clap_complete's bash script offers hidden
/// verbs too, and clap cannot drop one from a command: a copy without).
fn offered() -> clap::Command {
    let full = Cli::command();
    let visible = full.get_subcommands().filter(|v| !v.is_hide_set()).cloned();
    clap::Command::new(BINARY)
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(visible)
}

/// A man page (section 1, roff): kolla(1), the synopsis, the global flags
/// and every verb with what it does; or with a verb, kolla-VERB(1), that
/// verb's flags (the pages kolla(1) refers to). Neither names clap's
/// `help` verb, nor the hidden helper.
pub fn man_page(verb: Option<&str>) -> anyhow::Result<String> {
    let mut command = Cli::command().disable_help_subcommand(true);
    // Built, the verbs carry their display names (`kolla-deploy`).
    command.build();
    let page = match verb {
        None => command,
        Some(asked) => {
            let verbs = || command.get_subcommands().filter(|v| !v.is_hide_set());
            let found = verbs().find(|v| v.get_name() == asked).cloned();
            found.ok_or_else(|| {
                let names: Vec<&str> = verbs().map(|v| v.get_name()).collect();
                UnknownVerb {
                    asked: asked.to_string(),
                    known: suggest::closest_first(asked, names)
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                }
            })?
        }
    };
    // A verb's page names kolla and its version, as kolla's own does.
    let page = page.version(env!("CARGO_PKG_VERSION"));
    let mut text = Vec::new();
    clap_mangen::Man::new(page)
        .source(format!("{BINARY} {}", env!("CARGO_PKG_VERSION")))
        .render(&mut text)
        .context("cannot render the man page")?;
    String::from_utf8(text).context("the man page clap wrote is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Verbs an operator reaches for, which every output must name.
    const VERBS: [&str; 6] = [
        "deploy",
        "upgrade",
        "rollback",
        "history",
        "genpwd",
        "completions",
    ];

    #[test]
    fn every_shell_gets_a_script_naming_the_verbs_and_not_the_helper() {
        for shell in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
        ] {
            let script = completion_script(shell).unwrap();
            for verb in VERBS {
                assert!(script.contains(verb), "{shell:?} lacks {verb}");
            }
            assert!(
                !script.contains("swap-helper"),
                "{shell:?} offers the hidden helper"
            );
        }
    }

    #[test]
    fn the_man_page_lists_every_verb_but_the_helper() {
        let page = man_page(None).unwrap();
        assert!(page.contains(".TH kolla 1"), "{page}");
        for verb in VERBS.iter().chain(&["manpage", "logs", "exec", "recover"]) {
            assert!(
                page.contains(&format!("kolla\\-{verb}(1)")),
                "{verb}: {page}"
            );
        }
        assert!(!page.contains("swap\\-helper"), "{page}");
        assert!(!page.contains("kolla\\-help(1)"), "{page}");
    }

    #[test]
    fn a_verbs_page_has_its_flags_and_an_unknown_verb_the_closest() {
        let page = man_page(Some("history")).unwrap();
        assert!(
            page.contains(".TH kolla-history 1  \"kolla 0.1.0\""),
            "{page}"
        );
        assert!(page.contains("\\-\\-output"), "{page}");
        let err = man_page(Some("histroy")).unwrap_err();
        let unknown = err.downcast_ref::<UnknownVerb>().expect("an unknown verb");
        assert_eq!(unknown.known[0], "history");
        assert!(man_page(Some("swap-helper")).is_err());
    }
}
