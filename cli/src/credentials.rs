//! API tokens, per server: in the system keyring where there is one (the Secret Service on
//! Linux, Keychain on macOS, the Credential Manager on Windows), otherwise in
//! `$POLYAXON_HOME/.auth`, readable by the user only. `POLYAXON_AUTH_TOKEN` overrides both.
//! A token is never printed, logged or shown by `Debug`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::error::UserError;
use crate::settings::{self, Settings};

const SERVICE: &str = "polyaxon";

/// A secret that does not show itself.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A place for tokens, keyed by server address.
pub trait CredentialStore {
    /// What it is, for `config show`.
    fn describe(&self) -> String;
    fn get(&self, host: &str) -> Result<Option<Secret>>;
    fn set(&self, host: &str, token: &Secret) -> Result<()>;
    /// Whether there was one.
    fn delete(&self, host: &str) -> Result<bool>;
}

/// The system keyring.
pub struct Keyring;

impl Keyring {
    /// Whether the system has a keyring this process can reach.
    pub fn available() -> bool {
        keyring::Entry::store_status().is_ok()
            && keyring::Entry::new(SERVICE, "probe")
                .and_then(|e| match e.get_password() {
                    Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
                    Err(e) => Err(e),
                })
                .is_ok()
    }

    fn entry(host: &str) -> Result<keyring::Entry> {
        keyring::Entry::new(SERVICE, host)
            .map_err(|e| keyring_error("the system keyring is not available", e))
    }
}

/// A keyring failure, with the way around it.
fn keyring_error(doing: &str, e: keyring::Error) -> anyhow::Error {
    crate::error::UserError::new(format!("{doing}: {e}"))
        .hint(format!(
            "set {}=file to keep the token in a private file instead",
            crate::env::POLYAXON_CREDENTIAL_STORE
        ))
        .into()
}

impl CredentialStore for Keyring {
    fn describe(&self) -> String {
        "the system keyring".into()
    }

    fn get(&self, host: &str) -> Result<Option<Secret>> {
        match Self::entry(host)?.get_password() {
            Ok(t) => Ok(Some(Secret(t))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(keyring_error("reading the system keyring", e)),
        }
    }

    fn set(&self, host: &str, token: &Secret) -> Result<()> {
        Self::entry(host)?
            .set_password(token.expose())
            .map_err(|e| keyring_error("writing to the system keyring", e))
    }

    fn delete(&self, host: &str) -> Result<bool> {
        match Self::entry(host)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(keyring_error("writing to the system keyring", e)),
        }
    }
}

/// `$POLYAXON_HOME/.auth`, mode 0600: `{"tokens": {host: token}}`.
pub struct File {
    pub path: PathBuf,
}

#[derive(Default, Serialize, Deserialize)]
struct AuthFile {
    #[serde(default)]
    tokens: BTreeMap<String, Secret>,
}

impl File {
    fn load(&self) -> Result<AuthFile> {
        Ok(settings::read_json(&self.path)?.unwrap_or_default())
    }
}

impl CredentialStore for File {
    fn describe(&self) -> String {
        format!("`{}` (readable by you only)", self.path.display())
    }

    fn get(&self, host: &str) -> Result<Option<Secret>> {
        Ok(self.load()?.tokens.get(host).cloned())
    }

    fn set(&self, host: &str, token: &Secret) -> Result<()> {
        let mut f = self.load()?;
        f.tokens.insert(host.to_string(), token.clone());
        settings::write_json(&self.path, &f)
    }

    fn delete(&self, host: &str) -> Result<bool> {
        let mut f = self.load()?;
        let had = f.tokens.remove(host).is_some();
        if f.tokens.is_empty() {
            settings::remove_file(&self.path)?;
        } else if had {
            settings::write_json(&self.path, &f)?;
        }
        Ok(had)
    }
}

/// The store `POLYAXON_CREDENTIAL_STORE` asks for (`auto`: the keyring when reachable).
pub fn store(s: &Settings) -> Result<Box<dyn CredentialStore>> {
    let file = File {
        path: s.home.join(".auth"),
    };
    match s.credential_store.as_str() {
        "file" => Ok(Box::new(file)),
        "keyring" => {
            if Keyring::available() {
                Ok(Box::new(Keyring))
            } else {
                Err(UserError::new("POLYAXON_CREDENTIAL_STORE=keyring, but this system has no keyring this process can reach")
                    .hint("unset it (or set it to `file`) to keep the token in a private file")
                    .into())
            }
        }
        "auto" => {
            if Keyring::available() {
                Ok(Box::new(Keyring))
            } else {
                Ok(Box::new(file))
            }
        }
        other => Err(UserError::new(format!(
            "POLYAXON_CREDENTIAL_STORE=`{other}` is not a credential store"
        ))
        .hint("use `auto`, `keyring` or `file`")
        .into()),
    }
}

/// The token for the configured host: `POLYAXON_AUTH_TOKEN`, else the stored one.
pub fn token(s: &Settings) -> Result<Option<Secret>> {
    if let Some(t) = &s.env_token {
        return Ok(Some(Secret(t.clone())));
    }
    let Some(host) = &s.host else {
        return Ok(None);
    };
    // A file store is read without probing for a keyring (quick, and works headless).
    let file = File {
        path: s.home.join(".auth"),
    };
    if s.credential_store != "keyring"
        && let Some(t) = file.get(host)?
    {
        return Ok(Some(t));
    }
    if s.credential_store == "file" {
        return Ok(None);
    }
    store(s)?.get(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show() {
        let s = Secret::new("tok-123");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "tok-123");
    }

    #[test]
    fn the_file_store_keeps_tokens_per_host() {
        let dir = tempfile::tempdir().unwrap();
        let f = File {
            path: dir.path().join(".auth"),
        };
        assert_eq!(f.get("http://a").unwrap(), None);
        f.set("http://a", &Secret::new("t1")).unwrap();
        f.set("http://b", &Secret::new("t2")).unwrap();
        assert_eq!(f.get("http://a").unwrap(), Some(Secret::new("t1")));
        assert!(f.delete("http://a").unwrap());
        assert!(!f.delete("http://a").unwrap());
        assert_eq!(f.get("http://b").unwrap(), Some(Secret::new("t2")));
        assert!(f.delete("http://b").unwrap());
        assert!(!f.path.exists(), "an empty store leaves no file");
    }
}
