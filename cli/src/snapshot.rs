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

/// The reference namespace of snapshots.
pub const REF_PREFIX: &str = "refs/polyaxon/snapshots/";
/// The ignore file for snapshots (gitignore syntax), at the repository's root.
pub const IGNORE_FILE: &str = ".polyaxonignore";

pub use polyaxon_server::api::CodeRef;

/// Snapshots the repository containing `dir` for run `uuid` (the CLI's home where the
/// environment puts it); `None` outside a repository.
pub fn snapshot(dir: &Path, uuid: &str) -> Result<Option<CodeRef>> {
    let Some(code) = snapshot_unpinned(dir, &crate::settings::home_dir())? else {
        return Ok(None);
    };
    pin(&code, uuid)?;
    Ok(Some(code))
}

/// Names a snapshot after its run (`refs/polyaxon/snapshots/<uuid>`), which also keeps it from
/// garbage collection.
pub fn pin(code: &CodeRef, uuid: &str) -> Result<()> {
    let repo = Repository::open(&code.repo).context("opening the git repository")?;
    let oid = Oid::from_str(&code.snapshot)?;
    repo.reference(
        &format!("{REF_PREFIX}{uuid}"),
        oid,
        true,
        &format!("polyaxon: the code of run {uuid}"),
    )
    .context("naming the snapshot")?;
    Ok(())
}

