//! `polyaxon version`.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use crate::commands::OutputArgs;
use crate::context::Ctx;
use crate::output::{self, Cell};

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Also check that the server's version works with this CLI.
    #[arg(long)]
    pub check: bool,

    #[command(flatten)]
    pub output: OutputArgs,
}

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn run(ctx: &Ctx, args: VersionArgs) -> Result<()> {
    let mut json = json!({"cli": VERSION});
    let mut pairs: Vec<(String, Cell)> = vec![("cli".into(), VERSION.into())];
    // The embedded server is this very binary; a remote one is asked (without failing the
    // command when it cannot be reached, unless `--check`).
    match &ctx.settings.host {
        None => {
            json["server"] = json!({"version": VERSION, "mode": "embedded"});
            pairs.push(("server".into(), format!("{VERSION} (embedded)").into()));
        }
        Some(host) => {
            let got = ctx.block_on(async {
                let client = ctx.client().await?;
                Ok(client.installation().await?)
            });
            match got {
                Ok(i) => {
                    let compatible = major_minor(&i.version) == major_minor(VERSION);
                    json["server"] =
                        json!({"version": i.version, "host": host, "compatible": compatible});
                    pairs.push(("server".into(), format!("{} at {host}", i.version).into()));
                    if args.check && !compatible {
                        output::detail(&ctx.printer, args.output.format(), &json, &pairs)?;
                        return Err(crate::error::UserError::new(format!(
                            "the server runs {} and this CLI is {VERSION}: they may not work together",
                            i.version
                        ))
                        .hint("use a CLI of the server's version")
                        .into());
                    }
                }
                Err(e) if !args.check => {
                    json["server"] = json!({"host": host, "error": e.to_string()});
                    pairs.push((
                        "server".into(),
                        Cell::painted(format!("{host}: not reachable ({e})"), Some("33")),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }
    if !args.output.write_file(&ctx.printer, &json)? {
        output::detail(&ctx.printer, args.output.format(), &json, &pairs)?;
    }
    if args.check {
        ctx.printer.success("the CLI and the server are compatible");
    }
    Ok(())
}

fn major_minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}
