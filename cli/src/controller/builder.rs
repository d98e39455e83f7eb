//! Image builds as operations of their own: the hub's `kaniko` and `dockerizer` components
//! are jobs whose command is `polyaxon docker build-and-push -c CONTEXT -d DESTINATION …`.
//! Such a job is not handed to the executor: its controller builds the image with this
//! machine's Docker Engine (the build and push output as the run's `build` logs), tags it as
//! `destination`, pushes it when the destination names a registry (or its `connection` is a
//! `registry` connection, or the executor is a cluster), and records the image as the run's
//! `destination` output — what a DAG's next operation runs (`{ref: ops.build, value:
//! outputs.destination}`). Whatever the executor: a build needs an Engine, not a pod.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use polyaxon_server::api::{RunStatus, V1Run};

use super::plan::RunSpec;
use super::{Ctl, Outcome, prepare};
use crate::error::UserError;
use crate::executor::{self, Images};
use crate::registry::{self, Registry};

/// The command that marks a job as an image build.
pub const COMMAND: [&str; 3] = ["polyaxon", "docker", "build-and-push"];

/// What a build job asks for, read from its command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// The build context (empty: the run's code).
    pub context: Option<String>,
    /// The Dockerfile, relative to the context (default `Dockerfile`).
    pub dockerfile: Option<String>,
    /// `image[:tag]`, with a registry host or not.
    pub destination: String,
    /// A `registry` connection whose `url` the destination goes under.
    pub connection: Option<String>,
    pub nocache: bool,
}

/// The build `op` asks for, if it is a build job (`Err`: it is one, with a bad command line).
pub fn request(op: &polyaxonfile::CompiledOperation) -> Result<Option<Request>> {
    let Some(polyaxonfile::spec::Run::Job(job)) = &op.run else {
        return Ok(None);
    };
    let Some(c) = &job.container else {
        return Ok(None);
    };
    let argv: Vec<&str> = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .map(String::as_str)
        .collect();
    if argv.len() < COMMAND.len() || argv[..COMMAND.len()] != COMMAND {
        return Ok(None);
    }
    parse(&argv[COMMAND.len()..]).map(Some).map_err(|e| {
        UserError::new(format!("`{}`: {e}", COMMAND.join(" ")))
            .hint("give it `-d IMAGE[:TAG]` (the `destination` param) and optionally `-c CONTEXT`, `-f DOCKERFILE`, `--connection NAME`, `--nocache`")
            .into()
    })
}

fn parse(args: &[&str]) -> Result<Request, String> {
    let mut r = Request::default();
    let mut destination = None;
    let mut it = args.iter().copied();
    while let Some(a) = it.next() {
        // A flag rendered off (`{{ nocache }}` when false) is an empty argument.
        if a.trim().is_empty() {
            continue;
        }
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a, None),
        };
        let mut value = |name: &str| -> Result<Option<String>, String> {
            let v = match inline.clone() {
                Some(v) => v,
                None => it
                    .next()
                    .map(str::to_string)
                    .ok_or_else(|| format!("`{name}` needs a value"))?,
            };
            let v = v.trim().to_string();
            Ok((!v.is_empty()).then_some(v))
        };
        match flag {
            "-c" | "--context" => r.context = value(flag)?,
            "-f" | "--dockerfile" => r.dockerfile = value(flag)?,
            "-d" | "--destination" => destination = value(flag)?,
            "--connection" => r.connection = value(flag)?,
            "--nocache" | "--no-cache" => r.nocache = true,
            // upstream's kaniko flags: the Engine's layer cache is always used, and has no age.
            "--cache" => {}
            "--cache-ttl" => {
                value(flag)?;
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    r.destination = destination.ok_or("no destination (`-d IMAGE[:TAG]`)")?;
    if r.destination.contains(char::is_whitespace) || r.destination.contains("{{") {
        return Err(format!("`{}` is not an image name", r.destination));
    }
    Ok(r)
}

/// Where the image goes: tagged here only, or pushed as `repo:tag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Local { name: String, tag: String },
    Push { repo: String, tag: String },
}

