//! `kolla history`: an append-only JSON-lines log of every swap (deploy of
//! a changed service, upgrade, rollback) in the state directory. The labels
//! on the node remain the truth about what runs; this log adds when, who,
//! and how it went.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const HISTORY_FILE: &str = "history.jsonl";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Seconds since the Unix epoch.
    pub time: u64,
    pub node: String,
    pub service: String,
    /// `deploy`, `upgrade` or `rollback`.
    pub action: String,
    pub from_generation: u64,
    pub to_generation: u64,
    pub image: String,
    pub digest: String,
    pub user: String,
    /// `ok`, or `swapped back: <why>`.
    pub result: String,
    pub dark_window_secs: Option<f64>,
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

/// The records of `service` (all with None), oldest first. Lines that do
/// not parse are reported, not fatal: the log is evidence, not state.
pub fn read(
    state_dir: &Path,
    service: Option<&str>,
) -> std::io::Result<(Vec<Record>, Vec<String>)> {
    let text = match std::fs::read_to_string(path(state_dir)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut records = Vec::new();
    let mut bad = Vec::new();
    for (index, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str::<Record>(line) {
            Ok(r) if service.is_none_or(|s| s == r.service) => records.push(r),
            Ok(_) => {}
            Err(e) => bad.push(format!("{}:{}: {e}", path(state_dir).display(), index + 1)),
        }
    }
    Ok((records, bad))
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
            image: "i".into(),
            digest: "d".into(),
            user: "u".into(),
            result: "ok".into(),
            dark_window_secs: Some(0.2),
        }
    }

    #[test]
    fn append_then_read_by_service() {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), &record("web", 2)).unwrap();
        append(dir.path(), &record("db", 2)).unwrap();
        append(dir.path(), &record("web", 3)).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(path(dir.path()))
            .unwrap()
            .write_all(b"not json\n")
            .unwrap();
        let (web, bad) = read(dir.path(), Some("web")).unwrap();
        assert_eq!(web, vec![record("web", 2), record("web", 3)]);
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0].ends_with(":4: expected ident at line 1 column 2"),
            "{bad:?}"
        );
        assert_eq!(read(dir.path(), None).unwrap().0.len(), 3);
        assert!(read(&dir.path().join("none"), None).unwrap().0.is_empty());
    }
}
