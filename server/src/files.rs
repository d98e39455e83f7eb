//! A run's files under the artifacts root, in upstream's layout: `<root>/<run>/{outputs,
//! events, plxlogs, assets, resources}`. Paths from requests are joined only below the run's
//! directory, never outside it.
//!
//! Logs are JSONL files in `plxlogs/`, a new file every [`LOG_FILE_LINES`] lines; each line is
//! a `V1Log`. Timestamps within a run only go forward (a line stamped no later than the one
//! before is moved one microsecond past it), so `last_time` resumes a read without losing or
//! repeating lines.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::api::{V1ArtifactTree, V1Log, V1Logs, time};
use crate::error::ApiError;

/// Lines per log file, as upstream chunks them.
pub const LOG_FILE_LINES: usize = 6000;
/// Most lines one logs read returns.
pub const LOG_READ_LIMIT: usize = 20_000;

/// The directory of a run's files.
pub fn run_dir(root: &Path, uuid: &str) -> PathBuf {
    root.join(uuid)
}

/// Joins a relative path below `base`, refusing anything that would leave it.
pub fn safe_join(base: &Path, rel: &str) -> Result<PathBuf, ApiError> {
    if rel.contains('\0') {
        return Err(ApiError::BadRequest(
            "the path holds a NUL character".into(),
        ));
    }
    let rel = rel.trim_start_matches('/');
    let mut out = base.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "`{rel}` leaves the run's directory; use a relative path without `..`"
                )));
            }
        }
    }
    links_stay_inside(base, &out, rel)?;
    Ok(out)
}

/// Refuses a path that goes through a symbolic link (a job may leave one in its outputs)
/// resolving outside `base`, or through a dangling one (writing there would create its target).
/// Links that stay inside the run's directory are fine.
fn links_stay_inside(base: &Path, path: &Path, rel: &str) -> Result<(), ApiError> {
    let Ok(resolved_base) = base.canonicalize() else {
        // No run directory yet: nothing under it can be a link.
        return Ok(());
    };
    let Ok(inner) = path.strip_prefix(base) else {
        return Ok(());
    };
    let refuse = || {
        ApiError::BadRequest(format!(
            "`{rel}` goes through a link that leaves the run's directory"
        ))
    };
    let mut at = base.to_path_buf();
    for c in inner.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            // What does not exist yet is created here, inside.
            Err(_) => return Ok(()),
            Ok(m) if m.file_type().is_symlink() => match at.canonicalize() {
                Ok(target) if target.starts_with(&resolved_base) => {}
                _ => return Err(refuse()),
            },
            Ok(_) => {}
        }
    }
    Ok(())
}

/// The most entries an uploaded archive may hold.
pub const MAX_ARCHIVE_ENTRIES: usize = 100_000;

