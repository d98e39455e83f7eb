//! What a command runs with: the printer, the settings, the client, and the resolution of
//! "which project" and "which run" — from `-p owner/project` and `--uid`, then the project
//! cache (`polyaxon init`) and the last run used, in that order.

use anyhow::Result;

use crate::client::{Client, ClientError, EMBEDDED_USER, RunRef};
use crate::error::UserError;
use crate::printer::Printer;
use crate::settings::{self, ProjectCache, RunCache, Settings};

pub struct Ctx {
    pub printer: Printer,
    pub settings: Settings,
}

/// A project by owner and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectRef {
    pub owner: String,
    pub name: String,
}

impl std::fmt::Display for ProjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

impl Ctx {
    pub fn new(printer: Printer) -> Result<Ctx> {
        Ok(Ctx {
            printer,
            settings: Settings::resolve()?,
        })
    }

    /// Runs an async command body on a runtime of its own.
    pub fn block_on<T>(&self, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(f)
    }

    /// The client of the configured server (or the embedded store). Opening the embedded
    /// store also ends the runs whose supervisor died, so none is left "running".
    pub async fn client(&self) -> Result<Client> {
        let client = Client::connect(&self.settings).await?;
        if let Some(app) = client.embedded_app() {
            crate::controller::orphans::reap(app).await;
            // Runs it ended may notify: sent now, before this command goes on.
            let fired = !app.store.fired.lock().expect("not poisoned").is_empty();
            if fired {
                crate::outbox::Delivery::start(app, "cli", &self.settings)
                    .finish(&self.printer)
                    .await;
            }
        }
        Ok(client)
    }

    /// The owner of projects named without one: the configured owner, else who is logged in
    /// (asking the server once), else the embedded user.
    pub async fn default_owner(&self, client: &Client) -> Result<String> {
        if let Some(o) = &self.settings.client.owner {
            return Ok(o.clone());
        }
        if client.is_embedded() {
            return Ok(EMBEDDED_USER.into());
        }
        if let Some(u) = self.settings.user()? {
            return Ok(u.username);
        }
        let me = client.whoami().await?;
        let _ = settings::write_json(
            &self.settings.user_path(),
            &settings::UserCache {
                username: me.username.clone(),
                email: me.email.clone(),
                host: self.settings.host.clone(),
            },
        );
        Ok(me.username)
    }

    /// The project a command is about.
    pub async fn project(&self, client: &Client, flag: Option<&str>) -> Result<ProjectRef> {
        match flag.map(str::trim).filter(|f| !f.is_empty()) {
            Some(p) => self.parse_project(client, p).await,
            None => match self.settings.project_cache()? {
                Some(ProjectCache { owner, name, .. }) => Ok(ProjectRef { owner, name }),
                // Embedded, runs started without a project are in `default/default`.
                None if client.is_embedded()
                    && client
                        .get_project(crate::client::EMBEDDED_USER, "default")
                        .await
                        .is_ok() =>
                {
                    Ok(ProjectRef {
                        owner: crate::client::EMBEDDED_USER.into(),
                        name: "default".into(),
                    })
                }
                None => Err(UserError::new("no project given, and none set up here")
                    .hint("pass `-p PROJECT` (or `-p OWNER/PROJECT`), or run `polyaxon init -p PROJECT` in this directory")
                    .into()),
            },
        }
    }

    /// `name` or `owner/name`.
    pub async fn parse_project(&self, client: &Client, p: &str) -> Result<ProjectRef> {
        let (owner, name) = match p.split_once('/') {
            Some((o, n)) => (o.trim().to_string(), n.trim().to_string()),
            None => (self.default_owner(client).await?, p.trim().to_string()),
        };
        for (what, v) in [("owner", &owner), ("project name", &name)] {
            if v.is_empty() || v.contains('/') {
                return Err(UserError::new(format!("`{p}` has no valid {what}"))
                    .hint("write the project as `NAME` or `OWNER/NAME`")
                    .into());
            }
        }
        Ok(ProjectRef { owner, name })
    }

    /// The run a command is about: `--uid`, else the last run used (in the same project).
    pub async fn run(
        &self,
        client: &Client,
        project: Option<&str>,
        uid: Option<&str>,
    ) -> Result<RunRef> {
        let cached = self.settings.run_cache()?;
        if let Some(u) = uid.map(str::trim).filter(|u| !u.is_empty()) {
            let uuid = u.replace('-', "");
            // The project: given; else the directory's; else the last run's (the runs one
            // works with are mostly in one project).
            let p = match (project, &cached) {
                (Some(p), _) => self.project(client, Some(p)).await?,
                (None, Some(c)) if c.uuid == uuid => ProjectRef {
                    owner: c.owner.clone(),
                    name: c.project.clone(),
                },
                (None, Some(c)) if self.settings.project_cache()?.is_none() => ProjectRef {
                    owner: c.owner.clone(),
                    name: c.project.clone(),
                },
                (None, _) => self.project(client, None).await?,
            };
            return Ok(RunRef {
                owner: p.owner,
                project: p.name,
                uuid,
            });
        }
        let Some(c) = cached else {
            return Err(UserError::new("no run given, and no run used before here")
                .hint("pass `--uid UUID`; `polyaxon ops ls` lists runs")
                .into());
        };
        if let Some(p) = project {
            let p = self.project(client, Some(p)).await?;
            if p.owner != c.owner || p.name != c.project {
                return Err(UserError::new(format!(
                    "no run given for `{p}` (the last run used is in `{}/{}`)",
                    c.owner, c.project
                ))
                .hint("pass `--uid UUID`; `polyaxon ops ls` lists runs")
                .into());
            }
        }
        Ok(RunRef {
            owner: c.owner,
            project: c.project,
            uuid: c.uuid,
        })
    }

    pub fn remember_run(&self, r: &RunRef, name: Option<&str>) {
        self.settings.remember_run(&RunCache {
            uuid: r.uuid.clone(),
            owner: r.owner.clone(),
            project: r.project.clone(),
            name: name.map(str::to_string),
        });
    }
}

/// Adds a hint to a not-found error about a project.
pub fn project_not_found(e: ClientError, p: &ProjectRef) -> anyhow::Error {
    if e.is_not_found() {
        UserError::new(format!("project `{p}` not found"))
            .hint(format!(
                "`polyaxon project ls` lists projects; `polyaxon project create -n {}` creates it",
                p.name
            ))
            .into()
    } else {
        e.into()
    }
}

/// Adds a hint to a not-found error about a run.
pub fn run_not_found(e: ClientError, r: &RunRef) -> anyhow::Error {
    if e.is_not_found() {
        UserError::new(format!(
            "run `{}` not found in `{}/{}`",
            r.uuid, r.owner, r.project
        ))
        .hint("`polyaxon ops ls -p PROJECT` lists a project's runs")
        .into()
    } else {
        e.into()
    }
}
