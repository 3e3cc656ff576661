//! `kolla history`: the swaps of a service from the history log, and what
//! runs now on the selected nodes and the restore points kept there, from
//! the containers' labels, as one typed `Report` (the table and `--output
//! json` are both made from it; times RFC 3339 in UTC). Lines of the log
//! that are not records are skipped and counted on stderr, never fatal. A service that no compose file of the selected
//! nodes, no record of the log and no container names is refused (exit
//! 2), with the services that are known.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use serde::Serialize;

use super::Outcome;
use super::table::table;
use super::targets;
use crate::cli::{HistoryArgs, OutputFormat};
use crate::config::ConfigError;
use crate::deploy::history;
use crate::deploy::labels::ObservedContainer;
use crate::deploy::restore_point::{self, RestorePoint};
use crate::settings::Settings;

pub async fn history(settings: &Settings, args: HistoryArgs) -> anyhow::Result<Outcome> {
    let log = history::read(&settings.state_dir).with_context(|| {
        format!(
            "{}: cannot read",
            history::path(&settings.state_dir).display()
        )
    })?;
    if let Some(skipped) = log.skipped() {
        eprintln!("warning: {skipped}");
    }
    // What runs now, from the labels of the selected nodes.
    let inventory = targets::load_nodes(&args.nodes)?;
    let nodes = inventory.select(&args.nodes.node)?;
    let asked = &targets::ask_engines(settings, nodes.iter().copied()).await;
    let found = super::each_node(nodes.iter(), settings.forks, |node| async move {
        let engine = asked.connect(settings, node).await?;
        let observed = targets::observe(settings, &engine, &node.name).await?;
        let points = restore_point::list(&engine, &settings.globals.project)
            .await
            .map_err(|e| anyhow::anyhow!("node {}: {e}", node.name))?;
        anyhow::Ok((node.name.clone(), observed, points))
    })
    .await;
    // The log is local and always shown; a node that does not answer is
    // named, and the others' containers are still shown.
    let mut now: BTreeMap<String, Vec<ObservedContainer>> = BTreeMap::new();
    let mut kept_points: BTreeMap<String, Vec<RestorePoint>> = BTreeMap::new();
    let mut on_nodes: BTreeSet<String> = BTreeSet::new();
    let mut failures = Vec::new();
    for result in found {
        match result {
            Ok((node, observed, points)) => {
                on_nodes.extend(observed.iter().map(|c| c.service.clone()));
                let service = observed
                    .into_iter()
                    .filter(|c| c.service == args.service)
                    .collect();
                now.insert(node.clone(), service);
                kept_points.insert(
                    node,
                    points
                        .into_iter()
                        .filter(|p| p.service == args.service)
                        .collect(),
                );
            }
            Err(error) => {
                eprintln!("error: {}", super::describe_error(&error));
                failures.push(error);
            }
        }
    }
    // Every node answered and none of them, nor the log, knows the
    // service: most likely a typing error, said as one.
    if failures.is_empty()
        && !on_nodes.contains(&args.service)
        && log.of(&args.service).next().is_none()
    {
        let mut known = super::live::compose_services(settings, &nodes, &args.nodes);
        if !known.contains(&args.service) {
            known.extend(log.services().into_iter().map(str::to_string));
            known.extend(on_nodes);
            return Err(unknown_service(&args, &known).into());
        }
    }
    print_history(&args, &log, &now, &kept_points)?;
    Ok(Outcome::of_failures(&failures))
}

/// A service that no compose file, log record or container names.
fn unknown_service(args: &HistoryArgs, known: &BTreeSet<String>) -> ConfigError {
    const SHOWN: usize = 40;
    let mut names: Vec<&str> = known.iter().take(SHOWN).map(String::as_str).collect();
    let more = known.len().saturating_sub(SHOWN);
    let more = format!("and {more} more");
    if known.len() > SHOWN {
        names.push(&more);
    }
    ConfigError::Invalid {
        path: args.nodes.compose_dir.clone(),
        message: format!(
            "service {:?} is in no compose file of the selected nodes, no record of the history log and no container of those nodes; the services known: {}",
            args.service,
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ),
    }
}

/// What `kolla history` shows, typed: `--output json` prints it as it is
/// and the table is made from it, so the two never disagree on a field.
#[derive(Debug, Serialize)]
struct Report<'a> {
    service: &'a str,
    /// The log's records of the service, oldest first.
    history: Vec<Swap<'a>>,
    /// What runs now, per node.
    containers: BTreeMap<&'a str, Vec<Container<'a>>>,
    restore_points: BTreeMap<&'a str, Vec<Point<'a>>>,
    /// The log's lines (from 1) that are not records, skipped.
    unreadable_lines: &'a [usize],
}

