//! Commands the tests run (kolla, the docker CLI, the openstack client),
//! each within a time limit: a command that hangs is killed and fails its
//! test with its command line and what it printed so far, instead of
//! holding the whole run until CI's own limit cuts it off with no word of
//! which test or command hung.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long one command may run: `KOLLA_TEST_COMMAND_LIMIT` seconds, 20
/// minutes by default (the longest command of any test, a multi-node
/// cloud's deploy on a starved machine, took under 9).
pub fn command_limit() -> Duration {
    let seconds = std::env::var("KOLLA_TEST_COMMAND_LIMIT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1200);
    Duration::from_secs(seconds)
}

/// `Command::output` and `Command::status` within `command_limit()`.
pub trait Bounded {
    /// Its output; panics naming the command if it outlives the limit.
    fn bounded_output(&mut self) -> std::io::Result<Output> {
        self.output_within(command_limit())
    }
    /// Its output; panics naming the command if it outlives `limit`.
    fn output_within(&mut self, limit: Duration) -> std::io::Result<Output>;
    /// Its exit status, output inherited; panics as `bounded_output` does.
    fn bounded_status(&mut self) -> std::io::Result<ExitStatus>;
}

impl Bounded for Command {
    fn output_within(&mut self, limit: Duration) -> std::io::Result<Output> {
        let mut child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let status = wait_within(&mut child, self, limit, || {
            // What it printed before it hung: the readers still hold it,
            // so this is said from what the pipes gave within a moment.
            let grace = Duration::from_secs(2);
            let out = stdout.recv_timeout(grace).unwrap_or_default();
            let err = stderr.recv_timeout(grace).unwrap_or_default();
            format!(
                "stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            )
        })?;
        // A grandchild that outlives the command may hold a pipe open:
        // what was read within a moment of the exit is its output.
        let grace = Duration::from_secs(10);
        Ok(Output {
            status,
            stdout: stdout.recv_timeout(grace).unwrap_or_default(),
            stderr: stderr.recv_timeout(grace).unwrap_or_default(),
        })
    }

    fn bounded_status(&mut self) -> std::io::Result<ExitStatus> {
        let mut child = self.spawn()?;
        wait_within(&mut child, self, command_limit(), || {
            "(its output went to the test's own)".to_string()
        })
    }
}

/// Run `command` to its end and say how long it took; if it is still
/// running after `limit`, kill it and fail the test with what it printed
/// (the tests of kolla's own deadlines hold it to a tighter limit than
/// `command_limit()`).
pub fn run_within(mut command: Command, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let output = command.output_within(limit).expect("start the command");
    (output, started.elapsed())
}

/// Everything `pipe` gives until it closes, sent once at its end.
fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut buffer = Vec::new();
            let _ = pipe.read_to_end(&mut buffer);
            let _ = tx.send(buffer);
        });
    } else {
        let _ = tx.send(Vec::new());
    }
    rx
}

/// `child`'s exit status; past `limit`, kills it and panics with the
/// command line and `so_far()`.
fn wait_within(
    child: &mut Child,
    command: &Command,
    limit: Duration,
    so_far: impl FnOnce() -> String,
) -> std::io::Result<ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} ran for more than {} s (KOLLA_TEST_COMMAND_LIMIT): killed.\n{}",
                command_line(command),
                limit.as_secs(),
                so_far()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `program arg arg ...`, as an operator would type it.
pub fn command_line(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
