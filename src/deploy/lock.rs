//! The per node+service lock: a container named `<svc>.kolla-lock`, created
//! (never started) from an image already on the node. The engine's unique
//! names make creating it an atomic test-and-set on the node itself, so two
//! operators on two machines cannot swap one service at once.
//!
//! The protocol:
//! - the lock records who holds it and why (user, host, boot, pid and the
//!   pid's start time, since when, the reason and the target);
//! - it is released only by its holder, by container id, never by name, so
//!   a run can never release a lock another run took after it;
//! - it is taken over only when its holder is proven gone: a process on
//!   this host (same boot) that no longer exists, or whose pid now belongs
//!   to another process, or a holder on this host before a reboot. A lock
//!   held from another host is never taken over without `--force` (or
//!   `kolla unlock`): from here, nothing proves that run dead;
//! - a lock container is never a data risk: the image's declared volumes
//!   are covered by tmpfs mounts, so creating it makes no volume;
//! - a run may wait for a held lock (`--lock-wait`, a `Wait`): it tries
//!   again every `POLL` until the holder releases it (or is proven gone,
//!   where taking over is allowed), naming each holder once, and gives up
//!   at its limit with the same `Held` error, which then says how long it
//!   waited. Polling, not the engine's events: the lock may be released by
//!   a run on another machine, and a try is one create call.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::labels::{self, Role};
use super::now_secs;
use super::owned::{self, NotOurs, OwnedError};
use super::spec::ContainerSpec;
use crate::engine::{ContainerDetails, Engine, EngineError};

pub use super::labels::{
    LOCK_BOOT, LOCK_FROM, LOCK_FROM_RUNNING, LOCK_HOST, LOCK_OWNER, LOCK_PID, LOCK_PID_START,
    LOCK_REASON, LOCK_RESTORE_DB, LOCK_SINCE, LOCK_TARGET,
};

/// How many times a lock that vanished between our create and our look is
/// tried again before giving up. The engine keeps a removed container's
/// name reserved for a moment after it stops showing it, so a lock just
/// released can refuse a create and then not be there: each try waits a
/// little longer (10, 20, 40 ... ms, about 2.5 s in all).
const ATTEMPTS: u32 = 8;

/// How often a run waiting for a held lock tries again: a swap takes
/// seconds, so half a second more is little, and two create calls a
/// second cost the engine nothing.
pub const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "service {service} is locked by {holder}{}\n  hint: another kolla run is working on it; wait for it (`--lock-wait 10m` waits for it). If that run is gone, `kolla unlock {service}` clears the lock",
        .waited.map(|w| format!(" (still, after waiting {} for it)", waited_text(w))).unwrap_or_default()
    )]
    Held {
        service: String,
        holder: Box<Holder>,
        /// How long this run waited for it (`--lock-wait`), if it did.
        waited: Option<Duration>,
    },
    #[error(
        "service {service}: the lock changed hands {ATTEMPTS} times while kolla tried to take it; try again"
    )]
    Contended { service: String },
    #[error(transparent)]
    NotOurs(Box<NotOurs>),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<NotOurs> for LockError {
    fn from(e: NotOurs) -> LockError {
        LockError::NotOurs(Box::new(e))
    }
}

impl From<OwnedError> for LockError {
    fn from(e: OwnedError) -> LockError {
        match e {
            OwnedError::NotOurs(e) => LockError::NotOurs(Box::new(e)),
            OwnedError::Engine(e) => LockError::Engine(e),
        }
    }
}

/// What a lock is for, and where.
#[derive(Debug, Clone)]
pub struct LockRequest<'a> {
    pub prefix: &'a str,
    pub project: &'a str,
    pub service: &'a str,
    /// An image on the node to create the lock container from.
    pub image: &'a str,
    /// Paths the image declares as volumes (covered by tmpfs).
    pub image_volumes: &'a [String],
    /// `deploy`, `upgrade`, `rollback`, `recover`.
    pub reason: &'a str,
    /// What the holder is moving to (an image, a generation).
    pub target: &'a str,
    /// The generation live when the lock is taken, if any.
    pub from: Option<u64>,
    /// Whether that generation was running then.
    pub from_running: bool,
    /// A `rollback --restore-db`: the generation whose restore point it
    /// loads.
    pub restore_db: Option<u64>,
    /// Who takes it (the operator's user name).
    pub user: &'a str,
}

