//! Metric batches of one run, grouped: writers to a run queue here, and whoever takes the
//! run's turn stores every batch waiting at that moment in one transaction. Eight writers
//! into one run then cost about as many commits as one writer, instead of queueing one commit
//! each; each batch keeps its own id (applied at most once) and gets its own answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::oneshot;

use crate::App;
use crate::error::ApiError;
use crate::store::Checked;

/// At most this many points in one group's transaction (a larger batch still goes alone).
const GROUP_POINTS: usize = 50_000;
/// At most this many batches in one group.
const GROUP_BATCHES: usize = 64;

struct Waiting {
    id: Option<String>,
    points: Checked,
    answer: oneshot::Sender<Result<usize, ApiError>>,
}

/// One run's queue.
#[derive(Default)]
pub struct Group {
    waiting: Mutex<Vec<Waiting>>,
    /// Held while a group is stored.
    turn: Arc<tokio::sync::Mutex<()>>,
}

pub type Groups = Mutex<HashMap<String, Weak<Group>>>;

fn group(groups: &Groups, uuid: &str) -> Arc<Group> {
    let mut map = groups.lock().expect("not poisoned");
    if let Some(g) = map.get(uuid).and_then(Weak::upgrade) {
        return g;
    }
    map.retain(|_, w| w.strong_count() > 0);
    let g = Arc::new(Group::default());
    map.insert(uuid.to_string(), Arc::downgrade(&g));
    g
}

/// Stores one batch of the run `run_id` (`uuid`), grouped with the batches other writers of
/// the run send meanwhile. Returns the points added (0: the batch id was seen before).
pub async fn ingest(
    app: &App,
    uuid: &str,
    run_id: i64,
    id: Option<String>,
    points: Checked,
) -> Result<usize, ApiError> {
    let g = group(&app.ingest_groups, uuid);
    let (tx, mut rx) = oneshot::channel();
    g.waiting.lock().expect("not poisoned").push(Waiting {
        id,
        points,
        answer: tx,
    });
    loop {
        let turn = g.turn.clone().lock_owned().await;
        // Stored by the writer that had the turn before.
        match rx.try_recv() {
            Ok(answer) => return answer,
            Err(oneshot::error::TryRecvError::Closed) => {
                return Err(ApiError::Internal("a grouped batch lost its answer".into()));
            }
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        // A slot among all runs' first: the run's batches that come while it waits for one
        // go into the same group.
        let Ok(slot) = app.ingest_slots.clone().acquire_owned().await else {
            return Err(ApiError::Unavailable("the server is stopping".into(), 1));
        };
        let taken = {
            let mut waiting = g.waiting.lock().expect("not poisoned");
            let mut n = 0;
            let mut points = 0;
            while n < waiting.len() && n < GROUP_BATCHES {
                let p = waiting[n].points.points();
                if n > 0 && points + p > GROUP_POINTS {
                    break;
                }
                points += p;
                n += 1;
            }
            waiting.drain(..n).collect::<Vec<_>>()
        };
        // Stored by a task of its own: a writer that goes away (its client hung up) does not
        // take the others' batches with it. The turn is held until the group is stored.
        let app = app.clone();
        let stored = tokio::spawn(async move {
            store(&app, run_id, taken).await;
            drop(slot);
            drop(turn);
        });
        if stored.await.is_err() {
            return Err(ApiError::Internal(
                "storing a group of metric batches failed".into(),
            ));
        }
    }
}

/// Stores a group in one transaction (its caller holds a slot among all runs', see
/// `App::ingest_slots`) and answers each of its writers.
async fn store(app: &App, run_id: i64, taken: Vec<Waiting>) {
    if taken.is_empty() {
        return;
    }
    let (batches, answers): (Vec<_>, Vec<_>) = taken
        .into_iter()
        .map(|w| ((w.id, w.points), w.answer))
        .unzip();
    let result = app
        .store
        .ingest_batches(run_id, &batches)
        .await
        .map_err(ApiError::from);
    match result {
        Ok(added) => {
            for (answer, n) in answers.into_iter().zip(added) {
                let _ = answer.send(Ok(n));
            }
        }
        Err(e) => {
            if answers.len() > 1 {
                tracing::warn!(batches = answers.len(), error = ?e, "a group of metric batches failed; each writer is told");
            }
            for answer in answers {
                let _ = answer.send(Err(e.clone()));
            }
        }
    }
}
