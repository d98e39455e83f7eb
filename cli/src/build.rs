//! Image builds: a Dockerfile generated from `init: [{dockerfile: …}]` (what v0.6 `build:
//! {image, build_steps, env_vars}` becomes too), or the Dockerfile a `build` section names,
//! built with the run's code as the context. The tag is a hash of everything that goes in, so
//! an unchanged build is found and reused instead of redone.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use polyaxonfile::spec::init::{DockerfileInit, EnvPairs, PathOrPair};

/// What to build.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildSpec {
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// The build context on this machine.
    pub context: PathBuf,
    /// The image's name (without the tag).
    pub name: String,
    /// Built again, with no layer from the Engine's cache, even when the tag exists.
    pub no_cache: bool,
}

/// The Dockerfile `init.dockerfile` describes.
pub fn dockerfile_of(d: &DockerfileInit) -> String {
    let mut out = String::new();
    let image = d.image.as_deref().unwrap_or("busybox");
    out.push_str(&format!("FROM {image}\n"));
    if let Some(lang) = d.lang_env.as_deref().filter(|l| !l.is_empty()) {
        out.push_str(&format!("ENV LC_ALL={lang} LANG={lang} LANGUAGE={lang}\n"));
    }
    let env: Vec<(String, String)> = match &d.env {
        Some(EnvPairs::Map(m)) => m.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Some(EnvPairs::Pairs(p)) => p.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        None => vec![],
    };
    for (k, v) in env {
        out.push_str(&format!("ENV {k}={}\n", quote(&v)));
    }
    for p in d.path.iter().flatten() {
        out.push_str(&format!("ENV PATH={}\n", quote(&format!("{p}:$PATH"))));
    }
    if let Some(shell) = d.shell.as_deref().filter(|s| !s.is_empty()) {
        out.push_str(&format!("SHELL [\"{shell}\", \"-c\"]\n"));
    }
    let workdir = d.workdir.as_deref().unwrap_or("/code");
    out.push_str(&format!("WORKDIR {workdir}\n"));
    let copy_line = |c: &PathOrPair| match c {
        PathOrPair::Path(p) => format!("COPY {p} {workdir}\n"),
        PathOrPair::Pair(v) => match v.as_slice() {
            [src, dst] => format!("COPY {src} {dst}\n"),
            [src] => format!("COPY {src} {workdir}\n"),
            many => format!("COPY {}\n", many.join(" ")),
        },
    };
    for c in d.copy.iter().flatten() {
        out.push_str(&copy_line(c));
    }
    for step in d.run.iter().flatten() {
        out.push_str(&format!("RUN {step}\n"));
    }
    for c in d.post_run_copy.iter().flatten() {
        out.push_str(&copy_line(c));
    }
    match (d.uid, d.gid) {
        (Some(u), Some(g)) => out.push_str(&format!("USER {u}:{g}\n")),
        (Some(u), None) => out.push_str(&format!("USER {u}\n")),
        _ => {}
    }
    out
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl BuildSpec {
    /// The tag: the name and a hash of the Dockerfile and of every file of the context.
    pub fn tag(&self) -> std::io::Result<String> {
        let mut h = Sha256::new();
        h.update(self.dockerfile.as_bytes());
        hash_dir(&self.context, &self.context, &mut h)?;
        let digest = h.finalize();
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Ok(format!("{}:{hex}", self.name))
    }

    /// The context as a tar archive, with the Dockerfile added as `.polyaxon.Dockerfile`.
    pub fn context_tar(&self) -> std::io::Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        b.mode(tar::HeaderMode::Deterministic);
        add_dir(&mut b, &self.context, Path::new(""))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(self.dockerfile.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        b.append_data(&mut header, DOCKERFILE_NAME, self.dockerfile.as_bytes())?;
        b.into_inner()
    }
}

/// The name the generated Dockerfile has inside the context (clear of the user's own).
pub const DOCKERFILE_NAME: &str = ".polyaxon.Dockerfile";

/// Files the context leaves out, as docker would with a `.dockerignore` naming them.
fn skipped(name: &str) -> bool {
    matches!(name, ".git" | ".polyaxon-code")
}

fn sorted_entries(dir: &Path) -> std::io::Result<Vec<std::fs::DirEntry>> {
    let mut v: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    v.sort_by_key(|e| e.file_name());
    Ok(v)
}

fn hash_dir(root: &Path, dir: &Path, h: &mut Sha256) -> std::io::Result<()> {
    for e in sorted_entries(dir)? {
        let name = e.file_name().to_string_lossy().into_owned();
        if skipped(&name) {
            continue;
        }
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        let ft = e.file_type()?;
        h.update(rel.as_bytes());
        h.update([0]);
        if ft.is_dir() {
            h.update(b"d");
            hash_dir(root, &path, h)?;
        } else if ft.is_symlink() {
            h.update(b"l");
            h.update(std::fs::read_link(&path)?.to_string_lossy().as_bytes());
        } else {
            h.update(b"f");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                h.update(e.metadata()?.permissions().mode().to_le_bytes());
            }
            h.update(std::fs::read(&path)?);
        }
        h.update([0]);
    }
    Ok(())
}