/// When a held lock may be taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    /// Never: a held lock is an error.
    Never,
    /// Only when its holder is proven gone.
    IfHolderGone,
    /// Whoever holds it (`--force`).
    Force,
}

/// A held lock; `release` it on every path.
#[derive(Debug)]
pub struct Lock {
    id: String,
    name: String,
    /// The holder whose lock this run took over, if it did.
    pub took_over: Option<Holder>,
    /// The last holder this run waited for (`--lock-wait`), if it waited:
    /// what the run saw of the node before may have changed since.
    pub waited_for: Option<Holder>,
}

impl Lock {
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Take the lock of `request.service`.
pub async fn acquire(
    engine: &Engine,
    request: &LockRequest<'_>,
    takeover: Takeover,
) -> Result<Lock, LockError> {
    let name = labels::container_name(request.prefix, request.service, Role::Lock);
    let mut me = Holder::this_process(request.reason, request.target, request.user);
    me.from = request.from;
    me.from_running = request.from_running;
    me.restore_db = request.restore_db;
    let spec = ContainerSpec {
        name: name.clone(),
        image: request.image.to_string(),
        labels: me.labels(request.project, request.service),
        // Never started; a harmless command in case someone does.
        command: Some(vec!["true".into()]),
        entrypoint: Some(vec![]),
        tmpfs: request
            .image_volumes
            .iter()
            .map(|path| (path.clone(), String::new()))
            .collect(),
        ..ContainerSpec::default()
    };
    let mut took_over = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10 << attempt.min(7))).await;
        }
        match engine.create_container(&spec).await {
            Ok(id) => {
                return Ok(Lock {
                    id,
                    name,
                    took_over,
                    waited_for: None,
                });
            }
            Err(EngineError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let Some(details) = engine.inspect(&name).await? else {
            // Released between our create and our look: try again.
            continue;
        };
        owned::check(&details, request.project, request.service)?;
        let holder = Holder::from_labels(&details);
        let allowed = match takeover {
            Takeover::Never => false,
            Takeover::IfHolderGone => holder.is_gone(),
            Takeover::Force => true,
        };
        if !allowed {
            return Err(LockError::Held {
                service: request.service.to_string(),
                holder: Box::new(holder),
                waited: None,
            });
        }
        // By id: if the stale lock was already replaced by a live run's,
        // that one stays, and our next create fails on it.
        engine.remove_container(&details.id, false).await?;
        took_over = Some(holder);
    }
    Err(LockError::Contended {
        service: request.service.to_string(),
    })
}

/// Take the lock of `request.service`, waiting for its holder as `wait`
/// allows (none: a held lock is an error at once, as `acquire`); `tell`
/// hears of each holder waited for, once.
pub async fn acquire_waiting(
    engine: &Engine,
    request: &LockRequest<'_>,
    takeover: Takeover,
    wait: &mut Wait,
    mut tell: impl FnMut(&Holder),
) -> Result<Lock, LockError> {
    loop {
        match acquire(engine, request, takeover).await {
            Err(LockError::Held {
                service, holder, ..
            }) => wait.again(service, *holder, &mut tell).await?,
            Ok(mut lock) => {
                lock.waited_for = wait.told.take();
                return Ok(lock);
            }
            Err(e) => return Err(e),
        }
    }
}

/// A run's wait for locks others hold (`--lock-wait`): from its first
/// refusal, up to `limit`.
#[derive(Debug)]
pub struct Wait {
    limit: Option<Duration>,
    /// Between tries (`POLL`).
    poll: Duration,
    since: Option<Instant>,
    /// The holder last named to the operator.
    told: Option<Holder>,
}