/// Unpacks the tar archive `archive` (gzip-compressed or not) into `dir` (`rel` below the
/// run's directory), and returns the files written, relative to the run's directory. Only
/// files and directories are taken (links and devices are skipped), every path must stay
/// inside `dir`, and the unpacked size is capped at `limit` bytes.
pub fn untar(
    archive: &Path,
    dir: &Path,
    rel: &str,
    overwrite: bool,
    limit: u64,
) -> Result<Vec<String>, ApiError> {
    use std::io::{Read, Seek};
    let bad = |what: String| ApiError::BadRequest(format!("the archive is not usable: {what}"));
    let open = || -> Result<tar::Archive<Box<dyn Read>>, ApiError> {
        let mut f = std::fs::File::open(archive)?;
        let mut magic = [0u8; 2];
        let n = f.read(&mut magic)?;
        f.seek(std::io::SeekFrom::Start(0))?;
        let reader: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] {
            Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(f)))
        } else {
            Box::new(std::io::BufReader::new(f))
        };
        Ok(tar::Archive::new(reader))
    };
    // Every path and the total size checked first: a bad archive writes nothing.
    let inner_path = |path: &Path| -> Result<String, ApiError> {
        let mut inner = String::new();
        for c in path.components() {
            match c {
                Component::Normal(s) => {
                    if !inner.is_empty() {
                        inner.push('/');
                    }
                    inner.push_str(&s.to_string_lossy());
                }
                Component::CurDir => {}
                _ => return Err(bad(format!("`{}` leaves the destination", path.display()))),
            }
        }
        Ok(inner)
    };
    let mut total: u64 = 0;
    let mut count: usize = 0;
    for entry in open()?.entries().map_err(|e| bad(e.to_string()))? {
        let entry = entry.map_err(|e| bad(e.to_string()))?;
        count += 1;
        if count > MAX_ARCHIVE_ENTRIES {
            return Err(ApiError::TooLarge(format!(
                "the archive holds more than {MAX_ARCHIVE_ENTRIES} entries"
            )));
        }
        inner_path(&entry.path().map_err(|e| bad(e.to_string()))?)?;
        if matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) {
            total = total.saturating_add(entry.size());
            if total > limit {
                return Err(ApiError::TooLarge(format!(
                    "the archive unpacks to more than {} MiB",
                    limit >> 20
                )));
            }
        }
    }
    let mut ar = open()?;
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for entry in ar.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let inner = inner_path(&entry.path().map_err(|e| bad(e.to_string()))?)?;
        if inner.is_empty() {
            continue;
        }
        let dest = dir.join(&inner);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                links_stay_inside(dir, &dest, &inner)?;
                std::fs::create_dir_all(&dest)?
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let rel_out = if rel.is_empty() {
                    inner.clone()
                } else {
                    format!("{rel}/{inner}")
                };
                // Never through a link a job left there (one of its directories, or the file,
                // which is replaced).
                if let Some(parent) = dest.parent() {
                    links_stay_inside(dir, parent, &rel_out)?;
                    std::fs::create_dir_all(parent)?;
                }
                if std::fs::symlink_metadata(&dest).is_ok_and(|m| m.file_type().is_symlink()) {
                    std::fs::remove_file(&dest)?;
                }
                if !overwrite && dest.exists() {
                    return Err(ApiError::Conflict(format!(
                        "`{rel_out}` exists; pass `overwrite=true` to replace it"
                    )));
                }
                // Written beside it and renamed once whole: a disk full or a cut archive
                // leaves no half-written file under the name.
                let part = PartFile::beside(&dest)?;
                let size = entry.size();
                let copied = std::io::copy(&mut (&mut entry).take(size), &mut part.file())?;
                let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
                if copied != size {
                    return Err(bad(format!("`{inner}` is cut short")));
                }
                #[cfg(unix)]
                if executable {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(part.path(), std::fs::Permissions::from_mode(0o755))?;
                }
                part.commit()?;
                written.push(rel_out);
            }
            _ => {} // links, devices, fifos: not taken
        }
    }
    Ok(written)
}

/// The files (with sizes) and directories directly under `rel`.
/// A file being written beside its destination (`.NAME.part-RANDOM`), renamed onto it once
/// whole with [`PartFile::commit`]; removed if dropped before.
pub struct PartFile {
    part: PathBuf,
    dest: PathBuf,
    file: Option<std::fs::File>,
}

