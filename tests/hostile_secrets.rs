//! No secret is ever printed: every kind of passwords.yml the YAML reader
//! refuses and every kind of template error, run through the kolla binary,
//! with everything it says scanned for the passwords. `deploy --dry-run`
//! reads passwords.yml and renders every config template before it reaches
//! any engine, so these tests need none. And `kolla genpwd` on hostile
//! files: through symlinks, read-only files, comments, and a write that
//! fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Bounded, describe, kolla_command, stderr, stdout_of};

/// The passwords of these tests, each with a part no message has by chance.
/// One holds characters every escaping changes; one reads as a number
/// unquoted.
const SECRETS: [&str; 4] = [
    "Sekr1tA-hostile-9qZ",
    "Sekr1tB-hostile-7wX",
    r#"Qu"o\te$'d&<x>-3kV"#,
    "98765432109876",
];

/// A deployment of files only: a config dir, an inventory of one node, and
/// a compose dir with one service rendering `web/web.conf`.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(passwords: &[u8], template: &str) -> Files {
        let dir = tempfile::tempdir().expect("temporary folder");
        let root = dir.path();
        std::fs::create_dir_all(root.join("config")).unwrap();
        std::fs::create_dir_all(root.join("compose/web")).unwrap();
        std::fs::write(root.join("config/passwords.yml"), passwords).unwrap();
        std::fs::write(
            root.join("compose/controller.yml"),
            "services:\n  web:\n    image: busybox:1\n    x-kolla: {config: {src: web/, dest: /etc/web}}\n",
        )
        .unwrap();
        std::fs::write(root.join("compose/web/web.conf"), template).unwrap();
        std::fs::write(
            root.join("inventory.yml"),
            "nodes:\n  local:\n    roles: [controller]\n",
        )
        .unwrap();
        Files { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn kolla(&self, verb: &str) -> Output {
        let root = self.dir.path();
        let mut command = kolla_command();
        command
            .env_remove("KOLLA_INVENTORY")
            .env_remove("KOLLA_COMPOSE_DIR")
            .arg("--config-dir")
            .arg(root.join("config"))
            .arg(verb);
        if verb == "deploy" {
            command
                .arg("--state-dir")
                .arg(root.join("state"))
                .arg("-i")
                .arg(root.join("inventory.yml"))
                .arg("--compose-dir")
                .arg(root.join("compose"))
                .arg("--dry-run");
        }
        command.bounded_output().expect("run the kolla binary")
    }
}

/// passwords.yml holding every secret, quoted: the file the template cases
/// render with.
fn good_passwords() -> String {
    let names = [
        "web_password",
        "db_password",
        "quoted_password",
        "number_password",
    ];
    names
        .iter()
        .zip(SECRETS)
        .map(|(name, secret)| format!("{name}: {}\n", serde_json::to_string(secret).unwrap()))
        .collect()
}

/// What is wrong with `output`, if anything: it must exit 2 and say
/// `phrases` on stderr, and nothing it printed may hold a secret: as it is,
/// in any case, escaped, or any 8 of its characters in a row.
fn refused_without_secrets(case: &str, output: &Output, phrases: &[&str]) -> Option<String> {
    let said = format!("{}\n{}", stdout_of(output), stderr(output));
    if output.status.code() != Some(2) {
        return Some(format!("{case}: expected exit 2\n{}", describe(output)));
    }
    if let Some(phrase) = phrases.iter().find(|p| !stderr(output).contains(*p)) {
        return Some(format!(
            "{case}: stderr lacks {phrase:?}\n{}",
            describe(output)
        ));
    }
    let lower = said.to_lowercase();
    for secret in SECRETS {
        let chars: Vec<char> = secret.chars().collect();
        let mut forms: Vec<String> = chars.windows(8).map(|w| w.iter().collect()).collect();
        forms.push(format!("{secret:?}"));
        forms.push(serde_json::to_string(secret).unwrap());
        if let Some(form) = forms.iter().find(|f| lower.contains(&f.to_lowercase())) {
            return Some(format!(
                "{case}: the output shows {form:?} of a password:\n{said}"
            ));
        }
    }
    None
}

/// Fail with every problem found, not the first one only.
fn assert_none(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} cases failed:\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

