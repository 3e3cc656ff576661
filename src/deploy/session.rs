//! A session: one change to one service under its lock, the same for a
//! first create, a deploy's replace, an upgrade, a rollback and a
//! recovery. `open` takes the lock (recording who, why, and the target);
//! `close` records the attempt in the history and releases the lock by id,
//! in that order, whatever the work returned, and the work's error wins
//! over a failed release. A lock another run holds is waited for when the
//! run's options say so (`--lock-wait`), each holder named once.

use std::time::{Duration, Instant};

use super::context::NodeRun;
use super::error::DeployError;
use super::history::Record;
use super::lock::{self, Holder, Lock, LockRequest, Takeover, Wait};

/// What the lock says about the change it guards.
#[derive(Debug, Clone)]
pub struct Intent<'s> {
    pub service: &'s str,
    /// An image on the node to make the lock container from.
    pub image: &'s str,
    /// That image's declared volumes when the caller knows them (else the
    /// lock inspects the image).
    pub image_volumes: Option<&'s [String]>,
    /// The verb: deploy, upgrade, rollback, recover.
    pub action: &'s str,
    /// What the change goes to, for whoever finds the lock.
    pub target: String,
    /// The generation live when the lock was taken.
    pub from: Option<u64>,
    /// Whether it was running then (recovery starts it again if the swap
    /// was cut short after stopping it).
    pub from_running: bool,
    /// A `rollback --restore-db`: the generation whose restore point it
    /// loads (recovery finishes it rather than start the newer one).
    pub restore_db: Option<u64>,
    pub takeover: Takeover,
}

/// A swap attempted under the session, for the history.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    pub from: u64,
    pub to: u64,
    /// The image the service ran before (its live container's).
    pub from_image: String,
    pub image: String,
    pub digest: String,
    /// The OpenStack releases of the images, from and to, where known.
    pub releases: (Option<String>, Option<String>),
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
    /// When the lock was taken: the history's duration runs from here.
    started: Instant,
}

impl<'r, 'a> Session<'r, 'a> {
    pub async fn open(run: &'r NodeRun<'a>, intent: Intent<'_>) -> Result<Self, DeployError> {
        let lock = acquire(run, &intent).await?;
        Ok(Session {
            run,
            lock,
            service: intent.service.to_string(),
            action: intent.action.to_string(),
            started: Instant::now(),
        })
    }

    /// The holder whose lock this session took over (it was gone).
    pub fn took_over(&self) -> Option<&Holder> {
        self.lock.took_over.as_ref()
    }

    /// The holder this session waited for (`--lock-wait`), if it waited:
    /// what the node showed before the lock was taken may be stale.
    pub fn waited_for(&self) -> Option<&Holder> {
        self.lock.waited_for.as_ref()
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
                from_image: attempt.from_image,
                image: attempt.image,
                digest: attempt.digest,
                from_release: attempt.releases.0,
                to_release: attempt.releases.1,
                user: self.run.user.to_string(),
                host: lock::this_host(),
                result: result_text(&result, attempt.swapping),
                dark_window_secs: result
                    .as_ref()
                    .ok()
                    .and_then(&dark)
                    .map(|d| d.as_secs_f64()),
                duration_secs: Some(self.started.elapsed().as_secs_f64()),
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

/// Take the lock `intent` asks for, its container made from the
/// intent's image (an image on the node); the lock says whether it took
/// over the lock of a holder that is gone.
async fn acquire(run: &NodeRun<'_>, intent: &Intent<'_>) -> Result<Lock, DeployError> {
    let inspected;
    let image_volumes = match intent.image_volumes {
        Some(known) => known,
        None => {
            inspected = run
                .engine
                .image(intent.image)
                .await
                .map_err(|e| run.engine_error(e))?
                .map(|info| info.volumes)
                .unwrap_or_default();
            &inspected
        }
    };
    let request = LockRequest {
        prefix: run.placement_prefix,
        project: run.project,
        service: intent.service,
        image: intent.image,
        image_volumes,
        reason: intent.action,
        target: &intent.target,
        from: intent.from,
        from_running: intent.from_running,
        restore_db: intent.restore_db,
        user: run.user,
    };
    let mut wait = Wait::up_to(run.options.lock_wait);
    let tell = |holder: &Holder| say_waiting(run, intent.service, holder);
    lock::acquire_waiting(run.engine, &request, intent.takeover, &mut wait, tell)
        .await
        .map_err(|e| run.lock_error(e))
}

/// Tell the operator this run waits for `holder`'s lock on `service`
/// (`--lock-wait`), and for how long at most.
pub fn say_waiting(run: &NodeRun<'_>, service: &str, holder: &Holder) {
    let limit = run
        .options
        .lock_wait
        .map(|limit| format!(" (--lock-wait: at most {}s)", limit.as_secs_f64()))
        .unwrap_or_default();
    run.steps.event(
        run.node,
        service,
        &format!("waiting for its lock, held by {holder}{limit}"),
    );
}
