//! The artifacts store: one seam over a local directory, S3 (and S3-compatible stores: MinIO,
//! Ceph), Google Cloud Storage and Azure Blob Storage, through `object_store`. Every key is a
//! path relative to the store's prefix, checked before use (no `..`, nothing absolute); files go
//! up and down as streams (multipart above a part's size), with retries and backoff from
//! `object_store`'s client, and a SHA-256 of each file written beside it (as object metadata)
//! and verified when it is read back.
//!
//! Configured as a URL: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`
//! (also `azure://`, `wasb[s]://container@account.blob.core.windows.net/prefix` and
//! `abfs[s]://…` as upstream writes them), `file:///dir` or a plain directory. Credentials come
//! from each cloud's standard environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`), and `options`
//! (`endpoint`, `allow_http`, `region`…, the builders' own keys) on top.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The metadata key the SHA-256 of a file is kept under.
const SHA256: &str = "polyaxonsha256";
/// Files at most this large go up in one request; larger ones in parts of this size.
pub const PART: usize = 16 << 20;
/// Parts of one file in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Which backend a store is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Local,
    S3,
    Gcs,
    Azure,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Local => "local",
            Kind::S3 => "s3",
            Kind::Gcs => "gcs",
            Kind::Azure => "azure",
        }
    }
}

/// What went wrong, said for the person who configured the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the artifacts store `{url}`: {why}")]
    Config { url: String, why: String },
    #[error("`{0}` is outside the run's artifacts (a path below it, without `..`)")]
    Outside(String),
    #[error("`{0}` not found")]
    NotFound(String),
    #[error("`{key}` was corrupted on its way: its SHA-256 is {got}, {want} was written")]
    Checksum {
        key: String,
        got: String,
        want: String,
    },
    #[error("the artifacts store `{url}` refused {what}: {why}")]
    Refused {
        url: String,
        what: String,
        why: String,
    },
    #[error("the artifacts store `{url}`, {what}: {why}")]
    Failed {
        url: String,
        what: String,
        why: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// One object under a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The path relative to the prefix listed.
    pub path: String,
    pub size: u64,
    /// Seconds since the epoch.
    pub modified: i64,
}

/// A file being read from the store.
pub struct Download {
    pub size: u64,
    /// The bytes, as they arrive; the stream ends with an error if they do not match the
    /// checksum written with them.
    pub stream: BoxStream<'static, Result<Bytes, StoreError>>,
}

/// The artifacts store of a server (or of a sidecar).
#[derive(Clone, Debug)]
pub struct Store {
    /// As configured (no secret is ever in it), for messages.
    pub url: String,
    pub kind: Kind,
    inner: Arc<dyn ObjectStore>,
    prefix: Key,
    /// The local directory, for a local store.
    local_root: Option<PathBuf>,
    /// Objects larger than this are copied through this process (streamed down and up in
    /// parts) rather than by the store: S3's CopyObject takes 5 GiB at most.
    copy_limit: u64,
}

/// The largest object S3's CopyObject copies.
pub const S3_COPY_LIMIT: u64 = 5 << 30;

fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: 8,
        retry_timeout: Duration::from_secs(180),
    }
}

fn client_options() -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(120))
}

