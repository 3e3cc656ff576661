//! What the operator sees while work runs. For a set of tasks (a build's
//! images): on a terminal, one indicatif spinner per running task under an
//! overall bar; otherwise (CI logs, pipes) one plain line per step,
//! prefixed with the task's name, so logs stay greppable. For the services
//! of a deploy, upgrade or rollback, `Steps`: on a terminal one live line
//! per service (its current step and time) above which lasting events and
//! each service's result are printed; otherwise one line per event with the
//! seconds since the command started. Its own types: callers map their
//! outcomes to a `Finished`, so this file knows no builder or deployer.
//!
//! Colour is decided once, by the caller (`Settings::colour`: `--color`,
//! NO_COLOR, a terminal or not); here `colour` only says whether to paint
//! the result words, in bars and in plain lines alike.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How much the operator asked to see: `--quiet` keeps warnings,
/// failures and results (no step-by-step progress, no builder lines);
/// `-v` adds every builder line and each job's output, a success's too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Verbosity {
    Quiet,
    #[default]
    Normal,
    Verbose,
}

impl Verbosity {
    /// From `--quiet` and the count of `-v` (clap keeps them apart).
    pub fn from_flags(quiet: bool, verbose: u8) -> Verbosity {
        match (quiet, verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, _) => Verbosity::Verbose,
        }
    }
}

/// How a task ended, as the display shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// The word shown (`built`, `failed`, ...).
    pub word: &'static str,
    pub tone: Tone,
}

/// The colour a finished task gets on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Bad,
    Warning,
}

pub enum Progress {
    Terminal(TerminalProgress),
    Plain {
        unit: &'static str,
        colour: bool,
        verbosity: Verbosity,
    },
}

