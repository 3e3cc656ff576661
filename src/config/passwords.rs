//! passwords.yml: the deployment's secrets, name -> value. Secrets reach
//! containers only through rendered config files, each escaped for its
//! context (see `templates`).
//!
//! Reading is strict, and no message says a value: every password is a
//! string (a null, a number or a list is refused, naming the line and the
//! key), a value with a line break or control character fits no config
//! context and is refused, and a file the YAML parser rejects is reported by
//! line, column and a fixed description, never by the parser's own text or
//! source snippet (both can quote the file, secrets included).
//!
//! kolla-ansible's `kolla-genpwd` writes /etc/kolla/passwords.yml too, and
//! a host may have both: its file reads. Its maps (the ssh key pairs,
//! `nova_ssh_key: {private_key: ..., public_key: ...}`) and the keys it
//! leaves null on purpose (`LEFT_BLANK`) are set aside, not refused: no
//! template is given them, and one that asks for one is refused naming
//! the entry's line (`Passwords::asked_for_set_aside`). Its other keys are
//! passwords like any (kolla's templates use the ones they name).
//!
//! `kolla genpwd` fills the keys without a value (empty or null, and the
//! names kolla's templates use that the file lacks) with random passwords.
//! It edits the file's text rather than rewriting it, so the operator's
//! comments, order, every value already there and every entry set aside
//! stay byte for byte; it writes through a symlink to its target,
//! atomically, keeping the file's mode and owner, and refuses a file that
//! no one may write (see `generate`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::ConfigError;

pub const PASSWORDS_FILE: &str = "passwords.yml";

/// The names kolla's own config templates use, with empty values.
pub const TEMPLATE: &str = include_str!("../../etc/kolla/passwords.yml");

/// Length of a generated password (alphanumeric: safe in every config
/// format and URL without quoting).
const LENGTH: usize = 40;

/// What the parser's errors say instead of their own text.
const NOT_YAML: &str = "not valid YAML here (the line is not shown: it may hold a secret)";

/// Keys kolla-ansible's genpwd leaves null on purpose (an empty Docker
/// registry password means no login), which kolla uses none of: a null
/// there is set aside, and kolla's genpwd leaves it null too (a random
/// password would have kolla-ansible log in with it).
pub const LEFT_BLANK: &[&str] = &["docker_registry_password"];

/// passwords.yml as kolla reads it: the passwords, and the entries set
/// aside (read, given to no template). Its `Debug` names, never values.
#[derive(Clone, Default, PartialEq)]
pub struct Passwords {
    /// The file read (where an entry set aside is to be found).
    pub path: PathBuf,
    /// name -> password.
    pub values: BTreeMap<String, String>,
    /// name -> the entry set aside.
    pub set_aside: BTreeMap<String, SetAside>,
}

/// An entry of passwords.yml that holds no password and is not refused
/// for it: a map (kolla-ansible's ssh key pairs), or a key of `LEFT_BLANK`
/// with no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    pub line: u64,
    /// What it holds, in words ("a map", "no value").
    pub what: &'static str,
}

impl fmt::Debug for Passwords {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("Passwords")
            .field("path", &self.path)
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .field("set_aside", &self.set_aside)
            .finish()
    }
}

/// Passwords that are all strings, with nothing set aside (what tests and
/// callers without a passwords.yml have).
impl From<BTreeMap<String, String>> for Passwords {
    fn from(values: BTreeMap<String, String>) -> Passwords {
        Passwords {
            values,
            ..Passwords::default()
        }
    }
}

impl Passwords {
    /// Why a template (its text) cannot render, when it asks for an entry
    /// set aside (`passwords.NAME` or `passwords["NAME"]`): its line in
    /// the template and in passwords.yml, and what the entry holds. The
    /// entries set aside are never in a template's context, so such a
    /// template fails anyway (Tera's "not found"); this says why.
    pub fn asked_for_set_aside(&self, template: &str) -> Option<String> {
        if self.set_aside.is_empty() {
            return None;
        }
        let asks = regex::Regex::new(
            r#"passwords\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*["']([^"']*)["']\s*\])"#,
        )
        .ok()?;
        asks.captures_iter(template).find_map(|found| {
            let name = found.get(1).or_else(|| found.get(2))?;
            let entry = self.set_aside.get(name.as_str())?;
            let line = template[..name.start()].matches('\n').count() + 1;
            Some(format!(
                "line {line}: asks for passwords.{}, which {} holds at line {} as {}, not a password (kolla-ansible's genpwd writes its ssh key pairs as maps); kolla's templates are given only the passwords that are strings",
                name.as_str(),
                self.path.display(),
                entry.line,
                entry.what
            ))
        })
    }
}