impl Store {
    /// Opens the store `url` (see the module's doc); `options` are the backend builder's
    /// configuration keys (`endpoint`, `allow_http`, `region`, `access_key_id`…). Nothing is
    /// contacted: [`Store::check`] does.
    pub fn open(url: &str, options: &BTreeMap<String, String>) -> Result<Store, StoreError> {
        let bad = |why: String| StoreError::Config {
            url: url.to_string(),
            why,
        };
        // The HTTP clients are rustls with ring, as everywhere in polyaxon.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let text = url.trim();
        let (scheme, rest) = match text.split_once("://") {
            Some((s, r)) => (s.to_ascii_lowercase(), r),
            None => ("file".to_string(), text),
        };
        let split = |rest: &str| -> (String, String) {
            let (b, p) = rest.split_once('/').unwrap_or((rest, ""));
            (b.to_string(), p.trim_matches('/').to_string())
        };
        let (kind, inner, prefix, local_root): (Kind, Arc<dyn ObjectStore>, String, _) =
            match scheme.as_str() {
                "file" => {
                    let dir = PathBuf::from(rest);
                    if !dir.is_absolute() {
                        return Err(bad("a local store is an absolute directory".into()));
                    }
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| bad(format!("cannot create `{}`: {e}", dir.display())))?;
                    let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                        .map_err(|e| bad(e.to_string()))?
                        .with_automatic_cleanup(true);
                    (Kind::Local, Arc::new(fs), String::new(), Some(dir))
                }
                "s3" | "s3a" => {
                    let (bucket, prefix) = split(rest);
                    let mut b = object_store::aws::AmazonS3Builder::from_env()
                        .with_bucket_name(&bucket)
                        .with_retry(retry())
                        .with_client_options(client_options());
                    for (k, v) in options {
                        let key = k
                            .parse::<object_store::aws::AmazonS3ConfigKey>()
                            .map_err(|e| bad(format!("option `{k}`: {e}")))?;
                        b = b.with_config(key, v);
                    }
                    let s = b.build().map_err(|e| bad(e.to_string()))?;
                    (Kind::S3, Arc::new(s), prefix, None)
                }
                "gs" | "gcs" => {
                    let (bucket, prefix) = split(rest);
                    let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                        .with_bucket_name(&bucket)
                        .with_retry(retry())
                        .with_client_options(client_options());
                    for (k, v) in options {
                        let key = k
                            .parse::<object_store::gcp::GoogleConfigKey>()
                            .map_err(|e| bad(format!("option `{k}`: {e}")))?;
                        b = b.with_config(key, v);
                    }
                    let s = b.build().map_err(|e| bad(e.to_string()))?;
                    (Kind::Gcs, Arc::new(s), prefix, None)
                }
                "az" | "azure" | "wasb" | "wasbs" | "abfs" | "abfss" => {
                    // `container@account.host/prefix` (upstream's wasb form) or `container/prefix`.
                    let (head, prefix) = split(rest);
                    let (container, account) = match head.split_once('@') {
                        Some((c, host)) => (
                            c.to_string(),
                            Some(host.split('.').next().unwrap_or(host).to_string()),
                        ),
                        None => (head, None),
                    };
                    let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                        .with_container_name(&container)
                        .with_retry(retry())
                        .with_client_options(client_options());
                    if let Some(a) = account {
                        b = b.with_account(a);
                    }
                    for (k, v) in options {
                        let key = k
                            .parse::<object_store::azure::AzureConfigKey>()
                            .map_err(|e| bad(format!("option `{k}`: {e}")))?;
                        b = b.with_config(key, v);
                    }
                    let s = b.build().map_err(|e| bad(e.to_string()))?;
                    (Kind::Azure, Arc::new(s), prefix, None)
                }
                other => {
                    return Err(bad(format!(
                        "`{other}://` is not a store this server knows: use s3://, gs://, az:// (wasb://, abfs://) or a local directory"
                    )));
                }
            };
        if kind != Kind::Local && prefix.split('/').any(|s| s == "..") {
            return Err(bad("the prefix may not contain `..`".into()));
        }
        Ok(Store {
            url: text.to_string(),
            kind,
            inner,
            prefix: Key::from(prefix.as_str()),
            local_root,
            copy_limit: if kind == Kind::S3 {
                S3_COPY_LIMIT
            } else {
                u64::MAX
            },
        })
    }

    /// The `object_store` under this one (for what the seam has no verb for: benchmarks of
    /// the raw store, tests that corrupt an object).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// The local directory of a local store.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// Writes, reads back and deletes a probe object: the bucket exists and the credentials
    /// may write, read, list and delete. The error names what was refused.
    pub async fn check(&self) -> Result<(), StoreError> {
        let probe = format!(".polyaxon-probe/{}", uuid::Uuid::new_v4().simple());
        let body = Bytes::from_static(b"polyaxon artifacts store probe\n");
        self.put_bytes(&probe, body.clone())
            .await
            .map_err(|e| match e {
                // A put answered 404: the bucket (or container) is not there.
                StoreError::NotFound(_) => StoreError::Refused {
                    url: self.url.clone(),
                    what: "writing a probe object".into(),
                    why: "the bucket (or container) does not exist".into(),
                },
                e => self.refine(e, "writing a probe object"),
            })?;
        let got = self
            .get_bytes(&probe)
            .await
            .map_err(|e| self.refine(e, "reading the probe object back"))?;
        if got != body {
            return Err(StoreError::Failed {
                url: self.url.clone(),
                what: "reading the probe object back".into(),
                why: "it came back different".into(),
            });
        }
        self.list(".polyaxon-probe")
            .await
            .map_err(|e| self.refine(e, "listing"))?;
        self.delete(&probe)
            .await
            .map_err(|e| self.refine(e, "deleting the probe object"))?;
        Ok(())
    }

    fn refine(&self, e: StoreError, what: &str) -> StoreError {
        match e {
            StoreError::Refused { url, why, .. } => StoreError::Refused {
                url,
                what: what.into(),
                why,
            },
            StoreError::Failed { url, why, .. } => StoreError::Failed {
                url,
                what: what.into(),
                why,
            },
            other => other,
        }
    }

    /// The key of `rel` under the prefix; `..`, absolute paths and backslashes are refused.
    pub fn key(&self, rel: &str) -> Result<Key, StoreError> {
        let trimmed = rel.trim_matches('/');
        if rel.starts_with('/') && !trimmed.is_empty() && rel.starts_with("//") {
            return Err(StoreError::Outside(rel.into()));
        }
        let mut parts: Vec<&str> = Vec::new();
        for seg in trimmed.split('/') {
            match seg {
                "" | "." => {}
                ".." => return Err(StoreError::Outside(rel.into())),
                s if s.contains('\\') || s.contains('\0') => {
                    return Err(StoreError::Outside(rel.into()));
                }
                s => parts.push(s),
            }
        }
        let mut key = self.prefix.clone();
        for p in parts {
            key = key.clone().join(p);
        }
        Ok(key)
    }

    fn err(&self, e: object_store::Error, what: &str, rel: &str) -> StoreError {
        use object_store::Error as E;
        match e {
            E::NotFound { .. } => StoreError::NotFound(rel.to_string()),
            E::PermissionDenied { source, .. } | E::Unauthenticated { source, .. } => {
                StoreError::Refused {
                    url: self.url.clone(),
                    what: what.into(),
                    why: chain(source.as_ref()),
                }
            }
            E::Generic { source, .. } => {
                let why = chain(source.as_ref());
                // S3 and Azure say so in a 403 or a "NoSuchBucket"/"ContainerNotFound" reply.
                let refused = [
                    "403",
                    "401",
                    "Forbidden",
                    "AccessDenied",
                    "NoSuchBucket",
                    "ContainerNotFound",
                    "InvalidAccessKeyId",
                    "SignatureDoesNotMatch",
                    "AuthenticationFailed",
                    "does not exist",
                ]
                .iter()
                .any(|m| why.contains(m));
                if refused {
                    StoreError::Refused {
                        url: self.url.clone(),
                        what: what.into(),
                        why,
                    }
                } else {
                    StoreError::Failed {
                        url: self.url.clone(),
                        what: what.into(),
                        why,
                    }
                }
            }
            other => StoreError::Failed {
                url: self.url.clone(),
                what: what.into(),
                why: other.to_string(),
            },
        }
    }

    fn attributes(&self, sha: &str) -> Attributes {
        if self.kind == Kind::Local {
            // The local store keeps no metadata (and has no wire to corrupt a file on).
            return Attributes::new();
        }
        Attributes::from_iter([(Attribute::Metadata(SHA256.into()), sha.to_string())])
    }

    /// Writes `bytes` at `rel`.
    pub async fn put_bytes(&self, rel: &str, bytes: Bytes) -> Result<(), StoreError> {
        let key = self.key(rel)?;
        let sha = hex(&Sha256::digest(&bytes));
        let opts = PutOptions {
            attributes: self.attributes(&sha),
            ..Default::default()
        };
        self.inner
            .put_opts(&key, PutPayload::from_bytes(bytes), opts)
            .await
            .map_err(|e| self.err(e, &format!("writing `{rel}`"), rel))?;
        Ok(())
    }

    /// Writes the local file `path` at `rel`, read as a stream (in parts when large). Returns
    /// its size.
    pub async fn put_file(&self, rel: &str, path: &Path) -> Result<u64, StoreError> {
        let key = self.key(rel)?;
        // One handle for the hash and the bytes: a file renamed over meanwhile cannot send one
        // file's bytes with another's checksum.
        let mut f = tokio::fs::File::open(path).await?;
        let len = f.metadata().await?.len();
        if len as usize <= PART {
            let mut buf = Vec::with_capacity(len as usize);
            f.read_to_end(&mut buf).await?;
            self.put_bytes(rel, Bytes::from(buf)).await?;
            return Ok(len);
        }
        // The checksum of a file sent in parts is known at its end, after the upload began:
        // hashed first (a read of the local file is far cheaper than a second upload).
        let sha = {
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            hex(&h.finalize())
        };
        tokio::io::AsyncSeekExt::seek(&mut f, std::io::SeekFrom::Start(0)).await?;
        let opts = PutMultipartOptions {
            attributes: self.attributes(&sha),
            ..Default::default()
        };
        let what = format!("writing `{rel}`");
        let upload = self
            .inner
            .put_multipart_opts(&key, opts)
            .await
            .map_err(|e| self.err(e, &what, rel))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut sent: u64 = 0;
        let result: Result<(), StoreError> = async {
            loop {
                w.wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| self.err(e, &what, rel))?;
                let mut buf = vec![0u8; PART];
                let mut filled = 0;
                while filled < PART {
                    let n = f.read(&mut buf[filled..]).await?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                buf.truncate(filled);
                sent += filled as u64;
                w.put(Bytes::from(buf));
            }
            Ok(())
        }
        .await;
        let result = result.and_then(|()| {
            if sent == len {
                Ok(())
            } else {
                Err(StoreError::Failed {
                    url: self.url.clone(),
                    what: what.clone(),
                    why: format!("the file changed while it was sent ({len} bytes, then {sent})"),
                })
            }
        });
        match result {
            Ok(()) => {
                w.finish().await.map_err(|e| self.err(e, &what, rel))?;
            }
            Err(e) => {
                // Nothing of it is left in the store.
                let _ = w.abort().await;
                return Err(e);
            }
        }
        Ok(len)
    }

    /// Reads `rel` as a stream, checked against its checksum as it ends.
    pub async fn get(&self, rel: &str) -> Result<Download, StoreError> {
        let key = self.key(rel)?;
        let what = format!("reading `{rel}`");
        let got = self
            .inner
            .get(&key)
            .await
            .map_err(|e| self.err(e, &what, rel))?;
        let want = got
            .attributes
            .get(&Attribute::Metadata(SHA256.into()))
            .map(|v| v.to_string());
        let size = got.meta.size;
        // Checked inline as the chunks pass (no task or channel between the store and the
        // reader). The last chunk is held back until the hash is known: a reader of a
        // corrupted object gets an error instead of its last bytes, so it never holds all the
        // bytes it was promised (`Content-Length`) of a file that is wrong.
        let me = self.clone();
        let rel_owned = rel.to_string();
        let hasher = want.as_ref().map(|_| Sha256::new());
        let state = Some((got.into_stream(), hasher, want, None::<Bytes>));
        let stream = futures_util::stream::unfold(state, move |state| {
            let (me, what, rel) = (me.clone(), what.clone(), rel_owned.clone());
            async move {
                let (mut inner, mut hasher, want, mut held) = state?;
                loop {
                    match inner.next().await {
                        Some(Ok(chunk)) => {
                            if let Some(h) = hasher.as_mut() {
                                h.update(&chunk);
                            }
                            if let Some(prev) = held.replace(chunk) {
                                return Some((Ok(prev), Some((inner, hasher, want, held))));
                            }
                        }
                        Some(Err(e)) => return Some((Err(me.err(e, &what, &rel)), None)),
                        None => {
                            if let (Some(h), Some(want)) = (hasher.take(), want.as_ref()) {
                                let got = hex(&h.finalize());
                                if got != *want {
                                    let err = StoreError::Checksum {
                                        key: rel,
                                        got,
                                        want: want.clone(),
                                    };
                                    return Some((Err(err), None));
                                }
                            }
                            return held.take().map(|last| (Ok(last), None));
                        }
                    }
                }
            }
        })
        .boxed();
        Ok(Download { size, stream })
    }

    /// Reads bytes `start..end` of `rel` (a part of an object: no checksum to check it by).
    pub async fn get_range(&self, rel: &str, start: u64, end: u64) -> Result<Bytes, StoreError> {
        let key = self.key(rel)?;
        if end <= start {
            return Ok(Bytes::new());
        }
        self.inner
            .get_range(&key, start..end)
            .await
            .map_err(|e| self.err(e, &format!("reading `{rel}`"), rel))
    }

    /// Reads `rel` whole (small objects).
    pub async fn get_bytes(&self, rel: &str) -> Result<Bytes, StoreError> {
        let mut d = self.get(rel).await?;
        let mut out = Vec::with_capacity(d.size as usize);
        while let Some(c) = d.stream.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(Bytes::from(out))
    }

    /// Reads `rel` into the local file `dest` (written beside it, then renamed: never half a
    /// file at `dest`).
    pub async fn get_to_file(&self, rel: &str, dest: &Path) -> Result<u64, StoreError> {
        let mut d = self.get(rel).await?;
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let part = dest.with_extension(format!(
            "{}part",
            dest.extension()
                .map(|e| format!("{}.", e.to_string_lossy()))
                .unwrap_or_default()
        ));
        let mut f = tokio::fs::File::create(&part).await?;
        let mut n = 0u64;
        let r: Result<(), StoreError> = async {
            while let Some(c) = d.stream.next().await {
                let c = c?;
                n += c.len() as u64;
                f.write_all(&c).await?;
            }
            f.flush().await?;
            f.sync_all().await?;
            Ok(())
        }
        .await;
        if let Err(e) = r {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
        tokio::fs::rename(&part, dest).await?;
        Ok(n)
    }

    /// The object at `rel`, if there is one.
    pub async fn head(&self, rel: &str) -> Result<Option<Entry>, StoreError> {
        let key = self.key(rel)?;
        match self.inner.head(&key).await {
            Ok(m) => Ok(Some(Entry {
                path: String::new(),
                size: m.size,
                modified: m.last_modified.timestamp(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(e, &format!("reading `{rel}`"), rel)),
        }
    }

    /// Every object below `rel`, with paths relative to it, sorted.
    pub async fn list(&self, rel: &str) -> Result<Vec<Entry>, StoreError> {
        let base = self.key(rel)?;
        let what = format!("listing `{rel}`");
        let base_s = base.to_string();
        let mut out: Vec<Entry> = self
            .inner
            .list(Some(&base))
            .map_err(|e| self.err(e, &what, rel))
            .try_filter_map(|m| {
                let loc = m.location.to_string();
                let p = if base_s.is_empty() {
                    loc
                } else {
                    loc.strip_prefix(&base_s)
                        .map(|s| s.trim_start_matches('/').to_string())
                        .unwrap_or(loc)
                };
                let e = Entry {
                    path: decode_path(&p),
                    size: m.size,
                    modified: m.last_modified.timestamp(),
                };
                futures_util::future::ready(Ok((!e.path.is_empty()).then_some(e)))
            })
            .try_collect()
            .await?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// The directories and files directly below `rel` (names, and the files' entries).
    pub async fn list_dir(&self, rel: &str) -> Result<(Vec<String>, Vec<Entry>), StoreError> {
        let base = self.key(rel)?;
        let what = format!("listing `{rel}`");
        let prefix = (!base.as_ref().is_empty()).then_some(&base);
        let r = self
            .inner
            .list_with_delimiter(prefix)
            .await
            .map_err(|e| self.err(e, &what, rel))?;
        let mut dirs: Vec<String> = r
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(decode_path))
            .collect();
        dirs.sort();
        let mut files: Vec<Entry> = r
            .objects
            .iter()
            .filter_map(|m| {
                Some(Entry {
                    path: decode_path(m.location.filename()?),
                    size: m.size,
                    modified: m.last_modified.timestamp(),
                })
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok((dirs, files))
    }

    /// Deletes the object at `rel`.
    pub async fn delete(&self, rel: &str) -> Result<(), StoreError> {
        let key = self.key(rel)?;
        match self.inner.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(e, &format!("deleting `{rel}`"), rel)),
        }
    }

    /// Deletes every object below `rel`; returns how many there were.
    pub async fn delete_prefix(&self, rel: &str) -> Result<usize, StoreError> {
        let entries = self.list(rel).await?;
        let base = rel.trim_matches('/');
        let n = entries.len();
        futures_util::stream::iter(entries)
            .map(|e| {
                let p = join(base, &e.path);
                async move { self.delete(&p).await }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(n)
    }

    /// Objects larger than `limit` bytes are copied through this process (tests; S3's is
    /// [`S3_COPY_LIMIT`]).
    #[doc(hidden)]
    pub fn with_copy_limit(mut self, limit: u64) -> Store {
        self.copy_limit = limit;
        self
    }

    /// Copies `src` to `dst` through this process: read as a stream (checked against its
    /// checksum as it ends) and written in parts with the same checksum; nothing is left at
    /// `dst` if the read fails.
    async fn copy_through(&self, src: &str, dst: &str) -> Result<(), StoreError> {
        let what = format!("copying `{src}`");
        let head = self
            .inner
            .get_opts(
                &self.key(src)?,
                object_store::GetOptions {
                    head: true,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.err(e, &what, src))?;
        let sha = head
            .attributes
            .get(&Attribute::Metadata(SHA256.into()))
            .map(|v| v.to_string());
        let mut d = self.get(src).await?;
        let opts = PutMultipartOptions {
            attributes: sha
                .as_deref()
                .map(|s| self.attributes(s))
                .unwrap_or_default(),
            ..Default::default()
        };
        let upload = self
            .inner
            .put_multipart_opts(&self.key(dst)?, opts)
            .await
            .map_err(|e| self.err(e, &what, dst))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
        while let Some(chunk) = d.stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(e);
                }
            };
            if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = w.abort().await;
                return Err(self.err(e, &what, dst));
            }
            w.write(&chunk);
        }
        w.finish().await.map_err(|e| self.err(e, &what, dst))?;
        Ok(())
    }

    /// Copies every object below `from` to below `to` (in the store, not through here, but
    /// for objects over the store's copy limit).
    pub async fn copy_prefix(&self, from: &str, to: &str) -> Result<usize, StoreError> {
        let entries = self.list(from).await?;
        let n = entries.len();
        futures_util::stream::iter(entries)
            .map(|e| {
                let (src, dst) = (join(from, &e.path), join(to, &e.path));
                async move {
                    if e.size > self.copy_limit {
                        return self.copy_through(&src, &dst).await;
                    }
                    let (a, b) = (self.key(&src)?, self.key(&dst)?);
                    self.inner
                        .copy(&a, &b)
                        .await
                        .map_err(|e| self.err(e, &format!("copying `{src}`"), &src))
                }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(n)
    }
}

/// A listed key as the path it was written from: `object_store` percent-encodes the
/// characters a key segment may not hold (`~`, `[`, `#`, `%`…), and a listing gives them back
/// encoded; `key()` encodes again, so what is listed must be decoded to be read.
fn decode_path(encoded: &str) -> String {
    let b = encoded.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| encoded.to_string())
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `a/b` of two relative paths (either may be empty).
pub fn join(a: &str, b: &str) -> String {
    let (a, b) = (a.trim_matches('/'), b.trim_matches('/'));
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// An error and its sources, as one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_below_the_prefix() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().display().to_string(), &BTreeMap::new()).unwrap();
        assert_eq!(s.kind, Kind::Local);
        assert_eq!(s.key("a/b/c.txt").unwrap().to_string(), "a/b/c.txt");
        assert_eq!(s.key("/a//b/./c").unwrap().to_string(), "a/b/c");
        for bad in ["../x", "a/../../x", "a\\..\\x", "a/..", "//etc/passwd"] {
            assert!(matches!(s.key(bad), Err(StoreError::Outside(_))), "{bad}");
        }
        let e = Store::open("ftp://x/y", &BTreeMap::new()).unwrap_err();
        assert!(e.to_string().contains("`ftp://`"), "{e}");
        let e = Store::open("relative/dir", &BTreeMap::new()).unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
        let mut o = BTreeMap::new();
        o.insert("no_such_option".to_string(), "1".to_string());
        let e = Store::open("s3://bucket/p", &o).unwrap_err();
        assert!(e.to_string().contains("no_such_option"), "{e}");
        assert_eq!(join("a/", "/b"), "a/b");
        assert_eq!(join("", "b"), "b");
    }
}
