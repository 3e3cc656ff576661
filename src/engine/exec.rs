//! Commands run inside a running container (the engine's exec API), and
//! single files carried into and out of containers (its archive API): what
//! restore points need to dump a database in its own container and to keep
//! the dump in another.

use std::io::Read;

use super::deadline::{COMMAND_QUIET, STREAM_QUIET};
use super::{Engine, EngineError};
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::query_parameters::DownloadFromContainerOptionsBuilder;
use bytes::Bytes;

/// How a command run in a container ended and what it printed.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Engine {
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
