//! Commands run inside a running container (the engine's exec API):
//! collected, as restore points dump a database in its own container, or
//! attached, as `kolla exec` runs an operator's command (its output as it
//! comes, its input, a terminal of the operator's size, its exit code).
//! Also single files carried into and out of containers (the archive API),
//! for restore points to keep a dump in another container.

use std::io::Read;
use std::pin::Pin;
use std::time::Duration;

use super::containers::{PrintedStream, printed_stream};
use super::deadline::{COMMAND_QUIET, STREAM_QUIET};
use super::{Engine, EngineError};
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{DownloadFromContainerOptionsBuilder, ResizeExecOptionsBuilder};
use bytes::Bytes;
use tokio::io::AsyncWrite;

/// How a command run in a container ended and what it printed.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// How `exec_attached` runs a command.
#[derive(Debug, Clone, Copy)]
pub struct ExecRequest<'a> {
    pub cmd: &'a [String],
    /// On a pseudo-terminal (its output is one stream), as a shell wants
    /// when a person types into it.
    pub tty: bool,
    /// Its standard input comes from kolla (`AttachedExec::input`).
    pub stdin: bool,
}

/// A command started in a container, its streams attached.
pub struct AttachedExec {
    /// The exec's id: `resize_exec` and `exec_exit_code` take it.
    pub id: String,
    /// What it prints, until it exits; no limit on quiet (a shell waits
    /// for its operator as long as they like).
    pub output: PrintedStream,
    /// Its standard input, when asked for; shutting it down is the end of
    /// its input.
    pub input: Option<Pin<Box<dyn AsyncWrite + Send>>>,
}

/// How long after a command's output ends the engine may take to note
/// its exit.
const EXIT_NOTED: Duration = Duration::from_secs(5);

impl Engine {
    /// Start `request.cmd` in the running container `container` as its
    /// image's user, attached.
    pub async fn exec_attached(
        &self,
        container: &str,
        request: ExecRequest<'_>,
    ) -> Result<AttachedExec, EngineError> {
        let what = format!("run {:?} in {container}", request.cmd.join(" "));
        let api = |e| EngineError::from_api(&what, e);
        let options = CreateExecOptions {
            cmd: Some(request.cmd.to_vec()),
            attach_stdin: Some(request.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(request.tty),
            ..Default::default()
        };
        let create = self.docker.create_exec(container, options);
        let id = self
            .within(&what, self.deadlines.work(), create)
            .await?
            .map_err(api)?
            .id;
        let start = StartExecOptions {
            detach: false,
            tty: request.tty,
            output_capacity: None,
        };
        let start = self.docker.start_exec(&id, Some(start));
        let started = self
            .within(&what, self.deadlines.work(), start)
            .await?
            .map_err(api)?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(EngineError::StreamFailed {
                what,
                message: "the engine started the command detached".into(),
            });
        };
        Ok(AttachedExec {
            id,
            output: printed_stream(self.clone(), what, None, output),
            input: request.stdin.then_some(input),
        })
    }

    /// Give exec `id`'s terminal `rows` by `columns`.
    pub async fn resize_exec(&self, id: &str, rows: u16, columns: u16) -> Result<(), EngineError> {
        let options = ResizeExecOptionsBuilder::default()
            .h(i32::from(rows))
            .w(i32::from(columns))
            .build();
        let what = format!("resize the terminal of exec {id}");
        self.answer(&what, self.docker.resize_exec(id, options))
            .await
    }

