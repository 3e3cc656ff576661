//! Engines that do not answer, on loopback, for the tests of kolla's
//! deadlines: a black hole (takes every connection and never says a
//! word: a hung engine, or something else on its port) and a half answer
//! (answers `/_ping` and `/version` as an engine would, then nothing: an
//! engine that hangs after the handshake). Each listens until the test
//! process ends; the connections it holds are never closed, so kolla
//! sees silence, not a reset.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// A listener that answers nothing; `url` is what an inventory names.
pub struct SilentEngine {
    pub url: String,
}

/// Takes every connection and never answers.
pub fn black_hole() -> SilentEngine {
    listen(|stream| {
        // Held open, never read or written.
        std::thread::sleep(Duration::from_secs(24 * 60 * 60));
        drop(stream);
    })
}

/// Answers `/_ping` and `/version` as a Docker engine does, then nothing.
pub fn half_answer() -> SilentEngine {
    listen(|mut stream| {
        while let Some(path) = read_request(&mut stream) {
            let body = if path.ends_with("/_ping") {
                "OK".to_string()
            } else if path.ends_with("/version") {
                r#"{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}"#.to_string()
            } else {
                // Anything else: silence, with the connection held.
                std::thread::sleep(Duration::from_secs(24 * 60 * 60));
                return;
            };
            let response = format!(
                "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if stream.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    })
}

/// A loopback listener handing each connection to `serve` on a thread of
/// its own.
fn listen(serve: fn(TcpStream)) -> SilentEngine {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for a silent engine");
    let port = listener.local_addr().expect("its port").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || serve(stream));
        }
    });
    SilentEngine {
        url: format!("tcp://127.0.0.1:{port}"),
    }
}

/// The path of the next request on `stream` (its headers read; our
/// requests have no body), or None when the client is gone.
fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1)?;
    Some(target.split('?').next().unwrap_or(target).to_string())
}

/// Run `command` to its end and say how long it took; if it is still
/// running after `limit`, kill it and fail the test with what it printed
/// (a hang must fail a test, not stall the suite).
pub fn run_within(
    mut command: std::process::Command,
    limit: Duration,
) -> (std::process::Output, Duration) {
    use std::process::Stdio;
    let started = std::time::Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running after {limit:?}; it printed:\n--- stdout\n{}\n--- stderr\n{}",
                String::from_utf8_lossy(&stdout.join().unwrap_or_default()),
                String::from_utf8_lossy(&stderr.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    (output, started.elapsed())
}
