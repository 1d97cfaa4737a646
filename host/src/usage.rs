//! Usage analytics: per module route and hour, the calls, client errors (4xx), errors (5xx),
//! anonymous calls, durations (as the counts of the metrics' buckets) and distinct callers.
//! The counting is the metrics' own ([`crate::metrics::Tally`]); this room adds it to
//! PostgreSQL about once a minute, at each hour's end and when the hub stops, in one statement
//! that adds to what other hubs wrote ([`flush`], [`run`]), and reads it back as a series of
//! hours or days with percentiles ([`report`]).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::Database;
use crate::db::identity::StoreError;
use crate::db::usage::{self as store, HourRow};
use crate::metrics::{self, BUCKETS, BucketCounts, RouteCounts};

/// Rows that could not be written wait for the next flush, up to this many (then the oldest
/// are dropped, with a warning).
const MAX_PENDING: usize = 100_000;

/// What the flusher has taken from the counters and not written yet, and since when it counts.
struct Pending {
    since: Option<DateTime<Utc>>,
    rows: Vec<(DateTime<Utc>, RouteCounts)>,
}

/// One flush at a time (the loop, a usage query, the stop).
static PENDING: tokio::sync::Mutex<Pending> = tokio::sync::Mutex::const_new(Pending {
    since: None,
    rows: Vec::new(),
});

/// The hour `at` falls in.
fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

/// Add what was counted since the last flush to the database: the counts go to the hour the
/// period's middle falls in (the flusher wakes at each hour's end, so a period spans one hour,
/// give or take the moment it takes to wake). Rows that cannot be written are kept for the next
/// flush. `Ok(n)`: n rows written.
pub async fn flush(db: &Database) -> Result<usize, StoreError> {
    let Some(tally) = metrics::get().and_then(metrics::Metrics::tally) else {
        return Ok(0);
    };
    let mut pending = PENDING.lock().await;
    let now = Utc::now();
    let since = pending.since.unwrap_or(now);
    pending.since = Some(now);
    let hour = hour_of(since + (now - since) / 2);
    let taken = tally.take();
    pending
        .rows
        .extend(taken.into_iter().map(|counts| (hour, counts)));
    pending.rows = merged(std::mem::take(&mut pending.rows));
    if pending.rows.len() > MAX_PENDING {
        let dropped = pending.rows.len() - MAX_PENDING;
        tracing::warn!(
            "usage analytics: {dropped} hourly rows could not be written for too long and are dropped"
        );
        pending.rows.sort_by_key(|(hour, _)| *hour);
        pending.rows.drain(..dropped);
    }
    store::add(db, &pending.rows).await?;
    let written = pending.rows.len();
    pending.rows.clear();
    Ok(written)
}

/// One row per hour, module and route (the statement adds each key once).
fn merged(rows: Vec<(DateTime<Utc>, RouteCounts)>) -> Vec<(DateTime<Utc>, RouteCounts)> {
    let mut by_key: HashMap<(DateTime<Utc>, String, String), RouteCounts> = HashMap::new();
    for (hour, counts) in rows {
        match by_key.entry((hour, counts.module.clone(), counts.route.clone())) {
            Entry::Vacant(slot) => {
                slot.insert(counts);
            }
            Entry::Occupied(mut slot) => {
                let into = slot.get_mut();
                into.calls += counts.calls;
                into.client_errors += counts.client_errors;
                into.errors += counts.errors;
                into.anonymous_calls += counts.anonymous_calls;
                into.duration_seconds += counts.duration_seconds;
                for (sum, n) in into.buckets.iter_mut().zip(counts.buckets) {
                    *sum += n;
                }
                for caller in counts.callers {
                    if !into.callers.contains(&caller) {
                        into.callers.push(caller);
                    }
                }
            }
        }
    }
    by_key
        .into_iter()
        .map(|((hour, _, _), counts)| (hour, counts))
        .collect()
}

/// Flush every `every` and at each hour's end; delete rows older than `retention_days` at start
/// and every hour. Runs until the hub stops (which flushes once more: [`flush`]).
pub async fn run(db: Arc<Database>, every: Duration, retention_days: u32) {
    PENDING.lock().await.since = Some(Utc::now());
    let mut pruned: Option<DateTime<Utc>> = None;
    loop {
        if pruned.is_none_or(|at| hour_of(at) != hour_of(Utc::now())) {
            match store::prune(&db, retention_days).await {
                Ok(n) => {
                    pruned = Some(Utc::now());
                    if n > 0 {
                        tracing::info!(
                            "usage analytics: deleted {n} rows older than HUB_USAGE_RETENTION_DAYS={retention_days}"
                        );
                    }
                }
                Err(e) => tracing::debug!("usage analytics: cannot delete old rows yet: {e}"),
            }
        }
        let now = Utc::now();
        let to_hour_end = (hour_of(now) + TimeDelta::hours(1) - now)
            .to_std()
            .unwrap_or_default();
        tokio::time::sleep(every.min(to_hour_end + Duration::from_millis(20))).await;
        if let Err(e) = flush(&db).await {
            tracing::warn!(
                "usage analytics: cannot add this minute's counts to the database (kept for the next flush): {e}"
            );
        }
    }
}