/// Read passwords.yml; a missing file means no passwords.
pub fn load(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    read(path).map(|passwords| passwords.values)
}

/// Read passwords.yml, the entries set aside with the passwords; a missing
/// file means none.
pub fn read(path: &Path) -> Result<Passwords, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => read_text(&text, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Passwords {
            path: path.to_path_buf(),
            ..Passwords::default()
        }),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The passwords of `text`.
#[cfg(test)]
fn parse(text: &str, path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    read_text(text, path).map(|passwords| passwords.values)
}

/// The passwords and entries set aside of `text`: every other entry must
/// be a string without control characters.
fn read_text(text: &str, path: &Path) -> Result<Passwords, ConfigError> {
    let mut passwords = Passwords {
        path: path.to_path_buf(),
        ..Passwords::default()
    };
    let (found, mut errors) = entries(text, path)?;
    for entry in found {
        if let Some(what) = entry.set_aside() {
            let line = entry.line;
            passwords
                .set_aside
                .insert(entry.name, SetAside { line, what });
            continue;
        }
        match entry.password() {
            Ok(value) => {
                passwords
                    .values
                    .insert(entry.name.clone(), value.to_string());
            }
            Err(why) => errors.push((entry.line, entry.error(path, &why))),
        }
    }
    several(errors)?;
    Ok(passwords)
}

/// What a value reads as. Only the text of a string is kept; anything else
/// is kept as a word for the error message.
#[derive(Clone, PartialEq)]
enum Value {
    Text(String),
    Null,
    /// A mapping (its entries are not kept: kolla reads none of them).
    Map,
    /// Not a string: "a number", "a list", ...
    Other(&'static str),
}

/// Never the text: a `{:?}` in a message or a panic must not show a secret.
impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Value::Text(text) => write!(f, "Text(<{} characters>)", text.chars().count()),
            Value::Null => f.write_str("Null"),
            Value::Map => f.write_str("Map"),
            Value::Other(what) => write!(f, "Other({what})"),
        }
    }
}

/// One `name: value` of the file, with where its name is.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    line: u64,
    column: u64,
    value: Value,
}

impl Entry {
    /// The password, or why the entry holds none.
    fn password(&self) -> Result<&str, String> {
        match &self.value {
            Value::Text(text) if text.chars().any(char::is_control) => Err(
                "the value holds a line break or control character, which no config file can carry safely; set a value without one (or empty it and run `kolla genpwd`)".into(),
            ),
            Value::Text(text) => Ok(text),
            Value::Null => Err(
                "no value (null); run `kolla genpwd` to generate one, or set one in quotes".into(),
            ),
            Value::Map => Err(
                "the value must be a string, not a map: kolla reads no password made of parts"
                    .into(),
            ),
            Value::Other(what @ "a list") => Err(format!(
                "the value must be a string, not {what}: kolla reads no password made of parts"
            )),
            Value::Other(what) => Err(format!(
                "the value must be a string, not {what}; put it in quotes (the value is not shown: it may be a secret)"
            )),
        }
    }

    /// Whether genpwd is to fill it: null, or the empty string (never an
    /// entry set aside, nor a key of `LEFT_BLANK`, which stays blank).
    fn unset(&self) -> bool {
        (self.value == Value::Null || self.value == Value::Text(String::new()))
            && !LEFT_BLANK.contains(&self.name.as_str())
    }

    /// What the entry holds when it is set aside rather than read as a
    /// password (see `SetAside`).
    fn set_aside(&self) -> Option<&'static str> {
        match &self.value {
            Value::Map => Some("a map"),
            Value::Null if LEFT_BLANK.contains(&self.name.as_str()) => Some("no value"),
            _ => None,
        }
    }

    fn error(&self, path: &Path, why: &str) -> ConfigError {
        ConfigError::Invalid {
            path: path.to_path_buf(),
            message: format!("line {}: {}: {why}", self.line, shown(&self.name)),
        }
    }
}

/// A name as it may be printed: control characters escaped, so a hostile
/// key cannot drive the operator's terminal.
/// What config templates can name as `passwords.NAME`.
fn is_password_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn shown(name: &str) -> String {
    name.chars()
        .flat_map(|c| match c.is_control() {
            true => c.escape_default().collect::<Vec<_>>(),
            false => vec![c],
        })
        .collect()
}

/// Errors found, each with its line.
type LineErrors = Vec<(u64, ConfigError)>;