#[test]
fn no_passwords_yml_error_shows_a_value() {
    let [a, b, q, n] = SECRETS;
    let quoted = serde_json::to_string(q).unwrap();
    let deep = format!("web_password: {}{a}{}\n", "[".repeat(300), "]".repeat(300));
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "duplicate key",
            format!("web_password: {a}\nweb_password: {b}\n"),
            "line 2",
        ),
        (
            "unclosed double quote",
            format!("web_password: \"{a}\ndb_password: {b}\n"),
            "line 1",
        ),
        (
            "unclosed single quote",
            format!("web_password: '{a}\n"),
            "line 1",
        ),
        (
            "a list",
            format!("web_password: [{a}, {b}]\n"),
            "line 1: web_password",
        ),
        (
            "a block list",
            format!("web_password:\n  - {a}\n  - {b}\n"),
            "line 1: web_password",
        ),
        (
            "a number",
            format!("number_password: {n}\n"),
            "line 1: number_password",
        ),
        (
            "a float",
            format!("number_password: {n}.5e3\n"),
            "line 1: number_password",
        ),
        (
            "null",
            format!("web_password: {a}\ndb_password: ~\n"),
            "line 2: db_password",
        ),
        (
            "nothing",
            format!("web_password: {a}\ndb_password:\n"),
            "line 2: db_password",
        ),
        (
            "bad indentation",
            format!("web_password: {a}\n  db_password: {b}\n"),
            "line 2",
        ),
        (
            "a tab",
            format!("web_password: {a}\n\tdb_password: {b}\n"),
            "line",
        ),
        (
            "a value as a key",
            format!("web_password: {a}: {b}\n"),
            "line 1",
        ),
        (
            "unknown escape",
            format!("web_password: \"{a}\\q{b}\"\n"),
            "line 1",
        ),
        (
            "reserved first character",
            format!("web_password: @{a}\n"),
            "line 1",
        ),
        ("backquote", format!("web_password: `{a}\n"), "line 1"),
        (
            "unclosed list",
            format!("web_password: [{a}, {b}\n"),
            "line 1",
        ),
        (
            "unclosed map",
            format!("web_password: {{x: {a}\n"),
            "line 1",
        ),
        (
            "mismatched brackets",
            format!("web_password: [{a}}}\n"),
            "line 1",
        ),
        (
            "line break",
            format!("web_password: \"{a}\\n{b}\"\n"),
            "line 1: web_password",
        ),
        (
            "literal block",
            format!("web_password: |\n  {a}\n  {b}\n"),
            "line 1: web_password",
        ),
        (
            "control character",
            format!("web_password: \"{a}\\u0007\"\n"),
            "line 1: web_password",
        ),
        (
            "binary tag",
            format!("web_password: !!binary {a}\n"),
            "line 1",
        ),
        ("int tag", format!("web_password: !!int {a}\n"), "line 1"),
        ("bool tag", format!("web_password: !!bool {a}\n"), "line 1"),
        (
            "custom tag on a list",
            format!("web_password: !x [{a}]\n"),
            "line 1",
        ),
        (
            "unknown alias",
            format!("web_password: {a}\ndb_password: *{b}\n"),
            "line 2",
        ),
        (
            "a second document",
            format!("web_password: {a}\n---\ndb_password: {b}\n"),
            "line 3",
        ),
        (
            "a directive mid-file",
            format!("web_password: {a}\n%YAML 1.2\n"),
            "line 2",
        ),
        ("the file is a value", format!("{a}\n"), "line 1"),
        ("the file is a list", format!("- {a}\n- {b}\n"), "line 1"),
        ("the file is quoted", format!("{quoted}\n"), "line 1"),
        ("a list as key", format!("? [{a}]\n: {b}\n"), "line 1"),
        ("too deep", deep, "line 1"),
        (
            "a quoted secret unclosed",
            format!("quoted_password: {quoted}\"\n"),
            "line 1",
        ),
    ];
    let mut problems = Vec::new();
    for (case, text, phrase) in &cases {
        let files = Files::new(text.as_bytes(), "x\n");
        // genpwd fills a null value (below), and refuses the rest.
        let verbs = match case.starts_with("null") || case.starts_with("nothing") {
            true => &["deploy"][..],
            false => &["deploy", "genpwd"],
        };
        for verb in verbs {
            let output = files.kolla(verb);
            let case = format!("{case} ({verb})");
            problems.extend(refused_without_secrets(
                &case,
                &output,
                &["passwords.yml", phrase],
            ));
        }
        let after = std::fs::read_to_string(files.path("config/passwords.yml")).unwrap();
        if verbs.len() == 2 && &after != text {
            problems.push(format!("{case}: genpwd changed a file it refused"));
        }
    }
    // Not text at all: named as a read, with nothing of the file.
    let mut bytes = format!("web_password: {a}").into_bytes();
    bytes.extend([0xff, 0xfe]);
    let files = Files::new(&bytes, "x\n");
    let output = files.kolla("deploy");
    problems.extend(refused_without_secrets(
        "not UTF-8",
        &output,
        &["passwords.yml", "cannot read"],
    ));
    assert_none(problems);
}

