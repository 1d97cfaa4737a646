//! A module's own metrics (`ctx.metrics()`): counters, gauges and histograms that the hub
//! exports on its Prometheus listener as `module_<module>__<name>` with a `module` label, so
//! that no module can write another's series or the hub's. Make them once (in `init`, kept in
//! the module's state) and update them on the hot path: an update is one call into the hub and
//! an atomic add there. While the hub counts no metrics, updates do nothing.

use std::sync::Arc;
use std::time::Duration;

use abi_stable::std_types::{RSlice, RStr, Tuple2};

use crate::error::Error;
use crate::ffi::{HostBox, MetricBox, MetricKind, MetricOp};

/// The metrics of a module: where its counters, gauges and histograms are made.
///
/// A name is lowercase letters, digits and single underscores (`^[a-z][a-z0-9_]{0,62}$`,
/// no `__`, not ending in `_`, `_total`, `_count`, `_sum`, `_bucket`, `_created` or `_info`);
/// labels follow the same rule (at most 4, `module` and `le` are the hub's, values up to 128
/// characters). The same name and labels give the same series, also after a reload.
pub struct Metrics<'a> {
    host: &'a HostBox,
}

impl<'a> Metrics<'a> {
    pub(crate) fn new(host: &'a HostBox) -> Metrics<'a> {
        Metrics { host }
    }

    fn make(
        &self,
        kind: MetricKind,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<Arc<MetricBox>, Error> {
        let labels: Vec<Tuple2<RStr<'_>, RStr<'_>>> = labels
            .iter()
            .map(|(k, v)| Tuple2(RStr::from(*k), RStr::from(*v)))
            .collect();
        self.host
            .metric(kind, name.into(), help.into(), RSlice::from_slice(&labels))
            .into_result()
            .map(Arc::new)
            .map_err(|e| Error::internal(e.into_string()))
    }

    /// A counter (exported as `module_<module>__<name>_total`).
    pub fn counter(&self, name: &str, help: &str) -> Result<Counter, Error> {
        self.counter_with(name, help, &[])
    }

    /// A counter with labels (one series per set of values).
    pub fn counter_with(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<Counter, Error> {
        self.make(MetricKind::Counter, name, help, labels)
            .map(Counter)
    }

    /// A gauge: a value that goes up and down.
    pub fn gauge(&self, name: &str, help: &str) -> Result<Gauge, Error> {
        self.gauge_with(name, help, &[])
    }

    /// A gauge with labels.
    pub fn gauge_with(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<Gauge, Error> {
        self.make(MetricKind::Gauge, name, help, labels).map(Gauge)
    }

    /// A histogram of durations in seconds, in the hub's buckets (1 ms to 10 s); name it
    /// `…_seconds`.
    pub fn histogram(&self, name: &str, help: &str) -> Result<Histogram, Error> {
        self.histogram_with(name, help, &[])
    }

    /// A histogram with labels.
    pub fn histogram_with(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<Histogram, Error> {
        self.make(MetricKind::Histogram, name, help, labels)
            .map(Histogram)
    }
}

/// A counter of the module's. Cheap to clone.
#[derive(Clone)]
pub struct Counter(Arc<MetricBox>);

impl Counter {
    pub fn inc(&self) {
        self.inc_by(1);
    }

    pub fn inc_by(&self, n: u64) {
        self.0.update(MetricOp::Add, n as f64);
    }
}

/// A gauge of the module's. Cheap to clone.
#[derive(Clone)]
pub struct Gauge(Arc<MetricBox>);

impl Gauge {
    pub fn set(&self, value: f64) {
        self.0.update(MetricOp::Set, value);
    }

    /// Add `delta` (negative to subtract).
    pub fn add(&self, delta: f64) {
        self.0.update(MetricOp::Add, delta);
    }
}

/// A histogram of the module's, in seconds. Cheap to clone.
#[derive(Clone)]
pub struct Histogram(Arc<MetricBox>);

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        self.0.update(MetricOp::Observe, seconds);
    }

    pub fn observe_duration(&self, took: Duration) {
        self.observe(took.as_secs_f64());
    }
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counter")
    }
}

impl std::fmt::Debug for Gauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gauge")
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Histogram")
    }
}
