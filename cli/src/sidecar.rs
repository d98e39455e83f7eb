//! `polyaxon sidecar`: beside a run's main container in its pod, sends what the run writes in
//! its artifacts directory (outputs, event files, assets, anything but the code the init steps
//! fetched) to the server every few seconds, and once more when the pod is told to stop (the
//! main container ended, or the run was stopped). The server keeps them in its artifacts store
//! (a bucket, or its disk) and ingests the event files' metrics from there: no volume is
//! shared between the server and the pods.
//!
//! A file is sent again whenever its size or modification time changed since it was last sent
//! whole; one that could not be sent (the server or its store out of reach) stays to send, so
//! an outage delays files and loses none. Batches are gzipped tar archives written to a
//! temporary file and streamed from it: no file is held in memory.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::client::{Client, RunRef};

/// How a sidecar works.
#[derive(Clone, Debug)]
pub struct Options {
    /// The run's artifacts directory (`POLYAXON_RUN_ARTIFACTS_PATH`).
    pub dir: PathBuf,
    /// Between passes.
    pub interval: Duration,
    /// Top-level entries of `dir` never sent (the code the init steps put there).
    pub exclude: Vec<String>,
    /// How long the last pass may take, with its retries, once told to stop (within the pod's
    /// termination grace period).
    pub final_timeout: Duration,
    /// The most bytes of files in one archive (a larger file goes alone).
    pub batch_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dir: PathBuf::new(),
            interval: Duration::from_secs(5),
            exclude: vec!["code".into()],
            final_timeout: Duration::from_secs(20),
            batch_bytes: 64 << 20,
        }
    }
}

/// What a file was when it was read to be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified_ns: i128,
}

/// A file that changed since it was last sent.
#[derive(Clone, Debug)]
struct Changed {
    rel: String,
    path: PathBuf,
    stamp: Stamp,
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Files sent.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Files that changed and could not be sent (sent by a later pass).
    pub pending: usize,
    /// Why the first batch that failed did.
    pub error: Option<String>,
}

pub struct Sidecar {
    client: Client,
    run: RunRef,
    opts: Options,
    sent: HashMap<String, Stamp>,
}

impl Sidecar {
    pub fn new(client: Client, run: RunRef, opts: Options) -> Sidecar {
        Sidecar {
            client,
            run,
            opts,
            sent: HashMap::new(),
        }
    }

    /// Sends what changed: batch after batch, each answered before the next. A batch that
    /// fails leaves its files (and the rest) to the next pass.
    pub async fn pass(&mut self) -> Pass {
        let changed = changed(&self.opts.dir, &self.opts.exclude, &self.sent);
        let mut pass = Pass::default();
        let mut events = false;
        let mut batches: Vec<Vec<Changed>> = Vec::new();
        let mut size = 0u64;
        for c in changed {
            if batches.is_empty() || size + c.stamp.len > self.opts.batch_bytes {
                batches.push(Vec::new());
                size = 0;
            }
            size += c.stamp.len;
            batches.last_mut().expect("pushed").push(c);
        }
        let mut left = batches.iter().map(Vec::len).sum::<usize>();
        for batch in batches {
            match self.send(&batch).await {
                Ok(stamps) => {
                    left -= batch.len();
                    for (c, stamp) in batch.iter().zip(stamps) {
                        let Some(stamp) = stamp else { continue };
                        pass.files += 1;
                        pass.bytes += stamp.len;
                        events |= c.rel.starts_with("events/");
                        self.sent.insert(c.rel.clone(), stamp);
                    }
                }
                Err(e) => {
                    pass.error = Some(format!("{e:#}"));
                    break;
                }
            }
        }
        pass.pending = left;
        // The metrics of the event files sent, ingested now rather than at the agent's next
        // sync (both may: the server takes each line once).
        if events && let Err(e) = self.client.sync_event_files(&self.run, false).await {
            tracing::warn!("the server did not ingest the event files yet: {e}");
        }
        pass
    }

    /// One batch as a tar.gz in a temporary file, uploaded; the stamps of the files as they
    /// were read (a file that grew meanwhile is sent again by the next pass).
    async fn send(&self, batch: &[Changed]) -> Result<Vec<Option<Stamp>>> {
        let batch = batch.to_vec();
        let (tmp, stamps) = tokio::task::spawn_blocking(move || archive(&batch))
            .await
            .context("archiving a batch")??;
        if stamps.iter().all(Option::is_none) {
            return Ok(stamps);
        }
        self.client
            .upload_artifacts_file(&self.run, None, tmp.path())
            .await?;
        Ok(stamps)
    }