/// One record of the log, as the operator reads it.
#[derive(Debug, Serialize)]
struct Swap<'a> {
    /// RFC 3339, UTC.
    time: String,
    node: &'a str,
    action: &'a str,
    /// `user@host` (the user alone in records from before the host was
    /// kept).
    operator: String,
    from_generation: u64,
    to_generation: u64,
    /// None in records from before the image left behind was kept.
    from_image: Option<&'a str>,
    image: &'a str,
    from_tag: Option<String>,
    to_tag: Option<String>,
    digest: &'a str,
    from_release: Option<&'a str>,
    to_release: Option<&'a str>,
    /// `ok`, `failed: why`, `swapped back: why`, `needs recovery: why`.
    result: &'a str,
    /// How long the change held the service's lock.
    duration_secs: Option<f64>,
    /// How long no container of the service served.
    dark_window_secs: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Container<'a> {
    container: &'a str,
    generation: u64,
    image: &'a str,
    digest: &'a str,
    state: &'a str,
}

#[derive(Debug, Serialize)]
struct Point<'a> {
    container: &'a str,
    generation: u64,
    bytes: u64,
    /// RFC 3339, UTC.
    taken: String,
    database_service: &'a str,
}

impl<'a> Swap<'a> {
    fn of(record: &'a history::Record) -> Swap<'a> {
        let from_image = Some(record.from_image.as_str()).filter(|i| !i.is_empty());
        Swap {
            time: history::utc(record.time),
            node: &record.node,
            action: &record.action,
            operator: record.operator(),
            from_generation: record.from_generation,
            to_generation: record.to_generation,
            from_image,
            image: &record.image,
            from_tag: from_image.and_then(tag_of),
            to_tag: tag_of(&record.image),
            digest: &record.digest,
            from_release: record.from_release.as_deref(),
            to_release: record.to_release.as_deref(),
            result: &record.result,
            duration_secs: record.duration_secs,
            dark_window_secs: record.dark_window_secs,
        }
    }
}

/// The tag of an image reference (none for a digest alone, or a
/// reference that does not parse).
fn tag_of(image: &str) -> Option<String> {
    crate::config::reference::parse(image).ok()?.tag
}

/// `from->to`, one alone when they are the same or the other is not
/// known, `-` when neither is: `zed->epoxy`, `1.0.0->2.0.0`.
fn change(from: Option<&str>, to: Option<&str>) -> String {
    match (from, to) {
        (Some(from), Some(to)) if from == to => to.to_string(),
        (Some(from), Some(to)) => format!("{from}->{to}"),
        (Some(one), None) | (None, Some(one)) => one.to_string(),
        (None, None) => "-".to_string(),
    }
}

/// Seconds as the table shows them, `-` when not known.
fn seconds(secs: Option<f64>, decimals: usize) -> String {
    secs.map_or_else(|| "-".to_string(), |s| format!("{s:.decimals$}s"))
}

/// The history's table: a row per record.
fn swap_table(swaps: &[Swap]) -> Vec<String> {
    const HEADER: [&str; 11] = [
        "TIME (UTC)",
        "NODE",
        "ACTION",
        "GEN",
        "RESULT",
        "TOOK",
        "DARK",
        "OPERATOR",
        "RELEASE",
        "TAG",
        "IMAGE",
    ];
    let rows: Vec<Vec<String>> = swaps
        .iter()
        .map(|s| {
            vec![
                s.time.clone(),
                s.node.to_string(),
                s.action.to_string(),
                format!("{}->{}", s.from_generation, s.to_generation),
                // The first words (`swapped back`); the why is in the JSON.
                s.result.split(':').next().unwrap_or_default().to_string(),
                seconds(s.duration_secs, 1),
                seconds(s.dark_window_secs, 3),
                s.operator.clone(),
                change(s.from_release, s.to_release),
                change(s.from_tag.as_deref(), s.to_tag.as_deref()),
                s.image.to_string(),
            ]
        })
        .collect();
    table(&HEADER, &rows)
}

/// The log's records of the service, then what runs now on each node.
fn print_history(
    args: &HistoryArgs,
    log: &history::Log,
    now: &BTreeMap<String, Vec<ObservedContainer>>,
    points: &BTreeMap<String, Vec<RestorePoint>>,
) -> anyhow::Result<()> {
    let report = Report {
        service: &args.service,
        history: log.of(&args.service).map(Swap::of).collect(),
        containers: now
            .iter()
            .map(|(node, cs)| (node.as_str(), cs.iter().map(container).collect()))
            .collect(),
        restore_points: points
            .iter()
            .map(|(node, kept)| (node.as_str(), kept.iter().map(point).collect()))
            .collect(),
        unreadable_lines: &log.unreadable,
    };
    match args.output {
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Human => print_human(&report),
    }
    Ok(())
}

fn container(c: &ObservedContainer) -> Container<'_> {
    Container {
        container: &c.name,
        generation: c.generation,
        image: &c.image,
        digest: &c.digest,
        state: c.state.as_str(),
    }
}