pub struct TerminalProgress {
    colour: bool,
    verbose: bool,
    multi: MultiProgress,
    overall: ProgressBar,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress {
    /// Bars when stderr is a terminal (but `--quiet`'s), plain lines
    /// otherwise. `unit` names what is counted (`build`: images).
    pub fn for_stderr(unit: &'static str, colour: bool, verbosity: Verbosity) -> Progress {
        if std::io::stderr().is_terminal() && verbosity != Verbosity::Quiet {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(0));
            overall.set_style(
                ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {elapsed} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            overall.set_prefix(unit);
            Progress::Terminal(TerminalProgress {
                colour,
                verbose: verbosity == Verbosity::Verbose,
                multi,
                overall,
                bars: Mutex::new(HashMap::new()),
            })
        } else {
            Progress::Plain {
                unit,
                colour,
                verbosity,
            }
        }
    }

    pub fn begin(&self, total: usize) {
        match self {
            Progress::Terminal(t) => t.overall.set_length(total as u64),
            Progress::Plain {
                unit, verbosity, ..
            } => {
                if *verbosity != Verbosity::Quiet {
                    eprintln!("{unit}: {total} to do")
                }
            }
        }
    }

    pub fn start(&self, name: &str) {
        match self {
            Progress::Terminal(t) => {
                let bar = t
                    .multi
                    .insert_before(&t.overall, ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:<24} {elapsed:>4} {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(name.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                if let Ok(mut bars) = t.bars.lock() {
                    bars.insert(name.to_string(), bar);
                }
            }
            Progress::Plain { verbosity, .. } => {
                if *verbosity != Verbosity::Quiet {
                    eprintln!("{name}: started")
                }
            }
        }
    }

    /// One line of builder output. On a terminal it replaces the bar's
    /// message (`-v`: and is printed above the bars); in plain mode only
    /// the builder's step lines are printed, so CI logs show progress
    /// without every package manager line (`-v`: every line; `--quiet`:
    /// none).
    pub fn line(&self, name: &str, line: &str) {
        match self {
            Progress::Terminal(t) => {
                if let Some(bar) = t.bars.lock().ok().and_then(|b| b.get(name).cloned()) {
                    bar.set_message(line.trim().to_string());
                }
                if t.verbose {
                    let _ = t.multi.println(format!("{name}: {}", line.trim_end()));
                }
            }
            Progress::Plain { verbosity, .. } => {
                let line = line.trim();
                let step = ["Step ", "retry ", "pushing "]
                    .iter()
                    .any(|p| line.starts_with(p));
                let shown = match verbosity {
                    Verbosity::Quiet => false,
                    Verbosity::Normal => step,
                    Verbosity::Verbose => true,
                };
                if shown {
                    eprintln!("{name}: {line}");
                }
            }
        }
    }

    pub fn finish(&self, name: &str, status: Finished, error: &Option<String>) {
        let detail = error
            .as_deref()
            .and_then(|e| e.lines().find(|l| !l.trim().is_empty()))
            .map(|e| format!(": {}", e.trim()))
            .unwrap_or_default();
        match self {
            Progress::Terminal(t) => {
                if let Some(bar) = t.bars.lock().ok().and_then(|mut b| b.remove(name)) {
                    bar.finish_and_clear();
                }
                t.overall.inc(1);
                let _ = t
                    .multi
                    .println(format!("{} {name}{detail}", paint(status, t.colour, 0)));
            }
            Progress::Plain {
                colour, verbosity, ..
            } => {
                if *verbosity != Verbosity::Quiet || status.tone != Tone::Good {
                    eprintln!("{}", result_line(name, status, &detail, *colour))
                }
            }
        }
    }

    pub fn end(&self) {
        if let Progress::Terminal(t) = self {
            t.overall.finish_and_clear();
        }
    }
}

/// A plain line saying how `name` ended: `name: word: detail`.
pub fn result_line(name: &str, status: Finished, detail: &str, colour: bool) -> String {
    format!("{name}: {}{detail}", paint(status, colour, 0))
}

/// The word, padded to `width` (so names after it line up) and coloured.
fn paint(status: Finished, colour: bool, width: usize) -> String {
    let word = format!("{:<width$}", status.word);
    if !colour {
        return word;
    }
    let code = match status.tone {
        Tone::Good => "32",
        Tone::Bad => "31",
        Tone::Warning => "33",
    };
    format!("\x1b[{code}m{word}\x1b[0m")
}

/// The services of a deploy or swap as the operator follows them.
pub struct Steps {
    display: StepsDisplay,
    verbosity: Verbosity,
}

enum StepsDisplay {
    /// A live line per service that has work under way.
    Terminal {
        colour: bool,
        multi: MultiProgress,
        live: Mutex<BTreeMap<String, ProgressBar>>,
    },
    /// One line per event; `timed` prefixes the seconds since the start
    /// (a swap helper's lines are timed by the operator's side instead).
    Lines { timed: bool, colour: bool },
}

impl Steps {
    /// Live lines when stderr is a terminal (but `--quiet`'s), timed lines
    /// otherwise.
    pub fn for_stderr(colour: bool, verbosity: Verbosity) -> Steps {
        let display = if std::io::stderr().is_terminal() && verbosity != Verbosity::Quiet {
            StepsDisplay::Terminal {
                colour,
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                live: Mutex::new(BTreeMap::new()),
            }
        } else {
            StepsDisplay::Lines {
                timed: true,
                colour,
            }
        };
        Steps { display, verbosity }
    }

    /// Plain lines without times, for output that another process relays
    /// (uncoloured: the relaying side decides about colour).
    pub fn untimed() -> Steps {
        Steps {
            display: StepsDisplay::Lines {
                timed: false,
                colour: false,
            },
            verbosity: Verbosity::Normal,
        }
    }

    /// The step a service is at now (`creating`, `waiting for healthy`):
    /// its live line on a terminal, a line otherwise.
    pub fn status(&self, node: &str, service: &str, step: &str) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        match &self.display {
            StepsDisplay::Terminal { multi, live, .. } => {
                live_line(multi, live, node, service).set_message(step.to_string());
            }
            StepsDisplay::Lines { .. } => self.note(format!("{node}: {service}: {step}")),
        }
    }

    /// A step shown only where it costs no log line: a service waiting for
    /// its dependencies, on a terminal.
    pub fn pending(&self, node: &str, service: &str, step: &str) {
        if let StepsDisplay::Terminal { multi, live, .. } = &self.display {
            live_line(multi, live, node, service).set_message(step.to_string());
        }
    }

    /// An event worth keeping in the scrollback (a dark window, a swap
    /// back, a warning): printed, and the service's live line updated.
    pub fn event(&self, node: &str, service: &str, what: &str) {
        if let StepsDisplay::Terminal { multi, live, .. } = &self.display {
            live_line(multi, live, node, service).set_message(what.to_string());
        }
        self.note(format!("{node}: {service}: {what}"));
    }

    /// A service's work is over: its live line goes, its result stays.
    pub fn done(&self, node: &str, service: &str, result: Finished, detail: &str) {
        if self.verbosity == Verbosity::Quiet && result.tone == Tone::Good {
            return;
        }
        let detail = detail
            .lines()
            .find(|l| !l.trim().is_empty())
            .map(|l| format!(": {}", l.trim()))
            .unwrap_or_default();
        match &self.display {
            StepsDisplay::Terminal {
                colour,
                multi,
                live,
            } => {
                let key = format!("{node}: {service}");
                let elapsed = match live.lock().ok().and_then(|mut l| l.remove(&key)) {
                    Some(bar) => {
                        bar.finish_and_clear();
                        multi.remove(&bar);
                        format!(" ({:.1}s)", bar.elapsed().as_secs_f64())
                    }
                    None => String::new(),
                };
                let word = paint(result, *colour, 10);
                let _ = multi.println(format!("{word} {key}{elapsed}{detail}"));
            }
            StepsDisplay::Lines { colour, .. } => {
                self.note(result_line(
                    &format!("{node}: {service}"),
                    result,
                    &detail,
                    *colour,
                ));
            }
        }
    }

    /// What only `-v` shows: a job's whole output, a success's too.
    pub fn detail(&self, node: &str, service: &str, what: &str) {
        if self.verbosity == Verbosity::Verbose {
            self.note(format!("{node}: {service}: {what}"));
        }
    }

    /// Whether `-v` asked for the details (`detail`): callers skip
    /// fetching what would not be shown.
    pub fn verbose(&self) -> bool {
        self.verbosity == Verbosity::Verbose
    }

    /// A line for the operator that is about no one service.
    pub fn note(&self, line: String) {
        match &self.display {
            StepsDisplay::Terminal { multi, .. } => {
                let line = format!("[{:>7.3}s] {line}", started().elapsed().as_secs_f64());
                // Printed above the live lines, which stay where they are.
                if multi.println(&line).is_err() {
                    eprintln!("{line}");
                }
            }
            StepsDisplay::Lines { timed: true, .. } => {
                eprintln!("[{:>7.3}s] {line}", started().elapsed().as_secs_f64());
            }
            StepsDisplay::Lines { timed: false, .. } => eprintln!("{line}"),
        }
    }

    /// Clear the live lines still shown (a run that ended in a failure).
    pub fn end(&self) {
        if let StepsDisplay::Terminal { live, .. } = &self.display
            && let Ok(mut live) = live.lock()
        {
            for (_, bar) in std::mem::take(&mut *live) {
                bar.finish_and_clear();
            }
        }
    }
}

/// The live line of `service` on `node`, made on its first step.
fn live_line(
    multi: &MultiProgress,
    live: &Mutex<BTreeMap<String, ProgressBar>>,
    node: &str,
    service: &str,
) -> ProgressBar {
    let key = format!("{node}: {service}");
    let Ok(mut live) = live.lock() else {
        return ProgressBar::hidden();
    };
    live.entry(key.clone())
        .or_insert_with(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<32} {elapsed:>4} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(key);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        })
        .clone()
}