impl Wait {
    /// A wait of at most `limit` (None: no waiting at all).
    pub fn up_to(limit: Option<Duration>) -> Wait {
        Wait {
            limit,
            poll: POLL,
            since: None,
            told: None,
        }
    }

    /// The lock of `service` is held by `holder`: within the limit, name a
    /// holder not named yet and sleep a `POLL` (less if the limit comes
    /// first), for the caller to try again; past it, `Held`, saying how
    /// long this run waited.
    pub async fn again(
        &mut self,
        service: String,
        holder: Holder,
        tell: impl FnOnce(&Holder),
    ) -> Result<(), LockError> {
        let since = *self.since.get_or_insert_with(Instant::now);
        let left = self
            .limit
            .map(|limit| limit.saturating_sub(since.elapsed()));
        let Some(left) = left.filter(|left| !left.is_zero()) else {
            return Err(LockError::Held {
                service,
                holder: Box::new(holder),
                waited: self.limit,
            });
        };
        if self.told.as_ref() != Some(&holder) {
            tell(&holder);
            self.told = Some(holder);
        }
        tokio::time::sleep(self.poll.min(left)).await;
        Ok(())
    }

    /// The last holder waited for, if this run waited.
    pub fn waited_for(&self) -> Option<&Holder> {
        self.told.as_ref()
    }
}

/// Release a lock taken by this run (by id: never another run's lock).
pub async fn release(engine: &Engine, lock: Lock) -> Result<(), EngineError> {
    engine.remove_container(&lock.id, false).await
}

/// Clear a lock whatever holds it (`kolla unlock`), if it is this
/// deployment's; returns who held it.
pub async fn clear(
    engine: &Engine,
    prefix: &str,
    project: &str,
    service: &str,
) -> Result<Option<Holder>, LockError> {
    let name = labels::container_name(prefix, service, Role::Lock);
    match owned::find(engine, &name, project, service).await? {
        Some(details) => {
            engine.remove_container(&details.id, false).await?;
            Ok(Some(Holder::from_labels(&details)))
        }
        None => Ok(None),
    }
}

/// Who holds a lock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub owner: Option<String>,
    pub host: Option<String>,
    pub boot: Option<String>,
    pub pid: Option<u32>,
    pub pid_start: Option<String>,
    pub since: Option<u64>,
    pub reason: Option<String>,
    pub target: Option<String>,
    pub from: Option<u64>,
    pub from_running: bool,
    pub restore_db: Option<u64>,
}

impl Holder {
    fn this_process(reason: &str, target: &str, user: &str) -> Holder {
        let pid = std::process::id();
        Holder {
            owner: Some(user.to_string()),
            host: Some(this_host()),
            boot: this_boot(),
            pid: Some(pid),
            pid_start: process_start(pid),
            since: Some(now_secs()),
            reason: Some(reason.to_string()),
            target: Some(target.to_string()),
            from: None,
            from_running: false,
            restore_db: None,
        }
    }

