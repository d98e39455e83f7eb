//! The component hub: `hubRef: NAME[:TAG]` looks in the project's `.polyaxon/hub/`, then the
//! user's `$POLYAXON_HOME/hub/`, then the library built into this binary (written here):
//! notebooks, IDEs, TensorBoard and apps as services, and image builders (`kaniko`,
//! `dockerizer`: see `controller::builder`). A hub directory holds `NAME.yaml` (the
//! `latest` tag) or `NAME/TAG.yaml`.

use std::path::{Path, PathBuf};

/// The built-in library: (path under a hub directory, text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("jupyterlab.yaml", include_str!("../hub/jupyterlab.yaml")),
    ("notebook.yaml", include_str!("../hub/notebook.yaml")),
    ("vscode.yaml", include_str!("../hub/vscode.yaml")),
    ("streamlit.yaml", include_str!("../hub/streamlit.yaml")),
    ("kaniko.yaml", include_str!("../hub/kaniko.yaml")),
    ("dockerizer.yaml", include_str!("../hub/dockerizer.yaml")),
    (
        "tensorboard/latest.yaml",
        include_str!("../hub/tensorboard/latest.yaml"),
    ),
    (
        "tensorboard/path.yaml",
        include_str!("../hub/tensorboard/path.yaml"),
    ),
    (
        "tensorboard/multi-runs.yaml",
        include_str!("../hub/tensorboard/multi-runs.yaml"),
    ),
];

/// FNV-1a over the library's paths and texts, at compile time: `check` pays no hashing.
const LIBRARY_DIGEST: u64 = {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < BUILTIN.len() {
        let mut part = 0;
        while part < 2 {
            let bytes = if part == 0 {
                BUILTIN[i].0.as_bytes()
            } else {
                BUILTIN[i].1.as_bytes()
            };
            let mut j = 0;
            while j < bytes.len() {
                h ^= bytes[j] as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
                j += 1;
            }
            // A separator, so that moving bytes between a path and a text changes the digest.
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
            part += 1;
        }
        i += 1;
    }
    h
};

/// The built-in library as files the compiler reads: under `home/cache/hub-builtin/<digest>/`,
/// written once per version of the library (all at once: a rename of a complete directory).
pub fn builtin_dir(home: &Path) -> PathBuf {
    let digest = format!("{LIBRARY_DIGEST:016x}");
    let root = home.join("cache").join("hub-builtin");
    let dir = root.join(&digest);
    if dir.is_dir() {
        return dir;
    }
    let tmp = root.join(format!(".{digest}-{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        for (p, t) in BUILTIN {
            let f = tmp.join(p);
            if let Some(parent) = f.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(f, t)?;
        }
        std::fs::rename(&tmp, &dir)
    })();
    if written.is_err() {
        // Another process wrote it meanwhile, or the home is read-only: use what is there.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    dir
}

/// One component a hub directory offers.
pub struct Entry {
    pub name: String,
    pub tag: String,
    pub path: PathBuf,
    /// Where it comes from: `project`, `user` or `built-in`.
    pub source: &'static str,
}

/// Every `NAME[:TAG]` the hub directories offer, the first directory's where several do.
pub fn entries(dirs: &[(PathBuf, &'static str)]) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let is_spec = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
    };
    let stem = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    for (dir, source) in dirs {
        let Ok(read) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut found = Vec::new();
        for e in read.flatten() {
            let p = e.path();
            if p.is_dir() {
                for f in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                    let fp = f.path();
                    if fp.is_file() && is_spec(&fp) {
                        found.push((stem(&p), stem(&fp), fp));
                    }
                }
            } else if p.is_file() && is_spec(&p) {
                found.push((stem(&p), "latest".to_string(), p));
            }
        }
        for (name, tag, path) in found {
            if !out.iter().any(|x| x.name == name && x.tag == tag) {
                out.push(Entry {
                    name,
                    tag,
                    path,
                    source,
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.name, &a.tag).cmp(&(&b.name, &b.tag)));
    out
}

/// The hub directories in lookup order, with where each comes from.
pub fn dirs(home: &Path) -> Vec<(PathBuf, &'static str)> {
    vec![
        (PathBuf::from(".polyaxon/hub"), "project"),
        (home.join("hub"), "user"),
        (builtin_dir(home), "built-in"),
    ]
}

/// The `description` of a component file, for listings.
pub fn description(path: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::new();
    };
    polyaxonfile::yaml::parse(&text, 0)
        .ok()
        .and_then(|n| {
            n.get("description")
                .and_then(|d| d.as_str().map(str::to_string))
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_component_checks() {
        let home = tempfile::tempdir().unwrap();
        let dir = builtin_dir(home.path());
        for (p, _) in BUILTIN {
            let mut session = polyaxonfile::Session::new();
            let r = polyaxonfile::check(
                &mut session,
                &[dir.join(p)],
                &polyaxonfile::Options {
                    lint: true,
                    ..Default::default()
                },
            );
            assert!(
                r.is_ok(),
                "{p}: {}",
                r.err().unwrap().render(&session.sources, false)
            );
        }
        // Written once: a second call finds the directory.
        assert_eq!(builtin_dir(home.path()), dir);
    }
}
