//! Background jobs: every half second this hub makes the runs of its running modules' recurring
//! jobs for their current period (one row a period for the fleet: whichever hub gets there
//! first), takes due runs with `FOR UPDATE SKIP LOCKED` (so each runs on one hub), and runs
//! them on the module's current instance under the job's timeout. A failed attempt is tried
//! again after the job's backoff (doubled each time) until its attempts are spent. A run whose
//! hub died is taken again when its lease runs out; a job of a disabled module waits until it
//! runs again. Jobs have no user behind them: a run acts as the module's own service identity
//! (`module:<name>`: its calls to other modules, its audit entries), under its safety switches.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use abi_stable::sabi_trait::prelude::TD_Opaque;
use abi_stable::std_types::{RStr, RVec};
use async_ffi::{FfiFuture, FutureExt as _};
use chrono::{TimeDelta, Utc};
use plugin_api::ffi::{FfiResponse, JobRunObj, JobRunObj_TO};
use serde_json::Value;

use crate::db::Database;
use crate::db::jobs::{self as store, Taken};
use crate::identity::{Actor, Event, Principal};
use crate::instance::Instance;
use crate::lifecycle::Hub;
use crate::logging::RequestId;
use crate::registry::ModuleState;

/// How a run calls a route of another module: the dispatch's steps, which the HTTP room owns
/// (it installs this when the hub starts serving: `http::calls::install`). The caller is the
/// module's instance, the principal its service identity.
pub type CallFn = fn(
    from: Arc<Instance>,
    principal: Arc<Principal>,
    request_id: RequestId,
    module: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> FfiFuture<FfiResponse>;

static CALL: OnceLock<CallFn> = OnceLock::new();

/// Let job runs call other modules through `call`.
pub fn install_calls(call: CallFn) {
    let _ = CALL.set(call);
}

/// How often the hub looks for due runs.
const POLL: Duration = Duration::from_millis(500);
/// Runs of this hub at once.
const RUNNING: usize = 8;
/// A lease lasts the longest timeout of the jobs it may run, and this much more.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// This hub's name in `hub_jobs.hub`: its host name and process id.
fn hub_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

/// The running instances, by module.
fn running(hub: &Hub) -> Vec<Arc<Instance>> {
    hub.registry()
        .all()
        .values()
        .filter_map(|entry| match &entry.state {
            ModuleState::Running { instance, .. } => Some(instance.clone()),
            _ => None,
        })
        .collect()
}

/// The running instance of `module`, if it runs.
fn instance_of(hub: &Hub, module: &str) -> Option<Arc<Instance>> {
    hub.registry()
        .with(module, |entry| match entry.map(|e| &e.state) {
            Some(ModuleState::Running { instance, .. }) => Some(instance.clone()),
            _ => None,
        })
}

/// Run jobs until the hub stops (nothing without a database).
pub async fn run(hub: Arc<Hub>) {
    let db = hub.database_handle();
    if !db.is_configured() {
        return;
    }
    let me = hub_name();
    let busy = Arc::new(AtomicUsize::new(0));
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Utc::now();
        let mut periods = Vec::new();
        let mut modules = Vec::new();
        let mut longest = Duration::ZERO;
        for instance in running(&hub) {
            let jobs = instance.jobs();
            if jobs.is_empty() {
                continue;
            }
            for job in jobs {
                longest = longest.max(job.timeout);
                if let Some(period) = job.period(now) {
                    periods.push((instance.name().to_owned(), job.name.clone(), period));
                }
            }
            modules.push(instance.name().to_owned());
        }
        if modules.is_empty() {
            continue;
        }
        if let Err(e) = store::schedule(&db, &periods).await {
            tracing::debug!("jobs: cannot make this period's runs yet: {e}");
            continue;
        }
        let free = RUNNING.saturating_sub(busy.load(Ordering::Relaxed));
        let lease = (longest + LEASE_MARGIN).as_secs_f64();
        let taken = match store::take(&db, &modules, &me, free as i64, lease).await {
            Ok(taken) => taken,
            Err(e) => {
                tracing::debug!("jobs: cannot take due runs: {e}");
                continue;
            }
        };
        for run in taken {
            busy.fetch_add(1, Ordering::Relaxed);
            let (hub, db, busy) = (hub.clone(), db.clone(), busy.clone());
            tokio::task::spawn_local(async move {
                one(&hub, &db, run).await;
                busy.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }
}

/// Run one taken run and write how it ended.
async fn one(hub: &Hub, db: &Database, run: Taken) {
    let attempt = u32::try_from(run.attempt).unwrap_or(1).max(1);
    let Some(instance) = instance_of(hub, &run.module) else {
        // Disabled between the take and now: due again when it runs.
        let _ = store::finish(
            db,
            run.id,
            Some(("the module is not running", Some(Utc::now()))),
        )
        .await;
        return;
    };
    let jobs = instance.jobs();
    let Some(index) = jobs.iter().position(|j| j.name == run.name) else {
        let why = format!(
            "module '{}' (version {}) has no job '{}'",
            run.module,
            instance.info().version,
            run.name
        );
        let _ = store::finish(db, run.id, Some((&why, None))).await;
        return;
    };
    let job = &jobs[index];
    let identity = instance.access().identity.clone();
    if let Err(e) = identity.ensure_module(&run.module).await {
        tracing::warn!(module = %run.module, "cannot make the module's service identity module:{}: {e}", run.module);
    }
    let request_id = RequestId::Given(format!("job-{}-{attempt}", run.id).into());
    let object = JobRun {
        instance: instance.clone(),
        principal: identity.module_principal(&run.module),
        request_id: request_id.clone(),
        id: run.id,
        name: run.name.clone(),
        payload: run.payload.to_string(),
        attempt,
    };
    let object = JobRunObj_TO::from_value(object, TD_Opaque);
    let outcome = tokio::time::timeout(
        job.timeout,
        crate::logging::with_request_id(request_id, instance.run_job(index as u32, object)),
    )
    .await;
    let error = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(why)) => Some(why),
        Err(_) => Some(format!(
            "cancelled at its timeout of {} ms",
            job.timeout.as_millis()
        )),
    };
    let ending = match &error {
        None => None,
        Some(why) if attempt < job.attempts => {
            let wait = job.backoff.saturating_mul(1 << (attempt - 1).min(16));
            tracing::warn!(
                module = %run.module,
                "job '{}' run {} failed (attempt {attempt} of {}), again in {} ms: {why}",
                run.name,
                run.id,
                job.attempts,
                wait.as_millis()
            );
            let at = Utc::now() + TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX);
            Some((why.as_str(), Some(at)))
        }
        Some(why) => {
            tracing::warn!(
                module = %run.module,
                "job '{}' run {} failed for good (attempt {attempt} of {}): {why}",
                run.name,
                run.id,
                job.attempts
            );
            Some((why.as_str(), None))
        }
    };
    if let Err(e) = store::finish(db, run.id, ending).await {
        tracing::warn!(module = %run.module, "job '{}' run {}: cannot write how it ended: {e}", run.name, run.id);
    }
}