impl PartFile {
    pub fn beside(dest: &Path) -> std::io::Result<PartFile> {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let part = dest.with_file_name(format!(".{name}.part-{}", crate::store::new_uuid()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part)?;
        Ok(PartFile {
            part,
            dest: dest.to_path_buf(),
            file: Some(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.part
    }

    pub fn file(&self) -> &std::fs::File {
        self.file.as_ref().expect("open until committed")
    }

    /// Renamed onto the destination (a full disk showed in the writes: their space is
    /// allocated as they are made on the filesystems the server is meant for).
    pub fn commit(mut self) -> std::io::Result<()> {
        drop(self.file.take());
        std::fs::rename(&self.part, &self.dest)?;
        self.part = PathBuf::new();
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.part.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

pub fn tree(run: &Path, rel: &str) -> Result<V1ArtifactTree, ApiError> {
    let dir = safe_join(run, rel)?;
    let mut files = BTreeMap::new();
    let mut dirs = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                match e.metadata() {
                    Ok(m) if m.is_dir() => dirs.push(name),
                    Ok(m) => {
                        files.insert(name, m.len());
                    }
                    Err(_) => {}
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && rel.trim_matches('/').is_empty() => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::NotFound(format!("`{rel}` not found")));
        }
        Err(e) => return Err(e.into()),
    }
    dirs.sort();
    Ok(V1ArtifactTree {
        files,
        dirs,
        is_done: true,
    })
}

/// The last `n` log lines of a run (read from its newest log files only).
pub fn tail_logs(run: &Path, n: usize) -> Vec<V1Log> {
    let dir = run.join("plxlogs");
    let files = log_files(&dir);
    let mut out: std::collections::VecDeque<V1Log> = std::collections::VecDeque::new();
    for name in files.iter().rev() {
        let Ok(f) = std::fs::File::open(dir.join(name)) else {
            continue;
        };
        let lines: Vec<V1Log> = std::io::BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| log_line(&l))
            .collect();
        for l in lines.into_iter().rev() {
            if out.len() >= n {
                break;
            }
            out.push_front(l);
        }
        if out.len() >= n {
            break;
        }
    }
    out.into()
}

/// An object of the artifacts store to put in an archive: its path under the archive's
/// directory, its size (from the listing), and its bytes as a blocking reader.
pub struct ArchivedObject {
    pub path: String,
    pub size: u64,
    pub modified: i64,
    pub open: Box<dyn FnOnce() -> std::io::Result<Box<dyn std::io::Read + Send>> + Send>,
}

/// Writes a run's directory `dir` (if there) and `objects` (from the artifacts store) as one
/// gzipped tar archive under `name`, into `out` as it is made.
pub fn tar_gz_to(
    out: impl std::io::Write,
    dir: &Path,
    objects: Vec<ArchivedObject>,
    name: &str,
) -> std::io::Result<()> {
    // On a failure the builder and the encoder, dropped, would still write an archive's end
    // and a gzip trailer: poisoned first, nothing more goes out, and the archive stays visibly
    // cut short.
    let poison = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let out = Poisonable {
        inner: out,
        poison: poison.clone(),
    };
    let enc = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    let mut tar = tar::Builder::new(enc);
    tar.follow_symlinks(false);
    let filled = (|| -> std::io::Result<()> {
        if dir.is_dir() {
            tar.append_dir_all(name, dir)?;
        }
        for o in objects {
            let mut header = tar::Header::new_gnu();
            header.set_size(o.size);
            header.set_mode(0o644);
            header.set_mtime(o.modified.max(0) as u64);
            header.set_entry_type(tar::EntryType::Regular);
            let reader = (o.open)()?;
            let mut exact = ExactReader {
                inner: reader,
                left: o.size,
                path: o.path.clone(),
            };
            tar.append_data(&mut header, format!("{name}/{}", o.path), &mut exact)?;
        }
        Ok(())
    })();
    if let Err(e) = filled {
        poison.store(true, std::sync::atomic::Ordering::SeqCst);
        return Err(e);
    }
    tar.into_inner()?.finish()?.flush()
}

struct Poisonable<W> {
    inner: W,
    poison: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<W: std::io::Write> std::io::Write for Poisonable<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.poison.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other("the archive failed"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.poison.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.flush()
    }
}

/// Reads exactly the size an archive's header promised: an object shorter than listed, or
/// longer (it changed since), is an error that ends the archive, never a silently wrong entry.
/// The inner reader is read to its end, so that its own checks (the store's checksum) run.
struct ExactReader {
    inner: Box<dyn std::io::Read + Send>,
    left: u64,
    path: String,
}

impl std::io::Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(format!(
                    "`{}` grew while the archive was written",
                    self.path
                ))),
            };
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("`{}` shrank while the archive was written", self.path),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A `std::io::Write` whose bytes go, in chunks, to a channel a response body reads: an
/// archive written by a blocking task streams out as it is made, never whole in memory.
pub struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    const CHUNK: usize = 256 << 10;

