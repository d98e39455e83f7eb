//! `polyaxon ops logs` and `polyaxon logs`: a run's logs, followed while it runs.

use polyaxon_server::api::RunStatus;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use polyaxon_server::api::V1Log;

use super::Target;
use crate::context::{Ctx, run_not_found};
use crate::output;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The run's uuid (default: the last run used).
    #[arg(value_name = "UUID")]
    pub run: Option<String>,

    /// Print what is there and stop, even while the run goes on (also `-nf`).
    #[arg(long)]
    pub no_follow: bool,

    /// Without timestamps.
    #[arg(long)]
    pub hide_time: bool,

    /// With the node, pod and container of each line.
    #[arg(short = 'a', long)]
    pub all_info: bool,
}

/// `polyaxon logs`: the same, with `-p` and `--uid` of its own.
#[derive(Debug, Args)]
pub struct TopLogsArgs {
    #[command(flatten)]
    pub target: Target,

    #[command(flatten)]
    pub logs: LogsArgs,
}

/// How often a followed run is asked for new lines: over the network, and from the local
/// store (a read of a file's tail, cheap enough to do often).
const POLL: Duration = Duration::from_millis(50);
const POLL_LOCAL: Duration = Duration::from_millis(20);
/// How often a quiet run is asked whether it has ended.
const STATUS_EVERY: Duration = Duration::from_millis(500);

pub fn run(ctx: &Ctx, target: &Target, args: LogsArgs) -> Result<()> {
    let target = Target {
        project: target.project.clone(),
        uid: args.run.clone().or_else(|| target.uid.clone()),
    };
    ctx.block_on(async {
        let client = ctx.client().await?;
        let (r, run) = target.resolve(ctx, &client).await?;
        let done = run.is_done();
        let printed = follow(
            ctx,
            &client,
            &r,
            &args,
            !args.no_follow && !done,
            &mut Cursor::default(),
            None,
        )
        .await?;
        if printed.lines == 0 {
            ctx.printer.note(&format!(
                "run `{}` has no logs{}",
                r.uuid,
                if printed.ended { "" } else { " yet" }
            ));
        }
        Ok(())
    })
}

/// Where following got to: the next read continues from there.
#[derive(Clone, Debug, Default)]
pub struct Cursor {
    last_file: Option<String>,
    last_time: Option<String>,
}

/// What following printed.
pub struct Followed {
    pub lines: usize,
    /// The run had ended when following stopped.
    pub ended: bool,
    /// Its status then (none when it could not be read).
    pub status: Option<RunStatus>,
}

/// Prints a run's logs, and with `follow` keeps printing new lines until the run ends. A
/// signal on `interrupt` ends the wait early (the caller decides what it means).
pub async fn follow(
    ctx: &Ctx,
    client: &crate::client::Client,
    r: &crate::client::RunRef,
    args: &LogsArgs,
    follow: bool,
    cursor: &mut Cursor,
    mut interrupt: Option<&mut tokio::sync::mpsc::Receiver<()>>,
) -> Result<Followed> {
    let mut last_status_check = Instant::now();
    let mut watchdog = crate::controller::orphans::Watchdog::default();
    let mut build = BuildProgress::new(follow.then_some(ctx.printer));
    let mut printed = 0usize;
    let mut status: Option<RunStatus> = None;
    let mut done = !follow;
    loop {
        let page = client
            .logs(r, cursor.last_file.as_deref(), cursor.last_time.as_deref())
            .await
            .map_err(|e| run_not_found(e, r))?;
        let got = page.logs.len();
        if got > 0 {
            let mut text = String::new();
            for l in &page.logs {
                build.see(l);
                text.push_str(&line(ctx, args, l));
                text.push('\n');
            }
            build.print(|| ctx.printer.out(&text))?;
            printed += got;
        }
        cursor.last_file = page.last_file;
        cursor.last_time = page.last_time;
        if got > 0 {
            continue;
        }
        // Nothing new: stop when not following or when the run has ended (after a last
        // look, so lines written just before the end are not lost).
        if done {
            break;
        }
        if last_status_check.elapsed() >= STATUS_EVERY {
            last_status_check = Instant::now();
            watchdog.tick(client, r).await;
            let st = client.get_run(r).await.map_err(|e| run_not_found(e, r))?;
            status = st.status;
            done = st.is_done();
            if done {
                continue;
            }
        }
        let poll = if client.is_embedded() {
            POLL_LOCAL
        } else {
            POLL
        };
        match interrupt.as_deref_mut() {
            Some(rx) => {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    got = rx.recv() => if got.is_some() { break },
                }
            }
            None => tokio::time::sleep(poll).await,
        }
    }
    if status.is_none() {
        status = client.get_run(r).await.ok().and_then(|r| r.status);
    }
    Ok(Followed {
        lines: printed,
        ended: status.is_some_and(|s| s.is_done()),
        status,
    })
}

