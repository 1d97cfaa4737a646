//! Background jobs: every half second this hub makes the runs of its running modules' recurring
//! jobs for their current period (one row a period for the fleet: whichever hub gets there
//! first), takes due runs with `FOR UPDATE SKIP LOCKED` (so each runs on one hub), and runs
//! them on the module's current instance under the job's timeout. A failed attempt is tried
//! again after the job's backoff (doubled each time) until its attempts are spent. A run whose
//! hub died is taken again when its lease runs out; a job of a disabled module waits until it
//! runs again. Jobs have no caller: they run as the module itself, under its safety switches.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::db::Database;
use crate::db::jobs::{self as store, Taken};
use crate::instance::Instance;
use crate::lifecycle::Hub;
use crate::registry::ModuleState;

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

/// The start of the period of length `every` that `now` is in.
fn period_of(now: DateTime<Utc>, every: Duration) -> DateTime<Utc> {
    let every = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
    let start = now.timestamp_millis() / every * every;
    DateTime::from_timestamp_millis(start).unwrap_or(now)
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
            for job in &jobs {
                longest = longest.max(job.timeout);
                if let Some(every) = job.every {
                    periods.push((
                        instance.name().to_owned(),
                        job.name.clone(),
                        period_of(now, every),
                    ));
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
    let outcome = tokio::time::timeout(
        job.timeout,
        instance.run_job(index as u32, run.id, &run.payload, attempt),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_on_multiples_of_their_length() {
        let at = DateTime::from_timestamp_millis(1_000_000_123_456).unwrap();
        assert_eq!(
            period_of(at, Duration::from_secs(60)).timestamp_millis(),
            1_000_000_080_000
        );
        assert_eq!(
            period_of(at, Duration::from_millis(500)).timestamp_millis(),
            1_000_000_123_000
        );
    }
}
