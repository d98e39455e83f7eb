//! `polyaxon login` and `polyaxon logout`.

use std::io::Read;

use anyhow::Result;
use clap::Args;

use crate::client::transport::Http;
use crate::client::{Client, ClientError};
use crate::context::Ctx;
use crate::credentials::{self, Secret};
use crate::error::UserError;
use crate::settings::{self, UserCache};

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// An API token (instead of a username and password).
    #[arg(short, long, conflicts_with_all = ["username", "password", "password_stdin"])]
    pub token: Option<String>,

    /// Your username (asked for at a terminal when not given).
    #[arg(short, long)]
    pub username: Option<String>,

    /// Your password (asked for at a terminal when not given; visible to other processes
    /// here, so prefer the prompt or `--password-stdin`).
    #[arg(short, long)]
    pub password: Option<String>,

    /// Read the password from standard input.
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,
}

fn not_embedded(ctx: &Ctx) -> Result<String> {
    ctx.settings.host.clone().ok_or_else(|| {
        UserError::new("no server is configured: the embedded store needs no login")
            .hint("to use a server, set it first: `polyaxon config set --host URL`")
            .into()
    })
}

fn client_with(ctx: &Ctx, host: &str, token: Option<Secret>) -> Result<Client> {
    let http = Http::new(host, token, ctx.settings.timeout, ctx.settings.verify_ssl)
        .map_err(ClientError::from)?;
    Ok(Client::with_transport(Box::new(http), false))
}

pub fn run(ctx: &Ctx, args: LoginArgs) -> Result<()> {
    let host = not_embedded(ctx)?;
    let p = &ctx.printer;
    let token = match args.token {
        Some(t) => Secret::new(t.trim()),
        None => {
            let username = match args.username {
                Some(u) => u,
                None if p.interactive => dialoguer::Input::<String>::new()
                    .with_prompt("username")
                    .interact_text()
                    .map_err(|e| UserError::new(format!("cannot read the username: {e}")))?,
                None => {
                    return Err(
                        UserError::new("no username given and no terminal to ask at")
                            .hint("pass `--username NAME --password-stdin`, or `--token TOKEN`")
                            .into(),
                    );
                }
            };
            let password = if args.password_stdin {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s.trim_end_matches(['\n', '\r']).to_string()
            } else {
                match args.password {
                    Some(pw) => pw,
                    None if p.interactive => dialoguer::Password::new()
                        .with_prompt(format!("password for {username}"))
                        .interact()
                        .map_err(|e| UserError::new(format!("cannot read the password: {e}")))?,
                    None => {
                        return Err(
                            UserError::new("no password given and no terminal to ask at")
                                .hint("pass it on standard input with `--password-stdin`")
                                .into(),
                        );
                    }
                }
            };
            let token = ctx.block_on(async {
                let client = client_with(ctx, &host, None)?;
                client
                    .login(&username, &password)
                    .await
                    .map_err(|e| match e.status() {
                        Some(s)
                            if s == http::StatusCode::UNAUTHORIZED
                                || s == http::StatusCode::BAD_REQUEST =>
                        {
                            UserError::new(format!("{host} refused the login: {e}"))
                                .hint("check the username and password")
                                .into()
                        }
                        _ => anyhow::Error::from(e),
                    })
            })?;
            Secret::new(token)
        }
    };
    if token.expose().is_empty() {
        return Err(UserError::new("the token is empty").into());
    }
    // The token must work before it is kept.
    let me = ctx.block_on(async {
        let client = client_with(ctx, &host, Some(token.clone()))?;
        client.whoami().await.map_err(|e| match e.status() {
            Some(http::StatusCode::UNAUTHORIZED) => {
                UserError::new(format!("{host} does not accept this token"))
                    .hint("create a token on the server, or log in with `--username`")
                    .into()
            }
            _ => anyhow::Error::from(e),
        })
    })?;
    let store = credentials::store(&ctx.settings)?;
    store.set(&host, &token)?;
    settings::write_json(
        &ctx.settings.user_path(),
        &UserCache {
            username: me.username.clone(),
            email: me.email.clone(),
            host: Some(host.clone()),
        },
    )?;
    p.success(&format!(
        "logged in to {host} as `{}` (the token is kept in {})",
        me.username,
        store.describe()
    ));
    if ctx.settings.env_token.is_some() {
        p.warn("POLYAXON_AUTH_TOKEN is set and is used instead while it is");
    }
    Ok(())
}

pub fn logout(ctx: &Ctx) -> Result<()> {
    let host = not_embedded(ctx)?;
    let mut removed = credentials::File {
        path: ctx.settings.home.join(".auth"),
    }
    .delete(&host)
    .unwrap_or(false);
    use credentials::CredentialStore as _;
    if ctx.settings.credential_store != "file"
        && credentials::Keyring::available()
        && credentials::Keyring.delete(&host).unwrap_or(false)
    {
        removed = true;
    }
    settings::remove_file(&ctx.settings.user_path())?;
    if removed {
        ctx.printer.success(&format!("logged out of {host}"));
    } else {
        ctx.printer
            .note(&format!("there were no credentials for {host}"));
    }
    if ctx.settings.env_token.is_some() {
        ctx.printer.warn("POLYAXON_AUTH_TOKEN is still set");
    }
    Ok(())
}