/// The length of a report's periods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Hour,
    Day,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
        }
    }

    fn length(self) -> TimeDelta {
        match self {
            Period::Hour => TimeDelta::hours(1),
            Period::Day => TimeDelta::days(1),
        }
    }

    /// The start of the period `at` falls in (days in UTC).
    pub fn start_of(self, at: DateTime<Utc>) -> DateTime<Utc> {
        at.duration_trunc(self.length()).unwrap_or(at)
    }
}

/// Calls, errors, callers and latency over a span (a period, a route, or all).
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct Stats {
    pub calls: u64,
    /// Answers with a 4xx status.
    pub client_errors: u64,
    /// Answers with a 5xx status.
    pub errors: u64,
    /// `errors / calls` (0 without calls).
    pub error_rate: f64,
    /// Calls answered for nobody signed in.
    pub anonymous_calls: u64,
    /// Distinct signed-in callers (users; tokens without a user), each counted once however
    /// many hubs it called.
    pub callers: u64,
    /// Mean duration in seconds; `null` without calls.
    pub mean_seconds: Option<f64>,
    /// Duration percentiles in seconds, read from the buckets as Prometheus'
    /// `histogram_quantile` does; `null` without calls.
    pub p50_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
}

/// One period of a series.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Point {
    /// The period's start (RFC 3339, UTC).
    pub start: DateTime<Utc>,
    #[serde(flatten)]
    pub stats: Stats,
}

/// One route over the whole span.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct RouteUsage {
    /// `METHOD /pattern`.
    pub route: String,
    #[serde(flatten)]
    pub stats: Stats,
}

/// A module's usage over `[from, to)`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Report {
    pub module: String,
    /// The start of the first period.
    pub from: DateTime<Utc>,
    /// The end of the last period (exclusive).
    pub to: DateTime<Utc>,
    pub by: Period,
    pub total: Stats,
    /// Every period of the span, oldest first (periods without calls included, with zeros).
    pub series: Vec<Point>,
    /// Routes with calls, busiest first.
    pub routes: Vec<RouteUsage>,
}

/// Sums of stored hours, before they become [`Stats`].
#[derive(Default)]
struct Sum {
    calls: u64,
    client_errors: u64,
    errors: u64,
    anonymous_calls: u64,
    duration_seconds: f64,
    buckets: BucketCounts,
}

impl Sum {
    fn add(&mut self, row: &HourRow) {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        self.calls += n(row.calls);
        self.client_errors += n(row.client_errors);
        self.errors += n(row.errors);
        self.anonymous_calls += n(row.anonymous_calls);
        self.duration_seconds += row.duration_seconds;
        for (sum, count) in self.buckets.iter_mut().zip(row.buckets) {
            *sum += count;
        }
    }

    fn stats(&self, callers: i64) -> Stats {
        let timed: u64 = self.buckets.iter().sum();
        let quantile = |q| (timed > 0).then(|| quantile(q, &self.buckets));
        Stats {
            calls: self.calls,
            client_errors: self.client_errors,
            errors: self.errors,
            error_rate: if self.calls == 0 {
                0.0
            } else {
                self.errors as f64 / self.calls as f64
            },
            anonymous_calls: self.anonymous_calls,
            callers: u64::try_from(callers).unwrap_or(0),
            mean_seconds: (timed > 0).then(|| self.duration_seconds / timed as f64),
            p50_seconds: quantile(0.5),
            p95_seconds: quantile(0.95),
            p99_seconds: quantile(0.99),
        }
    }
}

/// The `q` quantile (0 to 1) of durations counted in `buckets`: the bucket holding the rank,
/// interpolated linearly inside it (from 0 for the first); in the last, open bucket, the last
/// bound — as Prometheus' `histogram_quantile`.
pub fn quantile(q: f64, buckets: &BucketCounts) -> f64 {
    let total: u64 = buckets.iter().sum();
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, count) in buckets.iter().enumerate() {
        let upto = below + count;
        if *count > 0 && upto as f64 >= rank {
            let Some(upper) = BUCKETS.get(i) else {
                return BUCKETS[BUCKETS.len() - 1];
            };
            let lower = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
            let inside = ((rank - below as f64) / *count as f64).clamp(0.0, 1.0);
            return lower + (upper - lower) * inside;
        }
        below = upto;
    }
    BUCKETS[BUCKETS.len() - 1]
}

