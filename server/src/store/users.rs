//! Users and API tokens. Passwords are argon2 hashes; tokens are random and stored as SHA-256
//! digests (a token is 256 random bits, so a fast hash is enough and keeps each request cheap).

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use sha2::Digest;
use sqlx::FromRow;

use super::{Count, Flag, Result, Store, StoreError, new_uuid, now_micros};

#[derive(Clone, Debug)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: Option<String>,
    pub is_superuser: bool,
    pub created_at: i64,
}

#[derive(Debug, FromRow)]
struct UserRow {
    id: i64,
    username: String,
    email: Option<String>,
    is_superuser: Flag,
    created_at: i64,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        User {
            id: r.id,
            username: r.username,
            email: r.email,
            is_superuser: r.is_superuser.0,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, FromRow)]
struct UserWithHash {
    id: i64,
    username: String,
    email: Option<String>,
    is_superuser: Flag,
    created_at: i64,
    password_hash: Option<String>,
}

/// What a token may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenScope {
    /// Everything its user may do.
    User,
    /// Only reading and writing one run (handed to the run's job).
    Run(String),
}

#[derive(Clone, Debug, FromRow)]
pub struct TokenRow {
    pub uuid: String,
    pub name: Option<String>,
    pub scope: String,
    pub run_uuid: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, FromRow)]
struct TokenLookup {
    id: i64,
    username: String,
    email: Option<String>,
    is_superuser: Flag,
    created_at: i64,
    scope: String,
    run_uuid: Option<String>,
    expires_at: Option<i64>,
    run_status: Option<String>,
    run_finished_at: Option<i64>,
}

