//! Background jobs in PostgreSQL (`hub_jobs`): enqueueing a run, the runs of recurring jobs'
//! periods (one row a period for the whole fleet), taking due runs with `FOR UPDATE SKIP
//! LOCKED` under a lease, and writing how a run ended.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::Database;
use super::identity::StoreError;

/// A run, as the jobs API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobRun {
    pub id: i64,
    pub name: String,
    /// `queued`, `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    /// Attempts made so far.
    pub attempts: i32,
    /// When it is (or was) due.
    pub run_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The hub that ran it last.
    pub hub: Option<String>,
    /// What it was enqueued with (any JSON; `null` for a recurring run).
    pub payload: Value,
    /// A recurring job's period; `null` for an enqueued run.
    pub period: Option<DateTime<Utc>>,
}

/// A run taken by this hub.
#[derive(Debug, Clone)]
pub struct Taken {
    pub id: i64,
    pub module: String,
    pub name: String,
    pub payload: Value,
    /// This attempt's number (1 for the first).
    pub attempt: i32,
}

const COLUMNS: &str =
    "id, name, state, attempts, run_at, started_at, finished_at, last_error, hub, payload, period";

fn run(row: &tokio_postgres::Row) -> JobRun {
    JobRun {
        id: row.get(0),
        name: row.get(1),
        state: row.get(2),
        attempts: row.get(3),
        run_at: row.get(4),
        started_at: row.get(5),
        finished_at: row.get(6),
        last_error: row.get(7),
        hub: row.get(8),
        payload: row.get(9),
        period: row.get(10),
    }
}

/// A run of `module`'s job `name` with `payload`, due after `delay_ms`: its id.
pub async fn enqueue(
    db: &Database,
    module: &str,
    name: &str,
    payload: &Value,
    delay_ms: u64,
) -> Result<i64, StoreError> {
    let conn = db.hub_client().await?;
    let delay = delay_ms as f64 / 1000.0;
    let row = conn
        .client()
        .query_one(
            "INSERT INTO hub_jobs (module, name, payload, run_at) \
             VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING id",
            &[&module, &name, payload, &delay],
        )
        .await?;
    Ok(row.get(0))
}

/// The runs of recurring jobs' current periods, (module, name, period start), made once for
/// the whole fleet whichever hub gets there first.
pub async fn schedule(
    db: &Database,
    periods: &[(String, String, DateTime<Utc>)],
) -> Result<(), StoreError> {
    if periods.is_empty() {
        return Ok(());
    }
    let modules: Vec<&str> = periods.iter().map(|p| p.0.as_str()).collect();
    let names: Vec<&str> = periods.iter().map(|p| p.1.as_str()).collect();
    let starts: Vec<DateTime<Utc>> = periods.iter().map(|p| p.2).collect();
    let conn = db.hub_client().await?;
    conn.client()
        .execute(
            "INSERT INTO hub_jobs (module, name, period, run_at) \
             SELECT m, n, p, p FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS t(m, n, p) \
             ON CONFLICT (module, name, period) WHERE period IS NOT NULL DO NOTHING",
            &[&modules, &names, &starts],
        )
        .await?;
    Ok(())
}

/// Take up to `limit` due runs of `modules` for `hub`: queued ones whose time has come, and
/// running ones whose lease ran out (their hub died); each leased for `lease_secs`.
pub async fn take(
    db: &Database,
    modules: &[String],
    hub: &str,
    limit: i64,
    lease_secs: f64,
) -> Result<Vec<Taken>, StoreError> {
    if modules.is_empty() || limit <= 0 {
        return Ok(Vec::new());
    }
    let conn = db.hub_client().await?;
    let rows = conn
        .client()
        .query(
            "UPDATE hub_jobs SET state = 'running', attempts = attempts + 1, hub = $3, \
               started_at = now(), lease_until = now() + make_interval(secs => $4) \
             WHERE id IN (SELECT id FROM hub_jobs WHERE module = ANY($1) AND \
               ((state = 'queued' AND run_at <= now()) OR (state = 'running' AND lease_until < now())) \
               ORDER BY run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING id, module, name, payload, attempts",
            &[&modules, &limit, &hub, &lease_secs],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Taken {
            id: r.get(0),
            module: r.get(1),
            name: r.get(2),
            payload: r.get(3),
            attempt: r.get(4),
        })
        .collect())
}

/// How run `id` ended: `None` done; `Some((error, Some(at)))` to try again at `at`;
/// `Some((error, None))` failed for good. A run cancelled meanwhile stays cancelled.
pub async fn finish(
    db: &Database,
    id: i64,
    outcome: Option<(&str, Option<DateTime<Utc>>)>,
) -> Result<(), StoreError> {
    let conn = db.hub_client().await?;
    let (state, error, retry_at): (&str, Option<&str>, Option<DateTime<Utc>>) = match outcome {
        None => ("done", None, None),
        Some((error, Some(at))) => ("queued", Some(error), Some(at)),
        Some((error, None)) => ("failed", Some(error), None),
    };
    conn.client()
        .execute(
            "UPDATE hub_jobs SET state = $2, last_error = coalesce($3, last_error), \
               run_at = coalesce($4, run_at), lease_until = NULL, \
               finished_at = CASE WHEN $2 = 'queued' THEN NULL ELSE now() END \
             WHERE id = $1 AND state = 'running'",
            &[&id, &state, &error, &retry_at],
        )
        .await?;
    Ok(())
}

/// The last `limit` runs of `module`, newest first.
pub async fn runs(db: &Database, module: &str, limit: i64) -> Result<Vec<JobRun>, StoreError> {
    let conn = db.hub_client().await?;
    let rows = conn
        .client()
        .query(
            &format!("SELECT {COLUMNS} FROM hub_jobs WHERE module = $1 ORDER BY id DESC LIMIT $2"),
            &[&module, &limit],
        )
        .await?;
    Ok(rows.iter().map(run).collect())
}

/// Run `id` of `module` queued again (attempts from zero) or cancelled: the row after the
/// change, `Ok(None)` when there is no such run, `Err(state)` when its state does not allow it.
pub async fn act(
    db: &Database,
    module: &str,
    id: i64,
    retry: bool,
) -> Result<Option<Result<JobRun, String>>, StoreError> {
    let conn = db.hub_client().await?;
    let (set, allowed) = if retry {
        (
            "state = 'queued', attempts = 0, run_at = now(), lease_until = NULL, finished_at = NULL",
            "('failed', 'cancelled', 'done')",
        )
    } else {
        (
            "state = 'cancelled', lease_until = NULL, finished_at = now()",
            "('queued', 'running')",
        )
    };
    let changed = conn
        .client()
        .query_opt(
            &format!(
                "UPDATE hub_jobs SET {set} WHERE id = $1 AND module = $2 AND state IN {allowed} \
                 RETURNING {COLUMNS}"
            ),
            &[&id, &module],
        )
        .await?;
    if let Some(row) = changed {
        return Ok(Some(Ok(run(&row))));
    }
    let state = conn
        .client()
        .query_opt(
            "SELECT state FROM hub_jobs WHERE id = $1 AND module = $2",
            &[&id, &module],
        )
        .await?;
    Ok(state.map(|r| Err(r.get(0))))
}
