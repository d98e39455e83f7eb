//! Code snapshots: the working tree as it is when a run starts — tracked files with their
//! uncommitted changes and untracked files that are not ignored, minus what `.polyaxonignore`
//! leaves out — written as a commit on `refs/polyaxon/snapshots/<run uuid>`.
//!
//! The user's index, HEAD and branches are never touched: the tree is built in an index held in
//! memory (a copy of the repository's, so unchanged files are not hashed again), and only
//! objects and that one reference are written. Identical trees share every object.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use git2::{IndexAddOption, Oid, Repository, Status, StatusOptions};
use serde::{Deserialize, Serialize};

/// The reference namespace of snapshots.
pub const REF_PREFIX: &str = "refs/polyaxon/snapshots/";
/// The ignore file for snapshots (gitignore syntax), at the repository's root.
pub const IGNORE_FILE: &str = ".polyaxonignore";

/// Where a run's code came from, as kept in its `meta_info.code_ref`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CodeRef {
    /// The commit checked out (none in a repository without commits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Uncommitted changes or untracked files went into the snapshot.
    pub is_dirty: bool,
    /// The `origin` remote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The snapshot commit, on `refs/polyaxon/snapshots/<uuid>`.
    pub snapshot: String,
    /// Its tree (equal trees mean equal code).
    pub tree: String,
    /// The repository's working directory.
    pub repo: String,
    /// Where, in the repository, the snapshot was taken from (the job runs there).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Files in the snapshot.
    pub files: usize,
}

/// Snapshots the repository containing `dir` for run `uuid`; `None` outside a repository.
pub fn snapshot(dir: &Path, uuid: &str) -> Result<Option<CodeRef>> {
    let repo = match Repository::discover(dir) {
        Ok(r) => r,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(e).context("opening the git repository"),
    };
    let Some(root) = repo.workdir().map(Path::to_path_buf) else {
        return Ok(None); // a bare repository has no working tree
    };
    let ignore = std::fs::read_to_string(root.join(IGNORE_FILE)).unwrap_or_default();
    if !ignore.trim().is_empty() {
        // In memory, for this handle only: the repository's ignore files are not changed.
        repo.add_ignore_rule(&ignore)
            .context("reading `.polyaxonignore`")?;
    }
    // A private copy of the index: the stat cache saves re-hashing unchanged files, and
    // nothing is ever written back.
    let mut index = match git2::Index::open(&repo.path().join("index")) {
        Ok(i) => i,
        Err(_) => git2::Index::new().context("creating an index")?,
    };
    let mut opts = StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .exclude_submodules(false)
        .renames_head_to_index(false);
    let statuses = repo
        .statuses(Some(&mut opts))
        .context("reading the working tree's status")?;
    let mut dirty = false;
    let mut add: Vec<PathBuf> = Vec::new();
    let mut remove: Vec<PathBuf> = Vec::new();
    for s in statuses.iter() {
        let Ok(path) = s.path() else { continue };
        let st = s.status();
        if st.is_ignored() {
            continue;
        }
        dirty = true;
        let p = PathBuf::from(path);
        if st.intersects(Status::WT_DELETED) {
            remove.push(p);
        } else if st.intersects(Status::WT_NEW | Status::WT_MODIFIED | Status::WT_TYPECHANGE) {
            add.push(p);
        }
    }
    for p in &remove {
        let _ = index.remove_path(p);
    }
    for p in &add {
        add_file(&repo, &root, &mut index, p)
            .with_context(|| format!("adding `{}` to the snapshot", p.display()))?;
    }
    // Tracked files that `.polyaxonignore` excludes are left out too.
    if !ignore.trim().is_empty() {
        let excluded: Vec<PathBuf> = index
            .iter()
            .filter_map(|e| String::from_utf8(e.path).ok())
            .filter(|p| repo.is_path_ignored(p).unwrap_or(false))
            .map(PathBuf::from)
            .collect();
        for p in excluded {
            let _ = index.remove_path(&p);
        }
    }
    let files = index.len();
    let tree_id = index
        .write_tree_to(&repo)
        .context("writing the snapshot's tree")?;
    let tree = repo.find_tree(tree_id)?;
    let head = repo.head().ok();
    let head_commit = head.as_ref().and_then(|h| h.peel_to_commit().ok());
    let branch = head
        .as_ref()
        .filter(|h| h.is_branch())
        .and_then(|h| h.shorthand().ok().map(str::to_string));
    let sig = git2::Signature::now("polyaxon", "polyaxon@localhost")?;
    let parents: Vec<&git2::Commit<'_>> = head_commit.iter().collect();
    let snapshot = repo
        .commit(
            Some(&format!("{REF_PREFIX}{uuid}")),
            &sig,
            &sig,
            &format!("polyaxon: the code of run {uuid}"),
            &tree,
            &parents,
        )
        .context("writing the snapshot commit")?;
    let url = repo
        .find_remote("origin")
        .ok()
        .and_then(|r| r.url().ok().map(redact_url));
    let rel = match (dir.canonicalize(), root.canonicalize()) {
        (Ok(d), Ok(r)) => d
            .strip_prefix(&r)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default(),
        _ => String::new(),
    };
    Ok(Some(CodeRef {
        path: rel,
        commit: head_commit.as_ref().map(|c| c.id().to_string()),
        branch,
        is_dirty: dirty,
        url,
        snapshot: snapshot.to_string(),
        tree: tree_id.to_string(),
        repo: root.display().to_string(),
        files,
    }))
}