    /// The exit code of exec `id`, whose output has ended. The engine notes
    /// the exit a moment after the output ends, so a command it still
    /// calls running is asked about again, for up to `EXIT_NOTED`; None
    /// when the engine gives no code.
    pub async fn exec_exit_code(&self, id: &str) -> Result<Option<i64>, EngineError> {
        let what = format!("inspect exec {id}");
        let since = std::time::Instant::now();
        loop {
            let inspected = self.answer(&what, self.docker.inspect_exec(id)).await?;
            if inspected.running != Some(true) {
                return Ok(inspected.exit_code);
            }
            if since.elapsed() > EXIT_NOTED {
                return Err(EngineError::StreamFailed {
                    what,
                    message: format!(
                        "its output ended but it still runs after {}",
                        super::deadline::seconds(EXIT_NOTED)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Run `cmd` as `user` in the running container `container` with `env`
    /// (`KEY=value`) until it exits; its output, collected.
    pub async fn exec(
        &self,
        container: &str,
        cmd: &[String],
        user: &str,
        env: &[String],
    ) -> Result<ExecOutput, EngineError> {
        let what = format!("run {:?} in {container}", cmd.join(" "));
        let api = |e| EngineError::from_api(&what, e);
        let options = CreateExecOptions {
            cmd: Some(cmd.to_vec()),
            env: Some(env.to_vec()),
            user: Some(user.to_string()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let id = self
            .within(
                &what,
                self.deadlines.work(),
                self.docker.create_exec(container, options),
            )
            .await?
            .map_err(api)?
            .id;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let started = self
            .within(
                &what,
                self.deadlines.work(),
                self.docker.start_exec(&id, None),
            )
            .await?
            .map_err(api)?;
        // The command may run a long while: what bounds it is how long it
        // goes without output.
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(item) = self.next_within(&what, COMMAND_QUIET, &mut output).await? {
                match item.map_err(api)? {
                    bollard::container::LogOutput::StdOut { message } => {
                        stdout.extend_from_slice(&message)
                    }
                    other => stderr.extend_from_slice(&other.into_bytes()),
                }
            }
        }
        let inspected = self
            .within(&what, self.deadlines.answer, self.docker.inspect_exec(&id))
            .await?
            .map_err(api)?;
        Ok(ExecOutput {
            exit_code: inspected.exit_code.unwrap_or(-1),
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// Write `bytes` as file `path` (absolute, mode 0600, owned by root)
    /// into a container, created or running; its folder must exist.
    pub async fn put_file(
        &self,
        container: &str,
        path: &str,
        bytes: &[u8],
    ) -> Result<(), EngineError> {
        let (folder, name) = split_path(path);
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(0);
        header.set_cksum();
        let stream = |e: std::io::Error| EngineError::StreamFailed {
            what: format!("pack {path} for {container}"),
            message: e.to_string(),
        };
        tar.append_data(&mut header, name, bytes).map_err(stream)?;
        let tar = tar.into_inner().map_err(stream)?;
        self.upload(container, folder, Bytes::from(tar)).await
    }

    /// The file `path` of a container (created or running), or None if it
    /// has no such file.
    pub async fn get_file(
        &self,
        container: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        let what = format!("read {path} from {container}");
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let mut stream = self
            .docker
            .download_from_container(container, Some(options));
        let mut tar = Vec::new();
        while let Some(chunk) = self.next_within(&what, STREAM_QUIET, &mut stream).await? {
            match chunk {
                Ok(bytes) => tar.extend_from_slice(&bytes),
                Err(e) => match EngineError::from_api(&what, e) {
                    EngineError::NotFound { .. } => return Ok(None),
                    other => return Err(other),
                },
            }
        }
        let unpack = |e: std::io::Error| EngineError::StreamFailed {
            what: what.clone(),
            message: e.to_string(),
        };
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut entries = archive.entries().map_err(unpack)?;
        let Some(entry) = entries.next() else {
            return Ok(None);
        };
        let mut entry = entry.map_err(unpack)?;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(unpack)?;
        Ok(Some(bytes))
    }
}

/// `/a/b/c` -> (`/a/b`, `c`); `/c` -> (`/`, `c`).
fn split_path(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((folder, name)) => (folder, name),
        None => ("/", path),
    }
}

#[cfg(test)]
mod tests {
    use super::split_path;

    #[test]
    fn a_path_splits_into_its_folder_and_name() {
        assert_eq!(
            split_path("/restore-point/dump"),
            ("/restore-point", "dump")
        );
        assert_eq!(split_path("/dump"), ("/", "dump"));
        assert_eq!(split_path("dump"), ("/", "dump"));
    }
}
