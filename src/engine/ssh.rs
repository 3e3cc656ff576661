//! `ssh://[user@]host[:port]` endpoints: the system's ssh forwards a
//! private local socket to the node's engine socket, and the engine is
//! reached through it. The operator's ssh setup applies as it does for
//! their own ssh: `~/.ssh/config` (or the file `KOLLA_SSH_CONFIG` names),
//! the agent, keys, jump hosts. A host whose key is not in known_hosts, or
//! whose key changed, is refused: never trusted on first use.
//!
//! bollard's own `ssh` feature is not used: it asks ssh to accept new host
//! keys (`StrictHostKeyChecking=accept-new`) and opens a new ssh master per
//! pooled connection; one forward per engine does neither.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use super::EngineError;
pub use crate::container::{SSH_URL_EXPECTED as EXPECTED, SshTarget, parse_ssh_url as parse};

/// How long ssh may take to connect, authenticate and forward.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// A running forward; dropping it ends ssh and removes the socket.
#[derive(Debug)]
pub struct Tunnel {
    child: Child,
    dir: PathBuf,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Open a forward to the engine `url` names; the local socket's path.
pub async fn open(url: &str, config: Option<&Path>) -> Result<(Tunnel, PathBuf), EngineError> {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let failed = |message: String| EngineError::Ssh {
        endpoint: url.to_string(),
        message,
    };
    let target = parse(url).ok_or_else(|| EngineError::BadEndpoint {
        endpoint: url.to_string(),
        message: EXPECTED.into(),
    })?;
    let dir = std::env::temp_dir().join(format!(
        "kolla-ssh-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::SeqCst)
    ));
    make_private_dir(&dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    let local = dir.join("docker.sock");
    let mut command = forward_command(&target, &local, config);
    let child = command.spawn().map_err(|e| {
        let _ = std::fs::remove_dir_all(&dir);
        failed(format!(
            "cannot run ssh: {e} (is the OpenSSH client installed?)"
        ))
    })?;
    let mut tunnel = Tunnel { child, dir };
    let started = Instant::now();
    loop {
        if local.exists() {
            return Ok((tunnel, local));
        }
        if let Ok(Some(status)) = tunnel.child.try_wait() {
            let mut said = String::new();
            if let Some(mut stderr) = tunnel.child.stderr.take() {
                let _ = stderr.read_to_string(&mut said).await;
            }
            let said = said.trim();
            return Err(failed(if said.is_empty() {
                format!("ssh exited ({status})")
            } else {
                said.lines().collect::<Vec<_>>().join("; ")
            }));
        }
        if started.elapsed() > OPEN_TIMEOUT {
            return Err(failed(format!(
                "no forward after {}s",
                OPEN_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// ssh forwarding `local` to the target's engine socket, and nothing else.
fn forward_command(target: &SshTarget, local: &Path, config: Option<&Path>) -> Command {
    let mut command = Command::new("ssh");
    if let Some(config) = config {
        command.arg("-F").arg(config);
    }
    command.args([
        "-N",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "StreamLocalBindUnlink=yes",
    ]);
    if let Some(port) = target.port {
        command.arg("-p").arg(port.to_string());
    }
    if let Some(user) = &target.user {
        command.arg("-l").arg(user);
    }
    command
        .arg("-L")
        .arg(format!("{}:{}", local.display(), target.socket))
        .arg("--")
        .arg(&target.host)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // A kolla killed outright must not leave the forward running: the
    // kernel ends ssh when the thread that started it goes.
    // SAFETY: between fork and exec only prctl runs, which is async-signal
    // safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
    command
}

fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls() {
        let t = parse("ssh://ops@10.0.0.5:2222").expect("parses");
        assert_eq!(
            (
                t.user.as_deref(),
                t.host.as_str(),
                t.port,
                t.socket.as_str()
            ),
            (Some("ops"), "10.0.0.5", Some(2222), "/var/run/docker.sock")
        );
        let t = parse("ssh://node1/run/user/1000/docker.sock").expect("parses");
        assert_eq!((t.user, t.port), (None, None));
        assert_eq!(t.socket, "/run/user/1000/docker.sock");
        let t = parse("ssh://[fd00::5]:22").expect("parses");
        assert_eq!((t.host.as_str(), t.port), ("fd00::5", Some(22)));
        for bad in [
            "ssh://",
            "ssh://host:port",
            "ssh://-oProxyCommand=x",
            "ssh://a b",
            "tcp://x",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
