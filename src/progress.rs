//! What the operator sees while work runs: on a terminal, one indicatif
//! spinner per running build under an overall bar; otherwise (CI logs,
//! pipes) one plain line per step, prefixed with the image name, so logs
//! stay greppable. `NO_COLOR` turns colour off.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::images::build::Status;

pub enum Progress {
    Terminal(TerminalProgress),
    Plain,
}

pub struct TerminalProgress {
    multi: MultiProgress,
    overall: ProgressBar,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise.
    pub fn for_stderr() -> Progress {
        if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(0));
            overall.set_style(
                ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {elapsed} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            overall.set_prefix("build");
            Progress::Terminal(TerminalProgress {
                multi,
                overall,
                bars: Mutex::new(HashMap::new()),
            })
        } else {
            Progress::Plain
        }
    }

    pub fn begin(&self, total: usize) {
        match self {
            Progress::Terminal(t) => t.overall.set_length(total as u64),
            Progress::Plain => eprintln!("build: {total} images"),
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
            Progress::Plain => eprintln!("{name}: started"),
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
            Progress::Plain => {
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

    pub fn finish(&self, name: &str, status: Status, error: &Option<String>) {
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
                let _ = t.multi.println(format!("{} {name}{detail}", paint(status)));
            }
            Progress::Plain => eprintln!("{name}: {}{detail}", status.as_str()),
        }
    }

    pub fn end(&self) {
        if let Progress::Terminal(t) = self {
            t.overall.finish_and_clear();
        }
    }
}

fn paint(status: Status) -> String {
    let text = status.as_str();
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return text.to_string();
    }
    let colour = match status {
        Status::Built | Status::UpToDate => "32",
        Status::Failed | Status::ParentFailed => "31",
        Status::Cancelled => "33",
    };
    format!("\x1b[{colour}m{text}\x1b[0m")
}