/// A map (kolla-ansible's ssh key pairs) is set aside, not refused: genpwd
/// keeps it as it is, and only a template that asks for it is refused,
/// naming its line and the file's, never showing what the map holds.
#[test]
fn a_map_is_refused_only_where_a_template_asks_for_it_never_shown() {
    let [a, b, ..] = SECRETS;
    let maps = [
        ("a map", format!("web_password: {{x: {a}, y: {b}}}\n")),
        (
            "a block map",
            format!("web_password:\n  private_key: '{a}\n\n    {b}'\n  public_key: {b}\n"),
        ),
    ];
    let mut problems = Vec::new();
    for (case, text) in &maps {
        let asks = Files::new(
            text.as_bytes(),
            "x\npw = {{ passwords.web_password | ini }}\n",
        );
        problems.extend(refused_without_secrets(
            &format!("{case} (deploy)"),
            &asks.kolla("deploy"),
            &[
                "web.conf",
                "line 2: asks for passwords.web_password",
                "passwords.yml holds at line 1 as a map",
            ],
        ));
        let output = asks.kolla("genpwd");
        let after = std::fs::read_to_string(asks.path("config/passwords.yml")).unwrap();
        if !output.status.success() || !after.starts_with(text.as_str()) {
            problems.push(format!(
                "{case}: genpwd did not keep the map as it was:\n{after}\n{}",
                describe(&output)
            ));
        }
    }
    assert_none(problems);
}

