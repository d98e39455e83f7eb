//! The init steps of a job that runs on this machine (the process and Docker executors; a
//! cluster runs them as init containers): `artifacts` (files and directories of runs, fetched
//! through the API, so from the server's artifacts store wherever it keeps them), `file` (a
//! file written) and `git` (a repository cloned), each into the run's directory before the
//! job starts. `dockerfile` is the image's (see `prepare`); the others are said, not run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use futures_util::StreamExt;
use polyaxonfile::spec::{self, Init, Run};
use tokio::io::AsyncWriteExt;

use super::RunApi;
use crate::error::UserError;

/// Where the run's directory is: on this machine (`host`), and as the job sees it (`job`,
/// the same path for a process, a mount point in a container).
pub struct Dirs<'a> {
    pub host: &'a Path,
    pub job: &'a Path,
    /// The job sees this machine's paths (a process), so an absolute path outside its run
    /// directory is one it can use.
    pub on_host: bool,
}

/// Runs the steps of `op` in order; what could not be run, as notes.
pub async fn run(
    api: &RunApi,
    op: &polyaxonfile::CompiledOperation,
    dirs: &Dirs<'_>,
) -> Result<Vec<String>> {
    let steps = match &op.run {
        Some(Run::Job(j)) => j.init.as_deref(),
        Some(Run::Service(s)) => s.init.as_deref(),
        _ => None,
    };
    let mut notes = Vec::new();
    for (n, step) in steps.into_iter().flatten().enumerate() {
        let what = format!("init step {}", n + 1);
        if let Some(a) = &step.artifacts {
            let dest = dest(step, dirs, &what)?;
            let got = artifacts(api, a, &dest, &what).await?;
            api.log_as(
                "init",
                format!("{what}: {got} files fetched into `{}`", dest.display()),
            )
            .await?;
        } else if let Some(f) = &step.file {
            let dest = dest(step, dirs, &what)?;
            file(f, &dest, &what)?;
        } else if let Some(g) = &step.git {
            let mut with_code = step.clone();
            with_code.path = Some(step.path.clone().unwrap_or_else(|| "code".into()));
            let dest = dest(&with_code, dirs, &what)?;
            git(api, g, step.connection.as_deref(), &dest, dirs.host, &what).await?;
        } else if step.dockerfile.is_some() {
        } else {
            let kinds = step.sources();
            notes.push(format!(
                "{what} ({}) runs on a cluster only: skipped here",
                if kinds.is_empty() {
                    "a container".to_string()
                } else {
                    kinds.join(", ")
                }
            ));
        }
    }
    Ok(notes)
}

/// The directory a step writes into, on this machine: the run's directory, or its `path`
/// (relative to it; absolute inside it as the job sees it, or anywhere for a process).
fn dest(step: &Init, dirs: &Dirs<'_>, what: &str) -> Result<PathBuf> {
    let Some(p) = step.path.as_deref().filter(|p| !p.trim().is_empty()) else {
        return Ok(dirs.host.to_path_buf());
    };
    let path = Path::new(p);
    if path.is_absolute() {
        if let Ok(rest) = path.strip_prefix(dirs.job) {
            return inside(dirs.host, &rest.to_string_lossy(), what);
        }
        if dirs.on_host {
            return Ok(path.to_path_buf());
        }
        return Err(UserError::new(format!(
            "{what}: `path: {p}` is outside the run's directory `{}`, which is all the container sees",
            dirs.job.display()
        ))
        .hint("give a path relative to the run's directory")
        .into());
    }
    inside(dirs.host, p, what)
}

/// `rel` below `base`, refused when it climbs out.
fn inside(base: &Path, rel: &str, what: &str) -> Result<PathBuf> {
    let rel = Path::new(rel.trim_start_matches('/'));
    if rel.components().any(|c| {
        !matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    }) {
        return Err(UserError::new(format!(
            "{what}: `{}` leaves the run's directory",
            rel.display()
        ))
        .into());
    }
    Ok(base.join(rel))
}

