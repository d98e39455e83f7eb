//! A metric event file (`events/metric/NAME.plx`) read as it grows: read while the job runs
//! then once more at its end gives exactly the points of one read at the end, and every
//! chunk's range lies inside the file.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use polyaxon_server::eventfiles::read_new;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("loss.plx"), data).unwrap();
    let len = data.len() as u64;

    let whole: Vec<_> = read_new(dir.path(), &BTreeMap::new(), true)
        .into_iter()
        .flat_map(|c| {
            assert!(
                c.start == 0 && c.end == len,
                "one read at the end takes all"
            );
            c.points
        })
        .collect();

    let mut offsets = BTreeMap::new();
    let mut pieces = Vec::new();
    for at_end in [false, false, true] {
        for c in read_new(dir.path(), &offsets, at_end) {
            assert!(
                c.start <= c.end && c.end <= len,
                "{}..{} of {len}",
                c.start,
                c.end
            );
            assert_eq!(
                c.start,
                *offsets.get(&c.name).unwrap_or(&0),
                "it resumes where it was"
            );
            offsets.insert(c.name, c.end);
            pieces.extend(c.points);
        }
    }
    assert_eq!(
        format!("{pieces:?}"),
        format!("{whole:?}"),
        "read in pieces, the same points"
    );
    // Nothing is left once read at the end.
    assert!(read_new(dir.path(), &offsets, true).is_empty());
});