/// Adds a working-tree file (or symlink) to the index as a new blob.
fn add_file(repo: &Repository, root: &Path, index: &mut git2::Index, rel: &Path) -> Result<()> {
    let full = root.join(rel);
    let meta = std::fs::symlink_metadata(&full)?;
    if meta.is_dir() {
        // An untracked nested repository: taken as its files would be by `git add`, i.e. not
        // at all (its own history is its own).
        return Ok(());
    }
    let (oid, mode) = if meta.file_type().is_symlink() {
        let target = std::fs::read_link(&full)?;
        let bytes = target.to_string_lossy().into_owned().into_bytes();
        (repo.blob(&bytes)?, 0o120000)
    } else {
        let exec = is_executable(&meta);
        (
            repo.blob_path(&full)?,
            if exec { 0o100755 } else { 0o100644 },
        )
    };
    let entry = git2::IndexEntry {
        ctime: git2::IndexTime::new(0, 0),
        mtime: git2::IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode,
        uid: 0,
        gid: 0,
        file_size: meta.len() as u32,
        id: oid,
        flags: (rel.as_os_str().len().min(0xfff)) as u16,
        flags_extended: 0,
        path: rel.to_string_lossy().replace('\\', "/").into_bytes(),
    };
    index.add(&entry)?;
    Ok(())
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    false
}

/// `https://user:secret@host/x` without its credentials.
fn redact_url(u: &str) -> String {
    match (u.find("://"), u.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}{}", &u[..s + 3], &u[at + 1..]),
        _ => u.to_string(),
    }
}

/// Writes the snapshot `commit` (or the one of run `uuid`) of the repository at `repo_dir`
/// into `target`, a new or empty directory.
pub fn checkout(repo_dir: &Path, commit_or_uuid: &str, target: &Path) -> Result<usize> {
    let repo = Repository::discover(repo_dir).context("opening the git repository")?;
    let oid = match Oid::from_str(commit_or_uuid)
        .ok()
        .filter(|_| commit_or_uuid.len() == 40)
    {
        Some(o) => o,
        None => repo
            .refname_to_id(&format!("{REF_PREFIX}{commit_or_uuid}"))
            .with_context(|| format!("no snapshot of run `{commit_or_uuid}` in this repository"))?,
    };
    let commit = repo
        .find_commit(oid)
        .with_context(|| format!("no commit `{oid}` in this repository"))?;
    let tree = commit.tree()?;
    std::fs::create_dir_all(target).with_context(|| format!("creating `{}`", target.display()))?;
    let mut cb = git2::build::CheckoutBuilder::new();
    // Into another directory, and without touching the repository's own index (which a
    // checkout updates by default).
    cb.target_dir(target)
        .force()
        .recreate_missing(true)
        .update_index(false);
    repo.checkout_tree(tree.as_object(), Some(&mut cb))
        .with_context(|| format!("writing the code into `{}`", target.display()))?;
    Ok(count_blobs(&repo, &tree))
}

fn count_blobs(repo: &Repository, tree: &git2::Tree<'_>) -> usize {
    let mut n = 0;
    let _ = tree.walk(git2::TreeWalkMode::PreOrder, |_, e| {
        if e.kind() == Some(git2::ObjectType::Blob) {
            n += 1;
        }
        git2::TreeWalkResult::Ok
    });
    let _ = repo;
    n
}

