//! An uploaded archive (tar, or gzip-compressed tar) unpacked as `POST …/artifacts` with
//! `untar=true` does: whatever it holds, only regular files and directories are written,
//! all inside the destination, no link is made, and what it reports written is there.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use polyaxon_server::files::untar;

fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let t = e.file_type().unwrap();
        assert!(!t.is_symlink(), "a link was made: {}", e.path().display());
        let p = e.path();
        assert!(p.starts_with(root));
        if t.is_dir() {
            walk(root, &p, found);
        } else {
            assert!(t.is_file(), "only files: {}", p.display());
            found.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("upload.tar");
    std::fs::write(&archive, data).unwrap();
    let run = tmp.path().join("run");
    let dest = run.join("outputs");
    std::fs::create_dir_all(&dest).unwrap();
    let result = untar(&archive, &dest, "outputs", true, 1 << 20);
    let mut found = Vec::new();
    walk(&run, &run, &mut found);
    // Nothing beside the run's directory.
    let beside: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert_eq!(beside.len(), 2, "only the archive and the run's directory");
    for f in &found {
        assert!(!f.contains(".part-"), "a half-written file was left: {f}");
    }
    match result {
        Ok(written) => {
            for w in &written {
                assert!(found.contains(w), "reported written but absent: {w}");
            }
        }
        // A refused archive writes nothing (paths and sizes are checked first); a file cut
        // short may stop it midway, but leaves only whole files.
        Err(_) => {}
    }
});