    /// Passes every `interval` until `stop` resolves, then a last one, retried until it sends
    /// everything or `final_timeout` passes. The last pass's outcome.
    pub async fn run(
        mut self,
        stop: impl std::future::Future<Output = ()>,
        mut on_pass: impl FnMut(&Pass),
    ) -> Pass {
        tokio::pin!(stop);
        loop {
            let p = self.pass().await;
            on_pass(&p);
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(self.opts.interval) => {}
            }
        }
        let deadline = Instant::now() + self.opts.final_timeout;
        let mut wait = Duration::from_millis(250);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let p = match tokio::time::timeout(left, self.pass()).await {
                Ok(p) => p,
                Err(_) => Pass {
                    pending: changed(&self.opts.dir, &self.opts.exclude, &self.sent).len(),
                    error: Some(format!(
                        "the last pass did not end within {} s",
                        self.opts.final_timeout.as_secs_f64()
                    )),
                    ..Pass::default()
                },
            };
            on_pass(&p);
            if p.error.is_none() || Instant::now() + wait >= deadline {
                return p;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(4));
        }
    }
}

/// The files below `dir` (no links followed: the job can write anything there; not the
/// top-level entries in `exclude`) that are not sent as they are now, by path.
fn changed(dir: &Path, exclude: &[String], sent: &HashMap<String, Stamp>) -> Vec<Changed> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if rel.is_empty() && exclude.contains(&name) {
                continue;
            }
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if meta.is_dir() {
                stack.push((e.path(), child));
            } else if meta.is_file() {
                let stamp = stamp_of(&meta);
                if sent.get(&child) != Some(&stamp) {
                    out.push(Changed {
                        rel: child,
                        path: e.path(),
                        stamp,
                    });
                }
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

fn stamp_of(meta: &std::fs::Metadata) -> Stamp {
    let modified_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    Stamp {
        len: meta.len(),
        modified_ns,
    }
}

/// Writes the files into a tar.gz beside the system's temporary files, with the stamp of each
/// as it was opened (none for a file removed since it was listed). Each file is taken as it
/// is when opened (its size then; what is appended later is the next pass's), and one that
/// shrinks while read is padded in the archive and sent again (its stamp changed).
fn archive(batch: &[Changed]) -> Result<(tempfile::NamedTempFile, Vec<Option<Stamp>>)> {
    let tmp = tempfile::Builder::new()
        .prefix("polyaxon-sidecar-")
        .suffix(".tar.gz")
        .tempfile()
        .context("creating the batch's archive")?;
    let out = std::io::BufWriter::new(tmp.reopen()?);
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut stamps = Vec::with_capacity(batch.len());
    for c in batch {
        let f = match std::fs::File::open(&c.path) {
            Ok(f) => f,
            // Removed since it was listed: nothing to send (what was sent of it stays).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                stamps.push(None);
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("reading `{}`", c.path.display())),
        };
        let stamp = stamp_of(&f.metadata()?);
        let mut h = tar::Header::new_gnu();
        h.set_size(stamp.len);
        h.set_mode(0o644);
        h.set_mtime((stamp.modified_ns / 1_000_000_000).max(0) as u64);
        h.set_entry_type(tar::EntryType::Regular);
        let data = Exactly {
            inner: f.take(stamp.len),
            left: stamp.len,
        };
        tar.append_data(&mut h, &c.rel, data)
            .with_context(|| format!("archiving `{}`", c.rel))?;
        stamps.push(Some(stamp));
    }
    let gz = tar.into_inner()?;
    let mut out = gz.finish()?;
    out.flush()?;
    Ok((tmp, stamps))
}

