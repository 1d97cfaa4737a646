//! Usage analytics in PostgreSQL: the hourly rows every hub adds to (`hub_usage`), the callers
//! of each hour as a set (`hub_usage_callers`), reading them back for a span of hours, and
//! deleting what is older than the retention.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Database;
use super::identity::StoreError;
use crate::metrics::{BucketCounts, RouteCounts};

/// Add what `counts` hold to the rows of `hour` (the ones other hubs or earlier flushes wrote
/// included), and their callers to the hour's set: one statement, so a flush is all or nothing.
pub async fn add(db: &Database, rows: &[(DateTime<Utc>, RouteCounts)]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let counts: Vec<Value> = rows
        .iter()
        .map(|(hour, c)| {
            json!({
                "module": c.module,
                "route": c.route,
                "hour": hour,
                "calls": c.calls,
                "client_errors": c.client_errors,
                "errors": c.errors,
                "anonymous_calls": c.anonymous_calls,
                "duration_seconds": c.duration_seconds,
                "buckets": c.buckets,
            })
        })
        .collect();
    let callers: Vec<Value> = rows
        .iter()
        .flat_map(|(hour, c)| {
            c.callers.iter().map(move |caller| {
                json!({"module": c.module, "route": c.route, "hour": hour, "caller": caller.to_string()})
            })
        })
        .collect();
    let conn = db.hub_client().await?;
    conn.client()
        .execute(
            "WITH counts AS ( \
               INSERT INTO hub_usage AS u (module, route, hour, calls, client_errors, errors, \
                 anonymous_calls, duration_seconds, buckets) \
               SELECT module, route, hour, calls, client_errors, errors, anonymous_calls, \
                 duration_seconds, buckets \
               FROM jsonb_to_recordset($1::jsonb) AS r(module text, route text, hour timestamptz, \
                 calls bigint, client_errors bigint, errors bigint, anonymous_calls bigint, \
                 duration_seconds double precision, buckets bigint[]) \
               ON CONFLICT (module, hour, route) DO UPDATE SET \
                 calls = u.calls + excluded.calls, \
                 client_errors = u.client_errors + excluded.client_errors, \
                 errors = u.errors + excluded.errors, \
                 anonymous_calls = u.anonymous_calls + excluded.anonymous_calls, \
                 duration_seconds = u.duration_seconds + excluded.duration_seconds, \
                 buckets = ARRAY(SELECT coalesce(a, 0) + coalesce(b, 0) \
                   FROM unnest(u.buckets, excluded.buckets) WITH ORDINALITY AS t(a, b, n) \
                   ORDER BY n) \
             ), callers AS ( \
               INSERT INTO hub_usage_callers (module, route, hour, caller) \
               SELECT module, route, hour, caller \
               FROM jsonb_to_recordset($2::jsonb) AS r(module text, route text, hour timestamptz, \
                 caller text) \
               ON CONFLICT DO NOTHING \
             ) SELECT 1",
            &[&Value::Array(counts), &Value::Array(callers)],
        )
        .await?;
    Ok(())
}

/// Delete usage rows of hours older than `days` days.
pub async fn prune(db: &Database, days: u32) -> Result<u64, StoreError> {
    let conn = db.hub_client().await?;
    let days = i32::try_from(days).unwrap_or(i32::MAX);
    let counts = conn
        .client()
        .execute(
            "DELETE FROM hub_usage WHERE hour < now() - make_interval(days => $1)",
            &[&days],
        )
        .await?;
    let callers = conn
        .client()
        .execute(
            "DELETE FROM hub_usage_callers WHERE hour < now() - make_interval(days => $1)",
            &[&days],
        )
        .await?;
    Ok(counts + callers)
}

/// One stored hour of one route.
#[derive(Debug, Clone)]
pub struct HourRow {
    pub route: String,
    pub hour: DateTime<Utc>,
    pub calls: i64,
    pub client_errors: i64,
    pub errors: i64,
    pub anonymous_calls: i64,
    pub duration_seconds: f64,
    pub buckets: BucketCounts,
}

/// Distinct callers of a module over a span: per period (its start), per route, and in all.
#[derive(Debug, Clone, Default)]
pub struct CallerCounts {
    pub by_period: Vec<(DateTime<Utc>, i64)>,
    pub by_route: Vec<(String, i64)>,
    pub total: i64,
}

/// The hours of `module` in `[from, to)`, and its distinct callers per `period` (`hour` or
/// `day`, periods in UTC), per route and in all.
pub async fn read(
    db: &Database,
    module: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    period: &str,
) -> Result<(Vec<HourRow>, CallerCounts), StoreError> {
    let conn = db.hub_client().await?;
    let rows = conn
        .client()
        .query(
            "SELECT route, hour, calls, client_errors, errors, anonymous_calls, duration_seconds, \
             buckets FROM hub_usage WHERE module = $1 AND hour >= $2 AND hour < $3 \
             ORDER BY hour, route",
            &[&module, &from, &to],
        )
        .await?;
    let hours = rows
        .iter()
        .map(|r| {
            let stored: Vec<i64> = r.get(7);
            HourRow {
                route: r.get(0),
                hour: r.get(1),
                calls: r.get(2),
                client_errors: r.get(3),
                errors: r.get(4),
                anonymous_calls: r.get(5),
                duration_seconds: r.get(6),
                buckets: std::array::from_fn(|i| {
                    stored.get(i).map_or(0, |n| u64::try_from(*n).unwrap_or(0))
                }),
            }
        })
        .collect();
    let grouped = conn
        .client()
        .query(
            "SELECT date_trunc($4, hour, 'UTC') AS period, route, count(DISTINCT caller), \
               GROUPING(date_trunc($4, hour, 'UTC')), GROUPING(route) \
             FROM hub_usage_callers WHERE module = $1 AND hour >= $2 AND hour < $3 \
             GROUP BY GROUPING SETS ((date_trunc($4, hour, 'UTC')), (route), ())",
            &[&module, &from, &to, &period],
        )
        .await?;
    let mut callers = CallerCounts::default();
    for row in grouped {
        let (by_period, by_route): (i32, i32) = (row.get(3), row.get(4));
        let count: i64 = row.get(2);
        match (by_period, by_route) {
            (0, _) => callers.by_period.push((row.get(0), count)),
            (_, 0) => callers.by_route.push((row.get(1), count)),
            _ => callers.total = count,
        }
    }
    Ok((hours, callers))
}