/// No error, one, or every one in the order of their lines.
fn several(mut errors: LineErrors) -> Result<(), ConfigError> {
    errors.sort_by_key(|(line, _)| *line);
    let mut errors: Vec<ConfigError> = errors.into_iter().map(|(_, e)| e).collect();
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(ConfigError::Several(errors)),
    }
}

/// The entries of `text` in file order, their values not yet judged, and
/// the errors of the entries left out (a key that is no name, a name set
/// twice). A file that is no YAML mapping is an error of its own.
fn entries(text: &str, path: &Path) -> Result<(Vec<Entry>, LineErrors), ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---")
    {
        return Ok((Vec::new(), Vec::new()));
    }
    let top: Spanned<Node> =
        serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| {
            ConfigError::Yaml {
                path: path.to_path_buf(),
                message: yaml_error(&e),
            }
        })?;
    let pairs = match top.value {
        Node::Map(pairs) => pairs,
        Node::Value(Value::Null) => return Ok((Vec::new(), Vec::new())),
        _ => {
            return Err(invalid(format!(
                "line {}: passwords.yml must be a mapping of `name: value` lines",
                top.referenced.line()
            )));
        }
    };
    let mut out: Vec<Entry> = Vec::new();
    let mut errors = Vec::new();
    for (key, value) in pairs {
        let (line, column) = (key.referenced.line(), key.referenced.column());
        // A key written as an alias (`*a: ...`) would be named after the
        // value its anchor holds: a password, which errors then show.
        if key.referenced != key.defined {
            let message = format!("line {line}: a key must be a name, not an alias (*name)");
            errors.push((line, invalid(message)));
            continue;
        }
        // A key that is no name may be a value a typo turned into a key
        // (`&x` run into the line, a misplaced colon): never shown.
        if let Node::Value(Value::Text(name)) = &key.value
            && !is_password_name(name)
        {
            let message = format!(
                "line {line}: a key that is not a password name (letters, digits and _, not starting with a digit); it is not shown, as it may be a value"
            );
            errors.push((line, invalid(message)));
            continue;
        }
        let Node::Value(Value::Text(name)) = key.value else {
            errors.push((line, invalid(format!("line {line}: a key must be a name"))));
            continue;
        };
        if let Some(first) = out.iter().find(|e| e.name == name) {
            let message = format!(
                "line {line}: {} is set twice (first at line {}); keep one",
                shown(&name),
                first.line
            );
            errors.push((line, invalid(message)));
            continue;
        }
        let value = match value.value {
            Node::Value(v) => v,
            Node::Map(_) => Value::Map,
        };
        out.push(Entry {
            name,
            line,
            column,
            value,
        });
    }
    Ok((out, errors))
}

/// Duplicate keys reach `entries` (which names both lines), and no
/// error carries a snippet of the file.
fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::PassThrough;
    options.with_snippet = false;
    options
}

/// A parser error as line, column and a description that quotes nothing of
/// the file: the parser's own text and snippet may hold a value.
fn yaml_error(error: &serde_saphyr::Error) -> String {
    let at = error
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| format!("line {} column {}: ", l.line(), l.column()))
        .unwrap_or_default();
    format!("{at}{}", yaml_error_words(error))
}

fn yaml_error_words(error: &serde_saphyr::Error) -> String {
    use serde_saphyr::{Error, ExternalMessageSource};
    match error.without_snippet() {
        Error::AliasError { error, .. } => yaml_error_words(error),
        Error::ExternalMessage { source, .. } => match source.as_ref() {
            ExternalMessageSource::Parser(scan) => scan_error_words(scan.kind()),
            _ => NOT_YAML.into(),
        },
        Error::Eof { .. } => "the file ends in the middle of a value".into(),
        Error::MultipleDocuments { .. } => {
            "a second YAML document (`---`); passwords.yml holds one mapping".into()
        }
        Error::UnknownAnchor { .. } => "an alias (*name) with no anchor (&name) before it".into(),
        Error::MergeValueNotMapOrSeqOfMaps { .. } => {
            "a merge key (<<) must be given a mapping".into()
        }
        Error::Budget { .. }
        | Error::AliasReplayCounterOverflow { .. }
        | Error::AliasReplayLimitExceeded { .. }
        | Error::AliasExpansionLimitExceeded { .. }
        | Error::AliasReplayStackDepthExceeded { .. } => {
            "the file is too large, too deeply nested or expands too many aliases".into()
        }
        _ => NOT_YAML.into(),
    }
}