    pub fn new(tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>) -> Self {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(Self::CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(Self::CHUNK),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

pub fn log_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".jsonl"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn micros(ts: &str) -> Option<i64> {
    polyaxonfile::spec::misc::parse_datetime(ts).map(|t| t.as_microsecond())
}

/// Appends log lines to a run's `plxlogs/`, one writer at a time (callers serialize per run).
pub struct LogWriter {
    dir: PathBuf,
    file: Option<std::fs::File>,
    name: String,
    lines_in_file: usize,
    last_us: i64,
    /// Ids of the batches written lately (from the markers of the last files, and since).
    recent: std::collections::HashSet<String>,
    recent_order: std::collections::VecDeque<String>,
}

/// Batch ids remembered per run: a retry comes soon after its first try.
const RECENT_BATCHES: usize = 4096;

/// The line that opens a batch sent with an id: `{"_batch":"<id>","lines":<n>}`, then its
/// `n` lines. Readers skip it; a reopened writer knows the id was written, and takes back a
/// batch cut short (the server killed in its write) so that its retry writes it whole.
#[derive(Serialize, Deserialize)]
struct BatchMark {
    #[serde(rename = "_batch")]
    batch: String,
    lines: usize,
}

fn batch_mark(line: &str) -> Option<BatchMark> {
    if !line.starts_with("{\"_batch\"") {
        return None;
    }
    serde_json::from_str(line).ok()
}

/// A stored log line; `None` for a batch's mark or a line that does not read.
fn log_line(line: &str) -> Option<V1Log> {
    if line.starts_with("{\"_batch\"") {
        return None;
    }
    serde_json::from_str(line).ok()
}

impl LogWriter {
    /// Opens the run's log directory, continuing its last file. What a killed writer left
    /// there is mended first: a last line cut short, and a batch with an id that did not
    /// get all its lines, are taken back (their senders retry them).
    pub fn open(run: &Path) -> std::io::Result<LogWriter> {
        let dir = run.join("plxlogs");
        std::fs::create_dir_all(&dir)?;
        let files = log_files(&dir);
        let (mut lines_in_file, mut last_us) = (0, 0);
        let mut ids = Vec::new();
        // The batches of the file before the last (a retry may come after a new file began).
        if files.len() >= 2 {
            let before = std::fs::read(dir.join(&files[files.len() - 2]))?;
            for line in before.split(|b| *b == b'\n') {
                if let Some(m) = std::str::from_utf8(line).ok().and_then(batch_mark) {
                    ids.push(m.batch);
                }
            }
        }
        let name = match files.last() {
            Some(last) => {
                let path = dir.join(last);
                let bytes = std::fs::read(&path)?;
                // Whole lines only.
                let mut keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                // The last batch with an id: where it began, how many lines it said, how
                // many followed.
                let mut open_batch: Option<(usize, usize, usize, String)> = None;
                let mut at = 0;
                for line in bytes[..keep].split_inclusive(|b| *b == b'\n') {
                    let text = std::str::from_utf8(line).unwrap_or("").trim_end();
                    if let Some(m) = batch_mark(text) {
                        open_batch = Some((at, m.lines, 0, m.batch));
                    } else if let Some(b) = open_batch.as_mut() {
                        b.2 += 1;
                    }
                    at += line.len();
                }
                if let Some((start, want, got, _)) = &open_batch
                    && got < want
                {
                    keep = *start;
                }
                if keep < bytes.len() {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)?
                        .set_len(keep as u64)?;
                }
                for line in bytes[..keep].split(|b| *b == b'\n') {
                    let Ok(text) = std::str::from_utf8(line) else {
                        continue;
                    };
                    if let Some(m) = batch_mark(text) {
                        ids.push(m.batch);
                    } else if let Some(l) = log_line(text) {
                        lines_in_file += 1;
                        if let Some(t) = l.timestamp.as_deref().and_then(micros) {
                            last_us = last_us.max(t);
                        }
                    }
                }
                last.clone()
            }
            None => "00000001.jsonl".to_string(),
        };
        let mut w = LogWriter {
            dir,
            file: None,
            name,
            lines_in_file,
            last_us,
            recent: std::collections::HashSet::new(),
            recent_order: std::collections::VecDeque::new(),
        };
        for id in ids {
            w.remember(id);
        }
        Ok(w)
    }

    fn remember(&mut self, id: String) {
        if self.recent.insert(id.clone()) {
            self.recent_order.push_back(id);
            while self.recent_order.len() > RECENT_BATCHES {
                if let Some(old) = self.recent_order.pop_front() {
                    self.recent.remove(&old);
                }
            }
        }
    }

    /// Appends lines; a line without a time gets `now_us`. All or nothing: when a write fails
    /// (a full disk) what this call wrote is taken back, so no half line or half batch stays.
    /// A batch with an `id` already written is not written again (a retry).
    pub fn append(
        &mut self,
        lines: &[V1Log],
        now_us: i64,
        id: Option<&str>,
    ) -> std::io::Result<()> {
        if id.is_some_and(|id| self.recent.contains(id)) {
            return Ok(());
        }
        let saved = (self.name.clone(), self.lines_in_file, self.last_us);
        let first = self.dir.join(&self.name);
        let first_len = std::fs::metadata(&first).map(|m| m.len()).ok();
        let result = match id {
            Some(id) => self.append_batch(lines, now_us, id),
            None => self.append_all(lines, now_us),
        };
        if result.is_err() {
            self.file = None;
            let number = |n: &str| n.trim_end_matches(".jsonl").parse::<u64>().unwrap_or(0);
            for n in number(&saved.0) + 1..=number(&self.name) {
                let _ = std::fs::remove_file(self.dir.join(format!("{n:08}.jsonl")));
            }
            match first_len {
                Some(len) => {
                    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&first) {
                        let _ = f.set_len(len);
                    }
                }
                None => {
                    let _ = std::fs::remove_file(&first);
                }
            }
            (self.name, self.lines_in_file, self.last_us) = saved;
        } else if let Some(id) = id {
            self.remember(id.to_string());
        }
        result
    }

    fn next_file(&mut self) {
        let next: u64 = self.name.trim_end_matches(".jsonl").parse().unwrap_or(0) + 1;
        self.name = format!("{next:08}.jsonl");
        self.file = None;
        self.lines_in_file = 0;
    }

    fn stamp(&mut self, l: &V1Log, now_us: i64, buf: &mut Vec<u8>) -> std::io::Result<()> {
        let mut us = l.timestamp.as_deref().and_then(micros).unwrap_or(now_us);
        if us <= self.last_us {
            us = self.last_us + 1;
        }
        self.last_us = us;
        let line = V1Log {
            timestamp: Some(time(us)),
            ..l.clone()
        };
        serde_json::to_writer(&mut *buf, &line)?;
        buf.push(b'\n');
        self.lines_in_file += 1;
        Ok(())
    }

    fn append_all(&mut self, lines: &[V1Log], now_us: i64) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for l in lines {
            if self.lines_in_file >= LOG_FILE_LINES {
                self.flush_to_file(&buf)?;
                buf.clear();
                self.next_file();
            }
            self.stamp(l, now_us, &mut buf)?;
        }
        self.flush_to_file(&buf)
    }

