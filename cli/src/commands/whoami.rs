//! `polyaxon whoami`.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use crate::commands::OutputArgs;
use crate::context::Ctx;
use crate::output::{self, Cell};
use crate::settings::{self, UserCache};

#[derive(Debug, Args)]
pub struct WhoamiArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(ctx: &Ctx, args: WhoamiArgs) -> Result<()> {
    ctx.block_on(async {
        let client = ctx.client().await?;
        let me = client.whoami().await?;
        if !client.is_embedded() {
            let _ = settings::write_json(
                &ctx.settings.user_path(),
                &UserCache {
                    username: me.username.clone(),
                    email: me.email.clone(),
                    host: ctx.settings.host.clone(),
                },
            );
        }
        let mut json = serde_json::to_value(&me)?;
        json["host"] = json!(ctx.settings.host);
        if args.output.write_file(&ctx.printer, &json)? {
            return Ok(());
        }
        let mut pairs: Vec<(String, Cell)> = vec![("username".into(), me.username.clone().into())];
        if let Some(e) = &me.email {
            pairs.push(("email".into(), e.as_str().into()));
        }
        pairs.push(("kind".into(), me.kind.as_str().into()));
        pairs.push((
            "server".into(),
            match &ctx.settings.host {
                Some(h) => h.clone(),
                None => format!(
                    "none: the embedded store in `{}`",
                    ctx.settings.home.display()
                ),
            }
            .into(),
        ));
        output::detail(&ctx.printer, args.output.format(), &json, &pairs)
    })
}
