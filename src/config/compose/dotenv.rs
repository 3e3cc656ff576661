//! `.env` and `env_file` files, read as docker compose reads them, so a
//! file that works with `docker compose` means the same to kolla. The rules
//! are compose's documented ones (docs.docker.com/compose/env-file):
//!
//! - lines starting with `#`, and blank lines, are ignored; `export ` before
//!   a key is allowed;
//! - an unquoted value ends at ` #` (a comment needs the space before it:
//!   `VAR=VAL# not a comment` keeps the `#`), trailing blanks dropped;
//! - a quoted value ends at its closing quote; a `#` inside stays, and only
//!   a comment may follow the closing quote;
//! - `\"` and `\'` escape a quote inside quotes; double-quoted values also
//!   turn `\n`, `\r`, `\t` and `\\` into what they name, single-quoted and
//!   unquoted values keep backslashes as written.
//!
//! Not read: a quoted value spanning several lines, and interpolation of
//! `${VAR}` inside the file (a value is taken as written). Neither is used
//! by kolla's own files; a line that opens a quote and does not close it is
//! an error naming the line, never a silently cut value.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::ConfigError;

/// The variables of a `.env` or `env_file` file at `path` (for errors).
pub fn parse_dotenv(text: &str, path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut vars = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let bad = |message: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: format!("line {}: {message}", index + 1),
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(bad("expected KEY=value"));
        };
        let value = value.trim_start();
        let value = match value.chars().next() {
            Some(quote @ ('"' | '\'')) => quoted(&value[1..], quote).map_err(|m| bad(&m))?,
            _ => unquoted(value),
        };
        vars.insert(key.trim().to_string(), value);
    }
    Ok(vars)
}

/// An unquoted value: up to a ` #` comment, blanks at its end dropped.
fn unquoted(value: &str) -> String {
    let value = value.split_once(" #").map_or(value, |(before, _)| before);
    value.trim_end().to_string()
}

/// A value after its opening `quote`: up to the closing one, escapes
/// applied; what follows may only be blanks or a comment.
fn quoted(rest: &str, quote: char) -> Result<String, String> {
    let mut value = String::new();
    let mut chars = rest.char_indices();
    while let Some((_, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, next)) => value.push_str(&escape(quote, next)),
                None => value.push('\\'),
            },
            c if c == quote => {
                let after = chars.as_str().trim_start();
                if after.is_empty() || after.starts_with('#') {
                    return Ok(value);
                }
                return Err(format!(
                    "only a comment may follow the closing {quote} (found `{after}`)"
                ));
            }
            c => value.push(c),
        }
    }
    Err(format!(
        "the value opens a {quote} quote and the line does not close it (values spanning lines are not read)"
    ))
}

/// What `\` + `next` stands for inside `quote`s.
fn escape(quote: char, next: char) -> String {
    match (quote, next) {
        (_, q) if q == quote => q.to_string(),
        ('"', 'n') => "\n".into(),
        ('"', 'r') => "\r".into(),
        ('"', 't') => "\t".into(),
        ('"', '\\') => "\\".into(),
        (_, other) => format!("\\{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> String {
        let vars = parse_dotenv(line, Path::new(".env")).expect("parses");
        vars.get("VAR").cloned().expect("VAR is set")
    }

    /// Each example of compose's documented .env syntax, in its order.
    #[test]
    fn compose_documented_examples() {
        assert_eq!(one("VAR=VAL"), "VAL");
        assert_eq!(one(r#"VAR="VAL""#), "VAL");
        assert_eq!(one("VAR='VAL'"), "VAL");
        assert_eq!(one("VAR=VAL # comment"), "VAL");
        assert_eq!(one("VAR=VAL# not a comment"), "VAL# not a comment");
        assert_eq!(one(r#"VAR="VAL # not a comment""#), "VAL # not a comment");
        assert_eq!(one(r#"VAR="VAL" # comment"#), "VAL");
        assert_eq!(one("VAR='$OTHER'"), "$OTHER");
        assert_eq!(one("VAR='${OTHER}'"), "${OTHER}");
        assert_eq!(one(r"VAR='Let\'s go!'"), "Let's go!");
        assert_eq!(
            one(r#"VAR="{\"hello\": \"json\"}""#),
            r#"{"hello": "json"}"#
        );
        assert_eq!(one(r#"VAR="some\tvalue""#), "some\tvalue");
        assert_eq!(one(r"VAR='some\tvalue'"), r"some\tvalue");
        assert_eq!(one(r"VAR=some\tvalue"), r"some\tvalue");
    }

    #[test]
    fn comments_blanks_and_export() {
        let vars = parse_dotenv(
            "# heading\n\n  export A=1   # one\nB='x # y'#tail\nC=#not-a-comment\nD=\nE=a#b #c\n",
            Path::new(".env"),
        )
        .expect("parses");
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "x # y");
        assert_eq!(vars["C"], "#not-a-comment");
        assert_eq!(vars["D"], "");
        assert_eq!(vars["E"], "a#b");
        assert_eq!(vars.len(), 5);
    }

    #[test]
    fn unclosed_quotes_and_trailing_text_name_the_line() {
        let err = parse_dotenv("A=1\nB=\"open\n", Path::new("x/.env"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x/.env") && err.contains("line 2"), "{err}");
        let err = parse_dotenv("B='a' b\n", Path::new(".env"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1: only a comment may follow"), "{err}");
        assert!(parse_dotenv("novalue\n", Path::new(".env")).is_err());
    }
}
