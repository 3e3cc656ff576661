//! A session: one change to one service under its lock, the same for a
//! first create, a deploy's replace, an upgrade, a rollback and a
//! recovery. `open` takes the lock (recording who, why, and the target);
//! `close` records the attempt in the history and releases the lock by id,
//! in that order, whatever the work returned, and the work's error wins
//! over a failed release.

use std::time::Duration;

use super::context::NodeRun;
use super::error::DeployError;
use super::history::Record;
use super::lock::{Holder, Lock, Takeover};

/// What the lock says about the change it guards.
#[derive(Debug, Clone)]
pub struct Intent<'s> {
    pub service: &'s str,
    /// An image on the node to make the lock container from.
    pub image: &'s str,
    /// The verb: deploy, upgrade, rollback, recover.
    pub action: &'s str,
    /// What the change goes to, for whoever finds the lock.
    pub target: String,
    /// The generation live when the lock was taken.
    pub from: Option<u64>,
    pub takeover: Takeover,
}

/// A swap attempted under the session, for the history.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    pub from: u64,
    pub to: u64,
    pub image: String,
    pub digest: String,
    /// The swap itself began (the old container was touched), so a
    /// failure was swapped back rather than stopped before.
    pub swapping: bool,
}

/// A held lock on one service, for one change.
pub struct Session<'r, 'a> {
    run: &'r NodeRun<'a>,
    lock: Lock,
    service: String,
    action: String,
}

impl<'r, 'a> Session<'r, 'a> {
    pub async fn open(run: &'r NodeRun<'a>, intent: Intent<'_>) -> Result<Self, DeployError> {
        let lock = run
            .lock(
                intent.service,
                intent.image,
                intent.action,
                &intent.target,
                intent.from,
                intent.takeover,
            )
            .await?;
        Ok(Session {
            run,
            lock,
            service: intent.service.to_string(),
            action: intent.action.to_string(),
        })
    }

    /// The holder whose lock this session took over (it was gone).
    pub fn took_over(&self) -> Option<&Holder> {
        self.lock.took_over.as_ref()
    }

    /// The lock container's name (recovery leaves it out of what it sees).
    pub fn lock_name(&self) -> &str {
        self.lock.name()
    }

    /// Record `attempt` (when the work got that far) and release the lock;
    /// then the work's result.
    pub async fn close<T>(
        self,
        attempt: Option<Attempt>,
        result: Result<T, DeployError>,
        dark: impl Fn(&T) -> Option<Duration>,
    ) -> Result<T, DeployError> {
        if let Some(attempt) = attempt {
            self.run.record(&Record {
                time: super::now_secs(),
                node: self.run.node.to_string(),
                service: self.service.clone(),
                action: self.action.clone(),
                from_generation: attempt.from,
                to_generation: attempt.to,
                image: attempt.image,
                digest: attempt.digest,
                user: self.run.user.to_string(),
                result: result_text(&result, attempt.swapping),
                dark_window_secs: result
                    .as_ref()
                    .ok()
                    .and_then(&dark)
                    .map(|d| d.as_secs_f64()),
            });
        }
        let released = self.run.unlock(self.lock).await;
        let value = result?;
        released?;
        Ok(value)
    }
}

/// How the history words an attempt's end.
fn result_text<T>(result: &Result<T, DeployError>, swapping: bool) -> String {
    let first_line = |e: &DeployError| e.to_string().lines().next().unwrap_or_default().to_string();
    match result {
        Ok(_) => "ok".to_string(),
        Err(e) if e.needs_recovery() => format!("needs recovery: {}", first_line(e)),
        Err(e) if swapping => format!("swapped back: {}", first_line(e)),
        Err(e) => format!("failed: {}", first_line(e)),
    }
}