fn add_dir(b: &mut tar::Builder<Vec<u8>>, dir: &Path, rel: &Path) -> std::io::Result<()> {
    for e in sorted_entries(dir)? {
        let name = e.file_name();
        if skipped(&name.to_string_lossy()) {
            continue;
        }
        let path = e.path();
        let r = rel.join(&name);
        if e.file_type()?.is_dir() {
            b.append_dir(&r, &path)?;
            add_dir(b, &path, &r)?;
        } else {
            b.append_path_with_name(&path, &r)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfiles_are_generated_in_order() {
        let d: DockerfileInit = serde_json::from_value(serde_json::json!({
            "image": "python:3.11",
            "env": {"A": "1", "B": "two words"},
            "path": ["/opt/bin"],
            "run": ["pip install numpy", "echo done"],
            "copy": ["requirements.txt", ["src", "/app/src"]],
            "langEnv": "en_US.UTF-8",
            "workdir": "/app",
            "uid": 1000,
            "gid": 1000
        }))
        .unwrap();
        assert_eq!(
            dockerfile_of(&d),
            "FROM python:3.11\nENV LC_ALL=en_US.UTF-8 LANG=en_US.UTF-8 LANGUAGE=en_US.UTF-8\nENV A=\"1\"\nENV B=\"two words\"\nENV PATH=\"/opt/bin:$PATH\"\nWORKDIR /app\nCOPY requirements.txt /app\nCOPY src /app/src\nRUN pip install numpy\nRUN echo done\nUSER 1000:1000\n"
        );
    }

    #[test]
    fn the_tag_follows_the_inputs() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.txt"), "1").unwrap();
        let spec = BuildSpec {
            dockerfile: "FROM scratch\n".into(),
            context: d.path().to_path_buf(),
            name: "polyaxon/job".into(),
            no_cache: false,
        };
        let t1 = spec.tag().unwrap();
        assert!(t1.starts_with("polyaxon/job:") && t1.len() == "polyaxon/job:".len() + 16);
        assert_eq!(spec.tag().unwrap(), t1, "stable");
        std::fs::write(d.path().join("a.txt"), "2").unwrap();
        let t2 = spec.tag().unwrap();
        assert_ne!(t1, t2, "a file changed");
        let other = BuildSpec {
            dockerfile: "FROM scratch\nRUN x\n".into(),
            ..spec.clone()
        };
        assert_ne!(other.tag().unwrap(), t2, "the Dockerfile changed");
        let tar = spec.context_tar().unwrap();
        let mut ar = tar::Archive::new(&tar[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.txt", DOCKERFILE_NAME]);
    }
}