fn digest(token: &str) -> String {
    let d = sha2::Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random secret: 32 bytes from the OS, URL-safe base64.
pub fn random_secret(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

pub fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Invalid(format!("cannot hash the password: {e}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

const USER_COLS: &str = "id, username, email, is_superuser, created_at";

impl Store {
    /// Creates the superuser `username` when there are no users yet. Returns the generated
    /// password when none was given (to be shown once).
    pub async fn ensure_superuser(
        &self,
        username: &str,
        password: Option<&str>,
    ) -> Result<Option<String>> {
        let n: Count = self
            .fetch_one("SELECT COUNT(*) AS n FROM users", vec![])
            .await?;
        if n.n > 0 {
            return Ok(None);
        }
        let generated = password.is_none().then(|| random_secret(18));
        let pw = password
            .map(str::to_string)
            .or_else(|| generated.clone())
            .unwrap_or_default();
        self.create_user(username, None, Some(&pw), true).await?;
        Ok(generated)
    }

    pub async fn create_user(
        &self,
        username: &str,
        email: Option<&str>,
        password: Option<&str>,
        superuser: bool,
    ) -> Result<User> {
        if username.is_empty()
            || !username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(StoreError::Invalid(format!(
                "`{username}` is not a valid username (letters, digits, `-`, `_`, `.`)"
            )));
        }
        let hash = password.map(hash_password).transpose()?;
        if self.user_by_name(username).await.is_ok() {
            return Err(StoreError::Conflict(format!(
                "user `{username}` already exists"
            )));
        }
        match self.execute(
            "INSERT INTO users (username, email, password_hash, is_superuser, created_at) VALUES ($1, $2, $3, $4, $5)",
            vec![username.into(), email.map(str::to_string).into(), hash.into(), superuser.into(), now_micros().into()],
        )
        .await
        {
            // Created by another process between the check and the insert.
            Err(StoreError::Db(e)) if super::projects::is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "user `{username}` already exists"
                )));
            }
            other => other?,
        };
        self.user_by_name(username).await
    }

    pub async fn user_by_name(&self, username: &str) -> Result<User> {
        self.fetch_optional::<UserRow>(
            &format!("SELECT {USER_COLS} FROM users WHERE username = $1"),
            vec![username.into()],
        )
        .await?
        .map(User::from)
        .ok_or_else(|| StoreError::NotFound(format!("user `{username}`")))
    }

    /// The user with this name and password, if they match.
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<Option<User>> {
        let row: Option<UserWithHash> = self
            .fetch_optional(
                &format!("SELECT {USER_COLS}, password_hash FROM users WHERE username = $1"),
                vec![username.into()],
            )
            .await?;
        let Some(row) = row else {
            // Spend the same time as a real check, so names cannot be probed by timing.
            let _ = verify_password(
                password,
                "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2c0Cy1Ys4N7vQ6ZQ0kQ2pE3X5mQqVZ2g8y6XgqQn0oA",
            );
            return Ok(None);
        };
        let ok = row
            .password_hash
            .as_deref()
            .is_some_and(|h| verify_password(password, h));
        Ok(ok.then_some(User {
            id: row.id,
            username: row.username,
            email: row.email,
            is_superuser: row.is_superuser.0,
            created_at: row.created_at,
        }))
    }

    /// Creates a token and returns it in clear (it is not kept).
    /// Makes `secret` a token of superuser `username` named `name`, unless it is one already
    /// (the agents' token of a deploy, given to the server at each start).
    pub async fn ensure_token(&self, username: &str, name: &str, secret: &str) -> Result<()> {
        if secret.len() < 16 {
            return Err(StoreError::Invalid(
                "a token is at least 16 characters".into(),
            ));
        }
        let user = self.user_by_name(username).await?;
        if !user.is_superuser {
            return Err(StoreError::Invalid(format!(
                "`{username}` is not a superuser: an agent's token must be a superuser's"
            )));
        }
        let found: Count = self
            .fetch_one(
                "SELECT COUNT(*) AS n FROM tokens WHERE token_hash = $1",
                vec![digest(secret).into()],
            )
            .await?;
        if found.n > 0 {
            return Ok(());
        }
        self.execute(
            "INSERT INTO tokens (uuid, user_id, token_hash, name, scope, run_uuid, created_at, expires_at) VALUES ($1, $2, $3, $4, 'user', NULL, $5, NULL)",
            vec![
                new_uuid().into(),
                user.id.into(),
                digest(secret).into(),
                name.into(),
                now_micros().into(),
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn create_token(
        &self,
        user_id: i64,
        scope: &TokenScope,
        name: Option<&str>,
        ttl_secs: Option<i64>,
    ) -> Result<(TokenRow, String)> {
        let secret = format!("plx_{}", random_secret(32));
        let uuid = new_uuid();
        let now = now_micros();
        let (scope_name, run) = match scope {
            TokenScope::User => ("user", None),
            TokenScope::Run(r) => ("run", Some(r.clone())),
        };
        let expires = ttl_secs.map(|t| now + t * 1_000_000);
        self.execute(
            "INSERT INTO tokens (uuid, user_id, token_hash, name, scope, run_uuid, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            vec![
                uuid.clone().into(),
                user_id.into(),
                digest(&secret).into(),
                name.map(str::to_string).into(),
                scope_name.into(),
                run.clone().into(),
                now.into(),
                expires.into(),
            ],
        )
        .await?;
        Ok((
            TokenRow {
                uuid,
                name: name.map(str::to_string),
                scope: scope_name.into(),
                run_uuid: run,
                created_at: now,
                expires_at: expires,
                last_used_at: None,
            },
            secret,
        ))
    }

    /// Deletes the token with this secret (signing out of the dashboard).
    pub async fn revoke_token_secret(&self, secret: &str) -> Result<bool> {
        let n = self
            .execute(
                "DELETE FROM tokens WHERE token_hash = $1",
                vec![digest(secret).into()],
            )
            .await?;
        Ok(n > 0)
    }

    /// The user and scope a token grants, if it is valid.
    /// The user and scope of a token. A run's token lives as long as its run, and `run_grace`
    /// after it ended (for its last uploads and event-file syncs).
    pub async fn lookup_token(
        &self,
        secret: &str,
        run_grace: std::time::Duration,
    ) -> Result<Option<(User, TokenScope)>> {
        let row: Option<TokenLookup> = self
            .fetch_optional(
                "SELECT u.id, u.username, u.email, u.is_superuser, u.created_at, t.scope, t.run_uuid, t.expires_at, \
                 r.status AS run_status, r.finished_at AS run_finished_at \
                 FROM tokens t JOIN users u ON u.id = t.user_id \
                 LEFT JOIN runs r ON t.scope = 'run' AND r.uuid = t.run_uuid WHERE t.token_hash = $1",
                vec![digest(secret).into()],
            )
            .await?;
        let Some(r) = row else { return Ok(None) };
        let now = now_micros();
        if r.expires_at.is_some_and(|e| e < now) {
            return Ok(None);
        }
        let scope = match (r.scope.as_str(), r.run_uuid) {
            ("run", Some(run)) => {
                let Some(status) = r.run_status else {
                    return Ok(None);
                };
                let ended = crate::api::RunStatus::parse(&status).is_some_and(|s| s.is_done());
                if ended
                    && r.run_finished_at
                        .is_some_and(|f| f + run_grace.as_micros() as i64 <= now)
                {
                    return Ok(None);
                }
                TokenScope::Run(run)
            }
            _ => TokenScope::User,
        };
        Ok(Some((
            User {
                id: r.id,
                username: r.username,
                email: r.email,
                is_superuser: r.is_superuser.0,
                created_at: r.created_at,
            },
            scope,
        )))
    }

    pub async fn list_tokens(&self, user_id: i64) -> Result<Vec<TokenRow>> {
        self.fetch_all(
            "SELECT uuid, name, scope, run_uuid, created_at, expires_at, last_used_at FROM tokens WHERE user_id = $1 AND scope = 'user' ORDER BY created_at DESC",
            vec![user_id.into()],
        )
        .await
    }

    pub async fn delete_token(&self, user_id: i64, uuid: &str) -> Result<()> {
        let n = self
            .execute(
                "DELETE FROM tokens WHERE user_id = $1 AND uuid = $2",
                vec![user_id.into(), uuid.into()],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("token `{uuid}`")));
        }
        Ok(())
    }

    /// Revokes the run-scoped tokens of a run (when it ends).
    pub async fn revoke_run_tokens(&self, run_uuid: &str) -> Result<()> {
        self.execute(
            "DELETE FROM tokens WHERE scope = 'run' AND run_uuid = $1",
            vec![run_uuid.into()],
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_round_trip() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("wrong", &h));
    }
}
