//! `polyaxon run -u`: the code packed and uploaded to the run's artifacts (`uploads/` unless
//! told otherwise), where the job finds it under `{{ globals.run_artifacts_path }}`, as upstream
//! does. In a git repository exactly the files of the run's code snapshot are taken; elsewhere
//! every file under the directory except `.git/`, `.polyaxon/` and what `.polyaxonignore`
//! excludes (gitignore syntax).

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

use crate::snapshot::{CodeRef, IGNORE_FILE, is_executable};

/// A packed directory: a gzip-compressed tar archive.
pub struct Packed {
    pub bytes: Vec<u8>,
    pub files: usize,
    /// Files' total size before compression.
    pub size: u64,
    /// Links and other non-files left out.
    pub skipped: usize,
}

/// Packs `dir`: from the snapshot `code` when `dir` is inside its repository, else from the
/// directory itself.
pub fn pack(dir: &Path, code: Option<&CodeRef>) -> Result<Packed> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("`{}` cannot be uploaded: it does not exist", dir.display()))?;
    if !dir.is_dir() {
        return Err(crate::error::UserError::new(format!(
            "`{}` cannot be uploaded: it is not a directory",
            dir.display()
        ))
        .hint("give a directory with `--upload-from`")
        .into());
    }
    let mut w = Writer::new();
    if let Some(code) = code
        && let Ok(repo_root) = Path::new(&code.repo).canonicalize()
        && let Ok(inside) = dir.strip_prefix(&repo_root)
    {
        pack_snapshot(&mut w, &repo_root, code, inside)?;
    } else {
        let rules = std::fs::read_to_string(dir.join(IGNORE_FILE)).unwrap_or_default();
        let ignore = Ignore::parse(&rules);
        pack_dir(&mut w, &dir, &ignore)?;
    }
    w.finish()
}

struct Writer {
    tar: tar::Builder<flate2::write::GzEncoder<Vec<u8>>>,
    files: usize,
    size: u64,
    skipped: usize,
}

impl Writer {
    fn new() -> Writer {
        let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        Writer {
            tar: tar::Builder::new(enc),
            files: 0,
            size: 0,
            skipped: 0,
        }
    }

    fn file(&mut self, rel: &str, data: &[u8], executable: bool) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(if executable { 0o755 } else { 0o644 });
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mtime(0);
        self.tar
            .append_data(&mut h, rel, data)
            .with_context(|| format!("packing `{rel}`"))?;
        self.files += 1;
        self.size += data.len() as u64;
        Ok(())
    }

    fn finish(self) -> Result<Packed> {
        let mut enc = self.tar.into_inner().context("packing the upload")?;
        enc.flush()?;
        Ok(Packed {
            bytes: enc.finish().context("packing the upload")?,
            files: self.files,
            size: self.size,
            skipped: self.skipped,
        })
    }
}

fn pack_snapshot(w: &mut Writer, repo_root: &Path, code: &CodeRef, inside: &Path) -> Result<()> {
    let repo = git2::Repository::open(repo_root).context("opening the git repository")?;
    let tree = repo
        .find_tree(git2::Oid::from_str(&code.tree)?)
        .context("reading the code snapshot")?;
    let tree = if inside.as_os_str().is_empty() {
        tree
    } else {
        match tree.get_path(inside) {
            Ok(e) => e.to_object(&repo)?.into_tree().map_err(|_| {
                crate::error::UserError::new(format!("`{}` is not a directory", inside.display()))
            })?,
            // Nothing of the snapshot lies there (all ignored, or empty).
            Err(_) => return Ok(()),
        }
    };
    let mut failed = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |parent, e| {
        if e.kind() != Some(git2::ObjectType::Blob) {
            return git2::TreeWalkResult::Ok;
        }
        let mode = e.filemode();
        if mode != 0o100644 && mode != 0o100755 {
            w.skipped += 1; // a link
            return git2::TreeWalkResult::Ok;
        }
        let rel = format!("{parent}{}", e.name().unwrap_or_default());
        let res = repo
            .find_blob(e.id())
            .map_err(anyhow::Error::from)
            .and_then(|b| w.file(&rel, b.content(), mode == 0o100755));
        match res {
            Ok(()) => git2::TreeWalkResult::Ok,
            Err(err) => {
                failed = Some(err);
                git2::TreeWalkResult::Abort
            }
        }
    })
    .ok();
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A file found under a directory.
pub struct Found {
    pub rel: String,
    pub path: PathBuf,
    pub size: u64,
    pub executable: bool,
}

/// The files under `root` (sorted, `.git/` and `.polyaxon/` left out), and how many links
/// and special files were passed over.
pub fn list_files(root: &Path, ignore: &Ignore) -> Result<(Vec<Found>, usize)> {
    let mut out = Vec::new();
    let mut skipped = 0;
    walk(root, root, ignore, &mut out, &mut skipped)?;
    Ok((out, skipped))
}

