//! Fuzzing what operators write: compose files, interpolation, durations,
//! inventories, passwords.yml, globals.yml, image references and config
//! templates. Each target is seeded by its corpus (tests/fixtures/fuzz/
//! TARGET/: real files and every hostile case found so far) and mutated by
//! proptest: tokens the formats give meaning to inserted, text deleted,
//! lines duplicated, dropped, swapped and re-indented. The properties:
//!
//! - nothing panics or hangs (a case over `HANG` aborts the run, input
//!   printed);
//! - an error never holds a value of passwords.yml (nor a run of
//!   `SECRET_RUN` of its characters, in any case or reversed);
//! - an error names the file it is about;
//! - no parser jargon reaches the operator;
//! - what is accepted holds names the engine accepts (containers, volumes,
//!   images, signals, health durations) and durations within the bound.
//!
//! The fast suite replays the corpus (`every_corpus_case_keeps_the_properties`);
//! `tools/test` runs `fuzz_each_target` (ignored otherwise) for
//! `KOLLA_FUZZ_SECONDS` per target (default 8, as tools/test runs it) and prints the executions.
//! `KOLLA_FUZZ_SEED=N` replays a run; a failure prints its input, to add to
//! the corpus once fixed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kolla::config::compose::{self, Variables};
use kolla::config::{Globals, Inventory, duration, interpolate, names, passwords, reference};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// The passwords the corpus and the mutations use. None shares a run of
/// `SECRET_RUN` characters with a token, a key or a message.
const SECRETS: [&str; 3] = [
    "Sekr1tA-fuzz-9qZ",
    "Sekr1tB-fuzz-7wX",
    r#"Qu"o\te$'d&<x>-3kV"#,
];
/// The shortest run of a secret's characters an error may not show (what
/// `kolla::templates::redact` masks).
const SECRET_RUN: usize = 6;
/// A single case taking this long is a hang.
const HANG: Duration = Duration::from_secs(10);
/// Words of the YAML parser's and serde's types, which mean nothing to an
/// operator.
const JARGON: [&str; 8] = [
    "untagged enum",
    "DuplicateKeyPolicy",
    "Depth {",
    "Budget",
    "budget breached",
    "struct ",
    "serde",
    "Spanned",
];

/// A property broken: what, on which input.
type Verdict = Result<(), String>;

struct Target {
    name: &'static str,
    check: fn(&str) -> Verdict,
    /// Edits only at line boundaries: the values inside lines stay whole,
    /// so a secret is never cut into a key.
    line_level: bool,
}

const TARGETS: [Target; 8] = [
    Target {
        name: "compose",
        check: check_compose,
        line_level: false,
    },
    Target {
        name: "interpolate",
        check: check_interpolate,
        line_level: false,
    },
    Target {
        name: "duration",
        check: check_duration,
        line_level: false,
    },
    Target {
        name: "inventory",
        check: check_inventory,
        line_level: false,
    },
    Target {
        name: "passwords",
        check: check_passwords,
        line_level: true,
    },
    Target {
        name: "globals",
        check: check_globals,
        line_level: false,
    },
    Target {
        name: "reference",
        check: check_reference,
        line_level: false,
    },
    Target {
        name: "template",
        check: check_template,
        line_level: false,
    },
];

/// Pieces the formats give meaning to, and values that broke kolla before.
const TOKENS: &[&str] = &[
    ": ",
    "- ",
    "-",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\"",
    "'",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!str ",
    "!!binary ",
    "|\n",
    ">-\n",
    "# ",
    "\n",
    "  ",
    "\t",
    "? ",
    "@",
    "`",
    "%",
    "---\n",
    "...\n",
    "~",
    "null",
    "true",
    "no",
    "0x1F",
    "0o17",
    ".inf",
    ".nan",
    "-.inf",
    "1e300",
    "NaN",
    "inf",
    "-1",
    "0",
    "99999999999999999999",
    "99999999999999999999h",
    "5000000000000000h",
    "1us",
    "1ns",
    "0.5",
    "ms",
    "h",
    "${",
    "$",
    "$$",
    ":-",
    ":?",
    "?err}",
    "${A:-${B}}",
    "${A",
    "kolla.",
    "kolla.data",
    "..",
    "../",
    "/",
    "/etc/passwd",
    ":",
    "@sha256:",
    "ü",
    "\u{0}",
    "\u{202e}",
    "\u{7f}",
    "\r",
    "SIGBOGUS",
    "SIGKILL",
    "service:",
    "host",
    "A",
    "Z",
    "_",
    ".",
    "{{",
    "}}",
    "{%",
    "%}",
    "|",
    " int",
    " float",
    " upper",
    " reverse",
    " length",
    " first",
    " json_encode",
    " slice(start=2)",
    " split(pat=\"-\")",
    " abs",
    " as_str",
    " urlencode",
    " escape",
    " sql",
    " ini",
    " shell",
    " userinfo",
    " plain",
    "passwords.",
    "passwords[",
    "web_password",
    "(",
    ")",
    "+",
    "~",
    " if ",
    " else ",
    " endif ",
    " for x in ",
    " endfor ",
    "&x",
    "\\",
    "\\u0000",
    "\\x41",
];