/// The display of this command's deploy steps (set up by `verbs::run`;
/// plain timed lines if nothing set it up).
pub fn steps() -> &'static Steps {
    STEPS.get_or_init(|| Steps {
        display: StepsDisplay::Lines {
            timed: true,
            colour: false,
        },
        verbosity: Verbosity::Normal,
    })
}

static STEPS: std::sync::OnceLock<Steps> = std::sync::OnceLock::new();

/// Choose the display for this command: live lines on a terminal;
/// `colour` as `Settings::colour` decided, `verbosity` as the flags did.
pub fn init_steps(colour: bool, verbosity: Verbosity) {
    let _ = STEPS.set(Steps::for_stderr(colour, verbosity));
}

/// One line for the operator, on stderr, with the seconds since the
/// command started, so every step shows its time in a terminal and in CI.
/// Write to standard output. A reader that went away (`kolla ... | head`)
/// is no reason to panic or to stop mid-work: what it would have read is
/// dropped, the work goes on, and stderr still says how it ended. (Dying
/// of SIGPIPE, as most Unix tools do, would kill a deploy between the
/// steps of a swap.)
pub fn write_out(text: std::fmt::Arguments) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_fmt(text).and_then(|()| stdout.flush());
}

pub fn say(line: String) {
    steps().note(line);
}

/// When the command started (the first call fixes it; `verbs::run` calls
/// it first).
pub fn started() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILED: Finished = Finished {
        word: "failed",
        tone: Tone::Bad,
    };

    #[test]
    fn results_are_painted_only_when_asked() {
        assert_eq!(
            result_line("glance-api", FAILED, ": boom", false),
            "glance-api: failed: boom"
        );
        assert_eq!(paint(FAILED, false, 8), "failed  ");
        assert_eq!(
            result_line("glance-api", FAILED, "", true),
            "glance-api: \x1b[31mfailed\x1b[0m"
        );
    }
}
