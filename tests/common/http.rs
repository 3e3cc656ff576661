//! A plain HTTP/1.0 client for what the deployed services serve (on
//! loopback, or at a test node's address): no keep-alive, no chunking, a
//! timeout on every read.

/// GET `path` from 127.0.0.1:`port` with a plain HTTP/1.0 request: the
/// body of whatever answer comes.
pub fn http_get(port: &str, path: &str) -> Option<String> {
    let port = port.parse().ok()?;
    let reply = http_request(
        "GET",
        port,
        path,
        &[],
        b"",
        std::time::Duration::from_secs(5),
    );
    (reply.status != 0).then(|| reply.text())
}

/// An HTTP answer: status, headers (names in lower case), body.
pub struct Reply {
    pub status: u16,
    pub headers: std::collections::HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (null when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One HTTP/1.0 request to 127.0.0.1:`port` (no keep-alive, no chunking);
/// status 0 when nothing answers within `timeout`.
pub fn http_request(
    method: &str,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: std::time::Duration,
) -> Reply {
    http_request_to("127.0.0.1", method, port, path, headers, body, timeout)
}

/// `http_request` to `host`:`port`.
pub fn http_request_to(
    host: &str,
    method: &str,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: std::time::Duration,
) -> Reply {
    http_request_paced(host, method, port, path, headers, body, None, timeout)
}

/// How a slow client sends a body: `chunk` bytes, then the pause `pause`
/// says (asked after each chunk, so the client can hurry once it has seen
/// what it waited for).
pub struct Pace<'a> {
    pub chunk: usize,
    pub pause: &'a mut dyn FnMut() -> std::time::Duration,
}

/// `http_request_to`, the body sent at `pace` (all at once if None): an
/// upload that stays in flight for as long as the test needs.
#[allow(clippy::too_many_arguments)]
pub fn http_request_paced(
    host: &str,
    method: &str,
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    pace: Option<Pace<'_>>,
    timeout: std::time::Duration,
) -> Reply {
    use std::io::{Read, Write};
    let failed = Reply {
        status: 0,
        headers: Default::default(),
        body: Vec::new(),
    };
    let Ok(mut stream) = std::net::TcpStream::connect((host, port)) else {
        return failed;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}:{port}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut response = Vec::new();
    let sent = stream.write_all(request.as_bytes()).is_ok()
        && match pace {
            None => stream.write_all(body).is_ok(),
            Some(pace) => body.chunks(pace.chunk.max(1)).all(|chunk| {
                let written = stream.write_all(chunk).is_ok();
                std::thread::sleep((pace.pause)());
                written
            }),
        };
    if !sent || stream.read_to_end(&mut response).is_err() {
        return failed;
    }
    let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return failed;
    };
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: response[split + 4..].to_vec(),
    }
}
