//! `kolla history`: an append-only JSON-lines log of every swap (deploy of
//! a changed service, upgrade, rollback) in the state directory. The labels
//! on the node remain the truth about what runs; this log adds when, who,
//! and how it went. This module owns the record's format (fields added
//! later default, so every older line still reads) and reading the log
//! around lines that are not records; how the records are shown is
//! `verbs::history`'s.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const HISTORY_FILE: &str = "history.jsonl";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Seconds since the Unix epoch, as every record since the first has
    /// it (shown as RFC 3339 by `utc`).
    pub time: u64,
    pub node: String,
    pub service: String,
    /// `deploy`, `upgrade` or `rollback`.
    pub action: String,
    pub from_generation: u64,
    pub to_generation: u64,
    /// The image it ran before (none in records older than this field).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from_image: String,
    pub image: String,
    pub digest: String,
    /// The OpenStack release of the image before and after, where the
    /// image says (kolla's tree labels each image `openstack_release`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_release: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_release: Option<String>,
    pub user: String,
    /// The machine kolla ran on (none in records older than this field):
    /// two operators of one name on two machines are two operators.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// `ok`, or `swapped back: <why>`.
    pub result: String,
    pub dark_window_secs: Option<f64>,
    /// How long the change held the service's lock, start to end (none in
    /// records older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
}

impl Record {
    /// Who made the change: `user@host`, or the user alone in a record
    /// from before the host was kept.
    pub fn operator(&self) -> String {
        match self.host.is_empty() {
            true => self.user.clone(),
            false => format!("{}@{}", self.user, self.host),
        }
    }
}

/// `secs` after the Unix epoch as an RFC 3339 UTC time
/// (`2026-12-06T09:27:05Z`). A number RFC 3339 cannot write (past the
/// year 9999: a corrupt record) is shown as the number it is, unit named.
pub fn utc(secs: u64) -> String {
    use time::format_description::well_known::Rfc3339;
    i64::try_from(secs)
        .ok()
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{secs} s after 1970-01-01T00:00:00Z"))
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(HISTORY_FILE)
}

/// Append one record (one line, one write, so concurrent runs on one
/// machine never interleave within a line).
pub fn append(state_dir: &Path, record: &Record) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let mut line = serde_json::to_string(record).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path(state_dir))?;
    file.write_all(line.as_bytes())
}

/// The log as read: its records, oldest first, and the lines that are not
/// one (skipped, never fatal: the log is evidence, not state, and one bad
/// line must not hide the others).
#[derive(Debug, Default)]
pub struct Log {
    pub path: PathBuf,
    pub records: Vec<Record>,
    /// The numbers (from 1) of the lines that are not a record: bytes that
    /// are not UTF-8, text that is not a record's JSON, a line cut short.
    pub unreadable: Vec<usize>,
}

impl Log {
    /// The records of `service`, oldest first.
    pub fn of<'a>(&'a self, service: &'a str) -> impl Iterator<Item = &'a Record> + 'a {
        self.records.iter().filter(move |r| r.service == service)
    }

    /// Every service the log has a record of.
    pub fn services(&self) -> BTreeSet<&str> {
        self.records.iter().map(|r| r.service.as_str()).collect()
    }

    /// What was skipped, in words (None when nothing was).
    pub fn skipped(&self) -> Option<String> {
        const SHOWN: usize = 10;
        let count = self.unreadable.len();
        if count == 0 {
            return None;
        }
        let mut lines: Vec<String> = self
            .unreadable
            .iter()
            .take(SHOWN)
            .map(usize::to_string)
            .collect();
        if count > SHOWN {
            lines.push("...".to_string());
        }
        let plural = if count == 1 { "" } else { "s" };
        Some(format!(
            "history: {count} unreadable line{plural} skipped in {} (line{plural} {})",
            self.path.display(),
            lines.join(", ")
        ))
    }
}

