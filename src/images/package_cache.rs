//! The package cache of one `kolla build` run: a caching HTTP proxy on the
//! host's loopback that every image build of the run goes through (the
//! builder's predefined `http_proxy` argument, which stays out of the
//! build cache's key and out of the image's history). Each package list
//! and each package comes from the archive once per run, however many
//! images install it; everything it holds is in a temporary folder that
//! goes with the run, so no build ever depends on a cache it did not fill.
//!
//! One run is one view of the archive: a file fetched once is served as
//! is for the rest of the run (a release file and the lists it names stay
//! consistent with each other). Only complete `200` answers to `GET` are
//! kept; anything else passes through untouched.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, OnceCell};

/// How long one file may take to come from the archive before the build
/// asking for it is told it failed (apt then says which file).
const FETCH_TIMEOUT: Duration = Duration::from_secs(600);

/// Headers of the archive's answer worth handing on: apt dates the files
/// it keeps by `Last-Modified`.
const KEPT_HEADERS: [header::HeaderName; 2] = [header::CONTENT_TYPE, header::LAST_MODIFIED];

/// What the run's builds fetched, for the summary line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub requests: u64,
    /// Answered from what the run had already fetched.
    pub hits: u64,
    pub bytes_fetched: u64,
    pub bytes_served: u64,
}

impl CacheStats {
    /// One line for the build's summary.
    pub fn human(&self) -> String {
        const MIB: f64 = 1024.0 * 1024.0;
        format!(
            "package cache: {} requests, {} from the cache; {:.1} MiB from the archive, {:.1} MiB served",
            self.requests,
            self.hits,
            self.bytes_fetched as f64 / MIB,
            self.bytes_served as f64 / MIB
        )
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    hits: AtomicU64,
    bytes_fetched: AtomicU64,
    bytes_served: AtomicU64,
}

/// A file the run fetched, on disk in the cache folder.
struct Cached {
    path: PathBuf,
    headers: HeaderMap,
}

/// Why a request was not answered from a cached file.
enum Uncached {
    /// The archive's own answer, handed on as is (a 404 for a file apt may
    /// then ask for by another name, say).
    Answer(Response<Full<Bytes>>),
    Failed(String),
}

struct Shared {
    dir: tempfile::TempDir,
    client: Client<HttpConnector, Empty<Bytes>>,
    /// One cell per URL: the first request fetches, those arriving
    /// meanwhile wait for it rather than fetching the same file again.
    files: Mutex<HashMap<String, Arc<OnceCell<Arc<Cached>>>>>,
    next_file: AtomicU64,
    counters: Counters,
}

/// A running cache; dropping it stops the proxy and removes its files.
pub struct PackageCache {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl PackageCache {
    /// Start the proxy on a free loopback port.
    pub async fn start() -> std::io::Result<PackageCache> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let dir = tempfile::Builder::new()
            .prefix("kolla-package-cache-")
            .tempdir()?;
        let shared = Arc::new(Shared {
            dir,
            client: Client::builder(TokioExecutor::new()).build_http(),
            files: Mutex::new(HashMap::new()),
            next_file: AtomicU64::new(0),
            counters: Counters::default(),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        Ok(PackageCache {
            address,
            shared,
            server,
        })
    }

    /// The proxy's URL, as a build reaching the host's loopback uses it.
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn stats(&self) -> CacheStats {
        let c = &self.shared.counters;
        CacheStats {
            requests: c.requests.load(Ordering::Relaxed),
            hits: c.hits.load(Ordering::Relaxed),
            bytes_fetched: c.bytes_fetched.load(Ordering::Relaxed),
            bytes_served: c.bytes_served.load(Ordering::Relaxed),
        }
    }
}

impl Drop for PackageCache {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors for a moment: the builds' apt retries.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(&shared, request).await) }
            });
            // A connection that breaks off only fails its own requests.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    if request.method() != Method::GET || request.uri().scheme_str() != Some("http") {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "kolla's package cache passes on plain http GET requests only",
        );
    }
    let url = request.uri().to_string();
    let cell = shared
        .files
        .lock()
        .await
        .entry(url.clone())
        .or_default()
        .clone();
    let mut fetched_now = false;
    let outcome = cell
        .get_or_try_init(|| {
            fetched_now = true;
            fetch(shared, &url)
        })
        .await;
    match outcome {
        Ok(cached) => {
            if !fetched_now {
                shared.counters.hits.fetch_add(1, Ordering::Relaxed);
            }
            from_file(shared, cached).await
        }
        Err(Uncached::Answer(response)) => response,
        Err(Uncached::Failed(message)) => plain(
            StatusCode::BAD_GATEWAY,
            &format!("kolla's package cache could not fetch {url}: {message}"),
        ),
    }
}