/// The scanner's description of what it expected. A kind without fields
/// says nothing of the file, so its own words are safe; one with fields
/// (the character it met, a message of the input's) is described here.
fn scan_error_words(kind: &serde_saphyr::granit_parser::ErrorKind) -> String {
    use serde_saphyr::granit_parser::ErrorKind;
    let unit = format!("{kind:?}")
        .chars()
        .all(|c| c.is_ascii_alphanumeric());
    match kind {
        _ if unit => kind.to_string(),
        ErrorKind::UnexpectedCharacter { .. } => {
            "a value starts with a character YAML reserves (such as @ or `); put the value in quotes".into()
        }
        ErrorKind::MismatchedFlowCollectionEnd { .. } | ErrorKind::UnclosedFlowCollection { .. } => {
            "a [ or { is not closed by its own bracket".into()
        }
        _ => NOT_YAML.into(),
    }
}

/// A YAML node as passwords.yml needs it: the entries of a mapping (with
/// where each is), the text of a string, or what else it is.
#[derive(Debug)]
enum Node {
    Map(Vec<(Spanned<Node>, Spanned<Node>)>),
    Value(Value),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

fn other<E>(what: &'static str) -> Result<Node, E> {
    Ok(Node::Value(Value::Other(what)))
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        other("true or false")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        other("a number")
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
        other("a number")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        other("a number")
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
        other("a number")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        other("a number")
    }
    fn visit_char<E: de::Error>(self, c: char) -> Result<Node, E> {
        Ok(Node::Value(Value::Text(c.to_string())))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Node, E> {
        Ok(Node::Value(Value::Text(s.to_string())))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Node, E> {
        Ok(Node::Value(Value::Text(s)))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Node, E> {
        other("binary data")
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Value(Value::Null))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Value(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        other("a list")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut pairs = Vec::new();
        while let Some(pair) = map.next_entry::<Spanned<Node>, Spanned<Node>>()? {
            pairs.push(pair);
        }
        Ok(Node::Map(pairs))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Node, A::Error> {
        IgnoredAny.visit_enum(data)?;
        other("a tagged value")
    }
}

/// `kolla genpwd` could not fill the file: bad input (a `ConfigError`,
/// exit 2) or a failed step on the filesystem, named with its path.
#[derive(Debug, thiserror::Error)]
pub enum GenpwdError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: cannot {operation}: {source}")]
    Io {
        path: PathBuf,
        operation: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// What `generate` did.
#[derive(Debug)]
pub struct Generated {
    /// The names given a new password, in the file's order.
    pub names: Vec<String>,
    /// The file written (or that needed nothing): the symlink's target
    /// when the path is a symlink.
    pub file: PathBuf,
}

/// Fill every key of the file and every name of `template` without a value
/// (empty or null) with a random password, editing the file's text in
/// place (see `fill`). `path` may be a symlink: its target is read and
/// replaced, atomically (a temporary file beside it, renamed over it) and
/// with its mode and owner; a new file gets `template`'s text and mode
/// 0600. A file with no write permission for anyone is refused, even as
/// root: its mode says it is not to change. Nothing is written when every
/// name has a value.
pub fn generate(path: &Path, template: &str) -> Result<Generated, GenpwdError> {
    let io = |path: &Path, operation, source| GenpwdError::Io {
        path: path.to_path_buf(),
        operation,
        source,
    };
    let file = crate::files::link_target(path).map_err(|e| io(path, "follow the symlink", e))?;
    let (text, exists) = match std::fs::read_to_string(&file) {
        Ok(text) => (text, true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (template.to_string(), false),
        Err(e) => return Err(io(&file, "read", e)),
    };
    let (text, names) = fill(&text, template, &file)?;
    if names.is_empty() {
        return Ok(Generated { names, file });
    }
    if exists {
        writable(&file)?;
    } else if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, "create the folder", e))?;
    }
    crate::files::replace(&file, text.as_bytes(), 0o600)
        .map_err(|(operation, e)| io(&file, operation, e))?;
    Ok(Generated { names, file })
}

/// Whether genpwd may replace `file`: someone may write it (its mode is
/// the operator's word, which root's privilege does not override), and so
/// may this user (a rename would otherwise bypass the file's permissions).
fn writable(file: &Path) -> Result<(), GenpwdError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |operation, source| GenpwdError::Io {
        path: file.to_path_buf(),
        operation,
        source,
    };
    let mode = std::fs::metadata(file)
        .map_err(|e| io("read", e))?
        .permissions()
        .mode();
    if mode & 0o222 == 0 {
        return Err(ConfigError::Invalid {
            path: file.to_path_buf(),
            message: format!(
                "the file is read-only (mode {:04o}): no one may write it, so kolla genpwd does not either, even as root; make it writable (chmod u+w) to let genpwd fill it, or set the missing values by hand",
                mode & 0o7777
            ),
        }
        .into());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .map(drop)
        .map_err(|e| io("write", e))
}

/// `text` with a password for each key without a value (edited on its own
/// line) and a `name: "password"` line added at the end for each name of
/// `template` it lacks; the names generated. Every other byte stays, and
/// the result must read back as exactly the old values plus the new ones.
fn fill(text: &str, template: &str, path: &Path) -> Result<(String, Vec<String>), ConfigError> {
    let (found, errors) = entries(text, path)?;
    let mut expected = BTreeMap::new();
    let mut names = Vec::new();
    let kept: BTreeMap<String, SetAside> = found
        .iter()
        .filter_map(|e| {
            let what = e.set_aside()?;
            Some((e.name.clone(), SetAside { line: e.line, what }))
        })
        .collect();
    let mut text = fill_lines(text, &found, errors, path, &mut expected, &mut names)?;
    let indent = found.first().map_or(0, |e| e.column.saturating_sub(1));
    let indent = " ".repeat(usize::try_from(indent).unwrap_or(0));
    for entry in entries(template, Path::new("<built-in passwords template>"))?.0 {
        if expected.contains_key(&entry.name) || kept.contains_key(&entry.name) {
            continue;
        }
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        let password = random_password()?;
        let key = yaml_key(&entry.name);
        text.push_str(&format!("{indent}{key}: {}\n", quote(&password)));
        expected.insert(entry.name.clone(), password);
        names.push(entry.name);
    }
    // Never write a file that would not read back as these secrets, with
    // the same entries set aside at the same lines.
    let after = read_text(&text, path).ok();
    if after.as_ref().map(|p| (&p.values, &p.set_aside)) != Some((&expected, &kept)) {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            message: "kolla genpwd cannot add the new passwords so that the file reads back with them and every value unchanged (does it end with `...`, or hold a flow mapping `{...}`?); the file was left as it was".into(),
        });
    }
    Ok((text, names))
}

/// `text` with each unset entry of `found` given a password on its own
/// line; every entry's value goes to `expected`, each name filled to
/// `names`. Fails with `errors` (the file's so far) and any found here.
fn fill_lines(
    text: &str,
    found: &[Entry],
    mut errors: LineErrors,
    path: &Path,
    expected: &mut BTreeMap<String, String>,
    names: &mut Vec<String>,
) -> Result<String, ConfigError> {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    for entry in found {
        // Kept as written, byte for byte: kolla reads nothing of it.
        if entry.set_aside().is_some() {
            continue;
        }
        if !entry.unset() {
            match entry.password() {
                Ok(value) => {
                    expected.insert(entry.name.clone(), value.to_string());
                }
                Err(why) => errors.push((entry.line, entry.error(path, &why))),
            }
            continue;
        }
        let password = random_password()?;
        let line = usize::try_from(entry.line)
            .ok()
            .and_then(|n| n.checked_sub(1));
        match line.and_then(|n| Some((n, fill_line(lines.get(n)?, entry, &password)?))) {
            Some((n, edited)) => lines[n] = edited,
            None => errors.push((entry.line, entry.error(
                path,
                "no value, and kolla genpwd fills only a `name:` line with nothing after the colon but a comment; set a value, or write the key on a line of its own",
            ))),
        }
        expected.insert(entry.name.clone(), password);
        names.push(entry.name.clone());
    }
    several(errors)?;
    Ok(lines.concat())
}

/// `line` (the line of `entry`, a key without a value) with `password` as
/// its value, its comment kept; None unless the line is just `name:`, with
/// `~`, `null`, `""` or `''` after the colon at most, and a comment.
fn fill_line(line: &str, entry: &Entry, password: &str) -> Option<String> {
    let body = line.trim_end_matches(['\n', '\r']);
    let ending = &line[body.len()..];
    let start = body
        .char_indices()
        .nth(usize::try_from(entry.column).ok()?.checked_sub(1)?)?
        .0;
    let (indent, rest) = body.split_at(start);
    if !indent.chars().all(|c| c == ' ') {
        return None;
    }
    let key = [
        entry.name.clone(),
        format!("\"{}\"", entry.name),
        format!("'{}'", entry.name),
    ]
    .into_iter()
    .find(|k| rest.starts_with(k.as_str()))?;
    let after = rest[key.len()..].trim_start_matches([' ', '\t']);
    let after = after.strip_prefix(':')?;
    let value = after.trim_start_matches([' ', '\t']);
    // The entry reads as null or empty, so after one of these tokens
    // only a comment can follow.
    let comment = ["~", "null", "Null", "NULL", "\"\"", "''", ""]
        .into_iter()
        .find_map(|token| {
            let rest = value.strip_prefix(token)?.trim();
            (rest.is_empty() || rest.starts_with('#')).then_some(rest)
        })?;
    let comment = match comment.is_empty() {
        true => String::new(),
        false => format!("  {comment}"),
    };
    Some(format!(
        "{indent}{key}: {}{comment}{ending}",
        quote(password)
    ))
}

/// A YAML double-quoted scalar: a JSON string is one, and reads back as
/// exactly the same string.
fn quote(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// `name` as a key: plain when YAML reads it back as that same string.
fn yaml_key(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !["null", "true", "false", "yes", "no", "on", "off", "y", "n"]
            .contains(&name.to_ascii_lowercase().as_str());
    match plain {
        true => name.to_string(),
        false => quote(name),
    }
}

fn random_password() -> Result<String, ConfigError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(LENGTH);
    // Rejection sampling keeps every character equally likely.
    while out.len() < LENGTH {
        let mut bytes = [0u8; 64];
        getrandom::fill(&mut bytes).map_err(|e| ConfigError::Invalid {
            path: PASSWORDS_FILE.into(),
            message: format!("no randomness available: {e}"),
        })?;
        for b in bytes {
            if usize::from(b) < 256 - 256 % ALPHABET.len() && out.len() < LENGTH {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const TEMPLATE_NAMES: &str = "keystone_admin_password:\nrabbitmq_password:\n";

    #[test]
    fn a_new_file_is_the_template_filled_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/passwords.yml");
        let template = "# Secrets.\nkeystone_admin_password:\nrabbitmq_password:\n";
        let generated = generate(&path, template).unwrap();
        assert_eq!(
            generated.names,
            vec!["keystone_admin_password", "rabbitmq_password"]
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# Secrets.\nkeystone_admin_password: \""),
            "{text}"
        );
        let passwords = load(&path).unwrap();
        let password = &passwords["rabbitmq_password"];
        assert_eq!(password.len(), LENGTH);
        assert!(password.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(password, &passwords["keystone_admin_password"]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Again: nothing new, nothing written.
        assert!(generate(&path, template).unwrap().names.is_empty());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn an_existing_file_keeps_its_mode_its_lines_and_its_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwords.yml");
        let text = "# ours\nkeystone_admin_password: kept # by hand\nextra_password:\n";
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let generated = generate(&path, TEMPLATE_NAMES).unwrap();
        assert_eq!(generated.names, vec!["extra_password", "rabbitmq_password"]);
        let after = std::fs::read_to_string(&path).unwrap();
        let passwords = load(&path).unwrap();
        let expected = format!(
            "# ours\nkeystone_admin_password: kept # by hand\nextra_password: \"{}\"\nrabbitmq_password: \"{}\"\n",
            passwords["extra_password"], passwords["rabbitmq_password"]
        );
        assert_eq!(after, expected);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn kept_values_round_trip_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwords.yml");
        let hostile = [
            ("backslash", r"a\nb\t\u0041\\"),
            ("quotes", r#"say "hi" 'there'"#),
            ("yaml", "- [x]: {y} & *z ! % @ ` # comment"),
            ("unicode", "pässwörd ☃"),
            ("spaces", "  padded  "),
            ("number", "0123"),
            ("boolean", "yes"),
            ("tilde", "~"),
            ("null", "a key YAML reads as null when bare"),
        ];
        let mut text = String::new();
        for (name, value) in hostile {
            text.push_str(&format!("{}: {}\n", quote(name), quote(value)));
        }
        std::fs::write(&path, &text).unwrap();
        let before = load(&path).unwrap();
        for (name, value) in hostile {
            assert_eq!(before[name], value, "{name} as written by hand");
        }
        generate(&path, "fresh:\n").unwrap();
        let after = load(&path).unwrap();
        for (name, value) in hostile {
            assert_eq!(after[name], value, "{name} after genpwd");
        }
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.starts_with(&text), "{written}");
    }

    #[test]
    fn genpwd_fills_a_key_line_in_each_way_yaml_leaves_it_unset() {
        let text = "a:\nb: ~   # note\n  # between\n\"c\": ''\nd: null\ne: \"\" #x\nf: kept\n";
        let (filled, names) = fill(text, "", Path::new("p.yml")).unwrap();
        assert_eq!(names, vec!["a", "b", "c", "d", "e"]);
        let values = parse(&filled, Path::new("p.yml")).unwrap();
        let lines: Vec<&str> = filled.lines().collect();
        assert_eq!(lines[0], format!("a: \"{}\"", values["a"]));
        assert_eq!(lines[1], format!("b: \"{}\"  # note", values["b"]));
        assert_eq!(lines[2], "  # between");
        assert_eq!(lines[3], format!("\"c\": \"{}\"", values["c"]));
        assert_eq!(lines[6], "f: kept");
        // The indentation of the file's keys is kept for added names too.
        let (filled, _) = fill("  a: x\n  b:\n", "c:\n", Path::new("p.yml")).unwrap();
        assert!(filled.starts_with("  a: x\n  b: \""), "{filled}");
        assert!(
            filled.lines().last().unwrap().starts_with("  c: \""),
            "{filled}"
        );
        // No final line break: the added line still starts a line.
        let (filled, _) = fill("a: x", "c:\n", Path::new("p.yml")).unwrap();
        assert!(filled.starts_with("a: x\nc: \""), "{filled}");
    }

    #[test]
    fn genpwd_refuses_what_it_cannot_fill_in_place() {
        for text in ["{a: , b: x}\n", "a:\n  ~\n", "a: x\n...\n"] {
            let err = fill(text, "z:\n", Path::new("p.yml"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("p.yml:"), "{text}: {err}");
        }
        let err = fill("a: 12\nb: [x]\n", "", Path::new("p.yml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 1: a:") && err.contains("line 2: b:"),
            "{err}"
        );
    }

    #[test]
    fn null_and_non_strings_are_refused_naming_line_and_key_never_the_value() {
        let cases = [
            ("~", "no value"),
            ("", "no value"),
            ("null", "no value"),
            ("1234567", "not a number"),
            ("12345.67", "not a number"),
            ("true", "not true or false"),
            ("[hunter22]", "not a list"),
            ("\n  - hunter22\n  - hunter33", "not a list"),
        ];
        for (value, why) in cases {
            let text = format!("ok_password: fine\nx_password: {value}\n");
            let err = parse(&text, Path::new("p.yml")).unwrap_err().to_string();
            assert!(
                err.starts_with("p.yml: line 2: x_password: "),
                "{value}: {err}"
            );
            assert!(err.contains(why), "{value}: {err}");
            for secret in ["1234567", "12345.67", "hunter22", "hunter33"] {
                assert!(!err.contains(secret), "{value}: {err}");
            }
        }
    }

    #[test]
    fn a_key_that_is_no_name_is_refused_without_being_shown() {
        for text in [
            "&xweb_password: Sekr1tA-fuzz-9qZ:\n",
            "web_password Sekr1tB-x: 1\n",
            "9lives: x\n",
        ] {
            let err = parse(text, Path::new("p.yml")).unwrap_err().to_string();
            assert!(
                err.contains("line 1: a key that is not a password name"),
                "{err}"
            );
            assert!(!err.contains("Sekr1t") && !err.contains("9lives"), "{err}");
        }
        let fine = parse("_ok: abc\nAlso_Fine2: def\n", Path::new("p.yml"));
        assert!(fine.is_ok(), "{fine:?}");
    }

    #[test]
    fn a_key_written_as_an_alias_is_refused_without_the_value_it_names() {
        let text = "a_password: &x hunter22-alias\nb_password: *x\n*x : other\n*x : again\n";
        let err = parse(text, Path::new("p.yml")).unwrap_err().to_string();
        assert!(
            err.contains("line 3: a key must be a name, not an alias"),
            "{err}"
        );
        assert!(err.contains("line 4: "), "{err}");
        assert!(!err.contains("hunter22"), "{err}");
    }

    #[test]
    fn every_bad_entry_and_both_lines_of_a_duplicate_are_named() {
        let text = "a: ~\nb: 1\nc: ok\nc: again\n";
        let err = parse(text, Path::new("p.yml")).unwrap_err();
        assert!(matches!(err, ConfigError::Several(_)), "{err}");
        let err = err.to_string();
        assert!(
            err.contains("line 4: c is set twice (first at line 3)"),
            "{err}"
        );
        assert!(!err.contains("again") && !err.contains(": ok"), "{err}");
    }

    #[test]
    fn a_line_break_in_a_value_is_refused_naming_the_key() {
        let err = parse("ok: fine\nbad: \"a\\nb\"\n", Path::new("p.yml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.yml: line 2: bad:"), "{err}");
        assert!(!err.contains("a\nb"), "{err}");
    }

    #[test]
    fn a_yaml_error_names_line_and_column_and_quotes_nothing() {
        let err = parse(
            "a: ok\nb: \"hunter22\nc: x\n",
            Path::new("etc/passwords.yml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("etc/passwords.yml: line 2 column 4: "),
            "{err}"
        );
        assert!(!err.contains("hunter22") && !err.contains("-->"), "{err}");
        let names: Vec<String> = entries(TEMPLATE, Path::new("t"))
            .unwrap()
            .0
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(names.contains(&"keystone_admin_password".to_string()));
    }

    /// kolla-ansible's genpwd's way (PyYAML's `safe_dump`): keys sorted, an
    /// ssh key pair as a map whose private key is a single-quoted scalar
    /// over several lines, the registry password left null.
    const KOLLA_ANSIBLE: &str = "database_password: 9Xq2hunter22aaaa\n\
        docker_registry_password: null\n\
        keystone_admin_password: Wb7hunter33bbbb\n\
        nova_ssh_key:\n  \
          private_key: '-----BEGIN PRIVATE KEY-----\n\n    \
            MIIhunter44\n\n    \
            -----END PRIVATE KEY-----\n\n    '\n  \
          public_key: ssh-rsa AAAAhunter55\n\
        octavia_ca_password: Qm4hunter66cccc\n";

    #[test]
    fn kolla_ansibles_maps_and_blank_keys_are_set_aside_and_its_other_keys_read() {
        let read = read_text(KOLLA_ANSIBLE, Path::new("p.yml")).unwrap();
        let names: Vec<&str> = read.values.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "database_password",
                "keystone_admin_password",
                "octavia_ca_password"
            ]
        );
        let set_aside = |line, what| SetAside { line, what };
        assert_eq!(
            read.set_aside,
            BTreeMap::from([
                ("docker_registry_password".into(), set_aside(2, "no value")),
                ("nova_ssh_key".into(), set_aside(4, "a map")),
            ])
        );
        // Its Debug names entries, never values.
        let shown = format!("{read:?}");
        assert!(
            shown.contains("nova_ssh_key") && !shown.contains("hunter"),
            "{shown}"
        );
        // A null is set aside only for the keys left blank on purpose.
        let err = parse("other_password: null\n", Path::new("p.yml")).unwrap_err();
        assert!(
            err.to_string().contains("line 1: other_password: no value"),
            "{err}"
        );
    }

    #[test]
    fn genpwd_keeps_what_kolla_ansible_wrote_byte_for_byte() {
        let (filled, names) = fill(KOLLA_ANSIBLE, TEMPLATE_NAMES, Path::new("p.yml")).unwrap();
        // kolla's own missing name is added; the null left blank stays.
        assert_eq!(names, vec!["rabbitmq_password"]);
        assert!(filled.starts_with(KOLLA_ANSIBLE), "{filled}");
        assert!(filled.contains("docker_registry_password: null\n"));
        let read = read_text(&filled, Path::new("p.yml")).unwrap();
        assert_eq!(read.set_aside.len(), 2);
        assert_eq!(read.values["keystone_admin_password"], "Wb7hunter33bbbb");
        // A template that names an entry set aside adds no second one.
        let (again, names) = fill(&filled, "nova_ssh_key:\n", Path::new("p.yml")).unwrap();
        assert_eq!((again, names), (filled, vec![]));
        // The blank key is never filled, null or empty.
        let (filled, names) =
            fill("docker_registry_password: ''\n", "", Path::new("p.yml")).unwrap();
        assert_eq!(
            (filled.as_str(), names),
            ("docker_registry_password: ''\n", vec![])
        );
    }

    #[test]
    fn a_template_asking_for_an_entry_set_aside_names_both_lines() {
        let read = read_text(KOLLA_ANSIBLE, Path::new("/etc/kolla/passwords.yml")).unwrap();
        let said = read
            .asked_for_set_aside("a\n{{ passwords.nova_ssh_key.private_key | plain }}\n")
            .unwrap();
        assert!(
            said.starts_with("line 2: asks for passwords.nova_ssh_key, which /etc/kolla/passwords.yml holds at line 4 as a map"),
            "{said}"
        );
        let said = read
            .asked_for_set_aside("{{ passwords[\"docker_registry_password\"] }}")
            .unwrap();
        assert!(said.contains("at line 2 as no value"), "{said}");
        for fine in [
            "{{ passwords.database_password }}",
            "passwords.nova_ssh_keys",
            "x",
        ] {
            assert_eq!(read.asked_for_set_aside(fine), None, "{fine}");
        }
        assert!(!said.contains("hunter"), "{said}");
    }

    #[test]
    fn kolla_uses_none_of_the_keys_left_blank() {
        let (names, _) = entries(TEMPLATE, Path::new("t")).unwrap();
        assert!(names.iter().all(|e| !LEFT_BLANK.contains(&e.name.as_str())));
    }
}