fn walk(
    root: &Path,
    dir: &Path,
    ignore: &Ignore,
    out: &mut Vec<Found>,
    skipped: &mut usize,
) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading `{}`", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading `{}`", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = rel_of(root, &path);
        let kind = e.file_type()?;
        if kind.is_dir() {
            if rel == ".git" || rel == ".polyaxon" || ignore.is_ignored(&rel, true) {
                continue;
            }
            walk(root, &path, ignore, out, skipped)?;
        } else if kind.is_file() {
            if ignore.is_ignored(&rel, false) {
                continue;
            }
            let meta = e.metadata()?;
            out.push(Found {
                rel,
                path,
                size: meta.len(),
                executable: is_executable(&meta),
            });
        } else if !ignore.is_ignored(&rel, false) {
            *skipped += 1;
        }
    }
    Ok(())
}

/// Packs the files given.
pub fn pack_files(files: &[Found]) -> Result<Packed> {
    let mut w = Writer::new();
    for f in files {
        let data =
            std::fs::read(&f.path).with_context(|| format!("reading `{}`", f.path.display()))?;
        w.file(&f.rel, &data, f.executable)?;
    }
    w.finish()
}

fn pack_dir(w: &mut Writer, root: &Path, ignore: &Ignore) -> Result<()> {
    let (files, skipped) = list_files(root, ignore)?;
    for f in &files {
        let data =
            std::fs::read(&f.path).with_context(|| format!("reading `{}`", f.path.display()))?;
        w.file(&f.rel, &data, f.executable)?;
    }
    w.skipped += skipped;
    Ok(())
}

fn rel_of(root: &Path, path: &Path) -> String {
    let rel: PathBuf = path
        .strip_prefix(root)
        .unwrap_or(path)
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    rel.to_string_lossy().replace('\\', "/")
}

/// Ignore rules in gitignore syntax: `#` comments, `!` to re-include, a trailing `/` for
/// directories only, a `/` inside anchoring the pattern at the root (otherwise it matches a
/// name at any depth), `*`, `?`, `[a-z]` classes and `**` across directories. The last
/// matching rule wins. (Directories excluded are not walked, so nothing inside them can be
/// re-included, as with git.)
#[derive(Debug, Default)]
pub struct Ignore {
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    pattern: String,
    negated: bool,
    dir_only: bool,
    anchored: bool,
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negated, mut p) = match line.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, line.strip_prefix('\\').unwrap_or(line)),
            };
            let dir_only = p.ends_with('/');
            p = p.trim_end_matches('/');
            let anchored = p.contains('/');
            let p = p.trim_start_matches('/');
            if p.is_empty() {
                continue;
            }
            rules.push(Rule {
                pattern: p.to_string(),
                negated,
                dir_only,
                anchored,
            });
        }
        Ignore { rules }
    }

    /// Whether `rel` (relative to the root, `/`-separated) is excluded.
    pub fn is_ignored(&self, rel: &str, is_dir: bool) -> bool {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let mut ignored = false;
        for r in &self.rules {
            if r.dir_only && !is_dir {
                continue;
            }
            let subject = if r.anchored { rel } else { name };
            if glob(r.pattern.as_bytes(), subject.as_bytes()) {
                ignored = !r.negated;
            }
        }
        ignored
    }
}