/// `left` bytes of `inner`, padded with zeros if it ends sooner (a file cut while read).
struct Exactly<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = match self.inner.read(&mut buf[..want])? {
            0 => {
                buf[..want].fill(0);
                want
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// The run of a pod: `POLYAXON_RUN_INSTANCE` (`owner.project.runs.uuid`).
pub fn run_of_instance(instance: &str) -> Result<RunRef> {
    let parts: Vec<&str> = instance.split('.').collect();
    match parts.as_slice() {
        [owner, project, "runs", uuid]
            if !owner.is_empty() && !project.is_empty() && !uuid.is_empty() =>
        {
            Ok(RunRef {
                owner: owner.to_string(),
                project: project.to_string(),
                uuid: uuid.to_string(),
            })
        }
        _ => Err(crate::error::UserError::new(format!(
            "`POLYAXON_RUN_INSTANCE` is `{instance}`, not `owner.project.runs.uuid`"
        ))
        .hint("the executor sets it in a run's pods; elsewhere, give `-p owner/project --uid UUID`")
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpack(tmp: &tempfile::NamedTempFile) -> Vec<(String, Vec<u8>)> {
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(tmp.path()).unwrap());
        let mut a = tar::Archive::new(gz);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let p = e.path().unwrap().to_string_lossy().into_owned();
                let mut b = Vec::new();
                e.read_to_end(&mut b).unwrap();
                (p, b)
            })
            .collect()
    }

    #[test]
    fn what_changed_is_found_links_and_exclusions_are_not() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("outputs/model")).unwrap();
        std::fs::create_dir_all(root.join("events/metric")).unwrap();
        std::fs::create_dir_all(root.join("code")).unwrap();
        std::fs::write(root.join("outputs/model/w.bin"), b"weights").unwrap();
        std::fs::write(
            root.join("events/metric/loss.plx"),
            b"step|timestamp|metric",
        )
        .unwrap();
        std::fs::write(root.join("code/train.py"), b"print(1)").unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("elsewhere");
        std::fs::write(&secret, b"not the run's").unwrap();
        std::os::unix::fs::symlink(&secret, root.join("outputs/link")).unwrap();
        let exclude = vec!["code".to_string()];
        let mut sent = HashMap::new();
        let found = changed(root, &exclude, &sent);
        let rels: Vec<&str> = found.iter().map(|c| c.rel.as_str()).collect();
        assert_eq!(rels, ["events/metric/loss.plx", "outputs/model/w.bin"]);
        for c in &found {
            sent.insert(c.rel.clone(), c.stamp);
        }
        assert!(changed(root, &exclude, &sent).is_empty(), "all sent");
        // A file that grows is found again; the others are not.
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(root.join("events/metric/loss.plx"))
            .unwrap();
        f.write_all(b"\n1|2026-12-04T00:00:00Z|0.5").unwrap();
        let again = changed(root, &exclude, &sent);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].rel, "events/metric/loss.plx");
    }

    #[test]
    fn a_batch_takes_each_file_as_it_was_opened() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("outputs")).unwrap();
        std::fs::write(d.path().join("outputs/a.txt"), b"alpha").unwrap();
        std::fs::write(d.path().join("outputs/b.txt"), b"beta").unwrap();
        let found = changed(d.path(), &[], &HashMap::new());
        // Grown after it was listed: the archive has it as it is when read, and says so.
        std::fs::write(d.path().join("outputs/a.txt"), b"alpha and more").unwrap();
        // Removed after it was listed: not in the archive.
        std::fs::remove_file(d.path().join("outputs/b.txt")).unwrap();
        let (tmp, stamps) = archive(&found).unwrap();
        assert_eq!(stamps[0].map(|s| s.len), Some(14));
        assert_eq!(stamps[1], None, "not there any more");
        assert_eq!(
            unpack(&tmp),
            [("outputs/a.txt".to_string(), b"alpha and more".to_vec())]
        );
    }

    #[test]
    fn a_file_cut_while_read_is_padded_not_a_broken_archive() {
        let mut r = Exactly {
            inner: std::io::Cursor::new(b"abc".to_vec()),
            left: 6,
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc\0\0\0");
    }

    #[test]
    fn the_pods_run_is_read_from_its_instance() {
        let r = run_of_instance("acme.vision.runs.0123abcd").unwrap();
        assert_eq!(
            (r.owner.as_str(), r.project.as_str(), r.uuid.as_str()),
            ("acme", "vision", "0123abcd")
        );
        for bad in ["acme.vision.0123", "acme..runs.x", "a.b.runs.c.d", ""] {
            let e = run_of_instance(bad).unwrap_err().to_string();
            assert!(e.contains("owner.project.runs.uuid"), "{bad}: {e}");
        }
    }
}