fn point(p: &RestorePoint) -> Point<'_> {
    Point {
        container: &p.name,
        generation: p.generation,
        bytes: p.bytes,
        taken: history::utc(p.taken),
        database_service: &p.db_service,
    }
}

/// The table, then a line per container now and per restore point.
fn print_human(report: &Report) {
    for line in swap_table(&report.history) {
        outln!("{line}");
    }
    for (node, containers) in &report.containers {
        for c in containers {
            outln!(
                "now: {node} {} generation {} {} ({})",
                c.container,
                c.generation,
                c.image,
                c.state
            );
        }
    }
    for (node, kept) in &report.restore_points {
        for p in kept {
            outln!(
                "restore point: {node} {} generation {} ({} bytes, taken {}, loads into {})",
                p.container,
                p.generation,
                p.bytes,
                p.taken,
                p.database_service
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(from_image: &str, host: &str) -> history::Record {
        history::Record {
            time: 1_796_527_625,
            node: "aio".into(),
            service: "glance-api".into(),
            action: "upgrade".into(),
            from_generation: 1,
            to_generation: 2,
            from_image: from_image.into(),
            image: "kolla/glance-api:epoxy".into(),
            digest: "sha256:0".into(),
            from_release: Some("zed".into()),
            to_release: Some("epoxy".into()),
            user: "ops".into(),
            host: host.into(),
            result: "swapped back: the health gate failed".into(),
            dark_window_secs: Some(0.25),
            duration_secs: Some(12.34),
        }
    }

    #[test]
    fn a_record_reads_as_times_operator_and_changes() {
        let new = record("kolla/glance-api:zed", "aio-1");
        let swap = Swap::of(&new);
        assert_eq!(swap.time, "2026-12-06T03:27:05Z");
        assert_eq!(swap.operator, "ops@aio-1");
        assert_eq!(
            (swap.from_tag.as_deref(), swap.to_tag.as_deref()),
            (Some("zed"), Some("epoxy"))
        );
        let json = serde_json::to_value(&swap).unwrap();
        assert_eq!(json["time"], "2026-12-06T03:27:05Z");
        assert_eq!(json["from_release"], "zed");
        assert_eq!(json["duration_secs"], 12.34);
        // A record from before the image left behind and the host were
        // kept: no from_image, the user alone.
        let old = record("", "");
        let swap = Swap::of(&old);
        assert_eq!((swap.from_image, swap.from_tag), (None, None));
        assert_eq!(swap.operator, "ops");
    }

    #[test]
    fn the_table_sizes_its_columns_to_their_content() {
        let records = [record("kolla/glance-api:zed", "aio-1"), record("", "")];
        let swaps: Vec<Swap> = records.iter().map(Swap::of).collect();
        let lines = swap_table(&swaps);
        assert_eq!(
            lines,
            [
                "TIME (UTC)            NODE  ACTION   GEN   RESULT        TOOK   DARK    OPERATOR   RELEASE     TAG         IMAGE",
                "2026-12-06T03:27:05Z  aio   upgrade  1->2  swapped back  12.3s  0.250s  ops@aio-1  zed->epoxy  zed->epoxy  kolla/glance-api:epoxy",
                "2026-12-06T03:27:05Z  aio   upgrade  1->2  swapped back  12.3s  0.250s  ops        zed->epoxy  epoxy       kolla/glance-api:epoxy",
            ]
        );
        assert!(lines.iter().all(|l| !l.ends_with(' ')));
    }

    #[test]
    fn changes_name_both_ends_when_they_differ() {
        assert_eq!(change(Some("zed"), Some("epoxy")), "zed->epoxy");
        assert_eq!(change(Some("epoxy"), Some("epoxy")), "epoxy");
        assert_eq!(change(None, Some("epoxy")), "epoxy");
        assert_eq!(change(None, None), "-");
        let pinned = format!("kolla/web@sha256:{}", "a".repeat(64));
        assert_eq!(tag_of(&pinned), None);
        assert_eq!(tag_of("registry:5000/kolla/web:1.0"), Some("1.0".into()));
        assert_eq!(seconds(None, 1), "-");
    }
}