#[derive(Debug, Clone)]
enum Edit {
    Insert { at: u16, token: u16 },
    Delete { at: u16, len: u8 },
    DuplicateLine { line: u16 },
    DropLine { line: u16 },
    SwapLines { a: u16, b: u16 },
    Indent { line: u16, by: u8 },
    Dedent { line: u16 },
    SpliceSeed { seed: u16, line: u16 },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<u16>(), any::<u16>()).prop_map(|(at, token)| Edit::Insert { at, token }),
        2 => (any::<u16>(), 1u8..12).prop_map(|(at, len)| Edit::Delete { at, len }),
        1 => any::<u16>().prop_map(|line| Edit::DuplicateLine { line }),
        1 => any::<u16>().prop_map(|line| Edit::DropLine { line }),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(a, b)| Edit::SwapLines { a, b }),
        1 => (any::<u16>(), 1u8..6).prop_map(|(line, by)| Edit::Indent { line, by }),
        1 => any::<u16>().prop_map(|line| Edit::Dedent { line }),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(seed, line)| Edit::SpliceSeed { seed, line }),
    ]
}

/// `seed` with `edits` applied, in order. Positions wrap around what is
/// there; in `line_level` mode an insertion goes to the start or end of a
/// line and nothing is deleted inside one.
fn mutate(seed: &str, seeds: &[String], edits: &[Edit], line_level: bool) -> String {
    let mut lines: Vec<String> = seed.split('\n').map(str::to_string).collect();
    for edit in edits {
        let count = lines.len().max(1);
        let pick = |n: u16| usize::from(n) % count;
        match edit {
            Edit::Insert { at, token } => {
                let token = TOKENS[usize::from(*token) % TOKENS.len()];
                if line_level {
                    let line = &mut lines[pick(*at)];
                    if at % 2 == 0 {
                        line.insert_str(0, token);
                    } else {
                        line.push_str(token);
                    }
                } else {
                    let mut text = lines.join("\n");
                    let at = char_boundary(&text, usize::from(*at));
                    text.insert_str(at, token);
                    lines = text.split('\n').map(str::to_string).collect();
                }
            }
            Edit::Delete { at, len } if !line_level => {
                let mut text = lines.join("\n");
                let start = char_boundary(&text, usize::from(*at));
                let mut end = (start + usize::from(*len)).min(text.len());
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.replace_range(start..end, "");
                lines = text.split('\n').map(str::to_string).collect();
            }
            Edit::Delete { .. } => {}
            Edit::DuplicateLine { line } => {
                let at = pick(*line);
                let copy = lines[at].clone();
                lines.insert(at, copy);
            }
            Edit::DropLine { line } if lines.len() > 1 => {
                lines.remove(pick(*line));
            }
            Edit::DropLine { .. } => {}
            Edit::SwapLines { a, b } => {
                let (a, b) = (pick(*a), pick(*b));
                lines.swap(a, b);
            }
            Edit::Indent { line, by } => {
                lines[pick(*line)].insert_str(0, &" ".repeat(usize::from(*by)));
            }
            Edit::Dedent { line } => {
                let at = pick(*line);
                lines[at] = lines[at].trim_start().to_string();
            }
            Edit::SpliceSeed { seed, line } => {
                let other = &seeds[usize::from(*seed) % seeds.len()];
                let other: Vec<&str> = other.split('\n').collect();
                let from = usize::from(*line) % other.len();
                lines.insert(pick(*line), other[from].to_string());
            }
        }
    }
    lines.join("\n")
}

/// The char boundary at or before `at`, wrapped into `text`.
fn char_boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn fixtures(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz")
        .join(target)
}

