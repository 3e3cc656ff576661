//! `kolla logs`: the log of a service's live container on every selected
//! node that has one, as the engine keeps it (`docker logs` on the node):
//! its standard output to kolla's, its standard error to kolla's, read
//! from every node at once. With several nodes each line starts with its
//! node's name, as `docker compose logs` starts them with the service's;
//! with one, the bytes pass through untouched.

use std::io::Write;
use std::time::SystemTime;

use futures_util::StreamExt;

use super::{Outcome, live, targets};
use crate::cli::LogsArgs;
use crate::engine::{LogRequest, Printed};
use crate::settings::Settings;

pub async fn logs(settings: &Settings, args: LogsArgs) -> anyhow::Result<Outcome> {
    let inventory = targets::load_nodes(&args.nodes)?;
    let live::Found {
        live: containers,
        mut failures,
    } = live::find(settings, &inventory, &args.nodes, &args.service).await?;
    let request = LogRequest {
        follow: args.follow,
        tail: args.tail,
        // One clock for every node: their windows start together.
        since: args.since.map(|s| s.unix_seconds(SystemTime::now())),
    };
    let prefixes = node_prefixes(containers.iter().map(|l| l.node.name.as_str()));
    let mut lines: Vec<[Prefixer; 2]> = prefixes
        .iter()
        .map(|p| [Prefixer::new(p), Prefixer::new(p)])
        .collect();
    let streams = containers.iter().enumerate().map(|(i, l)| {
        let stream = l.engine.logs(&l.container, request);
        stream.map(move |piece| (i, piece))
    });
    let mut merged = futures_util::stream::select_all(streams);
    while let Some((i, piece)) = merged.next().await {
        match piece {
            Ok(Printed::Out(bytes)) => {
                if !write_to(&mut std::io::stdout(), &lines[i][0].push(&bytes)) {
                    // Whoever read the output is gone (`| head`): done.
                    return Ok(Outcome::of_failures(&failures));
                }
            }
            Ok(Printed::Err(bytes)) => {
                write_to(&mut std::io::stderr(), &lines[i][1].push(&bytes));
            }
            Err(error) => {
                let node = &containers[i].node.name;
                let error = anyhow::Error::from(error)
                    .context(format!("node {node}: service {}", args.service));
                eprintln!("error: {}", super::describe_error(&error));
                failures.push(error);
            }
        }
    }
    for [out, err] in &mut lines {
        write_to(&mut std::io::stdout(), &out.finish());
        write_to(&mut std::io::stderr(), &err.finish());
    }
    Ok(Outcome::of_failures(&failures))
}

/// Write `bytes` whole; false when the reader is gone.
fn write_to(to: &mut impl Write, bytes: &[u8]) -> bool {
    bytes.is_empty() || to.write_all(bytes).and_then(|()| to.flush()).is_ok()
}

/// What starts each line of each node: `name | `, names padded to the
/// longest so the lines line up; nothing when there is one node.
fn node_prefixes<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let names: Vec<&str> = names.collect();
    if names.len() < 2 {
        return vec![String::new(); names.len()];
    }
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    names.iter().map(|n| format!("{n:<width$} | ")).collect()
}

/// A line longer than this is cut into lines of this length rather than
/// held: a container that never prints a newline must not fill memory.
const LONGEST_LINE: usize = 64 * 1024;

/// One stream of one node made into whole lines, each after `prefix`: the
/// engine's pieces need not end at a line's end (a TTY's never do), and
/// two nodes' half lines must not run into each other. With no prefix,
/// pieces pass through as they come.
pub struct Prefixer {
    prefix: Vec<u8>,
    /// The start of a line whose end has not come yet.
    pending: Vec<u8>,
}

impl Prefixer {
    pub fn new(prefix: &str) -> Prefixer {
        Prefixer {
            prefix: prefix.as_bytes().to_vec(),
            pending: Vec::new(),
        }
    }

    /// The lines `piece` ends, each after the prefix.
    pub fn push(&mut self, piece: &[u8]) -> Vec<u8> {
        if self.prefix.is_empty() {
            return piece.to_vec();
        }
        let mut out = Vec::new();
        for byte in piece {
            self.pending.push(*byte);
            if *byte == b'\n' || self.pending.len() >= LONGEST_LINE {
                self.line_into(&mut out);
            }
        }
        out
    }

    /// The last line, if the stream ended inside one, after the prefix and
    /// with its newline.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.pending.is_empty() {
            self.line_into(&mut out);
        }
        out
    }

    fn line_into(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix);
        out.append(&mut self.pending);
        if out.last() != Some(&b'\n') {
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_get_their_node_however_the_pieces_fall() {
        let mut lines = Prefixer::new("n1 | ");
        assert_eq!(lines.push(b"one\ntw"), b"n1 | one\n");
        assert_eq!(lines.push(b"o"), b"");
        assert_eq!(
            lines.push(b"\nthree\n\nfour"),
            b"n1 | two\nn1 | three\nn1 | \n"
        );
        // A TTY's carriage returns stay in the line.
        assert_eq!(lines.push(b"\r\n"), b"n1 | four\r\n");
        assert_eq!(lines.finish(), b"");
        lines.push(b"cut short");
        assert_eq!(lines.finish(), b"n1 | cut short\n");
    }

    #[test]
    fn one_node_passes_its_bytes_through_untouched() {
        let mut lines = Prefixer::new("");
        assert_eq!(lines.push(b"half a li"), b"half a li");
        assert_eq!(lines.push(b"ne\n\xff\n"), b"ne\n\xff\n");
        assert_eq!(lines.finish(), b"");
    }

    #[test]
    fn a_line_without_end_is_cut_not_held() {
        let mut lines = Prefixer::new("n | ");
        let out = lines.push(&vec![b'x'; LONGEST_LINE + 10]);
        assert_eq!(out.len(), "n | ".len() + LONGEST_LINE + 1);
        assert!(out.ends_with(b"x\n"));
        assert_eq!(lines.finish().len(), "n | ".len() + 10 + 1);
    }

    #[test]
    fn node_names_line_up_and_one_node_gets_none() {
        assert_eq!(
            node_prefixes(["n1", "compute10"].into_iter()),
            ["n1        | ", "compute10 | "]
        );
        assert_eq!(node_prefixes(["n1"].into_iter()), [""]);
        assert!(node_prefixes([].into_iter()).is_empty());
    }
}