/// Resolves `destination` against a registry connection's `url` (if any), the registry the
/// cluster pulls from (if images must be pushed), or the name itself.
pub fn target(
    destination: &str,
    connection_url: Option<&str>,
    cluster_registry: Option<&Registry>,
) -> Result<Target> {
    let (name, tag) = registry::split_tag(destination);
    let tag = tag.unwrap_or("latest").to_string();
    if !tag
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        || tag.len() > 128
    {
        return Err(UserError::new(format!(
            "the destination `{destination}`: `{tag}` is not an image tag"
        ))
        .hint("a tag is letters, digits, `_`, `.` and `-` (at most 128)")
        .into());
    }
    let first = name.split('/').next().unwrap_or(name);
    let rest = if name.contains('/') && (first.contains('.') || first.contains(':')) {
        &name[first.len() + 1..]
    } else {
        name
    };
    if rest.is_empty()
        || !rest.split('/').all(|seg| {
            !seg.is_empty()
                && seg.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                })
        })
    {
        return Err(UserError::new(format!(
            "the destination `{destination}` is not an image name"
        ))
        .hint("write it `[registry-host[:port]/]name[:tag]`, the name in lowercase letters, digits, `.`, `_`, `-` and `/`")
        .into());
    }
    let has_host = name.contains('/')
        && (first.contains('.') || first.contains(':') || first.eq_ignore_ascii_case("localhost"));
    if let Some(url) = connection_url {
        let reg = Registry::parse(url)?;
        let repo = if reg.path.is_empty() {
            format!("{}/{name}", reg.host)
        } else {
            format!("{}/{}/{name}", reg.host, reg.path)
        };
        return Ok(Target::Push { repo, tag });
    }
    if has_host {
        return Ok(Target::Push {
            repo: name.to_string(),
            tag,
        });
    }
    if let Some(reg) = cluster_registry {
        let repo = if reg.path.is_empty() {
            format!("{}/{name}", reg.host)
        } else {
            format!("{}/{}/{name}", reg.host, reg.path)
        };
        return Ok(Target::Push { repo, tag });
    }
    Ok(Target::Local {
        name: name.to_string(),
        tag,
    })
}

