//! Blocking work (`ctx.spawn_blocking`): a closure run on a thread of the hub's blocking pool,
//! at most a few of the module's at once, its result (or its panic) handed back to the async
//! handler that waits for it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use abi_stable::sabi_trait::prelude::TD_Opaque;

use crate::error::Error;
use crate::ffi::{BlockingObj, BlockingObj_TO, HostBox};
use crate::panic::panic_message;

/// The work and where its result goes.
struct Task<F, T> {
    work: Mutex<Option<F>>,
    result: Arc<Mutex<Option<Result<T, String>>>>,
}

impl<F, T> BlockingObj for Task<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(&self) {
        let work = self.work.lock().ok().and_then(|mut w| w.take());
        let Some(work) = work else {
            return;
        };
        let outcome = catch_unwind(AssertUnwindSafe(work)).map_err(|panic| panic_message(&*panic));
        if let Ok(mut slot) = self.result.lock() {
            *slot = Some(outcome);
        }
    }
}

/// Run `work` on the hub's blocking pool; its value, or an error saying it panicked.
pub(crate) async fn spawn<F, T>(host: &HostBox, work: F) -> Result<T, Error>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let result = Arc::new(Mutex::new(None));
    let task = Task {
        work: Mutex::new(Some(work)),
        result: result.clone(),
    };
    host.spawn_blocking(BlockingObj_TO::from_value(task, TD_Opaque))
        .await
        .into_result()
        .map_err(|e| Error::internal(format!("blocking work could not run: {e}")))?;
    let outcome = result.lock().ok().and_then(|mut r| r.take());
    match outcome {
        Some(Ok(value)) => Ok(value),
        Some(Err(panic)) => Err(Error::internal(format!("blocking work panicked: {panic}"))),
        None => Err(Error::internal("blocking work did not run")),
    }
}
