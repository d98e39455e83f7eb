//! `urlRef` components: fetched over HTTP(S), cached under `$POLYAXON_HOME/cache/urlref/` by
//! URL and revalidated with the server's `ETag` (or `Last-Modified`) on each use. When the
//! server cannot be reached the cached copy is used, saying how old it is; with no copy, the
//! error says what failed.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::Digest;

/// What is kept beside a cached copy.
#[derive(Default, Serialize, Deserialize)]
struct Meta {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    /// When the copy was last fetched or revalidated (seconds since the epoch).
    checked_at: u64,
}

/// The fetcher the compiler calls, caching under `home`.
pub fn fetcher(home: &Path) -> polyaxonfile::UrlFetcher {
    let dir = home.join("cache").join("urlref");
    polyaxonfile::UrlFetcher(std::sync::Arc::new(move |url: &str| fetch(&dir, url)))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn key(url: &str) -> String {
    sha2::Sha256::digest(url.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `3 h`, `2 days`: how long ago `then` was.
fn age(then: u64) -> String {
    let s = now().saturating_sub(then);
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

enum Answer {
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    NotModified,
}

/// One conditional GET, on a runtime of its own (the compiler calls this from sync code,
/// inside or outside the CLI's runtime).
fn get(url: &str, meta: Option<&Meta>) -> Result<Answer, String> {
    let url = url.to_string();
    let etag = meta.and_then(|m| m.etag.clone());
    let last_modified = meta.and_then(|m| m.last_modified.clone());
    std::thread::scope(|s| {
        s.spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let client = reqwest::Client::builder()
                    .no_proxy()
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(30))
                    .build()
                    .map_err(|e| e.to_string())?;
                let mut req = client.get(&url);
                if let Some(e) = &etag {
                    req = req.header(reqwest::header::IF_NONE_MATCH, e);
                }
                if let Some(l) = &last_modified {
                    req = req.header(reqwest::header::IF_MODIFIED_SINCE, l);
                }
                let resp = req.send().await.map_err(|e| {
                    let mut msg = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        msg = format!("{msg}: {s}");
                        src = s.source();
                    }
                    msg
                })?;
                let status = resp.status();
                if status == reqwest::StatusCode::NOT_MODIFIED {
                    return Ok(Answer::NotModified);
                }
                if !status.is_success() {
                    return Err(format!("the server answered {status}"));
                }
                let header = |h| {
                    resp.headers()
                        .get(h)
                        .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                        .map(str::to_string)
                };
                let (etag, last_modified) = (
                    header(reqwest::header::ETAG),
                    header(reqwest::header::LAST_MODIFIED),
                );
                let bytes = resp.bytes().await.map_err(|e| e.to_string())?.to_vec();
                Ok(Answer::Body {
                    bytes,
                    etag,
                    last_modified,
                })
            })
        })
        .join()
        .map_err(|_| "the download stopped unexpectedly".to_string())?
    })
}

/// Writes `bytes` to `path` whole or not at all.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn fetch(dir: &Path, url: &str) -> Result<polyaxonfile::Fetched, String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!(
            "`urlRef: {url}` is not an http(s) URL; refer to local files with `pathRef`"
        ));
    }
    let k = key(url);
    let copy: PathBuf = dir.join(format!("{k}.yaml"));
    let meta_path = dir.join(format!("{k}.json"));
    let meta: Option<Meta> = copy
        .is_file()
        .then(|| std::fs::read(&meta_path).ok())
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok());
    match get(url, meta.as_ref()) {
        Ok(Answer::Body {
            bytes,
            etag,
            last_modified,
        }) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("creating `{}`: {e}", dir.display()))?;
            write_atomic(&copy, &bytes)
                .map_err(|e| format!("caching `urlRef: {url}` in `{}`: {e}", copy.display()))?;
            let m = Meta {
                url: url.to_string(),
                etag,
                last_modified,
                checked_at: now(),
            };
            let _ = write_atomic(&meta_path, &serde_json::to_vec(&m).unwrap_or_default());
            Ok(polyaxonfile::Fetched {
                path: copy,
                warning: None,
            })
        }
        Ok(Answer::NotModified) => {
            if let Some(mut m) = meta {
                m.checked_at = now();
                let _ = write_atomic(&meta_path, &serde_json::to_vec(&m).unwrap_or_default());
            }
            Ok(polyaxonfile::Fetched {
                path: copy,
                warning: None,
            })
        }
        // The server said no: the cached copy is not used in its place.
        Err(e) if e.starts_with("the server answered") => {
            Err(format!("`urlRef: {url}` could not be fetched: {e}"))
        }
        Err(e) => match meta {
            Some(m) => Ok(polyaxonfile::Fetched {
                path: copy,
                warning: Some(format!(
                    "`urlRef: {url}` could not be reached ({e}); using the copy cached {} ago",
                    age(m.checked_at)
                )),
            }),
            None => Err(format!(
                "`urlRef: {url}` could not be fetched ({e}), and no copy is cached"
            )),
        },
    }
}
