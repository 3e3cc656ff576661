//! Deadlines on engine requests. bollard times only a response's headers
//! (and the same for every request), never a stream's body, so an engine
//! that accepts a connection and then says nothing, or answers `/version`
//! and hangs on the next call, would hold a node forever. Every request
//! kolla makes goes through one of these, with a deadline that suits it:
//!
//! - an answer the engine has at hand (version, list, inspect): a few
//!   seconds, `--engine-timeout`;
//! - work the engine does before it answers (create, start, remove,
//!   rename, info): a minute; a stop, its grace period on top; removing
//!   data (a volume, a container's own volumes), ten;
//! - a stream (pull, push, image copy, logs): how long it may go without
//!   a piece, however long it runs in all; a build or a command run in a
//!   container, whose only progress is what it prints, longer.
//!
//! A request past its deadline is `EngineError::Unresponsive`, naming the
//! engine and the request.

use std::future::Future;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use futures_util::{Stream, StreamExt};

use super::{Engine, EngineError};

/// How long an engine may take over an answer it has at hand (version,
/// list, inspect), unless the operator says otherwise.
pub const DEFAULT_ANSWER: Duration = Duration::from_secs(10);
/// Work before the answer: create, start, remove, rename, update, info.
const WORK: Duration = Duration::from_secs(60);
/// A stream's longest quiet: a pull between two progress messages, an
/// image copy between two chunks, a command's output.
pub(super) const STREAM_QUIET: Duration = Duration::from_secs(300);
/// The longest quiet of a build or of a command run in a container (a
/// database dump, its restore): one step may work a long while without
/// printing.
pub(super) const COMMAND_QUIET: Duration = Duration::from_secs(1800);
/// Removing data: a volume's files, however many, are deleted before the
/// engine answers.
pub(super) const DATA_REMOVAL: Duration = Duration::from_secs(600);
/// A stop without a grace period of its own gets the engine's default.
const ENGINE_STOP_GRACE: u64 = 10;

/// The deadlines one engine connection's requests get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// Answers the engine has at hand: ping, version, list, inspect.
    pub answer: Duration,
}

impl Default for Deadlines {
    fn default() -> Deadlines {
        Deadlines {
            answer: DEFAULT_ANSWER,
        }
    }
}

impl Deadlines {
    /// Work before the answer; never shorter than an answer.
    pub fn work(&self) -> Duration {
        WORK.max(self.answer)
    }

    /// A stop that may take `grace` seconds before the engine kills:
    /// the grace, then work.
    pub fn stop(&self, grace: Option<i64>) -> Duration {
        let grace = grace.map_or(ENGINE_STOP_GRACE, |g| u64::try_from(g).unwrap_or(0));
        Duration::from_secs(grace).saturating_add(self.work())
    }
}

/// `5s`, `1.5s`: how a deadline reads in a message.
pub fn seconds(limit: Duration) -> String {
    if limit.subsec_millis() == 0 {
        format!("{}s", limit.as_secs())
    } else {
        format!("{:.1}s", limit.as_secs_f64())
    }
}

impl Engine {
    /// The error for a request the engine did not answer within `limit`.
    pub(super) fn unresponsive(&self, what: &str, limit: Duration) -> EngineError {
        EngineError::Unresponsive {
            endpoint: self.endpoint.clone(),
            what: what.to_string(),
            after: seconds(limit),
        }
    }

    /// `request`, abandoned after `limit`: the outer error is a missed
    /// deadline, the inner one the engine's own answer (for callers that
    /// read some answers as success, as a stop's 304).
    pub(super) async fn within<T>(
        &self,
        what: &str,
        limit: Duration,
        request: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<Result<T, BollardError>, EngineError> {
        tokio::time::timeout(limit, request)
            .await
            .map_err(|_| self.unresponsive(what, limit))
    }

    /// An answer the engine has at hand, mapped.
    pub(super) async fn answer<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<T, EngineError> {
        self.within(what, self.deadlines.answer, request)
            .await?
            .map_err(|e| EngineError::from_api(what, e))
    }

    /// An answer after work, mapped.
    pub(super) async fn work<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, BollardError>>,
    ) -> Result<T, EngineError> {
        self.within(what, self.deadlines.work(), request)
            .await?
            .map_err(|e| EngineError::from_api(what, e))
    }

    /// The next piece of a stream, or unresponsive after `quiet` without
    /// one.
    pub(super) async fn next_within<S>(
        &self,
        what: &str,
        quiet: Duration,
        stream: &mut S,
    ) -> Result<Option<S::Item>, EngineError>
    where
        S: Stream + Unpin,
    {
        tokio::time::timeout(quiet, stream.next())
            .await
            .map_err(|_| self.unresponsive(what, quiet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_waits_its_grace_then_the_work_deadline() {
        let deadlines = Deadlines::default();
        assert_eq!(deadlines.stop(Some(30)), Duration::from_secs(90));
        assert_eq!(deadlines.stop(None), Duration::from_secs(70));
        assert_eq!(deadlines.stop(Some(-5)), Duration::from_secs(60));
        // A grace no engine would wait is no overflow.
        assert!(deadlines.stop(Some(i64::MAX)) > Duration::from_secs(1 << 40));
    }

    #[test]
    fn work_is_never_shorter_than_an_answer() {
        let slow = Deadlines {
            answer: Duration::from_secs(90),
        };
        assert_eq!(slow.work(), Duration::from_secs(90));
        assert_eq!(Deadlines::default().work(), WORK);
    }

    #[test]
    fn deadlines_read_in_seconds() {
        assert_eq!(seconds(Duration::from_secs(5)), "5s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
    }
}
