//! `polyaxon ops artifacts`: download a run's files.

use crate::output::human_bytes;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use futures_util::StreamExt;

use super::Target;
use crate::client::{Client, RunRef};
use crate::context::{Ctx, run_not_found};
use crate::error::UserError;

#[derive(Debug, Args)]
pub struct ArtifactsArgs {
    /// A file to download, relative to the run's directory (repeatable).
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub files: Vec<String>,

    /// A directory to download (repeatable).
    #[arg(short = 'd', long = "dir", value_name = "PATH")]
    pub dirs: Vec<String>,

    /// The artifacts of the run's lineage with this name (repeatable): their paths are
    /// downloaded (`polyaxon.tracking`'s `log_model_ref`, `log_artifact_ref`, …).
    #[arg(long = "lineage-name", alias = "l-name", value_name = "NAME")]
    pub lineage_names: Vec<String>,

    /// The artifacts of the run's lineage of this kind (`model`, `data`, `file`, `dir`,
    /// `tensorboard`, …; repeatable).
    #[arg(long = "lineage-kind", alias = "l-kind", value_name = "KIND")]
    pub lineage_kinds: Vec<String>,

    /// Where to put them (default: `./<run uuid>`).
    #[arg(long, alias = "path-to", value_name = "DIR")]
    pub path: Option<PathBuf>,

    /// Keep directories as `.tar.gz` archives instead of unpacking them.
    #[arg(long)]
    pub no_untar: bool,
}

pub fn run(ctx: &Ctx, target: &Target, args: ArtifactsArgs) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        let (r, _) = target.resolve(ctx, &client).await?;
        let dest = args.path.clone().unwrap_or_else(|| PathBuf::from(&r.uuid));
        std::fs::create_dir_all(&dest).with_context(|| format!("creating `{}`", dest.display()))?;
        let by_lineage = !args.lineage_names.is_empty() || !args.lineage_kinds.is_empty();
        let whole = args.files.is_empty() && args.dirs.is_empty() && !by_lineage;
        let mut n = 0u64;
        if by_lineage {
            n += download_lineage(ctx, &client, &r, &args, &dest).await?;
        }
        for f in &args.files {
            let local = dest.join(safe_relative(f)?);
            n += download_file(ctx, &client, &r, f, &local).await?;
        }
        let dirs: Vec<Option<&str>> = if whole {
            vec![None]
        } else {
            args.dirs.iter().map(|d| Some(d.as_str())).collect()
        };
        for d in dirs {
            n += download_dir(ctx, &client, &r, d, &dest, args.no_untar).await?;
        }
        ctx.printer.success(&format!(
            "downloaded {} to `{}`",
            human_bytes(n),
            dest.display()
        ));
        Ok(())
    })
}

