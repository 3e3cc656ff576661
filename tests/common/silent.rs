//! Engines that do not answer, on loopback, for the tests of kolla's
//! deadlines: a black hole (takes every connection and never says a
//! word: a hung engine, or something else on its port) and a half answer
//! (answers `/_ping` and `/version` as an engine would, then nothing: an
//! engine that hangs after the handshake). Each listens until the test
//! process ends; the connections it holds are closed only by kolla, so
//! kolla sees silence, not a reset. `Pending` records the requests half
//! answers leave hanging, for the tests of how many nodes kolla works on
//! at once.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A listener that answers nothing; `url` is what an inventory names.
pub struct SilentEngine {
    pub url: String,
}

/// Takes every connection and never answers.
pub fn black_hole() -> SilentEngine {
    listen(Arc::new(move |mut stream| {
        // Held open, never written, until kolla gives up on it.
        wait_for_close(&mut stream);
    }))
}

/// Requests half answers left hanging: when each began, and on which
/// node (the index each half answer was made with).
#[derive(Default)]
pub struct Pending {
    began: Mutex<Vec<(Instant, usize)>>,
}

impl Pending {
    /// The most requests left hanging that began within `window` of one
    /// another. A node's request hangs until kolla's deadline gives up on
    /// it, so with a window shorter than that deadline this is how many
    /// nodes kolla waited on at once (when kolla closes the connection
    /// lags behind, so counting open ones would overcount).
    pub fn most_within(&self, window: Duration) -> usize {
        let mut began: Vec<Instant> = self.all().into_iter().map(|(t, _)| t).collect();
        began.sort();
        (0..began.len())
            .map(|i| {
                began[i..]
                    .iter()
                    .take_while(|t| **t - began[i] < window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// The nodes whose engine was ever left with a request.
    pub fn reached(&self) -> BTreeSet<usize> {
        self.all().into_iter().map(|(_, node)| node).collect()
    }

    fn all(&self) -> Vec<(Instant, usize)> {
        self.began.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Answers `/_ping` and `/version` as a Docker engine does, then nothing.
pub fn half_answer() -> SilentEngine {
    half_answer_counted(0, Arc::new(Pending::default()))
}

/// A half answer that counts each request it leaves hanging in `pending`
/// as node `index`'s, until kolla closes the connection.
pub fn half_answer_counted(index: usize, pending: Arc<Pending>) -> SilentEngine {
    listen(Arc::new(move |mut stream| {
        while let Some(path) = read_request(&mut stream) {
            let body = if path.ends_with("/_ping") {
                "OK".to_string()
            } else if path.ends_with("/version") {
                r#"{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}"#.to_string()
            } else {
                // Anything else: silence, with the connection held.
                pending
                    .began
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((Instant::now(), index));
                wait_for_close(&mut stream);
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
    }))
}

/// Until the client closes `stream` (whatever it sends is dropped).
fn wait_for_close(stream: &mut TcpStream) {
    let mut buffer = [0u8; 512];
    while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
}

type Serve = Arc<dyn Fn(TcpStream) + Send + Sync>;

/// A loopback listener handing each connection to `serve` on a thread of
/// its own.
fn listen(serve: Serve) -> SilentEngine {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for a silent engine");
    let port = listener.local_addr().expect("its port").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let serve = Arc::clone(&serve);
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