/// Module `module`'s usage over the periods from the one holding `from` up to `to` (exclusive),
/// after this hub's counts of the last minute are added (other hubs' are as they last flushed).
pub async fn report(
    db: &Database,
    module: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    by: Period,
) -> Result<Report, StoreError> {
    if let Err(e) = flush(db).await {
        tracing::warn!("usage analytics: cannot add this hub's last counts before a report: {e}");
    }
    let from = by.start_of(from);
    let to = match by.start_of(to) {
        start if start == to => to,
        start => start + by.length(),
    };
    let (hours, callers) = store::read(db, module, from, to, by.as_str()).await?;
    let mut total = Sum::default();
    let mut periods: Vec<(DateTime<Utc>, Sum)> = Vec::new();
    let mut start = from;
    while start < to {
        periods.push((start, Sum::default()));
        start += by.length();
    }
    let mut routes: HashMap<&str, Sum> = HashMap::new();
    for row in &hours {
        total.add(row);
        let index = (by.start_of(row.hour) - from).num_seconds() / by.length().num_seconds();
        if let Some((_, sum)) = usize::try_from(index).ok().and_then(|i| periods.get_mut(i)) {
            sum.add(row);
        }
        routes.entry(&row.route).or_default().add(row);
    }
    let callers_of_period: HashMap<DateTime<Utc>, i64> = callers.by_period.into_iter().collect();
    let callers_of_route: HashMap<String, i64> = callers.by_route.into_iter().collect();
    let mut routes: Vec<RouteUsage> = routes
        .into_iter()
        .map(|(route, sum)| RouteUsage {
            stats: sum.stats(callers_of_route.get(route).copied().unwrap_or(0)),
            route: route.to_owned(),
        })
        .collect();
    routes.sort_by(|a, b| {
        b.stats
            .calls
            .cmp(&a.stats.calls)
            .then_with(|| a.route.cmp(&b.route))
    });
    Ok(Report {
        module: module.to_owned(),
        from,
        to,
        by,
        total: total.stats(callers.total),
        series: periods
            .into_iter()
            .map(|(start, sum)| Point {
                start,
                stats: sum.stats(callers_of_period.get(&start).copied().unwrap_or(0)),
            })
            .collect(),
        routes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(pairs: &[(usize, u64)]) -> BucketCounts {
        let mut out = BucketCounts::default();
        for (i, n) in pairs {
            out[*i] = *n;
        }
        out
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket_that_holds_the_rank() {
        // 100 calls between 50 ms and 100 ms: the median is half way.
        let b = buckets(&[(6, 100)]);
        assert!((quantile(0.5, &b) - 0.075).abs() < 1e-9);
        assert!((quantile(0.99, &b) - 0.0995).abs() < 1e-9);
        // 90 fast (≤ 1 ms), 10 between 250 ms and 500 ms: p50 is fast, p95 in the slow bucket.
        let b = buckets(&[(0, 90), (8, 10)]);
        assert!((quantile(0.5, &b) - 0.001 * 50.0 / 90.0).abs() < 1e-9);
        assert!((quantile(0.95, &b) - 0.375).abs() < 1e-9);
        // Slower than the last bound: the last bound.
        let b = buckets(&[(12, 3)]);
        assert_eq!(quantile(0.5, &b), 10.0);
    }

    #[test]
    fn rows_of_the_same_hour_and_route_merge_with_their_callers_once() {
        let hour = hour_of(Utc::now());
        let counts = |calls, callers: Vec<metrics::CallerKey>| RouteCounts {
            module: "hello".to_owned(),
            route: "GET /ping".to_owned(),
            calls,
            client_errors: 1,
            errors: 0,
            anonymous_calls: 0,
            duration_seconds: 0.5,
            buckets: buckets(&[(2, calls)]),
            callers,
        };
        let user = metrics::CallerKey::User(7);
        let rows = merged(vec![
            (hour, counts(3, vec![user])),
            (hour, counts(4, vec![user, metrics::CallerKey::Token(2)])),
            (hour - TimeDelta::hours(1), counts(1, vec![])),
        ]);
        assert_eq!(rows.len(), 2);
        let (_, this_hour) = rows.iter().find(|(h, _)| *h == hour).unwrap();
        assert_eq!(this_hour.calls, 7);
        assert_eq!(this_hour.client_errors, 2);
        assert_eq!(this_hour.buckets[2], 7);
        assert_eq!(this_hour.duration_seconds, 1.0);
        assert_eq!(this_hour.callers, vec![user, metrics::CallerKey::Token(2)]);
    }

    #[test]
    fn periods_start_on_the_hour_and_at_midnight_utc() {
        let at: DateTime<Utc> = "2026-12-02T09:41:07Z".parse().unwrap();
        assert_eq!(
            Period::Hour.start_of(at).to_rfc3339(),
            "2026-12-02T09:00:00+00:00"
        );
        assert_eq!(
            Period::Day.start_of(at).to_rfc3339(),
            "2026-12-02T00:00:00+00:00"
        );
    }
}