/// Downloads the paths of the lineage entries the names and kinds choose (both, when both
/// are given); an entry outside the run (`s3://…`, another run's) is named, not fetched.
async fn download_lineage(
    ctx: &Ctx,
    client: &Client,
    r: &RunRef,
    args: &ArtifactsArgs,
    dest: &Path,
) -> Result<u64> {
    let all = client
        .run_lineage(r, None)
        .await
        .map_err(|e| run_not_found(e, r))?
        .results;
    let field = |a: &serde_json::Value, k: &str| {
        a.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let chosen: Vec<&serde_json::Value> = all
        .iter()
        .filter(|a| args.lineage_names.is_empty() || args.lineage_names.contains(&field(a, "name")))
        .filter(|a| args.lineage_kinds.is_empty() || args.lineage_kinds.contains(&field(a, "kind")))
        .collect();
    for want in &args.lineage_names {
        if !all.iter().any(|a| field(a, "name") == *want) {
            let known: Vec<String> = all.iter().map(|a| field(a, "name")).collect();
            return Err(UserError::new(format!(
                "run `{}` has no artifact `{want}` in its lineage",
                r.uuid
            ))
            .hint(if known.is_empty() {
                "it recorded none (`tracking.log_model_ref`, `log_artifact_ref`, `log_data_ref` record them)".to_string()
            } else {
                format!("its lineage has: {}", known.join(", "))
            })
            .into());
        }
    }
    if chosen.is_empty() {
        return Err(UserError::new(format!(
            "run `{}` has no artifact of kind {} in its lineage",
            r.uuid,
            args.lineage_kinds.join(" or ")
        ))
        .into());
    }
    let mut n = 0;
    for a in chosen {
        let (name, path) = (field(a, "name"), field(a, "path"));
        let Some(rel) = crate::client::lineage_path_in_run(&path, &r.uuid) else {
            ctx.printer.warn(&format!(
                "`{name}` is at `{path}`, outside the run's files: not downloaded"
            ));
            continue;
        };
        let local = dest.join(safe_relative(&rel)?);
        match download_file(ctx, client, r, &rel, &local).await {
            Ok(got) => n += got,
            // A directory (a model saved as a folder, a tensorboard's logs): the server says
            // it is one, or (in a store, where directories are prefixes) that no file is there.
            Err(e)
                if e.to_string().contains("is a directory")
                    || e.to_string().contains("has no file") =>
            {
                let _ = std::fs::remove_file(local.with_extension("part"));
                n += download_dir(ctx, client, r, Some(&rel), dest, args.no_untar).await?
            }
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A run-relative path that stays inside the destination.
fn safe_relative(p: &str) -> Result<PathBuf> {
    let path = Path::new(p.trim_start_matches('/'));
    if path.components().any(|c| {
        !matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    }) || path.as_os_str().is_empty()
    {
        return Err(
            UserError::new(format!("`{p}` is not a path inside the run"))
                .hint("give paths relative to the run's directory, e.g. `outputs/model.pt`")
                .into(),
        );
    }
    Ok(path.to_path_buf())
}

fn progress(ctx: &Ctx, what: &str, len: Option<u64>) -> indicatif::ProgressBar {
    ctx.printer
        .progress(crate::printer::Progress::Bytes(len), what)
}

async fn download_file(
    ctx: &Ctx,
    client: &Client,
    r: &RunRef,
    path: &str,
    local: &Path,
) -> Result<u64> {
    let resp = client
        .download_file(r, path)
        .await
        .map_err(|e| {
            if e.is_not_found() {
                UserError::new(format!("run `{}` has no file `{path}`", r.uuid))
                    .hint("see its files with `polyaxon ops get` or download all with `polyaxon ops artifacts`")
                    .into()
            } else {
                run_not_found(e, r)
            }
        })?;
    if let Some(parent) = local.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let len = resp
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let pb = progress(ctx, path, len);
    let tmp = local.with_extension("part");
    let mut f = tokio::fs::File::create(&tmp)
        .await
        .with_context(|| format!("writing `{}`", tmp.display()))?;
    let mut body = resp.body;
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.with_context(|| format!("downloading `{path}`"))?;
        tokio::io::AsyncWriteExt::write_all(&mut f, &chunk).await?;
        n += chunk.len() as u64;
        pb.set_position(n);
    }
    tokio::io::AsyncWriteExt::flush(&mut f).await?;
    drop(f);
    tokio::fs::rename(&tmp, local).await?;
    pb.finish_and_clear();
    Ok(n)
}

async fn download_dir(
    ctx: &Ctx,
    client: &Client,
    r: &RunRef,
    dir: Option<&str>,
    dest: &Path,
    no_untar: bool,
) -> Result<u64> {
    let resp = client.download_archive(r, dir).await.map_err(|e| {
        if !e.is_not_found() {
            return anyhow::Error::from(e);
        }
        match dir {
            Some(d) => UserError::new(format!("run `{}` has no directory `{d}`", r.uuid)).into(),
            None => UserError::new(format!("run `{}` has no files yet", r.uuid)).into(),
        }
    })?;
    let label = dir.unwrap_or("all files");
    let pb = progress(ctx, label, None);
    let mut bytes = Vec::new();
    let mut body = resp.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.with_context(|| format!("downloading `{label}`"))?;
        bytes.extend_from_slice(&chunk);
        pb.set_position(bytes.len() as u64);
    }
    pb.finish_and_clear();
    let n = bytes.len() as u64;
    if no_untar {
        let name = match dir {
            Some(d) => format!("{}.tar.gz", d.trim_matches('/').replace('/', "_")),
            None => format!("{}.tar.gz", r.uuid),
        };
        std::fs::write(dest.join(&name), &bytes)?;
        return Ok(n);
    }
    // The archive's top directory stands for `dir`: its entries go under `dest/dir`.
    let base = match dir {
        Some(d) => dest.join(safe_relative(d)?),
        None => dest.to_path_buf(),
    };
    tokio::task::spawn_blocking(move || -> Result<()> {
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        for entry in ar.entries().context("reading the archive")? {
            let mut entry = entry.context("reading the archive")?;
            let rel: PathBuf = entry.path()?.components().skip(1).collect();
            if rel.as_os_str().is_empty() {
                continue;
            }
            let target = base.join(safe_relative(&rel.to_string_lossy())?);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            entry
                .unpack(&target)
                .with_context(|| format!("writing `{}`", target.display()))?;
        }
        Ok(())
    })
    .await??;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        assert!(safe_relative("outputs/model.pt").is_ok());
        assert!(safe_relative("/outputs/x").is_ok());
        assert!(safe_relative("../x").is_err());
        assert!(safe_relative("a/../../x").is_err());
        assert!(safe_relative("").is_err());
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn lineage_paths_are_read_under_the_run() {
        assert_eq!(
            crate::client::lineage_path_in_run("outputs/model.bin", "u1").as_deref(),
            Some("outputs/model.bin")
        );
        assert_eq!(
            crate::client::lineage_path_in_run("/plx-context/artifacts/u1/outputs/m", "u1")
                .as_deref(),
            Some("outputs/m")
        );
        assert_eq!(
            crate::client::lineage_path_in_run("s3://bucket/data.csv", "u1"),
            None
        );
        assert_eq!(
            crate::client::lineage_path_in_run("/data/elsewhere.csv", "u1"),
            None
        );
        assert_eq!(crate::client::lineage_path_in_run("", "u1"), None);
    }
}