/// One run as the module sees it: the row, and what it does as the module's service identity.
struct JobRun {
    instance: Arc<Instance>,
    principal: Arc<Principal>,
    request_id: RequestId,
    id: i64,
    name: String,
    payload: String,
    attempt: u32,
}

impl JobRunObj for JobRun {
    fn id(&self) -> i64 {
        self.id
    }

    fn payload(&self) -> RStr<'_> {
        self.payload.as_str().into()
    }

    fn attempt(&self) -> u32 {
        self.attempt
    }

    fn audit(&self, action: RStr<'_>, target: RStr<'_>, details: RStr<'_>) {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let mut details: Value = serde_json::from_str(details.as_str())
                .unwrap_or_else(|_| Value::String(details.as_str().to_owned()));
            let run =
                serde_json::json!({"name": self.name, "run": self.id, "attempt": self.attempt});
            match &mut details {
                Value::Object(map) => {
                    map.insert("job".to_owned(), run);
                }
                Value::Null => details = serde_json::json!({ "job": run }),
                other => details = serde_json::json!({ "job": run, "details": other.take() }),
            }
            let actor = Actor {
                id: self.principal.actor(),
                name: Some(self.principal.name.clone()),
                address: None,
            };
            self.instance.access().identity.auditor.record(
                &actor,
                Event {
                    action: action.as_str(),
                    module: Some(self.instance.name()),
                    target: Some(target.as_str()).filter(|t| !t.is_empty()),
                    outcome: "ok",
                    details: Some(details),
                },
            );
        }));
    }

    fn call(
        &self,
        module: RStr<'_>,
        method: RStr<'_>,
        path: RStr<'_>,
        body: RVec<u8>,
    ) -> FfiFuture<FfiResponse> {
        let Some(call) = CALL.get() else {
            let body = serde_json::json!({"error": {
                "code": "call_failed",
                "message": "the hub does not serve yet: calls between modules start with its server",
            }});
            return std::future::ready(FfiResponse {
                status: 503,
                content_type: abi_stable::std_types::RSome("application/json".into()),
                headers: RVec::new(),
                body: serde_json::to_vec(&body).unwrap_or_default().into(),
                special: abi_stable::std_types::RNone,
            })
            .into_ffi();
        };
        call(
            self.instance.clone(),
            self.principal.clone(),
            self.request_id.clone(),
            module.as_str(),
            method.as_str(),
            path.as_str(),
            body.into_vec(),
        )
    }
}
