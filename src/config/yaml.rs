//! The YAML parser's errors as an operator reads them: line and column,
//! what was wrong in plain words (never the names of kolla's or the
//! parser's types), and the line itself with a caret. Used for compose
//! files, the inventory and globals.yml; passwords.yml has wording of its
//! own that quotes nothing of the file.

/// What each of kolla's many-shaped values accepts, by the name of the
/// type the parser reports it did not match.
const SHAPES: &[(&str, &str)] = &[
    ("StringOrList", "a text or a list of texts"),
    ("Scalar", "a text, number, boolean or nothing (null)"),
    (
        "DependsOn",
        "a list of services, or a mapping of service: {condition: ...}",
    ),
    (
        "RawMount",
        "a mount: \"SOURCE:TARGET[:MODE]\", or a mapping with type, source and target (target an absolute path)",
    ),
    (
        "RawPort",
        "a port: a number, \"[HOST:]PUBLISHED:TARGET[/PROTOCOL]\", or a mapping with a numeric target",
    ),
    (
        "Flex",
        "true or false (or a number), or a ${VARIABLE} giving one",
    ),
    (
        "RawUlimit",
        "a number, or a mapping of soft and hard numbers",
    ),
    (
        "VariableValue",
        "a text, number or boolean (not null, a list or a mapping)",
    ),
];

/// The parser's limits against YAML bombs, in words.
const LIMITS: &[(&str, &str)] = &[
    ("Events", "too many YAML events (over a million)"),
    ("Aliases", "too many aliases (*name)"),
    ("Anchors", "too many anchors (&name)"),
    ("Depth", "values nested too deep"),
    ("Nodes", "too many values once aliases are expanded"),
    ("ScalarBytes", "too much text once aliases are expanded"),
    ("MergeKeys", "too many merge keys (<<)"),
    ("RecordedAnchorEvents", "anchors that expand to too much"),
    (
        "RecordedAnchorBytes",
        "anchors that expand to too much text",
    ),
];

/// `error`, met reading `text`: `line L column C: words`, then the line
/// with a caret under the column.
pub fn error_text(error: &serde_saphyr::Error, text: &str) -> String {
    let bare = error.without_snippet().to_string();
    let location = error.location().filter(|l| l.line() > 0);
    let words = in_words(strip_location(bare.trim_start_matches("error: ")));
    match location {
        None => words,
        Some(at) => {
            let (line, column) = (at.line() as usize, at.column() as usize);
            let mut out = format!("line {line} column {column}: {words}");
            if let Some(source) = text.lines().nth(line.saturating_sub(1)) {
                let gutter = line.to_string().len();
                let shown: String = source
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                out.push_str(&format!(
                    "\n  {line} | {shown}\n  {:gutter$} | {:>column$}",
                    "", "^"
                ));
            }
            out
        }
    }
}

/// The message without the parser's own location (`line L column C: `
/// in front, or ` at line L, column C` behind): the caller gives it once.
fn strip_location(message: &str) -> &str {
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let mut message = message;
    if let Some((at, after)) = message
        .strip_prefix("line ")
        .and_then(|r| r.split_once(": "))
        && at.split(" column ").all(digits)
    {
        message = after;
    }
    if let Some((before, at)) = message.rsplit_once(" at line ")
        && at.split(", column ").all(digits)
    {
        message = before;
    }
    message
}

/// The parser's and serde's phrases, in an operator's words.
pub fn in_words(message: &str) -> String {
    let message = message.lines().next().unwrap_or_default().trim();
    if let Some(key) = message
        .strip_prefix("duplicate mapping key: ")
        .and_then(|rest| rest.split(", set DuplicateKeyPolicy").next())
    {
        return format!("{key} is given twice in the same mapping; keep one");
    }
    if let Some(shape) = message.strip_prefix("data did not match any variant of untagged enum ") {
        let expected = SHAPES
            .iter()
            .find(|(name, _)| *name == shape.trim())
            .map_or("a value of another shape", |(_, words)| words);
        return format!("expected {expected} here");
    }
    if let Some(after) = message
        .split_once("budget breached: ")
        .map(|(_, after)| after)
    {
        let limit: String = after
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        let words = LIMITS
            .iter()
            .find(|(name, _)| *name == limit)
            .map_or("it is too large", |(_, words)| words);
        return format!("the file is too big to read safely: {words} (a limit against YAML bombs)");
    }
    match message {
        "expected string scalar" => "expected a text here, not a list or a mapping".into(),
        "expected mapping start" => "expected a mapping (key: value lines) here".into(),
        "expected sequence start" => "expected a list here".into(),
        "invalid boolean" => "expected true or false".into(),
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(text: &str) -> String {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct File {
            name: Option<String>,
            list: Option<Vec<String>>,
            on: Option<bool>,
            nested: Option<serde::de::IgnoredAny>,
        }
        let error = serde_saphyr::from_str::<File>(text).unwrap_err();
        error_text(&error, text)
    }

    #[test]
    fn errors_say_where_and_what_in_words() {
        assert_eq!(
            parse_error("name: a\nname: b\n"),
            "line 2 column 1: name is given twice in the same mapping; keep one\n  2 | name: b\n    | ^"
        );
        assert_eq!(
            parse_error("list: 5\n"),
            "line 1 column 7: expected a list here\n  1 | list: 5\n    |       ^"
        );
        assert!(parse_error("name: [a]\n").contains("expected a text here"));
        assert!(parse_error("on: maybe\n").contains("expected true or false"));
        let unknown = parse_error("nmae: a\n");
        assert!(
            unknown.starts_with("line 1 column 1: unknown field `nmae`"),
            "{unknown}"
        );
        let deep = format!("nested: {}{}\n", "[".repeat(70), "]".repeat(70));
        let deep = parse_error(&deep);
        assert!(deep.contains("values nested too deep"), "{deep}");
        for error in [deep, unknown] {
            assert!(
                !error.contains("Depth {") && !error.contains("<input>"),
                "{error}"
            );
        }
    }

    #[test]
    fn every_shape_is_in_words() {
        for (name, words) in SHAPES {
            let message = format!("data did not match any variant of untagged enum {name}");
            assert_eq!(in_words(&message), format!("expected {words} here"));
        }
        assert_eq!(
            in_words("data did not match any variant of untagged enum Other"),
            "expected a value of another shape here"
        );
    }
}