/// Snapshots the repository containing `dir` without naming the commit yet (see [`pin`]);
/// `None` outside a repository. The CLI's `home`, when inside the repository, is left out.
pub fn snapshot_unpinned(dir: &Path, home: &Path) -> Result<Option<CodeRef>> {
    let repo = match Repository::discover(dir) {
        Ok(r) => r,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(e).context("opening the git repository"),
    };
    let Some(root) = repo.workdir().map(Path::to_path_buf) else {
        return Ok(None); // a bare repository has no working tree
    };
    let mut ignore = std::fs::read_to_string(root.join(IGNORE_FILE)).unwrap_or_default();
    // Polyaxon's own files are never code: the project context `init` writes, and the home
    // (runs' artifacts, the store) when it lies inside the repository.
    let user_rules = !ignore.trim().is_empty();
    let own = own_rules(&root, home);
    for rule in &own {
        ignore.push('\n');
        ignore.push_str(rule);
    }
    // In memory, for this handle only: the repository's ignore files are not changed.
    repo.add_ignore_rule(&ignore)
        .context("reading `.polyaxonignore`")?;
    // The blobs and trees written here are known to exist: checking each costs a lookup per
    // file when the tree is written.
    git2::opts::strict_object_creation(false);
    // A private copy of the index: the stat cache saves re-hashing unchanged files, and
    // nothing is ever written back.
    let mut index = match git2::Index::open(&repo.path().join("index")) {
        Ok(i) => i,
        Err(_) => git2::Index::new().context("creating an index")?,
    };
    refresh_stat_cache(&root, &mut index);
    crate::timing::mark("snapshot: stat cache");
    // The status walk compares the tree with this refreshed copy, never reloaded from disk.
    repo.set_index(&mut index)
        .context("reading the repository's index")?;
    let mut opts = StatusOptions::new();
    opts.no_refresh(true)
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .exclude_submodules(false)
        .renames_head_to_index(false);
    crate::timing::mark("snapshot: index read");
    let statuses = repo
        .statuses(Some(&mut opts))
        .context("reading the working tree's status")?;
    crate::timing::mark("snapshot: status");
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
    for e in new_entries(&repo, &root, &add)? {
        index.add(&e)?;
    }
    // Tracked files that `.polyaxonignore` (or the rules above) exclude are left out too.
    {
        let own: Vec<&str> = own.iter().map(|r| r.trim_start_matches('/')).collect();
        let excluded: Vec<PathBuf> = index
            .iter()
            .filter_map(|e| String::from_utf8(e.path).ok())
            .filter(|p| {
                own.iter().any(|o| p.starts_with(o))
                    || (user_rules && repo.is_path_ignored(p).unwrap_or(false))
            })
            .map(PathBuf::from)
            .collect();
        for p in excluded {
            let _ = index.remove_path(&p);
        }
    }
    crate::timing::mark("snapshot: added");
    let files = index.len();
    let tree_id = index
        .write_tree_to(&repo)
        .context("writing the snapshot's tree")?;
    crate::timing::mark("snapshot: tree");
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
        .commit(None, &sig, &sig, "polyaxon: a run's code", &tree, &parents)
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

/// Ignore rules for Polyaxon's own files in the repository at `root`: the project context
/// (`.polyaxon/`) and the home when it lies inside.
fn own_rules(root: &Path, home: &Path) -> Vec<String> {
    let mut own = vec!["/.polyaxon/".to_string()];
    if let Ok(r) = root.canonicalize()
        && let Ok(home) = home.canonicalize()
        && let Ok(inside) = home.strip_prefix(&r)
        && !inside.as_os_str().is_empty()
        && inside != Path::new(".polyaxon")
    {
        own.push(format!("/{}/", inside.to_string_lossy().replace('\\', "/")));
    }
    own
}

/// Refreshes the stat cache of the entries of `index` (a private copy) whose files still hold
/// the content recorded: a copied, touched or freshly checked-out tree makes every stat differ,
/// and the status walk would then hash every file, one at a time. Here they are hashed in
/// parallel, and only entries whose content is unchanged are refreshed, so the walk after
/// sees exactly the real changes. Files whose content is filtered (line endings) do not
/// match their raw hash and are left to the walk.
fn refresh_stat_cache(root: &Path, index: &mut git2::Index) {
    let entries: Vec<git2::IndexEntry> = index.iter().collect();
    if entries.is_empty() {
        return;
    }
    // A sample first: where the stat cache is mostly fresh (the everyday case: `git status`
    // or a commit refreshed it), the walk's own checks are cheaper than a pass over all.
    if entries.len() > 512 {
        let step = entries.len() / 64;
        let stale = entries
            .iter()
            .step_by(step)
            .filter(|e| stat_of(root, e).is_some_and(|f| !same_stat(&f, e)))
            .count();
        if stale * 8 < 64 {
            return;
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let chunk = entries.len().div_ceil(threads);
    let refreshed: Vec<git2::IndexEntry> = std::thread::scope(|s| {
        let parts: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .filter_map(|e| refreshed(root, e))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().unwrap_or_default())
            .collect()
    });
    for e in &refreshed {
        let _ = index.add(e);
    }
}

/// `e` with its file's current stat, when only the stat changed.
fn refreshed(root: &Path, e: &git2::IndexEntry) -> Option<git2::IndexEntry> {
    let fresh = stat_of(root, e)?;
    if same_stat(&fresh, e) {
        return None; // already fresh
    }
    let path = root.join(entry_path(e)?);
    let oid = git2::Oid::hash_file(git2::ObjectType::Blob, &path).ok()?;
    (oid == e.id).then_some(fresh)
}

fn same_stat(a: &git2::IndexEntry, b: &git2::IndexEntry) -> bool {
    a.ctime == b.ctime
        && a.mtime == b.mtime
        && a.dev == b.dev
        && a.ino == b.ino
        && a.uid == b.uid
        && a.gid == b.gid
}

#[cfg(unix)]
fn entry_path(e: &git2::IndexEntry) -> Option<&Path> {
    use std::os::unix::ffi::OsStrExt;
    Some(Path::new(std::ffi::OsStr::from_bytes(&e.path)))
}

#[cfg(not(unix))]
fn entry_path(e: &git2::IndexEntry) -> Option<&Path> {
    std::str::from_utf8(&e.path).ok().map(Path::new)
}

/// `e` with its file's current stat; `None` when the file changed for certain (size, kind,
/// executable bit: the walk sees it) or is not a plain file at stage 0 (symlinks, submodules
/// and conflicts are left as they are).
#[cfg(unix)]
fn stat_of(root: &Path, e: &git2::IndexEntry) -> Option<git2::IndexEntry> {
    use std::os::unix::fs::MetadataExt;
    // Regular files at stage 0 only; symlinks, submodules and conflicts are left as they are.
    if e.mode & 0o170000 != 0o100000 || (e.flags >> 12) & 0x3 != 0 {
        return None;
    }
    let m = std::fs::symlink_metadata(root.join(entry_path(e)?)).ok()?;
    if !m.is_file() || m.len() as u32 != e.file_size || is_executable(&m) != (e.mode & 0o111 != 0) {
        return None; // changed for certain: the walk sees it
    }
    Some(git2::IndexEntry {
        ctime: git2::IndexTime::new(m.ctime() as i32, m.ctime_nsec() as u32),
        mtime: git2::IndexTime::new(m.mtime() as i32, m.mtime_nsec() as u32),
        dev: m.dev() as u32,
        ino: m.ino() as u32,
        uid: m.uid(),
        gid: m.gid(),
        file_size: m.len() as u32,
        mode: e.mode,
        id: e.id,
        flags: e.flags,
        flags_extended: e.flags_extended,
        path: e.path.clone(),
    })
}

#[cfg(not(unix))]
fn stat_of(_: &Path, _: &git2::IndexEntry) -> Option<git2::IndexEntry> {
    None
}

/// Index entries for new or changed working-tree files (and symlinks), their blobs written;
/// in parallel (a repository handle per thread) when there are many.
fn new_entries(repo: &Repository, root: &Path, add: &[PathBuf]) -> Result<Vec<git2::IndexEntry>> {
    let one = |repo: &Repository, p: &PathBuf| {
        blob_entry(repo, root, p)
            .with_context(|| format!("adding `{}` to the snapshot", p.display()))
    };
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    if add.len() < 64 || threads == 1 {
        let mut out = Vec::new();
        for p in add {
            out.extend(one(repo, p)?);
        }
        return Ok(out);
    }
    let git_dir = repo.path();
    std::thread::scope(|s| {
        let parts: Vec<_> = add
            .chunks(add.len().div_ceil(threads))
            .map(|part| {
                s.spawn(move || -> Result<Vec<git2::IndexEntry>> {
                    let repo = Repository::open(git_dir).context("opening the git repository")?;
                    let mut out = Vec::new();
                    for p in part {
                        out.extend(one(&repo, p)?);
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut out = Vec::new();
        for p in parts {
            out.extend(
                p.join()
                    .map_err(|_| anyhow::anyhow!("a snapshot thread panicked"))??,
            );
        }
        Ok(out)
    })
}

/// The index entry of a working-tree file (or symlink), its blob written; `None` for a
/// directory (an untracked nested repository: taken as `git add` would, i.e. not at all, its
/// history being its own).
fn blob_entry(repo: &Repository, root: &Path, rel: &Path) -> Result<Option<git2::IndexEntry>> {
    let full = root.join(rel);
    let meta = std::fs::symlink_metadata(&full)?;
    if meta.is_dir() {
        return Ok(None);
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
    Ok(Some(git2::IndexEntry {
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
    }))
}

#[cfg(unix)]
pub(crate) fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
pub(crate) fn is_executable(_: &std::fs::Metadata) -> bool {
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
    fn copied_trees_are_clean_and_same_size_edits_are_seen() {
        let (d, r) = repo();
        let p = d.path();
        for i in 0..50 {
            std::fs::write(p.join(format!("m{i}.py")), format!("v = {i:03}\n")).unwrap();
        }
        let head = commit_all(&r, "first").unwrap();
        // A copy: every stat differs from the index's, no content does.
        let copy = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", p.display()))
            .arg(copy.path())
            .status()
            .unwrap();
        assert!(ok.success());
        let c = Repository::open(copy.path()).unwrap();
        let index_before = std::fs::read(c.path().join("index")).unwrap();
        let index = c.index().unwrap();
        let stale = index
            .iter()
            .filter_map(|e| refreshed(copy.path(), &e))
            .count();
        assert_eq!(
            stale, 50,
            "each entry's stat is refreshed, its content being the same"
        );
        let code = snapshot(copy.path(), "c1").unwrap().unwrap();
        assert!(!code.is_dirty, "an untouched copy is clean");
        assert_eq!(
            code.tree,
            r.find_commit(head).unwrap().tree_id().to_string()
        );
        // Same size, new content (and mtime): seen, and only that.
        std::fs::write(copy.path().join("m7.py"), "v = 777\n").unwrap();
        let e = index.get_path(Path::new("m7.py"), 0).unwrap();
        assert!(
            refreshed(copy.path(), &e).is_none(),
            "a changed file is not refreshed"
        );
        let code = snapshot(copy.path(), "c2").unwrap().unwrap();
        assert!(code.is_dirty);
        let tree = c.find_tree(Oid::from_str(&code.tree).unwrap()).unwrap();
        let blob = tree
            .get_path(Path::new("m7.py"))
            .unwrap()
            .to_object(&c)
            .unwrap();
        assert_eq!(blob.as_blob().unwrap().content(), b"v = 777\n");
        assert_eq!(files_of(&c, &code.snapshot).len(), 50);
        assert_eq!(std::fs::read(c.path().join("index")).unwrap(), index_before);
    }

    #[test]
    fn many_new_files_are_all_taken() {
        let (d, r) = repo();
        std::fs::write(d.path().join("a.py"), "a").unwrap();
        commit_all(&r, "first").unwrap();
        // Enough to be written by several threads.
        for i in 0..300 {
            let dir = d.path().join(format!("d{}", i % 7));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("n{i}.py")), format!("n = {i}\n")).unwrap();
        }
        let code = snapshot(d.path(), "m").unwrap().unwrap();
        let files = files_of(&r, &code.snapshot);
        assert_eq!(files.len(), 301);
        let tree = r.find_tree(Oid::from_str(&code.tree).unwrap()).unwrap();
        let blob = tree
            .get_path(Path::new("d3/n213.py"))
            .unwrap()
            .to_object(&r)
            .unwrap();
        assert_eq!(blob.as_blob().unwrap().content(), b"n = 213\n");
    }

    #[test]
    fn polyaxon_files_are_never_code() {
        let (d, r) = repo();
        let p = d.path();
        std::fs::write(p.join("train.py"), "x").unwrap();
        // The project context, even tracked, and a home inside the repository.
        std::fs::create_dir(p.join(".polyaxon")).unwrap();
        std::fs::write(p.join(".polyaxon/.project"), "{}").unwrap();
        commit_all(&r, "first").unwrap();
        std::fs::create_dir_all(p.join("cache/home/artifacts")).unwrap();
        std::fs::write(p.join("cache/home/artifacts/out.bin"), "o").unwrap();
        std::fs::write(p.join("cache/keep.txt"), "k").unwrap();
        let home = p.join("cache/home");
        assert_eq!(own_rules(p, &home), ["/.polyaxon/", "/cache/home/"]);
        assert_eq!(own_rules(p, Path::new("/elsewhere")), ["/.polyaxon/"]);
        let code = snapshot(p, "o").unwrap().unwrap();
        let files = files_of(&r, &code.snapshot);
        assert!(
            !files.iter().any(|f| f.starts_with(".polyaxon/")),
            "{files:?}"
        );
        assert!(files.contains(&"train.py".to_string()));
    }

    #[test]
    fn submodules_are_kept_as_their_commit() {
        let git = |dir: &Path, args: &[&str]| {
            let out = std::process::Command::new("git")
                .args([
                    "-c",
                    "user.email=t@t",
                    "-c",
                    "user.name=t",
                    "-c",
                    "protocol.file.allow=always",
                ])
                .args(args)
                .current_dir(dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let lib = tempfile::tempdir().unwrap();
        git(lib.path(), &["init", "-q"]);
        std::fs::write(lib.path().join("lib.py"), "L = 1\n").unwrap();
        git(lib.path(), &["add", "-A"]);
        git(lib.path(), &["commit", "-qm", "lib"]);
        let lib_head = Repository::open(lib.path())
            .unwrap()
            .head()
            .unwrap()
            .target()
            .unwrap();
        let (d, r) = repo();
        std::fs::write(d.path().join("train.py"), "x").unwrap();
        git(
            d.path(),
            &[
                "submodule",
                "add",
                "-q",
                &lib.path().display().to_string(),
                "vendor/lib",
            ],
        );
        git(d.path(), &["commit", "-qam", "with a submodule"]);
        // Work in the submodule is its own: the snapshot keeps the commit it is at.
        std::fs::write(d.path().join("vendor/lib/lib.py"), "L = 2\n").unwrap();
        let code = snapshot(d.path(), "s").unwrap().unwrap();
        let tree = r.find_tree(Oid::from_str(&code.tree).unwrap()).unwrap();
        let sub = tree.get_path(Path::new("vendor/lib")).unwrap();
        assert_eq!(sub.kind(), Some(git2::ObjectType::Commit));
        assert_eq!(sub.id(), lib_head);
        assert!(tree.get_path(Path::new(".gitmodules")).is_ok());
        assert!(tree.get_path(Path::new("train.py")).is_ok());
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