/// `<run uuid>/<path in that run>` (a `[from, to]` pair puts it at `to`).
fn source(p: &spec::PathOrPair, what: &str) -> Result<(String, String, String)> {
    let (from, to) = match p {
        spec::PathOrPair::Path(s) => (s.clone(), s.clone()),
        spec::PathOrPair::Pair(v) if v.len() == 2 => (v[0].clone(), v[1].clone()),
        spec::PathOrPair::Pair(v) => {
            return Err(UserError::new(format!(
                "{what}: `{v:?}` is neither a path nor a [from, to] pair"
            ))
            .into());
        }
    };
    let trimmed = from.trim_start_matches('/');
    let Some((run, rest)) = trimmed.split_once('/').filter(|(r, _)| !r.is_empty()) else {
        return Err(UserError::new(format!(
            "{what}: `{from}` does not name a run's file"
        ))
        .hint("write `<run uuid>/<path in that run>`, e.g. `{{ ops.train.globals.uuid }}/outputs/model`")
        .into());
    };
    Ok((run.replace('-', ""), rest.to_string(), to))
}

/// Fetches the step's files and directories; how many files.
async fn artifacts(
    api: &RunApi,
    a: &spec::init::ArtifactsInit,
    dest: &Path,
    what: &str,
) -> Result<usize> {
    let mut n = 0;
    for p in a.files.iter().flatten() {
        let (run, path, to) = source(p, what)?;
        let r = api.r.sibling(&run);
        let local = inside(dest, &to, what)?;
        let resp = api
            .client
            .download_file(&r, &path)
            .await
            .with_context(|| format!("{what}: fetching `{path}` of run {run}"))?;
        if let Some(parent) = local.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        write_stream(resp.body, &local)
            .await
            .with_context(|| format!("{what}: fetching `{path}` of run {run}"))?;
        n += 1;
    }
    for p in a.dirs.iter().flatten() {
        let (run, path, to) = source(p, what)?;
        let r = api.r.sibling(&run);
        let local = inside(dest, &to, what)?;
        let resp = api
            .client
            .download_archive(&r, Some(&path))
            .await
            .with_context(|| format!("{what}: fetching the directory `{path}` of run {run}"))?;
        // The archive on disk, then unpacked: never whole in memory.
        let tmp = tempfile::NamedTempFile::new_in(dest.parent().unwrap_or(dest))
            .or_else(|_| tempfile::NamedTempFile::new())?;
        write_stream(resp.body, tmp.path()).await?;
        let (tar_path, to_dir) = (tmp.path().to_path_buf(), local.clone());
        n += tokio::task::spawn_blocking(move || untar_below(&tar_path, &to_dir))
            .await
            .context("unpacking")??;
    }
    Ok(n)
}

async fn write_stream(mut body: crate::client::transport::BodyStream, to: &Path) -> Result<()> {
    let part = to.with_extension("part");
    let mut f = tokio::fs::File::create(&part)
        .await
        .with_context(|| format!("writing `{}`", part.display()))?;
    while let Some(chunk) = body.next().await {
        f.write_all(&chunk?).await?;
    }
    f.flush().await?;
    drop(f);
    tokio::fs::rename(&part, to).await?;
    Ok(())
}

/// Unpacks an archive of a directory (its top entry stands for the directory) into `to`.
fn untar_below(archive: &Path, to: &Path) -> Result<usize> {
    let f = std::fs::File::open(archive)?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut n = 0;
    for entry in ar.entries().context("reading the archive")? {
        let mut entry = entry.context("reading the archive")?;
        let rel: PathBuf = entry.path()?.components().skip(1).collect();
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = inside(to, &rel.to_string_lossy(), "the archive")?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if entry.header().entry_type().is_file() {
            n += 1;
        }
        entry
            .unpack(&target)
            .with_context(|| format!("writing `{}`", target.display()))?;
    }
    Ok(n)
}

fn file(f: &spec::init::FileInit, dest: &Path, what: &str) -> Result<()> {
    let name = f.filename.clone().unwrap_or_else(|| "file".into());
    if name.contains('/') || name == ".." || name == "." || name.is_empty() {
        return Err(UserError::new(format!(
            "{what}: `file.filename` `{name}` must be a plain name"
        ))
        .hint("put the directory in the step's `path`")
        .into());
    }
    std::fs::create_dir_all(dest)?;
    let path = dest.join(&name);
    std::fs::write(&path, f.content.as_deref().unwrap_or_default())
        .with_context(|| format!("{what}: writing `{}`", path.display()))?;
    if let Some(mode) = f.chmod.as_deref().filter(|m| !m.is_empty()) {
        use std::os::unix::fs::PermissionsExt;
        let bits = u32::from_str_radix(mode.trim_start_matches("0o"), 8).map_err(|_| {
            UserError::new(format!("{what}: `chmod: {mode}` is not an octal mode"))
                .hint("e.g. `chmod: \"755\"`")
        })?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bits))?;
    }
    Ok(())
}

