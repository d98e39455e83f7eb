//! Metric event files as `polyaxon.tracking` writes them (`events/metric/<name>.plx`: a
//! `step|timestamp|metric` header, then one `step|timestamp|value` line per point), read as
//! they grow. The library writes `"\n" + line`, so a line is only known to be complete once
//! the next one starts, or the job has ended.
//!
//! Both the CLI (files of jobs on its machine) and the server (files of its artifacts: on its
//! disk, written by pods that share its volume, or objects of its store, sent by the sidecar of
//! a pod) ingest them with this reader.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// New points of one file: the byte range they came from and `(step, timestamp, value)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Chunk {
    pub name: String,
    pub start: u64,
    pub end: u64,
    pub points: Vec<(Option<i64>, String, f64)>,
}

/// At most this much of a file is read per call (the rest comes with the next one).
pub const MAX_READ: usize = 4 << 20;

/// The new complete lines of each `.plx` file in `dir` past its offset in `offsets` (files
/// not there are read from their start). `at_end` also takes a last line without a newline.
/// Chunks without points (a header alone) still say how far the file was read. Only regular
/// files with a usable series name are read (no symbolic links: the files may come from jobs
/// that can write anything there), at most `MAX_READ` bytes of each per call while the job
/// runs, and all of what is left at its end (nothing is left behind).
pub fn read_new(dir: &Path, offsets: &BTreeMap<String, u64>, at_end: bool) -> Vec<Chunk> {
    let mut out = Vec::new();
    if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        return out;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut files: Vec<_> = entries.flatten().collect();
    files.sort_by_key(|e| e.file_name());
    for e in files {
        let Some(name) = e.file_name().to_str().and_then(series_name) else {
            continue;
        };
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let start = *offsets.get(&name).unwrap_or(&0);
        let mut bytes = Vec::new();
        let Ok(mut f) = std::fs::File::open(e.path()) else {
            continue;
        };
        let cap = if at_end { usize::MAX } else { MAX_READ };
        if f.seek(SeekFrom::Start(start)).is_err()
            || (&mut f)
                .take((cap as u64).saturating_add(1))
                .read_to_end(&mut bytes)
                .is_err()
        {
            continue;
        }
        out.extend(chunk(name, start, bytes, at_end));
    }
    out
}

/// The series a file of `events/metric/` holds: `<name>.plx` with a usable name.
pub fn series_name(file_name: &str) -> Option<String> {
    let name = file_name.strip_suffix(".plx")?;
    (!name.is_empty() && name.len() <= 256 && !name.contains('/')).then(|| name.to_string())
}

