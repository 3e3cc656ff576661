//! The Tera setup every template kolla renders shares (image Dockerfiles and
//! service config files): no implicit HTML escaping, whatever the file's
//! name, and one escaping filter per context a value can land in. A config
//! template says how each secret is to be written:
//!
//! | filter     | context                         | how                                  |
//! |------------|---------------------------------|--------------------------------------|
//! | `shell`    | a word in a POSIX shell script  | single-quoted, `'` as `'\''`         |
//! | `ini`      | an oslo.config / ini value      | `$` doubled (oslo interpolates `$x`) |
//! | `json`     | a JSON value                    | a JSON string, quotes included       |
//! | `userinfo` | user or password in a URL       | percent-encoded (RFC 3986)           |
//! | `sql`      | a MariaDB single-quoted string  | `\` and `'` doubled                  |
//! | `plain`    | formats with no escaping at all | only letters, digits and `._~-` pass |
//!
//! A value a context cannot hold (a line break in an ini value, a quote in
//! a `plain` one) fails the render with the template's file and line;
//! nothing is deployed. The filters never print the value itself, but
//! Tera's own filters, tests and operators do (`int`: "The string `...`
//! cannot be converted"), so every render error is shown through
//! `error_text`, which masks the secrets out of it.

use std::collections::HashSet;

use tera::{Kwargs, State, TeraResult};

use crate::config::Globals;

/// What a secret is replaced by in an error.
const MASK: &str = "<hidden>";

/// The shortest run of a secret's characters masked wherever it appears
/// (a filter may have cut the value: `truncate`, `split`, `slice`):
/// shorter runs of a random password would match ordinary words.
const MIN_RUN: usize = 6;

/// What every template may use, image Dockerfiles and config files alike:
/// the globals that name images and the node's place. Anything else is an
/// undefined variable and an error naming the template line (config
/// templates get the node, the service and the passwords on top).
pub fn globals_context(globals: &Globals) -> tera::Context {
    let mut context = tera::Context::new();
    context.insert("registry", &globals.registry.clone().unwrap_or_default());
    context.insert("namespace", &globals.namespace);
    context.insert("tag", &globals.tag);
    context.insert("image_prefix", &globals.image_prefix());
    context.insert("base_image", &globals.base_image);
    context.insert("base_distro", &globals.base_distro);
    context.insert("base_distro_release", &globals.base_distro_release);
    context.insert("openstack_release", &globals.openstack_release);
    context.insert("install_type", &globals.install_type);
    context.insert("maintainer", &globals.maintainer);
    context.insert("kolla_version", env!("CARGO_PKG_VERSION"));
    context.insert("internal_address", &globals.internal_address);
    context
}

/// A Tera instance with autoescape off and kolla's filters registered.
pub fn tera() -> tera::Tera {
    let mut tera = tera::Tera::default();
    tera.autoescape_on(Vec::<&str>::new());
    tera.register_filter("shell", |v: &str, _: Kwargs, _: &State| shell(v));
    tera.register_filter("ini", |v: &str, _: Kwargs, _: &State| ini(v));
    tera.register_filter("json", |v: &str, _: Kwargs, _: &State| json(v));
    tera.register_filter("userinfo", |v: &str, _: Kwargs, _: &State| userinfo(v));
    tera.register_filter("plain", |v: &str, _: Kwargs, _: &State| plain(v));
    tera.register_filter("sql", |v: &str, _: Kwargs, _: &State| sql(v));
    tera
}

/// A template error as kolla shows it: Tera's report (message, template,
/// line and source lines) with every secret masked (see `redact`).
pub fn error_text<'a>(error: &tera::Error, secrets: impl IntoIterator<Item = &'a str>) -> String {
    redact(&error.to_string(), secrets)
}

/// `text` with each of `secrets` masked wherever it appears in any form an
/// error could show it in: as it is, escaped (Rust, JSON, HTML, and kolla's
/// own filters), reversed, in any letter case, and any run of at least `MIN_RUN` of
/// its characters in a row. A secret shorter than that is masked whole.
pub fn redact<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let fold = |c: char| c.to_lowercase().next().unwrap_or(c);
    let chars: Vec<char> = text.chars().collect();
    let folded: Vec<char> = chars.iter().copied().map(fold).collect();
    let mut hidden = vec![false; chars.len()];
    let mut runs: HashSet<&[char]> = HashSet::new();
    let forms: Vec<Vec<char>> = secrets
        .into_iter()
        .filter(|s| !s.is_empty())
        .flat_map(forms_of)
        .map(|form| form.chars().map(fold).collect())
        .collect();
    for form in &forms {
        if form.len() >= MIN_RUN {
            runs.extend(form.windows(MIN_RUN));
        } else if !form.is_empty() {
            for (i, window) in folded.windows(form.len()).enumerate() {
                if window == form.as_slice() {
                    hidden[i..i + form.len()].fill(true);
                }
            }
        }
    }
    for (i, window) in folded.windows(MIN_RUN).enumerate() {
        if runs.contains(window) {
            hidden[i..i + MIN_RUN].fill(true);
        }
    }
    let mut out = String::with_capacity(text.len());
    for (i, c) in chars.iter().enumerate() {
        match hidden[i] {
            false => out.push(*c),
            true if i == 0 || !hidden[i - 1] => out.push_str(MASK),
            true => {}
        }
    }
    out
}

