//! `polyaxon token`: the signed-in user's personal tokens: list, create, revoke.
//!
//! A token is a password for programs (CI jobs, notebooks, `POLYAXON_AUTH_TOKEN`): its secret
//! is shown once, at creation; the server keeps only its digest. Revoking one takes effect at
//! once on the server, for every client holding it.

use anyhow::Result;
use clap::{Args, Subcommand};
use polyaxon_server::api::V1Token;
use serde_json::Value as J;

use crate::commands::OutputArgs;
use crate::context::Ctx;
use crate::error::UserError;
use crate::output::{self, Cell, Col, Table};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// List your tokens (never their secrets): id, name, created, expiry.
    Ls(TokenListArgs),
    /// Create a token; its secret is printed this once.
    Create(TokenCreateArgs),
    /// Revoke tokens by id (from `polyaxon token ls`): they stop working at once.
    #[command(visible_alias = "delete")]
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenListArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// A name to tell it by (what it is for: `ci`, `laptop`, …).
    #[arg(long)]
    pub name: Option<String>,
    /// How long it lasts: seconds, or with a unit (`90m`, `12h`, `30d`); default: until revoked.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub expiration: Option<i64>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The tokens' ids.
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

/// `3600`, `90s`, `90m`, `12h`, `30d`, `2w` → seconds.
fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "`{s}`: a duration is a number of seconds, or a number with s, m, h, d or w (`30d`)"
            ));
        }
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}`: a duration starts with a whole number (`30d`)"))?;
    match n.checked_mul(mult) {
        Some(v) if v > 0 => Ok(v),
        _ => Err(format!("`{s}`: a duration is positive and under ten years")),
    }
}

/// `12h`, `30d`: the shortest exact form of a number of seconds.
fn human(secs: i64) -> String {
    for (unit, len) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= len && secs % len == 0 {
            return format!("{}{unit}", secs / len);
        }
    }
    format!("{secs}s")
}

/// When a token stops working: its creation plus its life.
fn expires(t: &V1Token) -> String {
    let (Some(created), Some(life)) = (t.created_at.as_deref(), t.expiration) else {
        return "never".into();
    };
    let Ok(at) = created.parse::<jiff::Timestamp>() else {
        return format!("{} after creation", human(life));
    };
    let end = at + jiff::SignedDuration::from_secs(life);
    let left = end.as_second() - jiff::Timestamp::now().as_second();
    let when = end.strftime("%Y-%m-%d %H:%M UTC").to_string();
    if left <= 0 {
        format!("{when} (expired)")
    } else {
        format!("{when} (in {})", human_left(left))
    }
}

fn human_left(secs: i64) -> String {
    match secs {
        s if s < 3600 => format!("{} min", (s + 59) / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

pub fn run(ctx: &Ctx, cmd: TokenCommand) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        match cmd {
            TokenCommand::Ls(a) => {
                let list = client.list_tokens().await?;
                let items: Vec<J> = list
                    .results
                    .iter()
                    .map(|t| serde_json::to_value(t).unwrap_or(J::Null))
                    .collect();
                if a.output.write_file(&ctx.printer, &J::Array(items.clone()))? {
                    return Ok(());
                }
                let mut table = Table::new(vec![
                    Col::fixed("id"),
                    Col::new("name"),
                    Col::new("created"),
                    Col::new("expires"),
                ]);
                for t in &list.results {
                    table.push(vec![
                        t.uuid.clone().unwrap_or_default().into(),
                        t.name.clone().unwrap_or_default().into(),
                        output::ago(t.created_at.as_deref()).into(),
                        expires(t).into(),
                    ]);
                }
                output::listing(&ctx.printer, a.output.format(), &items, &table)?;
                if list.results.is_empty() && a.output.format() == crate::printer::Format::Table {
                    ctx.printer
                        .note("no tokens; create one with `polyaxon token create --name NAME`");
                }
                Ok(())
            }
            TokenCommand::Create(a) => {
                let t = client
                    .create_token(&V1Token {
                        name: a.name.clone(),
                        expiration: a.expiration,
                        ..Default::default()
                    })
                    .await?;
                let item = serde_json::to_value(&t)?;
                if a.output.write_file(&ctx.printer, &item)? {
                    return Ok(());
                }
                if a.output.format() != crate::printer::Format::Table {
                    return output::detail(&ctx.printer, a.output.format(), &item, &[]);
                }
                let key = t.key.clone().ok_or_else(|| {
                    UserError::new("the server created the token but sent no secret: revoke it (`polyaxon token revoke`) and try again")
                })?;
                let pairs: Vec<(String, Cell)> = vec![
                    ("id".into(), t.uuid.clone().unwrap_or_default().into()),
                    ("name".into(), t.name.clone().unwrap_or_default().into()),
                    ("expires".into(), expires(&t).into()),
                    ("token".into(), key.into()),
                ];
                output::detail(&ctx.printer, a.output.format(), &item, &pairs)?;
                ctx.printer.note(
                    "the token is shown this once: keep it in a secret store (programs read it from POLYAXON_AUTH_TOKEN, or `polyaxon login --token`)",
                );
                Ok(())
            }
            TokenCommand::Revoke(a) => {
                let mut failed = Vec::new();
                for id in &a.ids {
                    match client.delete_token(id).await {
                        Ok(()) => ctx.printer.success(&format!("token {id} revoked")),
                        Err(e) => failed.push(format!("{id}: {e:#}")),
                    }
                }
                if failed.is_empty() {
                    Ok(())
                } else {
                    Err(UserError::new(format!(
                        "not revoked:\n  {}\n(`polyaxon token ls` lists your tokens)",
                        failed.join("\n  ")
                    ))
                    .into())
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3600"), Ok(3600));
        assert_eq!(parse_duration("90m"), Ok(5400));
        assert_eq!(parse_duration("30d"), Ok(2_592_000));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        assert!(parse_duration("0").is_err());
        assert!(
            parse_duration("12x")
                .unwrap_err()
                .contains("s, m, h, d or w")
        );
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999w").is_err());
        assert_eq!(human(2_592_000), "30d");
        assert_eq!(human(5400), "90m");
        assert_eq!(human(61), "61s");
    }
}