/// A target's corpus: (file name, text), sorted by name.
fn corpus(target: &str) -> Vec<(String, String)> {
    let dir = fixtures(target);
    let mut cases: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a corpus entry").path();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                text,
            )
        })
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 3,
        "{}: the corpus needs seeds",
        dir.display()
    );
    cases
}

/// Every property that holds of any error kolla prints.
fn check_error(error: &str, path: Option<&str>) -> Verdict {
    if let Some(path) = path
        && !error.contains(path)
    {
        return Err(format!("the error does not name {path}: {error}"));
    }
    if let Some(word) = JARGON.iter().find(|w| error.contains(**w)) {
        return Err(format!("parser jargon {word:?} in: {error}"));
    }
    check_no_secret(error)
}

/// No run of `SECRET_RUN` characters of a secret, in any letter case or
/// reversed, as it is or with its escapes undone.
fn check_no_secret(text: &str) -> Verdict {
    let folded = text.to_lowercase();
    let unescaped = folded.replace("\\\\", "\\").replace("\\\"", "\"");
    for secret in SECRETS {
        let secret = secret.to_lowercase();
        let chars: Vec<char> = secret.chars().collect();
        let reversed: Vec<char> = chars.iter().rev().copied().collect();
        for form in [&chars, &reversed] {
            for run in form.windows(SECRET_RUN) {
                let run: String = run.iter().collect();
                if folded.contains(&run) || unescaped.contains(&run) {
                    return Err(format!("a secret's characters {run:?} in: {text}"));
                }
            }
        }
    }
    Ok(())
}

fn compose_variables() -> Variables {
    Variables {
        environment: BTreeMap::from([
            ("TAG".to_string(), "zed".to_string()),
            ("A".to_string(), "a".to_string()),
        ]),
        globals: BTreeMap::from([
            ("TAG".to_string(), "zed".to_string()),
            ("IMAGE_PREFIX".to_string(), "kolla/".to_string()),
            ("REGISTRY".to_string(), "127.0.0.1:4000".to_string()),
            ("CONTAINER_PREFIX".to_string(), "fz-".to_string()),
        ]),
    }
}

/// Read from a folder of its own, so that `env_file` and config folders
/// resolve beside it; the folder holds an `app.env`.
fn check_compose(text: &str) -> Verdict {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("app.env"), "FROM_FILE=1\n").map_err(|e| e.to_string())?;
    std::fs::create_dir(dir.path().join("conf")).map_err(|e| e.to_string())?;
    let path = dir.path().join("controller.yml");
    match compose::parse(text, &path, &compose_variables(), &BTreeMap::new()) {
        Err(e) => check_error(&e.to_string(), Some(&path.display().to_string())),
        Ok(file) => {
            for service in &file.services {
                names::check_service_names("fz-", &service.name)
                    .map_err(|e| format!("accepted service {:?}: {e}", service.name))?;
                reference::parse(&service.image)
                    .map_err(|e| format!("accepted image {:?}: {e}", service.image))?;
                if let Some(signal) = &service.stop_signal {
                    names::check_signal(signal).map_err(|e| format!("accepted signal: {e}"))?;
                }
                if let Some(key) = service.labels.keys().find(|k| k.starts_with("kolla.")) {
                    return Err(format!("accepted a label of kolla's own: {key}"));
                }
                if let Some(health) = &service.healthcheck {
                    for d in [health.interval, health.timeout, health.start_period]
                        .into_iter()
                        .flatten()
                    {
                        names::check_health_duration(d)
                            .map_err(|e| format!("accepted health duration: {e}"))?;
                    }
                }
                if let Some(grace) = service.stop_grace_period {
                    within_bound(grace)?;
                }
            }
            // The engine's name: `name:` as it is, else under the prefix.
            for volume in file.volumes.values() {
                let engine_name = match volume.literal {
                    true => volume.name.clone(),
                    false => format!("fz-{}", volume.name),
                };
                names::check_volume_name(&engine_name)
                    .map_err(|e| format!("accepted volume {engine_name:?}: {e}"))?;
            }
            Ok(())
        }
    }
}

fn within_bound(value: Duration) -> Verdict {
    if value > Duration::from_secs(i32::MAX as u64) {
        return Err(format!("accepted a duration over the bound: {value:?}"));
    }
    Ok(())
}

