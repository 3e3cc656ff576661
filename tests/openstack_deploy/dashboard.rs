//! The dashboard as a user meets it: Debian's headless Chromium, driven
//! over WebDriver by Debian's chromedriver (through curl: chromedriver
//! speaks HTTP/1.1 only). A project user logs in through the login form,
//! finds a server by name on the instances page with status Active, and
//! opens the network topology page without a server error. Each page's
//! screenshot is kept under the test's output folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use super::common::{self, Bounded, Cli, eventually};

/// Where the dashboard answers on the all-in-one.
const DASHBOARD: &str = "http://127.0.0.1";

/// A user of the admin project with the member role only (not an
/// administrator), made for the check and deleted after it.
struct ProjectUser<'a> {
    cli: &'a Cli<'a>,
    name: String,
    password: String,
}

impl<'a> ProjectUser<'a> {
    fn create(cli: &'a Cli<'a>) -> ProjectUser<'a> {
        let name = common::unique_name("kolla-test", "web-user");
        let password = format!("{name}-Pw-7");
        cli.ok(&[
            "user",
            "create",
            "--domain",
            "default",
            "--project",
            "admin",
            "--password",
            &password,
            &name,
        ]);
        cli.ok(&[
            "role",
            "add",
            "--user",
            &name,
            "--project",
            "admin",
            "member",
        ]);
        ProjectUser {
            cli,
            name,
            password,
        }
    }
}

impl Drop for ProjectUser<'_> {
    fn drop(&mut self) {
        let _ = self.cli.run(&["user", "delete", &self.name]);
    }
}

/// Log in as a project user and check the instances and network topology
/// pages; `server` is the name of a server of the admin project.
pub fn a_user_logs_in_and_sees_the_server(cli: &Cli, server: &str, shots: &Path) {
    let user = ProjectUser::create(cli);
    let browser = Browser::start();
    let started = Instant::now();
    browser.go("/auth/login/");
    browser.shot(shots, "login");
    assert!(
        browser.title().contains("Login"),
        "the login page: {}",
        browser.title()
    );
    browser.type_into("#id_username", &user.name);
    browser.type_into("#id_password", &user.password);
    browser.click("#loginBtn");
    eventually("the dashboard after the login form", 60, || {
        (!browser.url().contains("/auth/login")).then_some(())
    });
    browser.shot(shots, "after-login");
    let source = browser.source();
    assert!(
        source.contains(&user.name),
        "the page after logging in does not name the user: {}",
        excerpt(&source)
    );

    browser.go("/project/instances/");
    // The row of the server, by name, with its status.
    let row = format!("tr[data-display='{server}']");
    let status = eventually("the server's row on the instances page", 60, || {
        let element = browser.try_find(&row)?;
        let text = browser.text(&element);
        text.contains("Active").then_some(text)
    });
    browser.shot(shots, "instances");
    eprintln!("dashboard: {server}'s row: {}", status.replace('\n', " | "));

    browser.go("/project/network_topology/");
    browser.shot(shots, "network-topology");
    let title = browser.title();
    let source = browser.source();
    assert!(
        title.contains("Network Topology") && !source.contains("Something went wrong"),
        "the network topology page ({title}): {}",
        excerpt(&source)
    );
    eprintln!(
        "dashboard: login, instances and network topology in {:.1}s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
}

/// The start of a page, for a failure's message.
fn excerpt(source: &str) -> String {
    source.chars().take(2000).collect()
}

/// chromedriver and one browser session of it; both end on drop.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

impl Browser {
    fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port for chromedriver")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; tools/setup installs it)");
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
        };
        eventually("chromedriver ready", 30, || {
            let status = browser.call("GET", "/status", None).ok()?;
            (status["ready"] == true).then_some(())
        });
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                // Root in a container: no sandbox; no GPU on the machine.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900"],
            },
        }}});
        let session = browser
            .call("POST", "/session", Some(capabilities))
            .unwrap_or_else(|e| panic!("a Chromium session: {e}"));
        browser.session = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id: {session}"))
            .to_string();
        browser
    }

    /// One WebDriver command; its `value`, or what went wrong.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let mut command = Command::new("curl");
        command.args(["-sS", "--max-time", "90", "-X", method, &url]);
        if let Some(body) = &body {
            command.args(["-H", "Content-Type: application/json", "--data-binary"]);
            command.arg(body.to_string());
        }
        let output = command
            .bounded_output()
            .map_err(|e| format!("curl {method} {path}: {e}"))?;
        let reply: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
            format!(
                "{method} {path}: not JSON ({e}): {}",
                common::describe(&output)
            )
        })?;
        let value = reply["value"].clone();
        if value.get("error").is_some() {
            return Err(format!("{method} {path}: {value}"));
        }
        Ok(value)
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body)
            .unwrap_or_else(|e| panic!("webdriver: {e}"))
    }

    fn go(&self, path: &str) {
        self.session_call(
            "POST",
            "/url",
            Some(json!({"url": format!("{DASHBOARD}{path}")})),
        );
    }

    fn title(&self) -> String {
        self.session_call("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn url(&self) -> String {
        self.session_call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn source(&self) -> String {
        self.session_call("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The element `css` selects, if the page has one.
    fn try_find(&self, css: &str) -> Option<String> {
        let path = format!("/session/{}/element", self.session);
        let found = self
            .call(
                "POST",
                &path,
                Some(json!({"using": "css selector", "value": css})),
            )
            .ok()?;
        // W3C's element reference key.
        found["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .map(str::to_string)
    }

    fn find(&self, css: &str) -> String {
        self.try_find(css)
            .unwrap_or_else(|| panic!("no {css} on {}: {}", self.url(), excerpt(&self.source())))
    }

    fn text(&self, element: &str) -> String {
        self.session_call("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.session_call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        );
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.session_call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    /// The page as it looks, kept as `shots`/`name`.png.
    fn shot(&self, shots: &Path, name: &str) {
        let encoded = self.session_call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is no PNG");
        std::fs::create_dir_all(shots).expect("the screenshots' folder");
        std::fs::write(shots.join(format!("{name}.png")), png).expect("writing a screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The screenshots' folder of a test: beside cargo's build output, named
/// for the test and the time it ran, so that runs never overwrite each
/// other.
pub fn shots_folder(test: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{test}-{stamp}"))
}

/// Requests for the login page through `upgrade`: none may fail.
pub fn login_page_status() -> u16 {
    common::http_request("GET", 80, "/auth/login/", &[], b"", Duration::from_secs(30)).status
}
