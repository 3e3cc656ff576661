//! `kolla exec`: a command in a service's live container, on the one
//! selected node that runs it (with several, the operator names one with
//! `--node`; kolla never picks for them). When kolla's own input and
//! output are a terminal, the command gets one too, of the same size and
//! following its changes, with kolla's input and the terminal in raw mode,
//! as `docker exec -it`; otherwise its output and error go to kolla's and
//! it reads no input, as `docker exec` without `-i`. Its exit code is
//! kolla's.

use std::io::Write;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::live::{self, Live};
use super::{Outcome, exit, targets, terminal};
use crate::cli::ExecArgs;
use crate::engine::{AttachedExec, Engine, ExecRequest, Printed};
use crate::settings::Settings;

/// kolla's exit code when its output's reader went away before the
/// command ended: what a shell reports of a process SIGPIPE ended.
const READER_GONE: u8 = 128 + 13;

pub async fn exec(settings: &Settings, args: ExecArgs) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args.nodes)?;
    let found = live::find(settings, &inventory, &args.nodes, &args.service).await?;
    let target = found.one_running(&args.service)?;
    let context = format!(
        "node {}: service {}: {}",
        target.node.name,
        args.service,
        shell_words::join(&args.command)
    );
    let ended = run(&target, &args.command).await.context(context.clone())?;
    match ended {
        Ended::Exited(Some(code)) => {
            // A code no process can exit with (the engine's -1 for one it
            // does not know) is a plain failure.
            Ok(Outcome::Exited(u8::try_from(code).unwrap_or(exit::FAILED)))
        }
        Ended::Exited(None) => Err(anyhow::anyhow!(
            "{context}: the command ended and the engine gave no exit code"
        )),
        Ended::ReaderGone => Ok(Outcome::Exited(READER_GONE)),
    }
}

/// How an exec ended, as kolla saw it.
enum Ended {
    /// The command exited, with the code the engine gives (if it gives one).
    Exited(Option<i64>),
    /// kolla's output was closed (`| head`) while the command still ran.
    ReaderGone,
}

/// Run `command` in `target`'s container, attached, until it ends. The
/// terminal is raw from before the command starts to the return, so that
/// no key the operator types goes to kolla's own terminal instead, and
/// errors are printed once it is set back.
async fn run(target: &Live<'_>, command: &[String]) -> anyhow::Result<Ended> {
    let tty = terminal::is_interactive();
    let _raw = if tty {
        Some(terminal::RawMode::enter().context("cannot put the terminal in raw mode")?)
    } else {
        None
    };
    let request = ExecRequest {
        cmd: command,
        tty,
        stdin: tty,
    };
    let engine = &target.engine;
    let AttachedExec { id, output, input } =
        engine.exec_attached(&target.container, request).await?;
    let resizing = tty.then(|| tokio::spawn(follow_size(engine.clone(), id.clone())));
    let feeding = input.map(|input| tokio::spawn(feed(input)));
    let reader_gone = copy_output(output).await;
    for task in resizing.into_iter().chain(feeding) {
        task.abort();
    }
    if reader_gone? {
        return Ok(Ended::ReaderGone);
    }
    Ok(Ended::Exited(engine.exec_exit_code(&id).await?))
}

/// The command's output to kolla's (its error to kolla's error) until it
/// ends; whether kolla's output was closed first.
async fn copy_output(mut output: crate::engine::PrintedStream) -> anyhow::Result<bool> {
    while let Some(piece) = output.next().await {
        match piece? {
            Printed::Out(bytes) => {
                let mut stdout = std::io::stdout();
                if stdout
                    .write_all(&bytes)
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    return Ok(true);
                }
            }
            Printed::Err(bytes) => {
                // An error stream that cannot be written has no reader to
                // tell; the output still counts.
                let mut stderr = std::io::stderr();
                let _ = stderr.write_all(&bytes).and_then(|()| stderr.flush());
            }
        }
    }
    Ok(false)
}

/// kolla's input to the command's, as it is typed; the end of kolla's
/// input is the end of the command's.
async fn feed(mut input: Pin<Box<dyn AsyncWrite + Send>>) {
    let mut pieces = terminal::stdin_pieces();
    while let Some(piece) = pieces.recv().await {
        if input.write_all(&piece).await.is_err() || input.flush().await.is_err() {
            // The command's input is closed: it has ended, or is ending.
            return;
        }
    }
    let _ = input.shutdown().await;
}

/// The command's terminal kept the size of the operator's: set once it
/// runs, and again at every change of the window (SIGWINCH).
async fn follow_size(engine: Engine, id: String) {
    // The command may not run yet when the exec's start has answered, and
    // the engine refuses to size a terminal no process holds yet: the
    // first size is asked for a few times, as the docker CLI does.
    if let Some((rows, columns)) = terminal::size() {
        for attempt in 1..=10 {
            if engine.resize_exec(&id, rows, columns).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
        }
    }
    let kind = tokio::signal::unix::SignalKind::window_change();
    let Ok(mut changes) = tokio::signal::unix::signal(kind) else {
        return;
    };
    while changes.recv().await.is_some() {
        if let Some((rows, columns)) = terminal::size() {
            // A size the engine refuses leaves the terminal as it was:
            // nothing to stop the command for.
            let _ = engine.resize_exec(&id, rows, columns).await;
        }
    }
}