#[test]
fn no_template_error_shows_a_password() {
    let cases = [
        (
            "syntax error",
            "a\n{{ passwords.web_password | int \n",
            "web.conf:2",
        ),
        ("unknown variable", "{{ nope }}", "web.conf:1"),
        (
            "unknown field",
            "{{ passwords.web_password.x }}",
            "web.conf:1",
        ),
        (
            "unknown filter",
            "{{ passwords.web_password | nope }}",
            "web.conf:1",
        ),
        (
            "int",
            "a\nb\n{{ passwords.web_password | int }}",
            "web.conf:3",
        ),
        (
            "float",
            "{{ passwords.web_password | float }}",
            "web.conf:1",
        ),
        (
            "int of a quoted one",
            "{{ passwords.quoted_password | int }}",
            "web.conf:1",
        ),
        (
            "float of a number",
            "{{ passwords.number_password ~ 'x' | float }}",
            "web.conf:1",
        ),
        (
            "upper",
            "{{ passwords.web_password | upper | int }}",
            "web.conf:1",
        ),
        (
            "lower",
            "{{ passwords.db_password | lower | float }}",
            "web.conf:1",
        ),
        (
            "title",
            "{{ passwords.web_password | title | int }}",
            "web.conf:1",
        ),
        (
            "capitalize",
            "{{ passwords.web_password | capitalize | int }}",
            "web.conf:1",
        ),
        (
            "reverse",
            "{{ passwords.web_password | reverse | int }}",
            "web.conf:1",
        ),
        (
            "truncate",
            "{{ passwords.web_password | truncate(length=12) | int }}",
            "web.conf:1",
        ),
        (
            "split",
            "{{ passwords.web_password | split(pat='-') | first | int }}",
            "web.conf:1",
        ),
        (
            "json",
            "{{ passwords.quoted_password | json | int }}",
            "web.conf:1",
        ),
        (
            "shell",
            "{{ passwords.quoted_password | shell | int }}",
            "web.conf:1",
        ),
        (
            "userinfo",
            "{{ passwords.quoted_password | userinfo | int }}",
            "web.conf:1",
        ),
        (
            "sql",
            "{{ passwords.quoted_password | sql | int }}",
            "web.conf:1",
        ),
        (
            "ini",
            "{{ passwords.quoted_password | ini | int }}",
            "web.conf:1",
        ),
        (
            "escape",
            "{{ passwords.quoted_password | escape | int }}",
            "web.conf:1",
        ),
        (
            "plain refuses",
            "{{ passwords.quoted_password | plain }}",
            "web.conf:1",
        ),
        (
            "throw",
            "{{ throw(message=passwords.web_password) }}",
            "web.conf:1",
        ),
        (
            "throw a quoted one",
            "{{ throw(message=passwords.quoted_password) }}",
            "web.conf:1",
        ),
        ("addition", "{{ passwords.web_password + 1 }}", "web.conf:1"),
        (
            "multiplication",
            "{{ passwords.web_password * 2 }}",
            "web.conf:1",
        ),
        ("division", "{{ passwords.web_password / 2 }}", "web.conf:1"),
        (
            "comparison",
            "{% if passwords.web_password > 2 %}x{% endif %}",
            "web.conf:1",
        ),
        (
            "in",
            "{% if passwords.web_password in 1 %}x{% endif %}",
            "web.conf:1",
        ),
        (
            "index",
            "{{ passwords[passwords.web_password] }}",
            "web.conf:1",
        ),
        (
            "string index",
            "{{ passwords.web_password[99] | int }}",
            "web.conf:1",
        ),
        (
            "test",
            "{% if passwords.web_password is divisible_by(divisor=2) %}x{% endif %}",
            "web.conf:1",
        ),
        (
            "test odd",
            "{% if passwords.web_password is odd %}x{% endif %}",
            "web.conf:1",
        ),
        (
            "loop over a string",
            "{% for k, v in passwords.web_password %}{% endfor %}",
            "web.conf:1",
        ),
        (
            "loop over the map",
            "{% for k, v in passwords %}{{ v | int }}{% endfor %}",
            "web.conf:1",
        ),
        (
            "loop over a number",
            "{% for c in passwords.web_password | int %}{% endfor %}",
            "web.conf:1",
        ),
        (
            "set",
            "{% set x = passwords.web_password | float %}{{ x }}",
            "web.conf:1",
        ),
        (
            "range",
            "{{ range(end=passwords.web_password) }}",
            "web.conf:1",
        ),
        (
            "kwarg",
            "{{ 'x' | truncate(length=passwords.web_password) }}",
            "web.conf:1",
        ),
        (
            "get",
            "{{ passwords.web_password | get(key='x') }}",
            "web.conf:1",
        ),
        (
            "nth",
            "{{ passwords.web_password | nth(n=passwords.web_password) }}",
            "web.conf:1",
        ),
        (
            "round",
            "{{ passwords.web_password | round }}",
            "web.conf:1",
        ),
        ("abs", "{{ passwords.web_password | abs }}", "web.conf:1"),
        (
            "join",
            "{{ passwords.web_password | join(sep=',') }}",
            "web.conf:1",
        ),
        (
            "pluralize",
            "{{ passwords.web_password | pluralize }}",
            "web.conf:1",
        ),
        (
            "include a missing template",
            "{% include \"missing.conf\" %}",
            "",
        ),
        (
            "extend a missing template",
            "{% extends \"missing.conf\" %}",
            "",
        ),
        (
            "unclosed block",
            "{% if passwords.web_password %}x",
            "web.conf:1",
        ),
    ];
    let mut problems = Vec::new();
    for (case, template, phrase) in cases {
        let files = Files::new(good_passwords().as_bytes(), template);
        let output = files.kolla("deploy");
        problems.extend(refused_without_secrets(
            case,
            &output,
            &["web.conf", "service web", phrase],
        ));
    }
    assert_none(problems);
}

/// A passwords.yml as an operator keeps it: comments, an order of their
/// own, a kept value that needs quoting, a key left empty and one null.
const OPERATOR_FILE: &str = r#"# Our secrets: rotate every quarter.
keystone_admin_password: "kept \"as is\" $x"   # set by hand
# Filled by genpwd:
rabbitmq_password:   # for the queue
memcache_secret_key: ~
database_password: ""
"#;