fn check_interpolate(text: &str) -> Verdict {
    let lookup = |name: &str| match name {
        "A" => Some("a".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    // Compose variables come from the environment, `.env` and globals.yml,
    // never passwords.yml; an error may quote the operator's own line and
    // the message a `${VAR:?message}` asks for.
    match interpolate::interpolate(text, &lookup) {
        Ok(_) => Ok(()),
        Err(e) => check_error(&e.to_string(), None),
    }
}

fn check_duration(text: &str) -> Verdict {
    for parsed in [
        duration::parse_duration(text),
        duration::parse_seconds(text),
    ] {
        match parsed {
            Ok(value) => within_bound(value)?,
            Err(e) => check_error(&e.to_string(), None)?,
        }
    }
    Ok(())
}

fn check_inventory(text: &str) -> Verdict {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("inventory.yml");
    match Inventory::parse(text, &path) {
        Err(e) => check_error(&e.to_string(), Some(&path.display().to_string())),
        Ok(inventory) => {
            for node in &inventory.nodes {
                if node.name.is_empty() || node.name.chars().any(char::is_control) {
                    return Err(format!("accepted node name {:?}", node.name));
                }
            }
            Ok(())
        }
    }
}

fn check_passwords(text: &str) -> Verdict {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("passwords.yml");
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    match passwords::load(&path) {
        Err(e) => check_error(&e.to_string(), Some(&path.display().to_string())),
        Ok(_) => Ok(()),
    }
}

fn check_globals(text: &str) -> Verdict {
    let path = Path::new("/config/globals.yml");
    match Globals::parse(text, path) {
        Err(e) => check_error(&e.to_string(), Some("/config/globals.yml")),
        Ok(globals) => {
            for image in ["keystone", "nova-compute"] {
                let reference = globals.image_ref(image);
                reference::parse(&reference)
                    .map_err(|e| format!("accepted globals make image {reference:?}: {e}"))?;
            }
            Ok(())
        }
    }
}

fn check_reference(text: &str) -> Verdict {
    let text = text.trim_end_matches('\n');
    match reference::parse(text) {
        Err(e) => check_error(&e.to_string(), None),
        Ok(parts) => {
            let mut again = String::new();
            if let Some(domain) = &parts.domain {
                again.push_str(domain);
                again.push('/');
            }
            again.push_str(&parts.path);
            if let Some(tag) = &parts.tag {
                again.push(':');
                again.push_str(tag);
            }
            if let Some(digest) = &parts.digest {
                again.push('@');
                again.push_str(digest);
            }
            if again != text {
                return Err(format!("{text:?} was read as {again:?}"));
            }
            Ok(())
        }
    }
}

/// A config template rendered with the passwords, as a deploy renders
/// one; its errors as kolla prints them.
fn check_template(text: &str) -> Verdict {
    let mut tera = kolla::templates::tera();
    let passwords: BTreeMap<&str, &str> = BTreeMap::from([
        ("web_password", SECRETS[0]),
        ("db_password", SECRETS[1]),
        ("quoted_password", SECRETS[2]),
    ]);
    let mut context = tera::Context::new();
    context.insert("passwords", &passwords);
    context.insert("node_name", "node-1");
    context.insert("kolla_job", &false);
    let secrets = SECRETS;
    let rendered = tera
        .add_raw_template("t.conf", text)
        .and_then(|()| tera.render("t.conf", &context));
    match rendered {
        Ok(_) => Ok(()),
        Err(e) => check_no_secret(&kolla::templates::error_text(&e, secrets)),
    }
}

/// The target's check, bounded: a case over `HANG` aborts the process with
/// the input (a test harness cannot stop a thread that never returns).
fn guarded(target: &Target, input: &str, current: &Mutex<Option<(Instant, String)>>) -> Verdict {
    if let Ok(mut slot) = current.lock() {
        *slot = Some((Instant::now(), input.to_string()));
    }
    let verdict = (target.check)(input);
    if let Ok(mut slot) = current.lock() {
        *slot = None;
    }
    verdict
}

fn watchdog(name: &'static str) -> Arc<Mutex<Option<(Instant, String)>>> {
    let current: Arc<Mutex<Option<(Instant, String)>>> = Arc::new(Mutex::new(None));
    let watched = Arc::clone(&current);
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let Ok(slot) = watched.lock() else { return };
            if let Some((since, input)) = slot.as_ref()
                && since.elapsed() > HANG
            {
                eprintln!("fuzz {name}: a case ran over {HANG:?} (a hang); its input:\n{input:?}");
                std::process::abort();
            }
        }
    });
    current
}