/// Fetch `url` from the archive into the cache folder.
async fn fetch(shared: &Shared, url: &str) -> Result<Arc<Cached>, Uncached> {
    let request = Request::get(url)
        .header(header::USER_AGENT, "kolla-package-cache")
        .body(Empty::new())
        .map_err(|e| Uncached::Failed(e.to_string()))?;
    let fetch = async {
        let response = shared
            .client
            .request(request)
            .await
            .map_err(|e| Uncached::Failed(e.to_string()))?;
        if response.status() != StatusCode::OK {
            return Err(pass_on(response).await);
        }
        let headers = kept_headers(response.headers());
        let path = shared.dir.path().join(format!(
            "{}",
            shared.next_file.fetch_add(1, Ordering::Relaxed)
        ));
        let length = save(response.into_body(), &path).await?;
        shared
            .counters
            .bytes_fetched
            .fetch_add(length, Ordering::Relaxed);
        Ok(Arc::new(Cached { path, headers }))
    };
    match tokio::time::timeout(FETCH_TIMEOUT, fetch).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Uncached::Failed(format!(
            "no complete answer within {}s",
            FETCH_TIMEOUT.as_secs()
        ))),
    }
}

/// Write a body to `path` as it arrives; its length.
async fn save(mut body: Incoming, path: &std::path::Path) -> Result<u64, Uncached> {
    let failed = |e: &dyn std::fmt::Display| Uncached::Failed(e.to_string());
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| failed(&e))?;
    let mut length = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| failed(&e))?;
        if let Ok(data) = frame.into_data() {
            file.write_all(&data).await.map_err(|e| failed(&e))?;
            length += data.len() as u64;
        }
    }
    file.flush().await.map_err(|e| failed(&e))?;
    Ok(length)
}

/// The archive's answer other than 200, whole, for the build to see.
async fn pass_on(response: Response<Incoming>) -> Uncached {
    let (parts, body) = response.into_parts();
    match body.collect().await {
        Ok(collected) => {
            let mut answer = Response::new(Full::new(collected.to_bytes()));
            *answer.status_mut() = parts.status;
            *answer.headers_mut() = kept_headers(&parts.headers);
            if let Some(location) = parts.headers.get(header::LOCATION) {
                answer
                    .headers_mut()
                    .insert(header::LOCATION, location.clone());
            }
            Uncached::Answer(answer)
        }
        Err(e) => Uncached::Failed(e.to_string()),
    }
}

async fn from_file(shared: &Shared, cached: &Cached) -> Response<Full<Bytes>> {
    match tokio::fs::read(&cached.path).await {
        Ok(data) => {
            shared
                .counters
                .bytes_served
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            let mut response = Response::new(Full::new(Bytes::from(data)));
            *response.headers_mut() = cached.headers.clone();
            response
        }
        Err(e) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("kolla's package cache lost a file it fetched: {e}"),
        ),
    }
}

