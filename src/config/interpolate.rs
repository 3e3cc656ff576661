//! `${VAR}` interpolation as docker compose does it: `$VAR`, `${VAR}`,
//! `${VAR:-default}` / `${VAR-default}`, `${VAR:?message}` / `${VAR?message}`,
//! `${VAR:+alternative}` / `${VAR+alternative}`, and `$$` for a literal `$`.
//! The `:` forms treat an empty value like an unset one. Pure: variables
//! come in as a lookup function, never from the environment directly.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InterpolationError {
    #[error("required variable {name} is not set: {message}")]
    Required { name: String, message: String },
    #[error("unterminated ${{...}} in {text:?}")]
    Unterminated { text: String },
    #[error("invalid variable name {name:?} in {text:?}")]
    InvalidName { name: String, text: String },
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Replace every variable reference in `text` using `lookup`.
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = closing_brace(body).ok_or_else(|| InterpolationError::Unterminated {
                text: text.to_string(),
            })?;
            out.push_str(&expand(&body[..end], text, lookup)?);
            rest = &body[end + 1..];
        } else if after.starts_with(is_name_start) {
            let len = after.find(|c| !is_name_char(c)).unwrap_or(after.len());
            out.push_str(&lookup(&after[..len]).unwrap_or_default());
            rest = &after[len..];
        } else {
            // A lone `$` (e.g. before a digit or at the end) stays as it is.
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Index of the `}` closing a `${`, allowing nested `${...}` in defaults.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '$' if chars.peek().is_some_and(|(_, n)| *n == '{') => {
                depth += 1;
                chars.next();
            }
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn expand(
    body: &str,
    whole: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    let name_len = body.find(|c| !is_name_char(c)).unwrap_or(body.len());
    let name = &body[..name_len];
    if name.is_empty() || !name.starts_with(is_name_start) {
        return Err(InterpolationError::InvalidName {
            name: body.to_string(),
            text: whole.to_string(),
        });
    }
    let operator = &body[name_len..];
    let value = lookup(name);
    let (empty_counts_as_unset, op, arg) = if let Some(arg) = operator.strip_prefix(':') {
        (true, arg.chars().next(), arg.get(1..).unwrap_or(""))
    } else {
        (
            false,
            operator.chars().next(),
            operator.get(1..).unwrap_or(""),
        )
    };
    let is_set = match &value {
        Some(v) => !(empty_counts_as_unset && v.is_empty()),
        None => false,
    };
    match op {
        None if operator.is_empty() => Ok(value.unwrap_or_default()),
        Some('-') => {
            if is_set {
                Ok(value.unwrap_or_default())
            } else {
                interpolate(arg, lookup)
            }
        }
        Some('?') => {
            if is_set {
                Ok(value.unwrap_or_default())
            } else {
                Err(InterpolationError::Required {
                    name: name.to_string(),
                    message: interpolate(arg, lookup)?,
                })
            }
        }
        Some('+') => {
            if is_set {
                interpolate(arg, lookup)
            } else {
                Ok(String::new())
            }
        }
        _ => Err(InterpolationError::InvalidName {
            name: body.to_string(),
            text: whole.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<String, InterpolationError> {
        let lookup = |name: &str| match name {
            "TAG" => Some("zed".to_string()),
            "EMPTY" => Some(String::new()),
            "REGISTRY" => Some("127.0.0.1:4000".to_string()),
            _ => None,
        };
        interpolate(text, &lookup)
    }

    #[test]
    fn plain_and_braced_references() {
        assert_eq!(
            run("${REGISTRY}/kolla/x:$TAG").unwrap(),
            "127.0.0.1:4000/kolla/x:zed"
        );
        assert_eq!(run("a $UNSET b").unwrap(), "a  b");
        assert_eq!(
            run("cost $$5 and $ alone $").unwrap(),
            "cost $5 and $ alone $"
        );
        assert_eq!(run("no refs").unwrap(), "no refs");
    }

    #[test]
    fn defaults_treat_empty_as_unset_only_with_colon() {
        assert_eq!(run("${UNSET:-d}").unwrap(), "d");
        assert_eq!(run("${EMPTY:-d}").unwrap(), "d");
        assert_eq!(run("${EMPTY-d}").unwrap(), "");
        assert_eq!(run("${UNSET-d}").unwrap(), "d");
        assert_eq!(run("${TAG:-d}").unwrap(), "zed");
        assert_eq!(run("${UNSET:-${TAG}-x}").unwrap(), "zed-x");
        assert_eq!(run("${TAG:+set}${UNSET:+no}").unwrap(), "set");
    }

    #[test]
    fn required_variables_fail_with_their_message() {
        assert_eq!(run("${TAG:?need a tag}").unwrap(), "zed");
        assert_eq!(
            run("${UNSET:?set UNSET in globals.yml}")
                .unwrap_err()
                .to_string(),
            "required variable UNSET is not set: set UNSET in globals.yml"
        );
        assert!(run("${EMPTY:?x}").is_err());
        assert_eq!(run("${EMPTY?x}").unwrap(), "");
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(matches!(
            run("${TAG"),
            Err(InterpolationError::Unterminated { .. })
        ));
        assert!(matches!(
            run("${}"),
            Err(InterpolationError::InvalidName { .. })
        ));
        assert!(matches!(
            run("${1X}"),
            Err(InterpolationError::InvalidName { .. })
        ));
        assert!(matches!(
            run("${TAG!x}"),
            Err(InterpolationError::InvalidName { .. })
        ));
    }
}