/// The log of `state_dir` (empty when there is none yet). Only a file that
/// cannot be read at all is an error.
pub fn read(state_dir: &Path) -> std::io::Result<Log> {
    let path = path(state_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut log = Log {
        path,
        ..Log::default()
    };
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record = std::str::from_utf8(line)
            .ok()
            .and_then(|text| serde_json::from_str::<Record>(text).ok());
        match record {
            Some(record) => log.records.push(record),
            None => log.unreadable.push(index + 1),
        }
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(service: &str, to: u64) -> Record {
        Record {
            time: 1,
            node: "n".into(),
            service: service.into(),
            action: "upgrade".into(),
            from_generation: to - 1,
            to_generation: to,
            from_image: "i:zed".into(),
            image: "i".into(),
            digest: "d".into(),
            from_release: Some("zed".into()),
            to_release: Some("epoxy".into()),
            user: "u".into(),
            host: "h".into(),
            result: "ok".into(),
            dark_window_secs: Some(0.2),
            duration_secs: Some(3.5),
        }
    }

    #[test]
    fn times_are_rfc_3339_in_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_796_527_625), "2026-12-06T03:27:05Z");
        // Leap day, and the last second RFC 3339 can write.
        assert_eq!(utc(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(utc(253_402_300_799), "9999-12-31T23:59:59Z");
        assert_eq!(
            utc(253_402_300_800),
            "253402300800 s after 1970-01-01T00:00:00Z"
        );
        assert_eq!(
            utc(u64::MAX),
            format!("{} s after 1970-01-01T00:00:00Z", u64::MAX)
        );
    }

    #[test]
    fn the_operator_is_user_at_host_or_the_user_of_an_older_record() {
        let mut r = record("web", 2);
        assert_eq!(r.operator(), "u@h");
        r.host.clear();
        assert_eq!(r.operator(), "u");
    }

    #[test]
    fn append_then_read_by_service() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), &record("web", 2)).unwrap();
        append(dir.path(), &record("db", 2)).unwrap();
        append(dir.path(), &record("web", 3)).unwrap();
        let log = read(dir.path()).unwrap();
        let web: Vec<&Record> = log.of("web").collect();
        assert_eq!(web, vec![&record("web", 2), &record("web", 3)]);
        assert_eq!(log.services(), BTreeSet::from(["db", "web"]));
        assert_eq!(log.skipped(), None);
        assert!(read(&dir.path().join("none")).unwrap().records.is_empty());
    }

    #[test]
    fn a_record_written_before_the_releases_were_kept_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"time":1,"node":"n","service":"web","action":"upgrade","from_generation":1,"to_generation":2,"image":"i","digest":"d","user":"u","result":"ok","dark_window_secs":null}"#;
        std::fs::write(path(dir.path()), format!("{old}\n")).unwrap();
        let log = read(dir.path()).unwrap();
        assert_eq!(log.unreadable, Vec::<usize>::new());
        let record = &log.records[0];
        assert_eq!(
            (
                record.from_image.as_str(),
                &record.from_release,
                &record.to_release
            ),
            ("", &None, &None)
        );
        // Nor host nor duration: the operator is the user alone.
        assert_eq!((record.host.as_str(), record.duration_secs), ("", None));
        assert_eq!(record.operator(), "u");
    }

    #[test]
    fn a_new_record_keeps_its_host_and_duration_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), &record("web", 2)).unwrap();
        let line = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(line.contains(r#""host":"h""#), "{line}");
        assert!(line.contains(r#""duration_secs":3.5"#), "{line}");
        assert_eq!(read(dir.path()).unwrap().records, vec![record("web", 2)]);
    }

    #[test]
    fn bad_bytes_and_malformed_lines_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let line = |r: &Record| serde_json::to_string(r).unwrap().into_bytes();
        let mut text = Vec::new();
        text.extend(line(&record("web", 2)));
        // Line 2: one byte that is not UTF-8, in an otherwise good record.
        let mut bad_byte = line(&record("web", 3));
        bad_byte.insert(10, 0xff);
        text.extend(b"\n".iter().chain(&bad_byte));
        // Line 3 blank, line 4 not a record, line 5 good (CRLF), line 6 cut
        // short with no newline at the end.
        text.extend(b"\n\n{\"time\": \"soon\"}\n");
        text.extend(line(&record("db", 4)));
        text.extend(b"\r\n");
        text.extend(&line(&record("web", 5))[..20]);
        std::fs::write(path(dir.path()), &text).unwrap();
        let log = read(dir.path()).unwrap();
        assert_eq!(log.records, vec![record("web", 2), record("db", 4)]);
        assert_eq!(log.unreadable, vec![2, 4, 6]);
        assert_eq!(
            log.skipped().unwrap(),
            format!(
                "history: 3 unreadable lines skipped in {} (lines 2, 4, 6)",
                path(dir.path()).display()
            )
        );
    }
}