fn kept_headers(from: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in KEPT_HEADERS {
        if let Some(value) = from.get(&name) {
            kept.insert(name, value.clone());
        }
    }
    kept
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_line_names_hits_and_sizes() {
        let stats = CacheStats {
            requests: 10,
            hits: 7,
            bytes_fetched: 3 * 1024 * 1024,
            bytes_served: 9 * 1024 * 1024,
        };
        assert_eq!(
            stats.human(),
            "package cache: 10 requests, 7 from the cache; 3.0 MiB from the archive, 9.0 MiB served"
        );
    }

    /// An archive on loopback that counts what it is asked: `/missing`
    /// is a 404, anything else its own path as the body.
    async fn archive() -> (SocketAddr, Arc<AtomicU64>) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let address = listener.local_addr().unwrap();
        let asked = Arc::new(AtomicU64::new(0));
        let counter = asked.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let counter = counter.clone();
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let path = request.uri().path().to_string();
                    async move {
                        let mut response = Response::new(Full::new(Bytes::from(path.clone())));
                        if path == "/missing" {
                            *response.status_mut() = StatusCode::NOT_FOUND;
                        }
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (address, asked)
    }

    /// Send `paths` through the proxy on one connection, pipelined as apt
    /// does, and read everything back.
    async fn through(cache: &PackageCache, archive: SocketAddr, paths: &[&str]) -> String {
        use tokio::io::AsyncReadExt;
        let mut stream = tokio::net::TcpStream::connect(cache.address).await.unwrap();
        let mut requests = String::new();
        for (i, path) in paths.iter().enumerate() {
            let close = if i + 1 == paths.len() {
                "Connection: close\r\n"
            } else {
                ""
            };
            requests.push_str(&format!(
                "GET http://{archive}{path} HTTP/1.1\r\nHost: {archive}\r\n{close}\r\n"
            ));
        }
        stream.write_all(requests.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn each_file_comes_from_the_archive_once_and_errors_pass_through() {
        let (archive, asked) = archive().await;
        let cache = PackageCache::start().await.unwrap();
        let first = through(
            &cache,
            archive,
            &["/pool/a.deb", "/pool/b.deb", "/pool/a.deb"],
        )
        .await;
        assert_eq!(first.matches("HTTP/1.1 200 OK").count(), 3, "{first}");
        assert_eq!(first.matches("/pool/a.deb").count(), 2, "{first}");
        assert!(first.contains("/pool/b.deb"), "{first}");
        let second = through(&cache, archive, &["/pool/b.deb", "/missing", "/missing"]).await;
        assert_eq!(second.matches("HTTP/1.1 404").count(), 2, "{second}");
        // a and b once each; the 404 is never kept.
        assert_eq!(asked.load(Ordering::SeqCst), 4);
        let stats = cache.stats();
        assert_eq!((stats.requests, stats.hits), (6, 2), "{stats:?}");
        assert_eq!(stats.bytes_fetched, 22);
    }

    #[tokio::test]
    async fn builds_asking_at_once_share_one_fetch() {
        let (archive, asked) = archive().await;
        let cache = PackageCache::start().await.unwrap();
        let all = futures_util::future::join_all(
            (0..8).map(|_| through(&cache, archive, &["/pool/same.deb"])),
        )
        .await;
        assert!(
            all.iter()
                .all(|a| a.contains("200 OK") && a.contains("/pool/same.deb"))
        );
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn only_plain_http_gets_are_served() {
        let cache = PackageCache::start().await.unwrap();
        use tokio::io::AsyncReadExt;
        let mut stream = tokio::net::TcpStream::connect(cache.address).await.unwrap();
        stream
            .write_all(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    }

    #[test]
    fn only_the_headers_apt_uses_are_kept() {
        let mut from = HeaderMap::new();
        from.insert(header::LAST_MODIFIED, HeaderValue::from_static("x"));
        from.insert(header::SET_COOKIE, HeaderValue::from_static("y"));
        let kept = kept_headers(&from);
        assert_eq!(kept.len(), 1);
        assert!(kept.contains_key(header::LAST_MODIFIED));
    }
}