#[test]
fn every_corpus_case_keeps_the_properties() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for target in &TARGETS {
        for (name, text) in corpus(target.name) {
            cases += 1;
            if let Err(why) = (target.check)(&text) {
                failures.push(format!("{}/{name}: {why}", target.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} corpus cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_checks_catch_what_they_are_for() {
    // Each property, broken on purpose, is seen.
    assert!(check_no_secret(&format!("bad value {}", SECRETS[0].to_uppercase())).is_err());
    let reversed: String = SECRETS[1].chars().rev().collect();
    assert!(check_no_secret(&reversed).is_err());
    assert!(check_no_secret(r#"got "Qu\"o\\te$'d&" here"#).is_err());
    assert!(check_no_secret("web_password is not a number").is_ok());
    assert!(check_error("x.yml: untagged enum Flex", Some("x.yml")).is_err());
    assert!(check_error("line 3: bad", Some("x.yml")).is_err());
    assert!(
        check_reference("UPPER/case").is_ok(),
        "an error is a fine verdict"
    );
    // A mutation keeps values whole at line level and wraps positions.
    let seeds = vec!["a: 1\nb: 2".to_string()];
    let edits = [
        Edit::Insert { at: 1, token: 0 },
        Edit::Delete { at: 0, len: 3 },
    ];
    assert_eq!(mutate(&seeds[0], &seeds, &edits, true), "a: 1\nb: 2: ");
    assert_eq!(
        mutate("ab", &seeds, &[Edit::Delete { at: 3, len: 9 }], false),
        ""
    );
    assert_eq!(
        mutate("abc", &seeds, &[Edit::Delete { at: 1, len: 1 }], false),
        "ac"
    );
    assert_eq!(
        mutate("añb", &seeds, &[Edit::Insert { at: 2, token: 1 }], false),
        "a- ñb"
    );
}

fn seconds_per_target() -> u64 {
    std::env::var("KOLLA_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
}

/// Mutants of the target's corpus until `seconds` have passed: the number
/// run, or the first that breaks a property, shrunk to fewer and smaller
/// edits.
fn fuzz(target: &Target, seed: u64, seconds: u64) -> Result<u64, String> {
    let seeds: Vec<String> = corpus(target.name)
        .into_iter()
        .map(|(_, text)| text)
        .collect();
    // One stream per target and seed, so a failure replays alone.
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    for (slot, byte) in key[8..].iter_mut().zip(target.name.bytes()) {
        *slot = byte;
    }
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    let strategy = (0..seeds.len(), proptest::collection::vec(edit(), 0..8));
    let current = watchdog(target.name);
    let run = |(seed, edits): &(usize, Vec<Edit>)| {
        let input = mutate(&seeds[*seed], &seeds, edits, target.line_level);
        guarded(target, &input, &current).map_err(|why| format!("{why}\n--- input\n{input:?}"))
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut executions = 0u64;
    while Instant::now() < deadline {
        let mut tree = strategy.new_tree(&mut runner).map_err(|e| e.to_string())?;
        executions += 1;
        let Err(mut failure) = run(&tree.current()) else {
            continue;
        };
        // Shrink: simpler while it still fails, back when it passes.
        let mut steps = 0;
        while steps < 4096 {
            steps += 1;
            if !tree.simplify() {
                break;
            }
            while let Ok(()) = run(&tree.current()) {
                if !tree.complicate() {
                    break;
                }
            }
            if let Err(why) = run(&tree.current()) {
                failure = why;
            }
        }
        return Err(failure);
    }
    Ok(executions)
}

#[test]
#[ignore = "the fuzz stage of tools/test runs it: KOLLA_FUZZ_SECONDS per target"]
fn fuzz_each_target() {
    let seed = std::env::var("KOLLA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    let seconds = seconds_per_target();
    println!("fuzz: seed {seed} (KOLLA_FUZZ_SEED={seed} replays it), {seconds}s per target");
    let mut failures = Vec::new();
    for target in &TARGETS {
        match fuzz(target, seed, seconds) {
            Ok(executions) => println!(
                "fuzz {:<12} {executions:>8} executions in {seconds}s, 0 failures",
                target.name
            ),
            Err(why) => {
                println!("fuzz {:<12} FAILED: {why}", target.name);
                failures.push(target.name);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "fuzz targets failed: {failures:?} (seed {seed})"
    );
}
