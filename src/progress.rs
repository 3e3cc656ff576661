//! What the operator sees while work runs. For a set of tasks (a build's
//! images): on a terminal, one indicatif spinner per running task under an
//! overall bar; otherwise (CI logs, pipes) one plain line per step,
//! prefixed with the task's name, so logs stay greppable. For the steps of
//! a deploy or swap, `say`: one line per step with the seconds since the
//! command started. Its own types: callers map their outcomes to a
//! `Finished`, so this file knows no builder or deployer.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

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
    Plain { unit: &'static str },
}

pub struct TerminalProgress {
    colour: bool,
    multi: MultiProgress,
    overall: ProgressBar,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise. `unit`
    /// names what is counted (`build`: images).
    pub fn for_stderr(unit: &'static str, colour: bool) -> Progress {
        if std::io::stderr().is_terminal() {
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
                multi,
                overall,
                bars: Mutex::new(HashMap::new()),
            })
        } else {
            Progress::Plain { unit }
        }
    }

    pub fn begin(&self, total: usize) {
        match self {
            Progress::Terminal(t) => t.overall.set_length(total as u64),
            Progress::Plain { unit } => eprintln!("{unit}: {total} to do"),
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
            Progress::Plain { .. } => eprintln!("{name}: started"),
        }
    }

    /// One line of builder output. On a terminal it replaces the bar's
    /// message; in plain mode only the builder's step lines are printed, so
    /// CI logs show progress without every package manager line.
    pub fn line(&self, name: &str, line: &str) {
        match self {
            Progress::Terminal(t) => {
                if let Some(bar) = t.bars.lock().ok().and_then(|b| b.get(name).cloned()) {
                    bar.set_message(line.trim().to_string());
                }
            }
            Progress::Plain { .. } => {
                let line = line.trim();
                if line.starts_with("Step ")
                    || line.starts_with("retry ")
                    || line.starts_with("pushing ")
                {
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
                    .println(format!("{} {name}{detail}", paint(status, t.colour)));
            }
            Progress::Plain { .. } => eprintln!("{name}: {}{detail}", status.word),
        }
    }

    pub fn end(&self) {
        if let Progress::Terminal(t) = self {
            t.overall.finish_and_clear();
        }
    }
}

fn paint(status: Finished, colour: bool) -> String {
    if !colour {
        return status.word.to_string();
    }
    let code = match status.tone {
        Tone::Good => "32",
        Tone::Bad => "31",
        Tone::Warning => "33",
    };
    format!("\x1b[{code}m{}\x1b[0m", status.word)
}

/// One step for the operator, on stderr, with the seconds since the
/// command started, so every step shows its time in a terminal and in CI.
pub fn say(line: String) {
    eprintln!("[{:>7.3}s] {line}", started().elapsed().as_secs_f64());
}

/// When the command started (the first call fixes it; `verbs::run` calls
/// it first).
pub fn started() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}