/// The ways an error message may spell `secret`.
fn forms_of(secret: &str) -> Vec<String> {
    let unquote = |s: String| {
        let inner = s.strip_prefix('"').and_then(|s| s.strip_suffix('"'));
        inner.map(str::to_string).unwrap_or(s)
    };
    let html = secret
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2F;");
    let mut forms = vec![
        secret.to_string(),
        unquote(format!("{secret:?}")),
        unquote(serde_json::to_string(secret).unwrap_or_default()),
        html,
        secret.chars().rev().collect(),
    ];
    let escaped = [shell(secret), ini(secret), userinfo(secret), sql(secret)];
    forms.extend(escaped.into_iter().flatten());
    forms
}

fn refuse(filter: &str, why: &str) -> tera::Error {
    tera::Error::message(format!(
        "a value given to the `{filter}` filter {why} (the value is not shown: it may be a secret)"
    ))
}

/// A control character (a line break above all) ends a line in every
/// line-based format, and no shell quoting makes a NUL safe.
fn no_controls(filter: &str, value: &str) -> TeraResult<()> {
    if value.chars().any(char::is_control) {
        return Err(refuse(filter, "holds a line break or control character"));
    }
    Ok(())
}

pub fn shell(value: &str) -> TeraResult<String> {
    no_controls("shell", value)?;
    Ok(format!("'{}'", value.replace('\'', r"'\''")))
}

pub fn ini(value: &str) -> TeraResult<String> {
    no_controls("ini", value)?;
    if value.trim() != value {
        return Err(refuse(
            "ini",
            "starts or ends with a space, which ini readers strip",
        ));
    }
    Ok(value.replace('$', "$$"))
}

pub fn json(value: &str) -> TeraResult<String> {
    serde_json::to_string(value).map_err(|e| tera::Error::message(e.to_string()))
}

pub fn userinfo(value: &str) -> TeraResult<String> {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(out)
}

pub fn sql(value: &str) -> TeraResult<String> {
    if value.contains('\0') {
        return Err(refuse("sql", "holds a NUL character"));
    }
    Ok(value.replace('\\', "\\\\").replace('\'', "''"))
}

pub fn plain(value: &str) -> TeraResult<String> {
    if value.is_empty()
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err(refuse(
            "plain",
            "is empty or holds a character other than letters, digits and ._~- (this file has no way to escape it)",
        ));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = r#"a'b"c\d$e`f$(id)g;h&i%j#k/l@m:n? o"#;

    fn render(template: &str, name: &str, value: &str) -> TeraResult<String> {
        let mut tera = tera();
        tera.add_raw_template(name, template)?;
        let mut context = tera::Context::new();
        context.insert("v", value);
        tera.render(name, &context)
    }

    #[test]
    fn shell_quoting_survives_a_real_shell() {
        let script = render("printf %s {{ v | shell }}", "x.sh", HOSTILE).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), HOSTILE);
    }

    #[test]
    fn json_and_userinfo_round_trip() {
        let text = render(r#"{"p": {{ v | json }}}"#, "x.json", HOSTILE).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["p"], HOSTILE);
        let encoded = userinfo(HOSTILE).unwrap();
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b))
        );
        let decoded: Vec<u8> = {
            let bytes = encoded.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' {
                    out.push(u8::from_str_radix(&encoded[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            out
        };
        assert_eq!(decoded, HOSTILE.as_bytes());
        assert_eq!(userinfo("é").unwrap(), "%C3%A9");
    }

    #[test]
    fn ini_doubles_dollars_and_refuses_what_it_cannot_hold() {
        assert_eq!(ini("a$b").unwrap(), "a$$b");
        assert!(ini("a\nb = injected").is_err());
        assert!(ini(" padded").is_err());
        assert!(shell("a\nb").is_err());
        assert!(plain("a$b").is_err());
        assert!(plain("").is_err());
        assert_eq!(plain("Ab0-._~").unwrap(), "Ab0-._~");
        assert_eq!(sql(r"it's a \ back").unwrap(), r"it''s a \\ back");
    }

    #[test]
    fn redact_masks_a_secret_in_every_form_and_nothing_else() {
        let secret = r#"Ab"c\d-e$f9Zq"#;
        let text = format!(
            "raw {secret}; upper {}; json {}; cut `{}…`; shell {}; url {}; short 'xy' here",
            secret.to_uppercase(),
            serde_json::to_string(secret).unwrap(),
            &secret[..7],
            shell(secret).unwrap(),
            userinfo(secret).unwrap(),
        );
        let out = redact(&text, [secret, "xy", ""]);
        assert_eq!(
            out,
            "raw <hidden>; upper <hidden>; json \"<hidden>\"; cut `<hidden>…`; shell <hidden>; url <hidden>; short <hidden> here"
        );
        assert_eq!(redact("nothing secret", ["hunter22"]), "nothing secret");
    }

    #[test]
    fn a_tera_error_quoting_a_secret_is_masked() {
        let err = render("a\n{{ v | int }}", "x.conf", "hunter22-x").unwrap_err();
        let shown = error_text(&err, ["hunter22-x"]);
        assert!(
            err.to_string().contains("hunter22-x"),
            "Tera quotes it: {err}"
        );
        assert!(
            !shown.contains("hunter22") && shown.contains("x.conf:2"),
            "{shown}"
        );
    }

    #[test]
    fn no_template_is_html_escaped_and_errors_name_the_line_not_the_value() {
        assert_eq!(render("{{ v }}", "page.html", "<a&b>").unwrap(), "<a&b>");
        let err = render("line1\nkey = {{ v | ini }}\n", "x.conf", "hunter2\nvalue").unwrap_err();
        let text = format!("{err:?} {err}");
        assert!(text.contains("x.conf:2"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