/// Adds everything (as `git add -A`) — for tests and benchmarks that need a repository.
pub fn commit_all(repo: &Repository, message: &str) -> Result<Oid> {
    let mut index = repo.index()?;
    index.add_all(["*"].iter(), IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let sig = git2::Signature::now("test", "test@localhost")?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    Ok(repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, Repository) {
        let d = tempfile::tempdir().unwrap();
        let r = Repository::init(d.path()).unwrap();
        (d, r)
    }

    fn files_of(repo: &Repository, commit: &str) -> Vec<String> {
        let c = repo.find_commit(Oid::from_str(commit).unwrap()).unwrap();
        let mut out = Vec::new();
        c.tree()
            .unwrap()
            .walk(git2::TreeWalkMode::PreOrder, |dir, e| {
                if e.kind() == Some(git2::ObjectType::Blob) {
                    out.push(format!("{dir}{}", e.name().unwrap()));
                }
                git2::TreeWalkResult::Ok
            })
            .unwrap();
        out.sort();
        out
    }

    #[test]
    fn dirty_trees_untracked_and_ignored_files() {
        let (d, r) = repo();
        let p = d.path();
        std::fs::write(p.join("train.py"), "print(1)\n").unwrap();
        std::fs::write(p.join(".gitignore"), "*.log\n").unwrap();
        std::fs::create_dir(p.join("data")).unwrap();
        std::fs::write(p.join("data/big.bin"), "x").unwrap();
        std::fs::write(p.join("old.py"), "gone soon").unwrap();
        let head = commit_all(&r, "first").unwrap();
        let index_before = std::fs::read(r.path().join("index")).unwrap();
        // Changes: a modified file, an untracked one, an ignored one, a deleted one, and one
        // left out by .polyaxonignore (tracked) and another (untracked).
        std::fs::write(p.join("train.py"), "print(2)\n").unwrap();
        std::fs::write(p.join("new.py"), "x = 1\n").unwrap();
        std::fs::write(p.join("run.log"), "noise").unwrap();
        std::fs::remove_file(p.join("old.py")).unwrap();
        std::fs::write(p.join(".polyaxonignore"), "data/\nscratch.txt\n").unwrap();
        std::fs::write(p.join("scratch.txt"), "s").unwrap();
        let code = snapshot(p, "u1").unwrap().unwrap();
        assert!(code.is_dirty);
        assert_eq!(code.commit.as_deref(), Some(head.to_string().as_str()));
        assert!(code.branch.is_some());
        let files = files_of(&r, &code.snapshot);
        assert_eq!(
            files,
            [".gitignore", ".polyaxonignore", "new.py", "train.py"]
        );
        let blob = r
            .find_commit(Oid::from_str(&code.snapshot).unwrap())
            .unwrap()
            .tree()
            .unwrap()
            .get_path(Path::new("train.py"))
            .unwrap()
            .to_object(&r)
            .unwrap();
        assert_eq!(blob.as_blob().unwrap().content(), b"print(2)\n");
        // Nothing of the user's changed.
        assert_eq!(std::fs::read(r.path().join("index")).unwrap(), index_before);
        assert_eq!(r.head().unwrap().target().unwrap(), head);
        assert!(
            r.statuses(None)
                .unwrap()
                .iter()
                .any(|s| s.path().ok() == Some("new.py"))
        );
        assert!(r.find_reference("refs/polyaxon/snapshots/u1").is_ok());
        // The same tree again: the same tree object.
        let again = snapshot(p, "u2").unwrap().unwrap();
        assert_eq!(again.tree, code.tree);
        // Restored elsewhere, exactly.
        let out = tempfile::tempdir().unwrap();
        let n = checkout(p, "u1", out.path()).unwrap();
        assert_eq!(n, 4);
        assert_eq!(
            std::fs::read(r.path().join("index")).unwrap(),
            index_before,
            "checkout leaves the index too"
        );
        assert_eq!(
            std::fs::read_to_string(out.path().join("train.py")).unwrap(),
            "print(2)\n"
        );
        assert!(!out.path().join("data").exists());
    }

    #[test]
    fn clean_trees_empty_repositories_and_no_repository() {
        let (d, r) = repo();
        // No commit yet: still a snapshot, without a parent.
        std::fs::write(d.path().join("a.py"), "a").unwrap();
        let code = snapshot(d.path(), "e").unwrap().unwrap();
        assert_eq!(code.commit, None);
        assert!(code.is_dirty);
        commit_all(&r, "one").unwrap();
        let clean = snapshot(d.path(), "c").unwrap().unwrap();
        assert!(!clean.is_dirty);
        assert_eq!(clean.files, 1);
        std::fs::create_dir(d.path().join("sub")).unwrap();
        assert_eq!(
            snapshot(&d.path().join("sub"), "s").unwrap().unwrap().path,
            "sub"
        );
        let none = tempfile::tempdir().unwrap();
        assert_eq!(snapshot(none.path(), "x").unwrap(), None);
    }

    #[cfg(unix)]
    #[test]
    fn modes_and_symlinks_are_kept() {
        use std::os::unix::fs::PermissionsExt;
        let (d, r) = repo();
        commit_all(&r, "empty").ok();
        let p = d.path();
        std::fs::write(p.join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(p.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("run.sh", p.join("link")).unwrap();
        let code = snapshot(p, "m").unwrap().unwrap();
        let out = tempfile::tempdir().unwrap();
        checkout(p, &code.snapshot, out.path()).unwrap();
        let mode = std::fs::metadata(out.path().join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_ne!(mode & 0o111, 0, "executable bit kept");
        assert_eq!(
            std::fs::read_link(out.path().join("link")).unwrap(),
            Path::new("run.sh")
        );
        assert_eq!(
            redact_url("https://me:tok@github.com/x.git"),
            "https://github.com/x.git"
        );
    }
}