    fn labels(&self, project: &str, service: &str) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            (labels::PROJECT.to_string(), project.to_string()),
            (labels::SERVICE.to_string(), service.to_string()),
        ]);
        let fields = [
            (LOCK_OWNER, self.owner.clone()),
            (LOCK_HOST, self.host.clone()),
            (LOCK_BOOT, self.boot.clone()),
            (LOCK_PID, self.pid.map(|p| p.to_string())),
            (LOCK_PID_START, self.pid_start.clone()),
            (LOCK_SINCE, self.since.map(|s| s.to_string())),
            (LOCK_REASON, self.reason.clone()),
            (LOCK_TARGET, self.target.clone()),
            (LOCK_FROM, self.from.map(|g| g.to_string())),
            (LOCK_FROM_RUNNING, Some(self.from_running.to_string())),
            (LOCK_RESTORE_DB, self.restore_db.map(|g| g.to_string())),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                labels.insert(key.to_string(), value);
            }
        }
        labels
    }

    pub fn from_labels(details: &ContainerDetails) -> Holder {
        let get = |k: &str| details.labels.get(k).filter(|v| !v.is_empty()).cloned();
        Holder {
            owner: get(LOCK_OWNER),
            host: get(LOCK_HOST),
            boot: get(LOCK_BOOT),
            pid: get(LOCK_PID).and_then(|p| p.parse().ok()),
            pid_start: get(LOCK_PID_START),
            since: get(LOCK_SINCE).and_then(|s| s.parse().ok()),
            reason: get(LOCK_REASON),
            target: get(LOCK_TARGET),
            from: get(LOCK_FROM).and_then(|g| g.parse().ok()),
            from_running: get(LOCK_FROM_RUNNING).is_some_and(|v| v == "true"),
            restore_db: get(LOCK_RESTORE_DB).and_then(|g| g.parse().ok()),
        }
    }

    /// Whether the holder is proven gone, judged from this host.
    pub fn is_gone(&self) -> bool {
        let here = this_host();
        holder_is_gone(self, &here, this_boot().as_deref(), process_start)
    }
}

/// The rule behind `Holder::is_gone`, with this host's facts passed in.
fn holder_is_gone(
    holder: &Holder,
    here: &str,
    boot: Option<&str>,
    start_of: impl Fn(u32) -> Option<String>,
) -> bool {
    if holder.host.as_deref() != Some(here) {
        return false;
    }
    if let (Some(theirs), Some(ours)) = (holder.boot.as_deref(), boot)
        && theirs != ours
    {
        // The host rebooted since: no process of that boot is left.
        return true;
    }
    let Some(pid) = holder.pid else {
        return false;
    };
    match (start_of(pid), holder.pid_start.as_deref()) {
        (None, _) => true,
        // The pid now belongs to another process.
        (Some(now), Some(then)) => now != then,
        // An old lock without a start time: the pid lives, so it may be it.
        (Some(_), None) => false,
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unknown = "an unknown user";
        write!(f, "{}", self.owner.as_deref().unwrap_or(unknown))?;
        if let Some(host) = &self.host {
            write!(f, " on {host}")?;
        }
        if let Some(pid) = self.pid {
            write!(f, " (pid {pid})")?;
        }
        if let Some(reason) = &self.reason {
            write!(f, ", {reason}")?;
            if let Some(target) = &self.target {
                write!(f, " to {target}")?;
            }
        }
        match self.since {
            Some(since) => write!(f, ", since {}", age(now_secs().saturating_sub(since))),
            None => write!(f, ", since an unknown time"),
        }
    }
}

/// `90s`, `1.5s`: how long a run waited, as the operator gave it.
fn waited_text(waited: Duration) -> String {
    if waited.subsec_millis() == 0 {
        format!("{}s", waited.as_secs())
    } else {
        format!("{:.1}s", waited.as_secs_f64())
    }
}

/// "42s ago", "3m 5s ago", "2h 1m ago".
fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m {}s ago", s / 60, s % 60),
        s => format!("{}h {}m ago", s / 3600, (s % 3600) / 60),
    }
}

/// This machine's name, as locks and history records name it.
pub(super) fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn this_boot() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|b| b.trim().to_string())
}