/// Builds, tags and pushes what `req` asks for, and ends the run.
pub async fn drive(
    ctl: &Ctl<'_>,
    run: &V1Run,
    spec: &RunSpec,
    dir: &Path,
    claim: tokio::task::JoinHandle<Result<()>>,
    req: Request,
) -> Result<Outcome> {
    let api = &ctl.api;
    let op = &spec.compiled.operation;
    let meta = run.meta();
    let code_dir = prepare::code(&meta, dir)?;
    let context = context_dir(ctl, spec, dir, &code_dir, req.context.as_deref())?;
    // The Dockerfile: `init.dockerfile`'s (in `runPatch`), else the context's.
    let dockerfile = match prepare::init_dockerfile(op) {
        Some(d) => crate::build::dockerfile_of(d),
        None => {
            let name = req.dockerfile.as_deref().unwrap_or("Dockerfile");
            let path = context.join(name);
            std::fs::read_to_string(&path).map_err(|e| {
                UserError::new(format!(
                    "the Dockerfile `{}` cannot be read: {e}",
                    path.display()
                ))
                .hint("put a Dockerfile in the build context, name another with the `dockerfile` param, or describe one with `runPatch.init: [{dockerfile: …}]`")
            })?
        }
    };
    // Where it goes, known before the build: a wrong connection or registry fails fast.
    let connection_url = match &req.connection {
        None => None,
        Some(name) => Some(registry_connection(ctl, name).await?),
    };
    let cluster = ctl.executor.capabilities().images == Images::Pushed;
    let cluster_registry = if cluster && connection_url.is_none() {
        Some(prepare::push_registry(ctl.settings)?)
    } else {
        None
    };
    let target = target(
        &req.destination,
        connection_url.as_ref().map(|(url, _)| url.as_str()),
        cluster_registry.as_ref(),
    )?;
    let mut settings = ctl.settings.registry.clone();
    if let Some((_, Some(config))) = &connection_url {
        settings.docker_config = Some(config.clone());
    }
    claim.await.context("claiming the run")??;

    let build = crate::build::BuildSpec {
        dockerfile,
        context: context.clone(),
        name: prepare::image_name(op),
        no_cache: req.nocache,
    };
    let message = format!(
        "building the image for `{}` (context `{}`)",
        req.destination,
        context.display()
    );
    let local = prepare::build(ctl, &build, RunStatus::Running, &message).await?;
    let image = match &target {
        Target::Local { name, tag } => {
            let docker = executor::docker::Docker::connect().await?;
            registry::tag_image(&docker.api, &local, name, tag).await?;
            let image = format!("{name}:{tag}");
            api.log_as(
                "build",
                format!("tagged `{image}` on this machine's Docker Engine (no registry named: not pushed)"),
            )
            .await?;
            image
        }
        Target::Push { repo, tag } => {
            let host = repo.split('/').next().unwrap_or(repo);
            let auth = registry::credentials(&settings, host)?;
            let socket = registry::engine_socket(settings.docker_host.as_deref())?;
            let pushed = prepare::push(
                ctl,
                &local,
                repo,
                tag,
                auth.as_ref(),
                &socket,
                RunStatus::Running,
            )
            .await?;
            api.log_as("build", format!("pushed `{pushed}`")).await?;
            pushed
        }
    };
    let mut outputs = serde_json::Map::new();
    outputs.insert(
        "destination".into(),
        serde_json::Value::String(image.clone()),
    );
    api.client
        .patch_run(
            &api.r,
            &V1Run {
                outputs: Some(outputs),
                merge: Some(true),
                ..Default::default()
            },
        )
        .await?;
    api.status(
        RunStatus::Succeeded,
        "ImageBuilt",
        &format!("the image is `{image}`"),
        None,
    )
    .await?;
    Ok(Outcome::Succeeded)
}

/// The build context on this machine: the run's code by default; a path the job would see
/// (under the run's directory or the context root, as `globals.*_path` render) mapped back
/// here; a relative path under the code.
fn context_dir(
    ctl: &Ctl<'_>,
    spec: &RunSpec,
    dir: &Path,
    code_dir: &Path,
    given: Option<&str>,
) -> Result<PathBuf> {
    let path = match given {
        None => code_dir.to_path_buf(),
        Some(p) => {
            let p = Path::new(p);
            if p.is_relative() {
                code_dir.join(p)
            } else if let Ok(rest) = p.strip_prefix(&spec.job_dir) {
                dir.join(rest)
            } else if let Ok(rest) = p.strip_prefix(&spec.job_root) {
                ctl.settings.context_root().join(rest)
            } else {
                p.to_path_buf()
            }
        }
    };
    if !path.is_dir() {
        return Err(UserError::new(format!(
            "the build context `{}` is not a directory on this machine",
            path.display()
        ))
        .hint("leave `context` empty to build the run's code, or give a directory with the Dockerfile")
        .into());
    }
    // Only the run's own files and code: a context elsewhere on the machine that runs the
    // build (its home, the store, other runs' files) would be packed into an image and pushed.
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let real = canon(&path);
    if ![canon(dir), canon(code_dir)]
        .iter()
        .any(|allowed| real.starts_with(allowed))
    {
        return Err(UserError::new(format!(
            "the build context `{}` is outside the run's code and files",
            path.display()
        ))
        .hint("give a directory of the run's code (relative to it), or under its artifacts (`{{ globals.run_artifacts_path }}/…`)")
        .into());
    }
    Ok(real)
}

