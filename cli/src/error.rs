//! Errors of the CLI and the exit codes they map to: 0 ok, 1 user error, 2 usage, 101 bug
//! (a panic exits 101 on its own).

use std::fmt;

/// An error that has already been reported, carrying only its exit code.
#[derive(Debug)]
pub struct Reported(pub i32);

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Reported {}

/// A user-facing error with an optional hint.
#[derive(Debug)]
pub struct UserError {
    pub message: String,
    pub hint: Option<String>,
}

impl UserError {
    pub fn new(message: impl Into<String>) -> Self {
        UserError {
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// The exit code of an error that reached `main`: 1 when it is about what the user gave or
/// where polyaxon runs (a message that says what to fix), 101 when it is a bug in polyaxon.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if let Some(r) = e.downcast_ref::<Reported>() {
        return r.0;
    }
    if is_bug(e) { 101 } else { 1 }
}

/// Whether nothing in the chain is an error of input or environment: no message for the
/// user, no I/O, network, git, Docker, Kubernetes or database failure.
pub fn is_bug(e: &anyhow::Error) -> bool {
    !e.chain().any(|c| {
        c.is::<UserError>()
            || c.is::<crate::client::ClientError>()
            || c.is::<crate::client::TransportError>()
            || c.is::<std::io::Error>()
            || c.is::<git2::Error>()
            || c.is::<kube::Error>()
            || c.is::<kube::config::KubeconfigError>()
            || c.is::<kube::config::InferConfigError>()
            || c.is::<bollard::errors::Error>()
            || c.is::<reqwest::Error>()
            || c.is::<polyaxon_server::store::OpenError>()
            || c.is::<polyaxon_server::store::StoreError>()
            || c.is::<dialoguer::Error>()
    })
}

/// Whether an error chain ends in a closed pipe (`polyaxon ... | head`), which is not a failure.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// An error as one line, for a run's status: a user error's message and hint, else the chain.
pub fn said(e: &anyhow::Error) -> String {
    match e.downcast_ref::<UserError>() {
        Some(u) => match &u.hint {
            Some(h) => format!("{}; {h}", u.message),
            None => u.message.clone(),
        },
        None => format!("{e:#}"),
    }
}