    /// A batch with an id stays in one file, after its mark, written at once: a new file
    /// begins before it when it would not fit (a batch larger than a file makes its file
    /// longer).
    fn append_batch(&mut self, lines: &[V1Log], now_us: i64, id: &str) -> std::io::Result<()> {
        if self.lines_in_file > 0 && self.lines_in_file + lines.len() > LOG_FILE_LINES {
            self.next_file();
        }
        let mut buf = Vec::new();
        serde_json::to_writer(
            &mut buf,
            &BatchMark {
                batch: id.to_string(),
                lines: lines.len(),
            },
        )?;
        buf.push(b'\n');
        for l in lines {
            self.stamp(l, now_us, &mut buf)?;
        }
        self.flush_to_file(&buf)
    }

    fn flush_to_file(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(&self.name))?,
            );
        }
        let f = self.file.as_mut().expect("opened above");
        f.write_all(buf)?;
        f.flush()
    }

    /// Makes what was written durable.
    pub fn sync(&mut self) -> std::io::Result<()> {
        match &self.file {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }
}

/// Reads a run's logs after `last_file`/`last_time` (both from a previous read), at most
/// [`LOG_READ_LIMIT`] lines.
pub fn read_logs(
    run: &Path,
    last_file: Option<&str>,
    last_time: Option<&str>,
) -> Result<V1Logs, ApiError> {
    let dir = run.join("plxlogs");
    let files = log_files(&dir);
    let after_us = last_time.and_then(micros);
    if let (Some(t), None) = (last_time, after_us) {
        return Err(ApiError::BadRequest(format!(
            "`last_time` `{t}` is not a datetime"
        )));
    }
    let start = match last_file {
        Some(f) => files
            .iter()
            .position(|n| n.as_str() >= f)
            .unwrap_or(files.len()),
        None => 0,
    };
    let mut logs = Vec::new();
    let mut last: Option<(String, String)> = None;
    'files: for name in &files[start..] {
        let f = match std::fs::File::open(dir.join(name)) {
            Ok(f) => f,
            Err(_) => continue,
        };
        for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
            let Some(l) = log_line(&line) else {
                continue;
            };
            let us = l.timestamp.as_deref().and_then(micros).unwrap_or(0);
            if after_us.is_some_and(|a| us <= a) {
                continue;
            }
            last = Some((name.clone(), l.timestamp.clone().unwrap_or_default()));
            logs.push(l);
            if logs.len() >= LOG_READ_LIMIT {
                break 'files;
            }
        }
    }
    let (last_file, last_time) = match last {
        Some((f, t)) => (Some(f), Some(t)),
        None => (last_file.map(str::to_string), last_time.map(str::to_string)),
    };
    Ok(V1Logs {
        logs,
        last_time,
        last_file,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        let base = Path::new("/data/run");
        assert_eq!(
            safe_join(base, "outputs/model.pt").unwrap(),
            Path::new("/data/run/outputs/model.pt")
        );
        assert_eq!(
            safe_join(base, "/outputs").unwrap(),
            Path::new("/data/run/outputs")
        );
        assert!(safe_join(base, "../other").is_err());
        assert!(safe_join(base, "a/../../b").is_err());
    }

    #[test]
    fn links_leaving_the_run_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let run = root.path().join("run");
        std::fs::create_dir_all(run.join("outputs/ckpt-2")).unwrap();
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        let link =
            |target: &Path, at: &str| std::os::unix::fs::symlink(target, run.join(at)).unwrap();
        link(outside.path(), "outputs/escape");
        link(&run.join("outputs/ckpt-2"), "outputs/latest");
        link(&outside.path().join("not-yet"), "outputs/dangling");
        link(&outside.path().join("secret"), "outputs/secret.txt");
        for bad in [
            "outputs/escape/secret",
            "outputs/escape",
            "outputs/dangling",
            "outputs/dangling/new.txt",
            "outputs/secret.txt",
        ] {
            let e = safe_join(&run, bad).unwrap_err();
            assert!(
                format!("{e:?}").contains("goes through a link"),
                "{bad}: {e:?}"
            );
        }
        // A link inside the run, and paths that do not exist yet, are fine.
        assert!(safe_join(&run, "outputs/latest/model.pt").is_ok());
        assert!(safe_join(&run, "outputs/new/dir/file").is_ok());
    }

    #[test]
    fn logs_rotate_and_resume_without_loss() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(dir.path()).unwrap();
        let lines: Vec<V1Log> = (0..15_000)
            .map(|i| V1Log {
                value: format!("line {i}"),
                ..V1Log::default()
            })
            .collect();
        // All stamped with the same instant: they are spread one microsecond apart.
        w.append(&lines, 1_700_000_000_000_000, None).unwrap();
        let first = read_logs(dir.path(), None, None).unwrap();
        assert_eq!(first.files.len(), 3);
        assert_eq!(first.logs.len(), 15_000);
        // Resuming from the middle gives exactly the rest.
        let mid = &first.logs[9_999];
        let rest = read_logs(dir.path(), Some("00000002.jsonl"), mid.timestamp.as_deref()).unwrap();
        assert_eq!(rest.logs.len(), 5_000);
        assert_eq!(rest.logs[0].value, "line 10000");
        // A reopened writer continues after the last line.
        let mut w2 = LogWriter::open(dir.path()).unwrap();
        w2.append(
            &[V1Log {
                value: "late".into(),
                ..V1Log::default()
            }],
            0,
            None,
        )
        .unwrap();
        let tail = read_logs(
            dir.path(),
            first.last_file.as_deref(),
            first.last_time.as_deref(),
        )
        .unwrap();
        assert_eq!(tail.logs.len(), 1);
        assert_eq!(tail.logs[0].value, "late");
    }

    fn lines(range: std::ops::Range<usize>) -> Vec<V1Log> {
        range
            .map(|i| V1Log {
                value: format!("line {i}"),
                ..V1Log::default()
            })
            .collect()
    }

    fn values(run: &Path) -> Vec<String> {
        read_logs(run, None, None)
            .unwrap()
            .logs
            .into_iter()
            .map(|l| l.value)
            .collect()
    }

    #[test]
    fn a_batch_with_an_id_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(dir.path()).unwrap();
        w.append(&lines(0..3), 1, Some("a")).unwrap();
        w.append(&lines(0..3), 1, Some("a")).unwrap();
        w.append(&lines(3..4), 1, None).unwrap();
        assert_eq!(values(dir.path()), ["line 0", "line 1", "line 2", "line 3"]);
        // A new writer (the server started again) still knows the batch.
        drop(w);
        let mut w = LogWriter::open(dir.path()).unwrap();
        w.append(&lines(0..3), 1, Some("a")).unwrap();
        w.append(&lines(4..5), 1, Some("b")).unwrap();
        assert_eq!(values(dir.path()).len(), 5);
        assert_eq!(tail_logs(dir.path(), 2)[0].value, "line 3");
    }

    #[test]
    fn a_batch_never_spans_files_and_is_known_after_the_next_began() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(dir.path()).unwrap();
        w.append(&lines(0..LOG_FILE_LINES - 10), 1, None).unwrap();
        w.append(&lines(0..20), 1, Some("spill")).unwrap();
        let files = log_files(&dir.path().join("plxlogs"));
        assert_eq!(files, ["00000001.jsonl", "00000002.jsonl"]);
        let second = std::fs::read_to_string(dir.path().join("plxlogs/00000002.jsonl")).unwrap();
        assert_eq!(second.lines().count(), 21, "the mark and its 20 lines");
        w.append(&lines(0..5), 1, Some("next")).unwrap();
        drop(w);
        // Reopened after a fourth file began: the batch in the third is still known (the
        // batches of the last two files are).
        let mut w = LogWriter::open(dir.path()).unwrap();
        w.append(&lines(0..LOG_FILE_LINES), 1, Some("big")).unwrap();
        w.append(&lines(0..1), 1, None).unwrap();
        drop(w);
        let mut w = LogWriter::open(dir.path()).unwrap();
        w.append(&lines(0..LOG_FILE_LINES), 1, Some("big")).unwrap();
        assert_eq!(
            values(dir.path()).len(),
            LOG_FILE_LINES - 10 + 20 + 5 + LOG_FILE_LINES + 1
        );
    }

    #[test]
    fn what_a_killed_writer_cut_short_is_taken_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(dir.path()).unwrap();
        w.append(&lines(0..2), 1, Some("whole")).unwrap();
        drop(w);
        // The server killed part way through its next batch's write: the mark and one of
        // its three lines, and half of the next line.
        let file = dir.path().join("plxlogs/00000001.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        f.write_all(b"{\"_batch\":\"cut\",\"lines\":3}\n{\"timestamp\":\"2024-01-01T00:00:00.000001+00:00\",\"value\":\"line 2\"}\n{\"timestamp\":\"2024-01")
            .unwrap();
        drop(f);
        let mut w = LogWriter::open(dir.path()).unwrap();
        assert_eq!(values(dir.path()), ["line 0", "line 1"]);
        // Its retry writes it whole, once.
        w.append(&lines(2..5), 1, Some("cut")).unwrap();
        w.append(&lines(2..5), 1, Some("cut")).unwrap();
        assert_eq!(
            values(dir.path()),
            ["line 0", "line 1", "line 2", "line 3", "line 4"]
        );
        // A line cut short without an id is dropped, not glued to the next.
        drop(w);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        f.write_all(b"{\"value\":\"hal").unwrap();
        drop(f);
        let mut w = LogWriter::open(dir.path()).unwrap();
        w.append(&lines(5..6), 1, None).unwrap();
        assert_eq!(values(dir.path()).last().unwrap(), "line 5");
        assert_eq!(values(dir.path()).len(), 6);
    }
}