async fn git(
    api: &RunApi,
    g: &spec::init::GitInit,
    connection: Option<&str>,
    dest: &Path,
    run_dir: &Path,
    what: &str,
) -> Result<()> {
    let Some(url) = g.url.clone() else {
        return Err(UserError::new(format!(
            "{what} clones git without a `url`{}",
            connection
                .map(|c| format!(" (the connection `{c}` gives one on a cluster only)"))
                .unwrap_or_default()
        ))
        .hint("set `git.url`")
        .into());
    };
    if dest.exists() {
        // A clone of an earlier start, in the run's directory, is replaced; anything else is
        // someone's, and kept.
        if !dest.starts_with(run_dir) {
            return Err(UserError::new(format!(
                "{what}: `{}` exists, outside the run's directory: git clones into a new directory",
                dest.display()
            ))
            .hint("give a `path` that does not exist yet, or one inside the run's directory")
            .into());
        }
        tokio::fs::remove_dir_all(dest).await.ok();
    }
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let mut clone = tokio::process::Command::new("git");
    clone
        .arg("clone")
        .args(g.flags.iter().flatten())
        .arg("--")
        .arg(&url)
        .arg(dest);
    let out = clone
        .output()
        .await
        .with_context(|| format!("{what}: running `git` (is it installed?)"))?;
    if !out.status.success() {
        return Err(UserError::new(format!(
            "{what}: `git clone {}` failed: {}",
            without_secret(&url),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .into());
    }
    if let Some(rev) = g.revision.as_deref().filter(|r| !r.is_empty()) {
        let out = tokio::process::Command::new("git")
            .arg("-C")
            .arg(dest)
            .args(["checkout", "-q", rev])
            .output()
            .await?;
        if !out.status.success() {
            return Err(UserError::new(format!(
                "{what}: `git checkout {rev}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
            .into());
        }
    }
    api.log_as(
        "init",
        format!(
            "{what}: cloned {} into `{}`",
            without_secret(&url),
            dest.display()
        ),
    )
    .await?;
    Ok(())
}

/// A URL without the credentials it may carry (`https://user:token@host/…`).
fn without_secret(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority = rest.split('/').next().unwrap_or_default();
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{}", &rest[authority.len()..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_stay_in_the_run_and_sources_name_runs() {
        let (host, job) = (
            Path::new("/h/runs/u1"),
            Path::new("/plx-context/artifacts/u1"),
        );
        let step = |p: Option<&str>| Init {
            path: p.map(str::to_string),
            ..Init::default()
        };
        let container = Dirs {
            host,
            job,
            on_host: false,
        };
        assert_eq!(dest(&step(None), &container, "s").unwrap(), host);
        assert_eq!(
            dest(&step(Some("data")), &container, "s").unwrap(),
            host.join("data")
        );
        assert_eq!(
            dest(
                &step(Some("/plx-context/artifacts/u1/data")),
                &container,
                "s"
            )
            .unwrap(),
            host.join("data")
        );
        assert!(dest(&step(Some("/etc")), &container, "s").is_err());
        assert!(dest(&step(Some("../x")), &container, "s").is_err());
        let process = Dirs {
            host,
            job: host,
            on_host: true,
        };
        assert_eq!(
            dest(&step(Some("/data/x")), &process, "s").unwrap(),
            Path::new("/data/x")
        );
        let (run, path, to) =
            source(&spec::PathOrPair::Path("ab-cd/outputs/m".into()), "s").unwrap();
        assert_eq!(
            (run.as_str(), path.as_str(), to.as_str()),
            ("abcd", "outputs/m", "ab-cd/outputs/m")
        );
        let (_, _, to) = source(
            &spec::PathOrPair::Pair(vec!["u/outputs/m".into(), "model".into()]),
            "s",
        )
        .unwrap();
        assert_eq!(to, "model");
        assert!(source(&spec::PathOrPair::Path("nouuid".into()), "s").is_err());
        assert_eq!(
            without_secret("https://me:tok@git.example.com/r.git"),
            "https://git.example.com/r.git"
        );
        assert_eq!(
            without_secret("https://git.example.com/a@b.git"),
            "https://git.example.com/a@b.git"
        );
    }
}
