//! Open transfers per user: artifact downloads and uploads hold a slot from the moment they
//! are accepted until their body has been sent or read to its end. Past the cap a user's
//! next transfer is answered 429 with a `Retry-After`, so one user's scripts cannot hold every
//! connection and file handle of the server; other users are not affected.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::App;
use crate::error::ApiError;

/// How long a refused transfer is told to wait (seconds).
const RETRY_AFTER: u64 = 2;

#[derive(Default)]
pub struct Transfers {
    open: Mutex<HashMap<i64, usize>>,
}

impl Transfers {
    /// How many transfers `user` has open now.
    pub fn open(&self, user: i64) -> usize {
        self.open
            .lock()
            .expect("not poisoned")
            .get(&user)
            .copied()
            .unwrap_or(0)
    }
}

/// One open transfer; the slot is given back when it is dropped (with the response body
/// that carries it, or at the end of the upload's handler).
pub struct Transfer {
    app: App,
    user: i64,
}

impl App {
    /// Takes a transfer slot for `user`, or refuses with 429 when they have the most open.
    pub fn open_transfer(&self, user: i64) -> Result<Transfer, ApiError> {
        let limit = self.config.max_transfers_per_user;
        let mut open = self.transfers.open.lock().expect("not poisoned");
        let n = open.entry(user).or_default();
        if *n >= limit {
            return Err(ApiError::TooMany(
                format!(
                    "you have {limit} downloads and uploads open, the most this server allows \
                     per user; wait for one to finish"
                ),
                RETRY_AFTER,
            ));
        }
        *n += 1;
        Ok(Transfer {
            app: self.clone(),
            user,
        })
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        let mut open = self.app.transfers.open.lock().expect("not poisoned");
        if let Some(n) = open.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

impl Transfer {
    /// A response body that keeps this slot until it has been sent (or the client went).
    pub fn body<S, E>(self, stream: S) -> axum::body::Body
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
        E: Into<axum::BoxError> + 'static,
    {
        use futures_util::StreamExt;
        axum::body::Body::from_stream(stream.map(move |chunk| {
            let _held = &self;
            chunk
        }))
    }
}