/// When process `pid` started (clock ticks since boot, field 22 of its
/// /proc stat), or None if there is no such process.
fn process_start(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // fields after its closing one.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(host: &str, boot: &str, pid: u32, start: Option<&str>) -> Holder {
        Holder {
            owner: Some("ops".into()),
            host: Some(host.into()),
            boot: Some(boot.into()),
            pid: Some(pid),
            pid_start: start.map(str::to_string),
            since: Some(now_secs() - 125),
            reason: Some("upgrade".into()),
            target: Some("r/web:2.0.0".into()),
            from: Some(1),
            from_running: true,
            restore_db: None,
        }
    }

    #[test]
    fn a_holder_is_gone_only_when_this_host_proves_it() {
        let alive = |pid: u32| (pid == 7).then(|| "1000".to_string());
        // Same host and boot, the process still there with its start time.
        assert!(!holder_is_gone(
            &holder("h", "b", 7, Some("1000")),
            "h",
            Some("b"),
            alive
        ));
        // The pid was reused by another process.
        assert!(holder_is_gone(
            &holder("h", "b", 7, Some("999")),
            "h",
            Some("b"),
            alive
        ));
        // No such process.
        assert!(holder_is_gone(
            &holder("h", "b", 8, Some("1000")),
            "h",
            Some("b"),
            alive
        ));
        // The host rebooted since the lock was taken.
        assert!(holder_is_gone(
            &holder("h", "old", 7, Some("1000")),
            "h",
            Some("b"),
            alive
        ));
        // Another host: nothing proves it gone.
        assert!(!holder_is_gone(
            &holder("other", "b", 8, None),
            "h",
            Some("b"),
            alive
        ));
        // A lock without a pid cannot be judged.
        let mut unknown = holder("h", "b", 8, None);
        unknown.pid = None;
        assert!(!holder_is_gone(&unknown, "h", Some("b"), alive));
    }

    #[test]
    fn this_process_has_a_start_time_and_labels_round_trip() {
        let mut me = Holder::this_process("upgrade", "r/web:2", "ops");
        me.from = Some(3);
        me.restore_db = Some(2);
        assert!(me.pid_start.is_some());
        assert!(!me.is_gone());
        let details = ContainerDetails::created(
            "web.kolla-lock",
            me.labels("p", "web").into_iter().collect(),
        );
        assert_eq!(Holder::from_labels(&details), me);
    }

    #[tokio::test]
    async fn a_wait_names_each_holder_once_and_gives_up_at_its_limit() {
        let first = holder("h1", "b", 42, Some("1"));
        let second = holder("h2", "b", 43, Some("1"));
        let mut told = Vec::new();
        let mut wait = Wait::up_to(Some(Duration::from_millis(1500)));
        // Short polls, so the test takes a moment; the rule is the same.
        wait.poll = Duration::from_millis(400);
        let started = Instant::now();
        for h in [&first, &first, &second, &second] {
            wait.again("web".into(), h.clone(), |h| told.push(h.host.clone()))
                .await
                .unwrap_or_else(|e| panic!("within the limit: {e}"));
        }
        assert_eq!(told, [Some("h1".into()), Some("h2".into())]);
        assert_eq!(wait.waited_for(), Some(&second));
        // Three polls and what was left of the limit: it is spent.
        assert!(started.elapsed() >= Duration::from_millis(1500));
        let err = wait
            .again("web".into(), second.clone(), |_| panic!("not told again"))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("service web is locked by ops on h2 (pid 43)")
                && text.contains("(still, after waiting 1.5s for it)"),
            "{text}"
        );
        // No limit: refused at once, saying nothing of a wait.
        let mut none = Wait::up_to(None);
        let err = none
            .again("web".into(), first, |_| panic!("no wait, nothing told"))
            .await
            .unwrap_err();
        assert!(matches!(err, LockError::Held { waited: None, .. }));
        assert!(!err.to_string().contains("after waiting"), "{err}");
        assert!(err.to_string().contains("`--lock-wait 10m` waits for it"));
    }

    #[test]
    fn holders_read_as_a_sentence() {
        let text = holder("h1", "b", 42, Some("1")).to_string();
        assert_eq!(
            text,
            "ops on h1 (pid 42), upgrade to r/web:2.0.0, since 2m 5s ago"
        );
        let bare = Holder {
            owner: None,
            host: None,
            boot: None,
            pid: None,
            pid_start: None,
            since: None,
            reason: None,
            target: None,
            from: None,
            from_running: false,
            restore_db: None,
        };
        assert_eq!(bare.to_string(), "an unknown user, since an unknown time");
        assert_eq!(age(3 * 3600 + 120), "3h 2m ago");
    }
}
