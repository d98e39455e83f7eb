//! Metric event files as `polyaxon.tracking` writes them (`events/metric/<name>.plx`: a
//! `step|timestamp|metric` header, then one `step|timestamp|value` line per point), read as
//! they grow. The library writes `"\n" + line`, so a line is only known to be complete once
//! the next one starts, or the job has ended.
//!
//! Both the CLI (files of jobs on its machine) and the server (files in its artifacts store,
//! written there by pods that share its volume) ingest them with this reader.

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

/// The new complete lines of each `.plx` file in `dir` past its offset in `offsets` (files
/// not there are read from their start). `at_end` also takes a last line without a newline.
/// Chunks without points (a header alone) still say how far the file was read.
pub fn read_new(dir: &Path, offsets: &BTreeMap<String, u64>, at_end: bool) -> Vec<Chunk> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut files: Vec<_> = entries.flatten().collect();
    files.sort_by_key(|e| e.file_name());
    for e in files {
        let file_name = e.file_name().to_string_lossy().into_owned();
        let Some(name) = file_name.strip_suffix(".plx") else {
            continue;
        };
        let start = *offsets.get(name).unwrap_or(&0);
        let mut bytes = Vec::new();
        let Ok(mut f) = std::fs::File::open(e.path()) else {
            continue;
        };
        if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut bytes).is_err() {
            continue;
        }
        if bytes.is_empty() {
            continue;
        }
        // The complete part: up to the last newline (or all of it at the end).
        let end = if at_end {
            bytes.len()
        } else {
            match bytes.iter().rposition(|b| *b == b'\n') {
                Some(i) => i,
                None => continue,
            }
        };
        if end == 0 {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes[..end]);
        out.push(Chunk {
            name: name.to_string(),
            start,
            end: start + end as u64,
            points: text.split('\n').filter_map(point).collect(),
        });
    }
    out
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

/// The batch id the server gives a chunk it ingested: its range, then the series' name (last,
/// as names may hold any character).
pub fn batch_id(c: &Chunk) -> String {
    format!("{BATCH_PREFIX}{}:{}:{}", c.start, c.end, c.name)
}

pub const BATCH_PREFIX: &str = "plxfile:";

/// How far each file was ingested, from the ids of the batches made of it.
pub fn offsets_from_batches<'a>(ids: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for id in ids {
        let Some(rest) = id.strip_prefix(BATCH_PREFIX) else {
            continue;
        };
        let mut parts = rest.splitn(3, ':');
        let (Some(_), Some(end), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if let Ok(end) = end.parse::<u64>() {
            let e = out.entry(name.to_string()).or_insert(0);
            *e = (*e).max(end);
        }
    }
    out
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
        let mut offsets = offsets_from_batches([batch_id(&c[0]).as_str()]);
        assert_eq!(offsets["loss"], 21);
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
        let ids = [
            "plxfile:0:21:a:b",
            "plxfile:21:60:a:b",
            "plx-x-0",
            "plxfile:bad",
        ];
        assert_eq!(
            offsets_from_batches(ids),
            BTreeMap::from([("a:b".to_string(), 60)])
        );
    }
}
