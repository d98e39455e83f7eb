//! Registry credentials, found as `docker push` finds them: the environment's, else the
//! Docker config file's (`credHelpers`, `auths`, `credsStore`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::env::{
    POLYAXON_K8S_REGISTRY_PASSWORD as PASSWORD_ENV, POLYAXON_K8S_REGISTRY_USERNAME as USERNAME_ENV,
};
use crate::error::UserError;
use crate::settings::RegistrySettings;

/// What the Engine sends the registry to log in: a user and password, or an identity token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Auth {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identitytoken: Option<String>,
    pub serveraddress: String,
    /// Where they came from, for messages (never the secret itself).
    #[serde(skip)]
    pub source: String,
}

impl Auth {
    /// The `X-Registry-Auth` header's value.
    pub fn header(&self) -> String {
        base64::engine::general_purpose::URL_SAFE
            .encode(serde_json::to_vec(self).unwrap_or_default())
    }
}

#[derive(Debug, Default, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// A config key's host: `https://host/v1/` → `host` (Docker Hub's names all → `docker.io`).
fn key_host(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let h = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match h.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        _ => h,
    }
}

/// The server address the Engine wants in credentials for `host`.
fn server_address(host: &str) -> String {
    if key_host(host) == "docker.io" {
        "https://index.docker.io/v1/".into()
    } else {
        host.to_string()
    }
}

/// The credentials for `host`: the environment's, else the Docker config file's. None means
/// an anonymous push.
pub fn credentials(settings: &RegistrySettings, host: &str) -> Result<Option<Auth>> {
    match (settings.username.clone(), settings.password.clone()) {
        (Some(u), Some(p)) => {
            return Ok(Some(Auth {
                username: Some(u),
                password: Some(p),
                serveraddress: server_address(host),
                source: format!("{USERNAME_ENV}/{PASSWORD_ENV}"),
                ..Default::default()
            }));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(UserError::new(format!(
                "only one of {USERNAME_ENV} and {PASSWORD_ENV} is set"
            ))
            .hint("set both, or neither to use the Docker config file (`docker login`)")
            .into());
        }
        (None, None) => {}
    }
    match &settings.docker_config {
        Some(path) => from_docker_config(path, host),
        None => Ok(None),
    }
}

/// The credentials the Docker config file at `path` gives `host`.
pub fn from_docker_config(path: &Path, host: &str) -> Result<Option<Auth>> {
    lookup(path, host, None)
}

/// As [`from_docker_config`], with credential helpers looked for in `helpers` (else on PATH).
fn lookup(path: &Path, host: &str, helpers: Option<&Path>) -> Result<Option<Auth>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading `{}`", path.display())),
    };
    let config: DockerConfig = serde_json::from_str(&text).map_err(|e| {
        UserError::new(format!(
            "`{}` is not a valid Docker config file: {e}",
            path.display()
        ))
        .hint("fix it, or log in again with `docker login`")
    })?;
    let server = server_address(host);
    let host = key_host(host);
    if let Some((_, helper)) = config
        .cred_helpers
        .iter()
        .find(|(k, _)| key_host(k) == host)
    {
        return helper_get(helper, &server, helpers);
    }
    if let Some((key, entry)) = config.auths.iter().find(|(k, _)| key_host(k) == host) {
        let source = format!("`{}` (auths.{key})", path.display());
        if let Some(token) = entry.identitytoken.clone().filter(|t| !t.is_empty()) {
            return Ok(Some(Auth {
                identitytoken: Some(token),
                serveraddress: server.clone(),
                source,
                ..Default::default()
            }));
        }
        let (user, pass) = match &entry.auth {
            Some(a) if !a.is_empty() => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(a.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        UserError::new(format!("{source}: `auth` is not base64 of `user:password`"))
                            .hint(format!("log in again: `docker login {host}`"))
                    })?;
                let (u, p) = raw.split_once(':').ok_or_else(|| {
                    UserError::new(format!("{source}: `auth` has no `user:password`"))
                        .hint(format!("log in again: `docker login {host}`"))
                })?;
                (Some(u.to_string()), Some(p.to_string()))
            }
            _ => (entry.username.clone(), entry.password.clone()),
        };
        if user.is_some() || pass.is_some() {
            return Ok(Some(Auth {
                username: user,
                password: pass,
                serveraddress: server.clone(),
                source,
                ..Default::default()
            }));
        }
        // An empty entry next to a store: the store has the secret.
    }
    match config.creds_store.as_deref().filter(|s| !s.is_empty()) {
        Some(store) => helper_get(store, &server, helpers),
        None => Ok(None),
    }
}

