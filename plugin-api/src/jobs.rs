//! A run of one of a module's background jobs as its handler gets it ([`Job`]: the row's id, its
//! payload, which attempt this is, the module's context). The hub keeps the runs in PostgreSQL
//! and takes each once across every hub; jobs are declared on the router (`r.every(…)`,
//! `r.job(…)`) and enqueued with `ctx.jobs()` (`queue.rs`).

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ctx::Ctx;
use crate::error::Error;

/// One run of a job.
#[derive(Debug, Clone)]
pub struct Job {
    /// The run's row.
    pub id: i64,
    pub name: String,
    /// What was enqueued with it (`null` for a recurring run).
    pub payload: Value,
    /// 1 for the first attempt, 2 after one failure, …
    pub attempt: u32,
    pub(crate) ctx: Ctx,
}

impl Job {
    /// The module's context: its settings, its database, its outbound client. A job has no
    /// caller: it runs as the module itself, under its safety switches.
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The payload read into `T`.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_value(self.payload.clone()).map_err(|e| {
            Error::internal(format!(
                "job '{}' has an unreadable payload: {e}",
                self.name
            ))
        })
    }
}