/// Glob matching: `*` and `?` within a path segment, `**` across segments (`**/` also
/// matching no directory at all), `[...]` classes (`!` or `^` negating), `\` escaping.
fn glob(p: &[u8], t: &[u8]) -> bool {
    if p.is_empty() {
        return t.is_empty();
    }
    if p.starts_with(b"**") {
        let rest = &p[2..];
        if let Some(after) = rest.strip_prefix(b"/") {
            if glob(after, t) {
                return true;
            }
            return (0..t.len()).any(|i| t[i] == b'/' && glob(after, &t[i + 1..]));
        }
        return (0..=t.len()).any(|i| glob(rest, &t[i..]));
    }
    match p[0] {
        b'*' => {
            for i in 0..=t.len() {
                if glob(&p[1..], &t[i..]) {
                    return true;
                }
                if i < t.len() && t[i] == b'/' {
                    break;
                }
            }
            false
        }
        b'?' => !t.is_empty() && t[0] != b'/' && glob(&p[1..], &t[1..]),
        b'[' => {
            let Some(end) = p[1..].iter().position(|&c| c == b']').map(|i| i + 1) else {
                return !t.is_empty() && t[0] == b'[' && glob(&p[1..], &t[1..]);
            };
            if t.is_empty() || t[0] == b'/' {
                return false;
            }
            let mut class = &p[1..end];
            let negate = matches!(class.first(), Some(b'!' | b'^'));
            if negate {
                class = &class[1..];
            }
            let c = t[0];
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob(&p[end + 1..], &t[1..])
        }
        b'\\' if p.len() > 1 => !t.is_empty() && t[0] == p[1] && glob(&p[2..], &t[1..]),
        c => !t.is_empty() && t[0] == c && glob(&p[1..], &t[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(b"*.py", b"train.py"));
        assert!(!glob(b"*.py", b"a/train.py"));
        assert!(glob(b"data/**", b"data/a/b.bin"));
        assert!(glob(b"**/cache", b"cache"));
        assert!(glob(b"**/cache", b"x/y/cache"));
        assert!(glob(b"a/**/b", b"a/b"));
        assert!(glob(b"a/**/b", b"a/x/y/b"));
        assert!(!glob(b"a/**/b", b"a/x/y/c"));
        assert!(glob(b"run?.log", b"run1.log"));
        assert!(!glob(b"run?.log", b"run10.log"));
        assert!(glob(b"ckpt[0-9]", b"ckpt7"));
        assert!(!glob(b"ckpt[!0-9]", b"ckpt7"));
        assert!(glob(b"\\*lit", b"*lit"));
    }

    #[test]
    fn ignore_rules() {
        let ig = Ignore::parse("# comment\n*.log\n!keep.log\n/build/\ndata/raw\nscratch/\n");
        assert!(ig.is_ignored("run.log", false));
        assert!(ig.is_ignored("deep/run.log", false));
        assert!(!ig.is_ignored("keep.log", false));
        assert!(ig.is_ignored("build", true));
        assert!(!ig.is_ignored("build", false), "dir-only rule");
        assert!(!ig.is_ignored("src/build", true), "anchored at the root");
        assert!(ig.is_ignored("data/raw", true));
        assert!(!ig.is_ignored("x/data/raw", true));
        assert!(ig.is_ignored("a/scratch", true));
        assert!(!ig.is_ignored("train.py", false));
    }

    fn unpack(p: &Packed) -> Vec<(String, Vec<u8>, u32)> {
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&p.bytes[..]));
        let mut out: Vec<_> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let mode = e.header().mode().unwrap();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut data).unwrap();
                (name, data, mode)
            })
            .collect();
        out.sort();
        out
    }

    #[cfg(unix)]
    #[test]
    fn a_plain_directory_honours_polyaxonignore() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::write(p.join("train.py"), "print(1)\n").unwrap();
        std::fs::write(p.join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(p.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(p.join("data/raw")).unwrap();
        std::fs::write(p.join("data/raw/big.bin"), "xxxx").unwrap();
        std::fs::write(p.join("data/small.csv"), "a,b\n").unwrap();
        std::fs::create_dir_all(p.join(".git")).unwrap();
        std::fs::write(p.join(".git/HEAD"), "x").unwrap();
        std::fs::write(p.join("out.log"), "noise").unwrap();
        std::fs::write(p.join(IGNORE_FILE), "data/raw/\n*.log\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", p.join("link")).unwrap();
        let packed = pack(p, None).unwrap();
        let files = unpack(&packed);
        let names: Vec<_> = files.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(names, [IGNORE_FILE, "data/small.csv", "run.sh", "train.py"]);
        assert_eq!(files[2].2 & 0o111, 0o111);
        assert_eq!(files[3].1, b"print(1)\n");
        assert_eq!(packed.files, 4);
        assert_eq!(packed.skipped, 1);
    }

    #[test]
    fn a_repository_uploads_its_snapshot() {
        let d = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(d.path()).unwrap();
        std::fs::create_dir_all(d.path().join("src")).unwrap();
        std::fs::write(d.path().join("src/train.py"), "v1").unwrap();
        std::fs::write(d.path().join("top.txt"), "t").unwrap();
        std::fs::write(d.path().join(".gitignore"), "*.ckpt\n").unwrap();
        std::fs::write(d.path().join("src/model.ckpt"), "big").unwrap();
        crate::snapshot::commit_all(&repo, "one").ok();
        std::fs::write(d.path().join("src/train.py"), "v2").unwrap();
        let code = crate::snapshot::snapshot(d.path(), "u").unwrap().unwrap();
        // Changed after the snapshot: the upload is the snapshot's content.
        std::fs::write(d.path().join("src/train.py"), "v3").unwrap();
        let all = unpack(&pack(d.path(), Some(&code)).unwrap());
        let names: Vec<_> = all.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(names, [".gitignore", "src/train.py", "top.txt"]);
        assert_eq!(all[1].1, b"v2");
        let sub = unpack(&pack(&d.path().join("src"), Some(&code)).unwrap());
        assert_eq!(sub.len(), 1);
        assert_eq!(sub[0].0, "train.py");
    }
}