/// Asks `docker-credential-<helper>` for `host`'s credentials (the helpers' protocol: the
/// server on stdin, `{"Username", "Secret"}` on stdout; `<token>` as the user means an identity
/// token).
fn helper_get(helper: &str, host: &str, dir: Option<&Path>) -> Result<Option<Auth>> {
    use std::io::Write;
    let program = format!("docker-credential-{helper}");
    let exe = dir.map_or_else(|| PathBuf::from(&program), |d| d.join(&program));
    let mut child = match std::process::Command::new(&exe)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Err(UserError::new(format!(
                "the Docker config names the credential helper `{helper}` but `{program}` cannot run: {e}"
            ))
            .hint(format!(
                "install `{program}`, or set {USERNAME_ENV} and {PASSWORD_ENV}"
            ))
            .into());
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(host.as_bytes());
    }
    let out = child
        .wait_with_output()
        .with_context(|| format!("running `{program} get`"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let said = format!(
            "{}{}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        if said.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(UserError::new(format!("`{program} get` failed: {said}"))
            .hint(format!("log in again: `docker login {host}`"))
            .into());
    }
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let a: Answer = serde_json::from_str(stdout.trim())
        .with_context(|| format!("reading what `{program} get` answered"))?;
    let source = format!("the credential helper `{helper}`");
    Ok(Some(if a.username == "<token>" {
        Auth {
            identitytoken: Some(a.secret),
            serveraddress: host.to_string(),
            source,
            ..Default::default()
        }
    } else {
        Auth {
            username: Some(a.username),
            password: Some(a.secret),
            serveraddress: host.to_string(),
            source,
            ..Default::default()
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value as J;

    fn config(dir: &Path, json: &str) -> PathBuf {
        let p = dir.join("config.json");
        std::fs::write(&p, json).unwrap();
        p
    }

    #[test]
    fn docker_config_auths_are_read_like_docker_does() {
        let d = tempfile::tempdir().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode("ada:s3cret:with-colon");
        let p = config(
            d.path(),
            &format!(
                r#"{{"auths": {{"https://Reg.example.com:5000/v1/": {{"auth": "{b64}"}},
                    "tok.example.com": {{"identitytoken": "T0K"}},
                    "https://index.docker.io/v1/": {{"auth": "{b64}"}},
                    "empty.example.com": {{}}}}}}"#
            ),
        );
        let a = from_docker_config(&p, "reg.example.com:5000")
            .unwrap()
            .unwrap();
        assert_eq!(a.username.as_deref(), Some("ada"));
        assert_eq!(a.password.as_deref(), Some("s3cret:with-colon"));
        assert!(a.source.contains("auths.https://Reg.example.com:5000/v1/"));
        // Docker Hub: found under its index key, and named so to the Engine.
        let hub = from_docker_config(&p, "docker.io").unwrap().unwrap();
        assert_eq!(hub.serveraddress, "https://index.docker.io/v1/");
        assert_eq!(hub.username.as_deref(), Some("ada"));
        let t = from_docker_config(&p, "tok.example.com").unwrap().unwrap();
        assert_eq!(t.identitytoken.as_deref(), Some("T0K"));
        assert!(t.username.is_none());
        assert!(
            from_docker_config(&p, "empty.example.com")
                .unwrap()
                .is_none()
        );
        assert!(
            from_docker_config(&p, "other.example.com")
                .unwrap()
                .is_none()
        );
        assert!(
            from_docker_config(&d.path().join("missing.json"), "x")
                .unwrap()
                .is_none()
        );
        // The header is base64url JSON without the source.
        let h = base64::engine::general_purpose::URL_SAFE
            .decode(a.header())
            .unwrap();
        let j: J = serde_json::from_slice(&h).unwrap();
        assert_eq!(j["username"], "ada");
        assert_eq!(j["serveraddress"], "reg.example.com:5000");
        assert!(j.get("source").is_none());
    }

    #[test]
    fn broken_configs_and_missing_helpers_say_what_to_fix() {
        let d = tempfile::tempdir().unwrap();
        let p = config(d.path(), "{not json");
        let e = from_docker_config(&p, "x").unwrap_err().to_string();
        assert!(e.contains("not a valid Docker config file"), "{e}");
        let p = config(d.path(), r#"{"auths": {"x": {"auth": "%%%"}}}"#);
        let e = from_docker_config(&p, "x").unwrap_err();
        let u = e.downcast_ref::<UserError>().unwrap();
        assert!(u.message.contains("not base64"), "{}", u.message);
        let p = config(
            d.path(),
            r#"{"credHelpers": {"x": "nonexistent-helper-plx"}}"#,
        );
        let e = from_docker_config(&p, "x").unwrap_err();
        let u = e.downcast_ref::<UserError>().unwrap();
        assert!(
            u.message
                .contains("docker-credential-nonexistent-helper-plx"),
            "{}",
            u.message
        );
    }

    #[test]
    fn credential_helpers_are_asked_over_their_protocol() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("docker-credential-plxtest");
        // Answers for two hosts only, like a real helper.
        std::fs::write(
            &bin,
            "#!/bin/sh\nread host\n[ \"$1\" = get ] || exit 2\nif [ \"$host\" = reg.example.com ]; then\n  echo '{\"ServerURL\":\"reg.example.com\",\"Username\":\"bob\",\"Secret\":\"pw\"}'\nelif [ \"$host\" = tok.example.com ]; then\n  echo '{\"Username\":\"<token>\",\"Secret\":\"idt\"}'\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        // credsStore for every host; credHelpers wins for its own.
        let p = config(
            d.path(),
            r#"{"credsStore": "plxtest", "credHelpers": {"tok.example.com": "plxtest"},
                "auths": {"reg.example.com": {}}}"#,
        );
        let got = lookup(&p, "reg.example.com", Some(d.path()))
            .unwrap()
            .unwrap();
        assert_eq!(got.username.as_deref(), Some("bob"));
        assert_eq!(got.password.as_deref(), Some("pw"));
        assert!(got.source.contains("plxtest"));
        let tok = lookup(&p, "tok.example.com", Some(d.path()))
            .unwrap()
            .unwrap();
        assert_eq!(tok.identitytoken.as_deref(), Some("idt"));
        assert!(
            lookup(&p, "none.example.com", Some(d.path()))
                .unwrap()
                .is_none()
        );
    }
}