/// A registry connection's `url`, and the Docker config its secret names (`file:/…`).
async fn registry_connection(ctl: &Ctl<'_>, name: &str) -> Result<(String, Option<PathBuf>)> {
    let list = ctl.api.client.list_connections().await?.results;
    let Some(c) = list.iter().find(|c| c.name == name) else {
        let known: Vec<&str> = list
            .iter()
            .filter(|c| c.kind == "registry")
            .map(|c| c.name.as_str())
            .collect();
        return Err(UserError::new(format!(
            "the destination's connection `{name}` is not in the connections catalogue"
        ))
        .hint(if known.is_empty() {
            "add a `registry` connection (`polyaxon connections create`, or the connections file) with `schema: {url: host[:port][/path]}`".to_string()
        } else {
            format!("registry connections: {}", known.join(", "))
        })
        .into());
    };
    if c.kind != "registry" {
        return Err(UserError::new(format!(
            "the destination's connection `{name}` is a `{}` connection, not a `registry` one",
            c.kind
        ))
        .into());
    }
    let url = c
        .schema
        .get("url")
        .and_then(|u| u.as_str())
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| {
            UserError::new(format!("the registry connection `{name}` has no `url`"))
                .hint("give it `schema: {url: host[:port][/path]}`")
        })?
        .to_string();
    let config = match c.secret.as_deref() {
        None => None,
        Some(s) => match s.strip_prefix("file:") {
            Some(p) => Some(PathBuf::from(p)),
            None => {
                return Err(UserError::new(format!(
                    "the registry connection `{name}`: its secret `{s}` is not a Docker config file"
                ))
                .hint("give it `secret: file:/path/to/config.json` (what `docker login` writes), or none to use this machine's login")
                .into());
            }
        },
    };
    Ok((url, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_parse() {
        let r = parse(&["-c", "/ctx", "-d", "train:1", "", "--connection", "reg"]).unwrap();
        assert_eq!(r.context.as_deref(), Some("/ctx"));
        assert_eq!(r.destination, "train:1");
        assert_eq!(r.connection.as_deref(), Some("reg"));
        assert!(!r.nocache);
        let r = parse(&[
            "-c",
            "",
            "-f",
            "",
            "--destination=x",
            "--nocache",
            "--cache-ttl=1h",
        ])
        .unwrap();
        assert_eq!(r.destination, "x");
        assert!(r.nocache);
        assert_eq!((r.context, r.dockerfile), (None, None));
        assert!(parse(&["-c", "x"]).unwrap_err().contains("no destination"));
        assert!(
            parse(&["-d", "x", "--push"])
                .unwrap_err()
                .contains("`--push`")
        );
        assert!(parse(&["-d"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["-d", "a b"]).unwrap_err().contains("not an image"));
    }

    #[test]
    fn destinations_resolve() {
        let local = target("train:v1", None, None).unwrap();
        assert_eq!(
            local,
            Target::Local {
                name: "train".into(),
                tag: "v1".into()
            }
        );
        assert_eq!(
            target("localhost:5000/ml/train", None, None).unwrap(),
            Target::Push {
                repo: "localhost:5000/ml/train".into(),
                tag: "latest".into()
            }
        );
        // A Docker Hub namespace is not a registry host.
        assert!(matches!(
            target("team/train:2", None, None).unwrap(),
            Target::Local { .. }
        ));
        assert_eq!(
            target("train:v1", Some("https://reg.example.com/ml"), None).unwrap(),
            Target::Push {
                repo: "reg.example.com/ml/train".into(),
                tag: "v1".into()
            }
        );
        let cluster = Registry::parse("reg.example.com:5000").unwrap();
        assert_eq!(
            target("train", None, Some(&cluster)).unwrap(),
            Target::Push {
                repo: "reg.example.com:5000/train".into(),
                tag: "latest".into()
            }
        );
        assert!(target("train:bad/tag!", None, None).is_err());
        assert!(target("Train:1", None, None).is_err());
        assert!(target("train:a+b", None, None).is_err());
        assert!(target("train", Some("not a host"), None).is_err());
    }
}
