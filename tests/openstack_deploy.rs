//! The heavy end-to-end check of the shipped controller role: build the
//! real mariadb, memcached, rabbitmq, keystone and data images, deploy
//! `compose/controller.yml` on this engine, and ask the running Keystone
//! for a token with the generated admin password. Ignored by default
//! (minutes; it needs the Debian mirror for apt and the ports 3306, 5000,
//! 5672 and 11211 free); tools/test and CI run it with --include-ignored.

mod common;

use common::{Deployment, Sandbox, describe};

#[test]
#[ignore = "heavy: builds and deploys real OpenStack services; tools/test runs it"]
fn controller_deploys_and_keystone_issues_tokens() {
    let images = Sandbox::for_project_images("controller", "debian:bookworm");
    assert!(
        images.image("debian:bookworm").is_some(),
        "the base image debian:bookworm is missing: run tools/make-base-image (tools/test does)"
    );
    let output = images.build(&[
        "^(mariadb|memcached|rabbitmq|keystone|data)$",
        "--threads",
        "2",
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let globals = format!("namespace: {}\n", images.namespace);
    let mut d = Deployment::of(images, "controller", "swap", &globals);
    d.compose_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("compose");
    d.env.clear();

    let output = d.kolla("genpwd", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let output = d.kolla("prechecks", &[]);
    assert!(
        output.status.success(),
        "prechecks failed (are the controller's ports free?): {}",
        describe(&output)
    );

    let output = d.kolla("deploy", &["--health-timeout", "180"]);
    assert!(output.status.success(), "{}", describe(&output));
    for service in ["mariadb", "memcached", "rabbitmq", "keystone"] {
        let (_, state) = &d.containers()[&d.container(service)];
        assert_eq!(state, "running", "{service}");
    }

    let passwords = std::fs::read_to_string(d.images.config_dir.join("passwords.yml")).unwrap();
    let admin = passwords
        .lines()
        .find_map(|l| l.strip_prefix("keystone_admin_password: "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("an admin password");
    let body = format!(
        r#"{{"auth":{{"identity":{{"methods":["password"],"password":{{"user":{{"name":"admin","domain":{{"id":"default"}},"password":"{admin}"}}}}}},"scope":{{"project":{{"name":"admin","domain":{{"id":"default"}}}}}}}}}}"#
    );
    let status = token_request(&body);
    assert_eq!(
        status.as_deref(),
        Some("201"),
        "keystone did not issue a token"
    );
    let wrong = body.replace(&admin, "not-the-password");
    assert_eq!(token_request(&wrong).as_deref(), Some("401"));

    // A second deploy finds everything in place.
    let output = d.kolla("deploy", &[]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("up to date, nothing changed"),
        "{}",
        describe(&output)
    );

    let output = d.kolla("destroy", &["--purge-data", "--yes-i-really-mean-it"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(d.containers().is_empty());
}

/// POST a token request to Keystone; the HTTP status code.
fn token_request(body: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect("127.0.0.1:5000").ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .ok()?;
    write!(
        stream,
        "POST /v3/auth/tokens HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1).map(str::to_string)
}