/// The same over the objects of an artifacts store below `prefix` (the run's
/// `events/metric`): each object past its offset is read by range, the same budget per call,
/// and cut at the same places. Series in `skip` (read from the disk) are not read here.
pub async fn read_new_stored(
    store: &crate::artifacts::Store,
    prefix: &str,
    offsets: &BTreeMap<String, u64>,
    at_end: bool,
    skip: &std::collections::BTreeSet<String>,
) -> Result<Vec<Chunk>, crate::artifacts::StoreError> {
    let (_, files) = store.list_dir(prefix).await?;
    let mut out = Vec::new();
    for f in files {
        let Some(name) = series_name(&f.path) else {
            continue;
        };
        if skip.contains(&name) {
            continue;
        }
        let start = *offsets.get(&name).unwrap_or(&0);
        if f.size <= start {
            continue;
        }
        let end = if at_end {
            f.size
        } else {
            f.size.min(start + MAX_READ as u64 + 1)
        };
        let rel = crate::artifacts::join(prefix, &f.path);
        let bytes = match store.get_range(&rel, start, end).await {
            Ok(b) => b,
            // Removed since it was listed (the run's files deleted): nothing to take.
            Err(crate::artifacts::StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        out.extend(chunk(name, start, bytes.to_vec(), at_end));
    }
    Ok(out)
}

/// The points of `bytes`, read from `start` of a series' file (at most `MAX_READ + 1` of
/// them while the job runs, to tell a capped read): its complete lines, or all of it at the
/// end. A line longer than a whole read is cut there, and its pieces are not points.
fn chunk(name: String, start: u64, mut bytes: Vec<u8>, at_end: bool) -> Option<Chunk> {
    if bytes.is_empty() {
        return None;
    }
    let cap = if at_end { usize::MAX } else { MAX_READ };
    let capped = bytes.len() > cap;
    bytes.truncate(cap);
    let end = match bytes.iter().rposition(|b| *b == b'\n') {
        _ if at_end && !capped => bytes.len(),
        Some(i) if i > 0 => i,
        _ if capped => bytes.len(),
        _ => return None,
    };
    let text = String::from_utf8_lossy(&bytes[..end]);
    Some(Chunk {
        name,
        start,
        end: start + end as u64,
        points: text.split('\n').filter_map(point).collect(),
    })
}

/// One `step|timestamp|value` line; the header and anything unreadable are none.
fn point(line: &str) -> Option<(Option<i64>, String, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with("step|") {
        return None;
    }
    let mut cols = line.splitn(3, '|');
    let (step, ts, val) = (cols.next()?, cols.next()?, cols.next()?);
    let value = val.trim().parse::<f64>().ok().filter(|v| v.is_finite())?;
    Some((step.trim().parse().ok(), ts.trim().to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_taken_once_complete_and_ranges_resume() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("loss.plx");
        std::fs::write(&f, "step|timestamp|metric\n1|2026-11-24T09:00:00Z|0.5").unwrap();
        std::fs::write(d.path().join("notes.txt"), "not a series").unwrap();
        // The last line is not known complete yet.
        let c = read_new(d.path(), &BTreeMap::new(), false);
        assert_eq!(c.len(), 1);
        assert!(c[0].points.is_empty(), "the header alone");
        assert_eq!(c[0].end, 21);
        let mut offsets = BTreeMap::from([("loss".to_string(), c[0].end)]);
        use std::io::Write;
        let mut w = std::fs::OpenOptions::new().append(true).open(&f).unwrap();
        write!(
            w,
            "\n2|2026-11-24T09:00:01Z|0.25\n3|2026-11-24T09:00:02Z|nan"
        )
        .unwrap();
        let c = read_new(d.path(), &offsets, false);
        assert_eq!(
            c[0].points,
            vec![
                (Some(1), "2026-11-24T09:00:00Z".to_string(), 0.5),
                (Some(2), "2026-11-24T09:00:01Z".to_string(), 0.25)
            ]
        );
        offsets.insert("loss".into(), c[0].end);
        // At the end, the last line counts (a NaN is dropped).
        let c = read_new(d.path(), &offsets, true);
        assert!(c[0].points.is_empty());
        assert_eq!(c[0].end, std::fs::metadata(&f).unwrap().len());
    }

    #[test]
    fn links_odd_names_and_huge_lines_are_kept_out() {
        let d = tempfile::tempdir().unwrap();
        let secret = d.path().join("elsewhere.txt");
        std::fs::write(&secret, "h\n1|2026-11-24T09:00:00Z|42\n").unwrap();
        let dir = d.path().join("metric");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink(&secret, dir.join("stolen.plx")).unwrap();
        std::fs::write(dir.join(".plx"), "x\n1|t|1\n").unwrap();
        std::fs::write(dir.join("ok.plx"), "step|timestamp|metric\n1|t|1\n").unwrap();
        let names: Vec<String> = read_new(&dir, &BTreeMap::new(), true)
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["ok"]);
        // A linked directory is not followed either.
        let linked = d.path().join("linked");
        std::os::unix::fs::symlink(&dir, &linked).unwrap();
        assert!(read_new(&linked, &BTreeMap::new(), true).is_empty());
        // More than a read's worth: taken in pieces cut at newlines, nothing lost.
        let big = d.path().join("big");
        std::fs::create_dir(&big).unwrap();
        let mut text = String::from("step|timestamp|metric");
        let mut n = 0;
        while text.len() < MAX_READ + 1000 {
            text.push_str(&format!("\n{n}|2026-11-24T09:00:00Z|{n}"));
            n += 1;
        }
        std::fs::write(big.join("m.plx"), &text).unwrap();
        let (mut offsets, mut got) = (BTreeMap::new(), 0);
        let first = read_new(&big, &offsets, false);
        assert!(first[0].end as usize <= MAX_READ, "a capped read");
        for c in first {
            got += c.points.len();
            offsets.insert(c.name, c.end);
        }
        // At the end, all that is left, whatever its size.
        for c in read_new(&big, &offsets, true) {
            got += c.points.len();
            offsets.insert(c.name, c.end);
        }
        assert_eq!(got, n);
        assert!(read_new(&big, &offsets, true).is_empty());
    }
}
