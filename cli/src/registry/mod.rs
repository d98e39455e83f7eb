//! Pushing built images to the registry a cluster pulls from.
//!
//! The registry is `POLYAXON_K8S_REGISTRY` (`host[:port][/path]`). Credentials come from
//! `POLYAXON_K8S_REGISTRY_USERNAME` / `POLYAXON_K8S_REGISTRY_PASSWORD`, else from the Docker
//! config file (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: a `credHelpers` entry,
//! an `auths` entry, then `credsStore`), as `docker push` finds them.
//!
//! The push goes through the Engine's API on its socket and reads the Engine's own progress
//! messages, which name the layer each one is about (the typed client drops that id), so the
//! run's logs show every layer's progress.

mod auth;
mod push;

use std::path::PathBuf;

use anyhow::Result;

pub use auth::{Auth, credentials, from_docker_config};
pub use push::{PushMessage, PushProgress, push, push_hint, tag_image};

use crate::env::POLYAXON_K8S_REGISTRY as REGISTRY_ENV;
use crate::error::UserError;
use crate::settings::RegistrySettings;

/// Where images are pushed: `host[:port]` and an optional path under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    pub host: String,
    pub path: String,
}

impl Registry {
    /// Parses `host[:port][/path]` (a scheme is tolerated and dropped).
    pub fn parse(text: &str) -> Result<Registry> {
        let t = text.trim();
        let t = t
            .strip_prefix("https://")
            .or_else(|| t.strip_prefix("http://"))
            .unwrap_or(t)
            .trim_end_matches('/');
        let (host, path) = t.split_once('/').unwrap_or((t, ""));
        let bad = |why: &str| {
            UserError::new(format!("{REGISTRY_ENV}=`{text}`: {why}")).hint(
                "write the registry as `host[:port][/path]`, e.g. `registry.example.com:5000/ml`",
            )
        };
        if host.is_empty() {
            return Err(bad("no host").into());
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            return Err(bad("the host has characters a registry host cannot have").into());
        }
        // What Docker reads as a registry host; anything else is a Docker Hub namespace.
        if !(host.contains('.') || host.contains(':') || host.eq_ignore_ascii_case("localhost")) {
            return Err(bad(
                "the first part is not a registry host (Docker would read it as a Docker Hub namespace)",
            )
            .into());
        }
        if let Some(p) = host.rsplit_once(':').map(|(_, p)| p)
            && !host.ends_with(']')
            && p.parse::<u16>().is_err()
        {
            return Err(bad("the port is not a number").into());
        }
        if !path.split('/').all(|seg| {
            seg.is_empty()
                || seg.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                })
        }) || path.contains("//")
        {
            return Err(bad(
                "a repository path is lowercase letters, digits, `.`, `_` and `-` between slashes",
            )
            .into());
        }
        Ok(Registry {
            host: host.to_ascii_lowercase(),
            path: path.to_string(),
        })
    }

    /// The registry configured for this machine, if any.
    pub fn configured(settings: &RegistrySettings) -> Result<Option<Registry>> {
        settings.url.as_deref().map(Registry::parse).transpose()
    }

    /// Where a locally built `name:tag` goes: the repository and the tag.
    pub fn target(&self, local: &str) -> (String, String) {
        let (name, tag) = split_tag(local);
        let base = name.rsplit('/').next().unwrap_or(name);
        let repo = if self.path.is_empty() {
            format!("{}/{base}", self.host)
        } else {
            format!("{}/{}/{base}", self.host, self.path)
        };
        (repo, tag.unwrap_or("latest").to_string())
    }
}

/// `name[:tag]` split at the tag's colon (not a registry port's).
pub fn split_tag(image: &str) -> (&str, Option<&str>) {
    match image.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (image, None),
    }
}

/// The Engine's socket (`DOCKER_HOST=unix://…`, else the default one).
pub fn engine_socket(docker_host: Option<&str>) -> Result<PathBuf> {
    match docker_host {
        None => Ok(PathBuf::from("/var/run/docker.sock")),
        Some(h) => match h.strip_prefix("unix://") {
            Some(p) => Ok(PathBuf::from(p)),
            None => Err(UserError::new(format!(
                "DOCKER_HOST=`{h}`: images are built and pushed through a local Engine socket"
            ))
            .hint("unset DOCKER_HOST or point it at `unix:///path/to/docker.sock`")
            .into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_parse_and_name_targets() {
        let r = Registry::parse("Registry.Example.com:5000/ml/team/").unwrap();
        assert_eq!(r.host, "registry.example.com:5000");
        assert_eq!(r.path, "ml/team");
        assert_eq!(
            r.target("polyaxon/train:abc123"),
            (
                "registry.example.com:5000/ml/team/train".to_string(),
                "abc123".to_string()
            )
        );
        assert_eq!(Registry::parse("localhost/ml").unwrap().host, "localhost");
        let bare = Registry::parse("https://localhost:5000").unwrap();
        assert_eq!(bare.target("polyaxon/x").0, "localhost:5000/x");
        assert_eq!(bare.target("polyaxon/x").1, "latest");
        for bad in [
            "",
            "/path",
            "host:port",
            "reg.example.com/Upper",
            "ho st",
            "reg.example.com/a//b",
            "myregistry/ml",
        ] {
            let e = Registry::parse(bad).unwrap_err().to_string();
            assert!(e.contains(REGISTRY_ENV), "{bad}: {e}");
        }
        assert_eq!(split_tag("localhost:5000/x"), ("localhost:5000/x", None));
        assert_eq!(
            split_tag("localhost:5000/x:1"),
            ("localhost:5000/x", Some("1"))
        );
    }
}