/// A progress bar over an image build's steps (`Step 3/7 : RUN …` in the lines of the
/// `build` container) while following on a terminal; the lines themselves still print.
struct BuildProgress {
    /// Drawn through this printer, or not at all.
    printer: Option<crate::printer::Printer>,
    bar: Option<indicatif::ProgressBar>,
}

impl BuildProgress {
    fn new(printer: Option<crate::printer::Printer>) -> Self {
        BuildProgress { printer, bar: None }
    }

    fn see(&mut self, l: &V1Log) {
        let Some(printer) = self.printer else {
            return;
        };
        if l.container.as_deref() != Some("build") {
            // The build is over once the job speaks.
            if let Some(b) = self.bar.take() {
                b.finish_and_clear();
            }
            return;
        }
        let Some((n, total, what)) = parse_step(&l.value) else {
            return;
        };
        let bar = self.bar.get_or_insert_with(|| {
            printer.progress(
                crate::printer::Progress::Steps(total, "building the image"),
                "",
            )
        });
        bar.set_length(total);
        bar.set_position(n);
        bar.set_message(what.to_string());
    }

    /// Prints with the bar out of the way.
    fn print<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.bar {
            Some(b) => b.suspend(f),
            None => f(),
        }
    }
}

impl Drop for BuildProgress {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// `Step 3/7 : RUN make` → (3, 7, "RUN make").
fn parse_step(text: &str) -> Option<(u64, u64, &str)> {
    let rest = text.strip_prefix("Step ")?;
    let (nums, what) = rest.split_once(" : ").unwrap_or((rest, ""));
    let (n, total) = nums.trim().split_once('/')?;
    Some((n.parse().ok()?, total.parse().ok()?, what.trim()))
}

fn line(ctx: &Ctx, args: &LogsArgs, l: &V1Log) -> String {
    let mut prefix = String::new();
    if !args.hide_time
        && let Some(t) = l.timestamp.as_deref().and_then(output::parse_time)
    {
        let t = t.strftime("%Y-%m-%d %H:%M:%S%.3f").to_string();
        prefix.push_str(&if ctx.printer.color_out() {
            format!("\x1b[2m{t}\x1b[0m ")
        } else {
            format!("{t} ")
        });
    }
    if args.all_info {
        let who: Vec<&str> = [l.node.as_deref(), l.pod.as_deref(), l.container.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        if !who.is_empty() {
            prefix.push_str(&format!("[{}] ", who.join("/")));
        }
    }
    format!("{prefix}{}", l.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_steps_are_read() {
        assert_eq!(
            parse_step("Step 3/7 : RUN make all"),
            Some((3, 7, "RUN make all"))
        );
        assert_eq!(
            parse_step("Step 1/2 : FROM scratch"),
            Some((1, 2, "FROM scratch"))
        );
        assert_eq!(parse_step("Step 10/12"), Some((10, 12, "")));
        assert_eq!(parse_step(" ---> Running in 1234"), None);
        assert_eq!(parse_step("Step x/y : no"), None);
    }

    #[test]
    fn the_bar_follows_the_build_and_ends_with_it() {
        let log = |container: &str, value: &str| V1Log {
            timestamp: None,
            node: None,
            pod: None,
            container: Some(container.into()),
            value: value.into(),
        };
        let mut off = BuildProgress::new(None);
        off.see(&log("build", "Step 1/3 : FROM scratch"));
        assert!(off.bar.is_none(), "no bar off a terminal");
        let mut b = BuildProgress::new(Some(crate::printer::Printer {
            color: false,
            color_stdout: false,
            interactive: true,
        }));
        b.see(&log("build", " ---> abc"));
        assert!(b.bar.is_none());
        b.see(&log("build", "Step 2/3 : COPY . /code"));
        let bar = b.bar.as_ref().unwrap();
        assert_eq!((bar.position(), bar.length()), (2, Some(3)));
        b.see(&log("job", "training"));
        assert!(b.bar.is_none(), "the job's first line ends the bar");
    }
}
