//! A run of one of a module's background jobs as its handler gets it ([`Job`]: the row's id, its
//! payload, which attempt this is, the module's context). The hub keeps the runs in PostgreSQL
//! and takes each once across every hub; jobs are declared on the router (`r.every(…)`,
//! `r.job(…)`) and enqueued with `ctx.jobs()` (`queue.rs`).

use std::fmt;
use std::sync::Arc;

use abi_stable::std_types::RVec;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ctx::Ctx;
use crate::error::Error;
use crate::ffi::JobRunBox;
use crate::http::Called;

/// One run of a job.
#[derive(Clone)]
pub struct Job {
    /// The run's row.
    pub id: i64,
    pub name: String,
    /// What was enqueued with it (`null` for a recurring run).
    pub payload: Value,
    /// 1 for the first attempt, 2 after one failure, …
    pub attempt: u32,
    pub(crate) ctx: Ctx,
    pub(crate) run: Arc<JobRunBox>,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("payload", &self.payload)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl Job {
    /// The module's context: its settings, its database, its outbound client. A job has no
    /// user behind it: it runs as the module's own service identity (`module:<name>`), under
    /// its safety switches.
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

    /// Call route `method path` of module `module` (one of this module's `dependencies`)
    /// in-process, as this module's service identity `module:<name>`: the route's permission
    /// is checked against the roles the operator gave that identity (`PUT
    /// /api/v1/users/{id}/roles`). See [`crate::Request::call`].
    pub async fn call(&self, module: &str, method: &str, path: &str) -> Called {
        self.call_with_body(module, method, path, Vec::new()).await
    }

    /// [`Job::call`] with `body` as JSON.
    pub async fn call_json<T: Serialize + ?Sized>(
        &self,
        module: &str,
        method: &str,
        path: &str,
        body: &T,
    ) -> Result<Called, Error> {
        let body = serde_json::to_vec(body)
            .map_err(|e| Error::internal(format!("cannot write the call's body as JSON: {e}")))?;
        Ok(self.call_with_body(module, method, path, body).await)
    }

    async fn call_with_body(
        &self,
        module: &str,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Called {
        let response = self
            .run
            .call(module.into(), method.into(), path.into(), RVec::from(body))
            .await;
        Called {
            status: response.status,
            body: response.body.into_vec(),
        }
    }

    /// Write an entry in the hub's audit log in the name of the module's service identity
    /// (`module:<name>`): what the job did (`action`), on what (`target`), and anything else
    /// worth keeping (`details`; the hub adds the job's name and run).
    pub fn audit(&self, action: &str, target: &str, details: Value) {
        let details = details.to_string();
        self.run
            .audit(action.into(), target.into(), details.as_str().into());
    }
}