/// The values of `text` as kolla reads them.
fn read(text: &str) -> std::collections::BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yml");
    std::fs::write(&path, text).unwrap();
    kolla::config::passwords::load(&path).unwrap()
}

#[test]
fn genpwd_writes_through_a_symlink_keeping_comments_order_and_mode() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let files = Files::new(b"", "x\n");
    let real = files.path("secrets/real.yml");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::write(&real, OPERATOR_FILE).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = files.path("config/passwords.yml");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("../secrets/real.yml", &link).unwrap();

    let output = files.kolla("genpwd");
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "genpwd replaced the symlink"
    );
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("../secrets/real.yml")
    );
    let text = std::fs::read_to_string(&real).unwrap();
    let meta = std::fs::metadata(&real).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640, "mode not kept");
    let values = read(&text);
    assert_eq!(values["keystone_admin_password"], r#"kept "as is" $x"#);
    // The operator's lines stay, in their order; the three unset keys get
    // a value on their own line, comment kept; the template's other
    // names come after.
    let lines: Vec<&str> = text.lines().collect();
    let original: Vec<&str> = OPERATOR_FILE.lines().collect();
    assert_eq!(lines[..3], original[..3]);
    assert_eq!(lines[2], "# Filled by genpwd:", "{text}");
    for (n, name) in [
        (4, "rabbitmq_password"),
        (5, "memcache_secret_key"),
        (6, "database_password"),
    ] {
        let value = &values[name];
        assert_eq!(value.len(), 40, "{name}");
        assert!(value.chars().all(|c| c.is_ascii_alphanumeric()), "{name}");
        assert!(
            lines[n - 1].starts_with(&format!("{name}: \"{value}\"")),
            "{text}"
        );
    }
    assert!(lines[3].ends_with("# for the queue"), "{text}");
    let template = kolla::config::passwords::TEMPLATE;
    let added: Vec<&str> = lines[original.len()..]
        .iter()
        .map(|l| l.split(':').next().unwrap())
        .collect();
    let expected: Vec<&str> = template
        .lines()
        .filter_map(|l| l.strip_suffix(':'))
        .filter(|name| !OPERATOR_FILE.contains(&format!("\n{name}:")))
        .collect();
    assert_eq!(added, expected, "{text}");
    assert!(stdout_of(&output).contains(&format!("{} passwords generated", 3 + expected.len())));

    // Nothing left to fill: the file is not even rewritten.
    let inode = meta.ino();
    let output = files.kolla("genpwd");
    assert!(
        stdout_of(&output).contains("0 passwords generated"),
        "{}",
        describe(&output)
    );
    assert_eq!(std::fs::read_to_string(&real).unwrap(), text);
    assert_eq!(std::fs::metadata(&real).unwrap().ino(), inode);
}

#[test]
fn genpwd_refuses_a_file_no_one_may_write_even_as_root() {
    use std::os::unix::fs::PermissionsExt;
    let files = Files::new(OPERATOR_FILE.as_bytes(), "x\n");
    let path = files.path("config/passwords.yml");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let output = files.kolla("genpwd");
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let said = stderr(&output);
    assert!(
        said.contains("read-only") && said.contains("0444"),
        "{said}"
    );
    assert!(said.contains("passwords.yml"), "{said}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), OPERATOR_FILE);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o444
    );
}

#[test]
fn a_failed_write_is_named_a_write_and_leaves_the_file_as_it_was() {
    let files = Files::new(OPERATOR_FILE.as_bytes(), "x\n");
    let path = files.path("config/passwords.yml");
    // A file size limit of 0 makes every write fail (EFBIG), root's too;
    // the signal that would go with it is ignored, as kolla inherits.
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 0; exec \"$0\" --config-dir \"$1\" genpwd")
        .arg(env!("CARGO_BIN_EXE_kolla"))
        .arg(files.path("config"))
        .bounded_output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let said = stderr(&output);
    assert!(said.contains("passwords.yml: cannot write"), "{said}");
    assert!(!said.contains("cannot read"), "{said}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), OPERATOR_FILE);
    let left: Vec<String> = std::fs::read_dir(files.path("config"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["passwords.yml"], "a temporary file was left");
}
