//! Malformed input never panics: fixtures mangled at random (deterministically) go through the
//! whole check, and huge or hostile files are refused with an error.

use std::path::{Path, PathBuf};

use polyaxonfile::{Options, Session, check};

/// xorshift64*: a fixed sequence, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs: Vec<PathBuf> = vec![
        root.join("tests/fixtures/valid"),
        root.join("tests/fixtures/invalid"),
    ];
    let compat = root.join("../../shared/compat/polyaxonfiles");
    for sub in ["plain", "pipelines", "typing", "v06/plain", "v06/pipelines"] {
        dirs.push(compat.join(sub));
    }
    let mut out = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if let Ok(b) = std::fs::read(e.path()) {
                out.push(b);
            }
        }
    }
    out
}

const SNIPPETS: &[&str] = &[
    "{{",
    "}}",
    "{%",
    ": ",
    "- ",
    "\n  ",
    "[",
    "]",
    "{",
    "}",
    "&a",
    "*a",
    "<<: *a",
    "!!str",
    "'",
    "\"",
    "\t",
    "kind: dag",
    "kind: job",
    "matrix:",
    "- name: x",
    "\u{0}",
    "\u{feff}",
    "~",
    "1e999",
    "-9223372036854775809",
    "::",
    "?",
    "|",
    ">",
];

fn mutate(rng: &mut Rng, src: &[u8]) -> Vec<u8> {
    let mut b = src.to_vec();
    for _ in 0..1 + rng.below(4) {
        let pos = rng.below(b.len() + 1);
        match rng.below(5) {
            0 if !b.is_empty() => {
                let end = (pos + rng.below(40)).min(b.len());
                b.drain(pos.min(b.len())..end);
            }
            1 => {
                let s = SNIPPETS[rng.below(SNIPPETS.len())].as_bytes();
                b.splice(pos..pos, s.iter().copied());
            }
            2 if !b.is_empty() => {
                let i = pos.min(b.len() - 1);
                b[i] = (rng.next() & 0xff) as u8;
            }
            3 => {
                let start = rng.below(b.len() + 1);
                let end = (start + rng.below(200)).min(b.len());
                let chunk = b[start..end].to_vec();
                b.splice(pos..pos, chunk);
            }
            _ => b.truncate(pos),
        }
    }
    b
}

#[test]
fn mangled_files_never_panic() {
    let corpus = corpus();
    assert!(corpus.len() > 50);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("polyaxonfile.yml");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let rounds = if cfg!(debug_assertions) { 3000 } else { 20000 };
    let mut errors = 0;
    for _ in 0..rounds {
        let src = &corpus[rng.below(corpus.len())];
        let bytes = mutate(&mut rng, src);
        std::fs::write(&path, &bytes).unwrap();
        let mut session = Session::new();
        for lint in [false, true] {
            let opts = Options {
                lint,
                ..Options::default()
            };
            if let Err(d) = check(&mut session, std::slice::from_ref(&path), &opts) {
                errors += 1;
                // Rendering must not panic either, whatever the spans say.
                let _ = d.render(&session.sources, true);
                assert!(d.has_errors());
            }
        }
    }
    assert!(
        errors > rounds / 2,
        "mutations should mostly break files ({errors} errors)"
    );
}

#[test]
fn huge_and_hostile_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.yml");
    let mut text = String::from("version: 1.1\nkind: component\ndescription: \"");
    text.push_str(&"x".repeat(17 * 1024 * 1024));
    text.push_str("\"\n");
    std::fs::write(&huge, text).unwrap();
    let mut session = Session::new();
    let e = check(&mut session, &[huge], &Options::default()).unwrap_err();
    assert!(e.0[0].message.contains("larger than"), "{}", e.0[0].message);

    // Many keys and a long list parse fine and fast enough not to matter.
    let big = dir.path().join("big.yml");
    let mut text = String::from("version: 1.1\nkind: component\ntags:\n");
    for i in 0..100_000 {
        text.push_str(&format!("  - t{i}\n"));
    }
    text.push_str("run: {kind: job, container: {image: busybox}}\n");
    std::fs::write(&big, text).unwrap();
    let mut session = Session::new();
    assert!(check(&mut session, &[big], &Options::default()).is_ok());

    let utf16 = dir.path().join("utf16.yml");
    std::fs::write(&utf16, b"\xff\xfev\x00e\x00").unwrap();
    let mut session = Session::new();
    let e = check(&mut session, &[utf16], &Options::default()).unwrap_err();
    assert!(e.0[0].message.contains("UTF-16"));

    let missing = dir.path().join("nope.yml");
    let mut session = Session::new();
    let e = check(&mut session, &[missing], &Options::default()).unwrap_err();
    assert!(e.0[0].message.contains("no such file"));
}
