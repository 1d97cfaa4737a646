//! The hub's metrics, for Prometheus: one registry (`prometheus-client`) for the process, its
//! families named by Prometheus' conventions (`hub_` prefix, base units, `_total` counters,
//! `_seconds` histograms), and what is read at scrape time (pool connections, modules by state)
//! from probes the hub installs. The rooms that count call in here: `http` (module requests,
//! panics, timeouts), `instance` (each route's handles, made once at start, so a request pays
//! no label lookup), `db` (statements, migrations), `lifecycle` (reloads).
//!
//! Counting is on when `HUB_METRICS_BIND` is set or usage analytics are on ([`init`]); off, a
//! route's handles are `None` and a request pays one branch. Usage analytics read the same
//! counters: [`Tally`] keeps each module route's last flushed values and hands the flusher what
//! was counted since, with the callers each route saw.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// Request and statement durations, in seconds: 1 ms to 10 s. Usage rows keep a count per bucket
/// (and one for slower), so the bounds are part of what the database holds: change them only
/// with a migration of `hub_usage`.
pub const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// [`BUCKETS`] in nanoseconds, as a request's duration is compared with them.
const BUCKET_NANOS: [u64; 12] = [
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    10_000_000_000,
];

/// Counts per bucket: one per bound of [`BUCKETS`], then the slower ones.
pub type BucketCounts = [u64; BUCKETS.len() + 1];

/// The route label of a request that matched no route of its module; the module label of a
/// request that reached no registered module.
pub const UNMATCHED: &str = "unmatched";
pub const HUB: &str = "hub";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    module: String,
    route: String,
    method: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    module: String,
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModuleLabel {
    module: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboundLabels {
    module: String,
    host: String,
    method: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboundHost {
    module: String,
    host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    module: String,
    outcome: &'static str,
}

type Histograms<L> = Family<L, Durations>;

/// Every family of the hub's.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Histograms<RouteLabels>,
    in_flight: Family<ModuleLabel, Gauge>,
    panics: Family<ModuleLabel, Counter>,
    timeouts: Family<ModuleLabel, Counter>,
    statements: Family<OutcomeLabels, Counter>,
    statement_durations: Histograms<ModuleLabel>,
    reloads: Family<OutcomeLabels, Counter>,
    migrations: Family<ModuleLabel, Counter>,
    outbound: Family<OutboundLabels, Counter>,
    outbound_durations: Histograms<OutboundHost>,
    /// Module routes' counts for usage analytics, while they are on.
    tally: Option<Tally>,
    /// Modules' own metrics (`ctx.metrics()`).
    modules: Arc<ModuleFamilies>,
}

/// What the hub reads at scrape time: (in use, idle, waiting) connections of the pool, and the
/// number of modules in each state.
pub struct Probes {
    pub pool: Box<dyn Fn() -> Option<(i64, i64, i64)> + Send + Sync>,
    pub states: Box<dyn Fn() -> [(&'static str, i64); 3] + Send + Sync>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Turn counting on (once, at start, when `HUB_METRICS_BIND` is set or usage analytics are on),
/// with the hub's `probes`; `usage`: keep what the usage flusher takes.
pub fn init(probes: Probes, usage: bool) {
    METRICS.get_or_init(|| Metrics::new(probes, usage));
}

/// The metrics, if counting is on.
#[inline]
pub fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

impl Metrics {
    fn new(probes: Probes, usage: bool) -> Metrics {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("hub");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "module_requests",
            "Requests for modules' API routes, by module, route pattern, method and status class",
            requests.clone(),
        );
        let durations = Histograms::<RouteLabels>::default();
        registry.register(
            "module_request_duration_seconds",
            "How long modules' API routes took to answer, by module, route pattern and method",
            durations.clone(),
        );
        let in_flight = Family::<ModuleLabel, Gauge>::default();
        registry.register(
            "module_requests_in_flight",
            "Requests for a module's API routes being answered now",
            in_flight.clone(),
        );
        let panics = Family::<ModuleLabel, Counter>::default();
        registry.register(
            "module_panics",
            "Handlers that panicked (answered 500 handler_panicked)",
            panics.clone(),
        );
        let timeouts = Family::<ModuleLabel, Counter>::default();
        registry.register(
            "module_timeouts",
            "Handlers cut off at HUB_REQUEST_TIMEOUT_MS (answered 504 handler_timeout)",
            timeouts.clone(),
        );
        let statements = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "db_statements",
            "Database calls of modules (ctx.db()), by module and outcome (ok, refused, error)",
            statements.clone(),
        );
        let statement_durations = Histograms::<ModuleLabel>::default();
        registry.register(
            "db_statement_duration_seconds",
            "How long modules' database calls took, by module",
            statement_durations.clone(),
        );
        let reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "module_reloads",
            "Reloads of a module, by outcome (ok: the new version serves; failed)",
            reloads.clone(),
        );
        let migrations = Family::<ModuleLabel, Counter>::default();
        registry.register(
            "migrations_applied",
            "Migrations this hub applied, by module",
            migrations.clone(),
        );
        let outbound = Family::<OutboundLabels, Counter>::default();
        registry.register(
            "module_outbound_requests",
            "Modules' calls to other systems (ctx.http()), by module, allow-list entry, method and outcome (a status class, dry_run, or the refusal's code)",
            outbound.clone(),
        );
        let outbound_durations = Histograms::<OutboundHost>::default();
        registry.register(
            "module_outbound_duration_seconds",
            "How long modules' calls to other systems took, by module and allow-list entry",
            outbound_durations.clone(),
        );
        registry.register(
            "build",
            "The hub's version and the plugin-api version its modules are built against",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("plugin_api", plugin_api::API_VERSION.to_owned()),
            ]),
        );
        registry.register_collector(Box::new(Scraped(Arc::new(probes))));
        let modules = Arc::new(ModuleFamilies::default());
        root.register_collector(Box::new(ModulesCollector(modules.clone())));
        Metrics {
            registry: root,
            requests,
            durations,
            in_flight,
            panics,
            timeouts,
            statements,
            statement_durations,
            reloads,
            migrations,
            outbound,
            outbound_durations,
            tally: usage.then(Tally::default),
            modules,
        }
    }

    /// A series of `module`'s own metric `name` with `labels` (validated; the same name and
    /// labels give the same series). `Err` says which rule the name, help or labels break.
    pub fn module_metric(
        &self,
        module: &str,
        kind: ModuleMetricKind,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<ModuleSeries, String> {
        self.modules.series(module, kind, name, help, labels)
    }

    /// Module routes' counts for usage analytics, while they are on.
    pub fn tally(&self) -> Option<&Tally> {
        self.tally.as_ref()
    }

    /// The families in the text format Prometheus scrapes (OpenMetrics).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// A handler panicked in `module`.
    pub fn panicked(&self, module: &str) {
        self.panics.get_or_create(&module_label(module)).inc();
    }

    /// A handler of `module` was cut off at the request timeout.
    pub fn timed_out(&self, module: &str) {
        self.timeouts.get_or_create(&module_label(module)).inc();
    }

    /// A database call of `module` ended with `outcome` after `took`.
    pub fn statement(&self, module: &str, outcome: &'static str, took: Duration) {
        let labels = OutcomeLabels {
            module: module.to_owned(),
            outcome,
        };
        self.statements.get_or_create(&labels).inc();
        self.statement_durations
            .get_or_create(&module_label(module))
            .observe(took);
    }

    /// A reload of `module` ended with `outcome` (`ok` or `failed`).
    pub fn reloaded(&self, module: &str, outcome: &'static str) {
        let labels = OutcomeLabels {
            module: module.to_owned(),
            outcome,
        };
        self.reloads.get_or_create(&labels).inc();
    }

    /// A call of `module` to another system through allow-list entry `host` ended with
    /// `outcome` after `took`.
    pub fn outbound(
        &self,
        module: &str,
        host: &str,
        method: &str,
        outcome: &'static str,
        took: Duration,
    ) {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        };
        self.outbound
            .get_or_create(&OutboundLabels {
                module: module.to_owned(),
                host: host.to_owned(),
                method: method.to_owned(),
                outcome,
            })
            .inc();
        self.outbound_durations
            .get_or_create(&OutboundHost {
                module: module.to_owned(),
                host: host.to_owned(),
            })
            .observe(took);
    }

    /// This hub applied one of `module`'s migrations.
    pub fn migration_applied(&self, module: &str) {
        self.migrations.get_or_create(&module_label(module)).inc();
    }

    /// The handles of one API route of `module` (`route` its pattern), counted in usage
    /// analytics too while they are on.
    pub fn module_route(&self, module: &str, route: &str, method: &str) -> RouteMetrics {
        let mut handles = self.route(module, route, method);
        if let Some(tally) = &self.tally {
            handles.usage = Some(tally.track(module, &format!("{method} {route}"), &handles));
        }
        handles
    }

    /// The handles of one route of `module` (`route` its pattern, or [`UNMATCHED`]).
    pub fn route(&self, module: &str, route: &str, method: &str) -> RouteMetrics {
        let requests = ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|status| {
            self.requests
                .get_or_create(&RequestLabels {
                    module: module.to_owned(),
                    route: route.to_owned(),
                    method: method.to_owned(),
                    status,
                })
                .clone()
        });
        let duration = self
            .durations
            .get_or_create(&RouteLabels {
                module: module.to_owned(),
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .clone();
        let in_flight = self.in_flight.get_or_create(&module_label(module)).clone();
        RouteMetrics {
            requests,
            duration,
            in_flight,
            usage: None,
        }
    }
}

fn module_label(module: &str) -> ModuleLabel {
    ModuleLabel {
        module: module.to_owned(),
    }
}

/// One route's series: a counter per status class, its duration histogram, and its module's
/// in-flight gauge; while usage analytics are on, who called it. Cloned handles: counting is an
/// atomic add, no label lookup.
#[derive(Clone)]
pub struct RouteMetrics {
    requests: [Counter; 5],
    duration: Durations,
    in_flight: Gauge,
    usage: Option<Arc<Callers>>,
}

impl RouteMetrics {
    /// Who this route's calls are for, while usage analytics are on.
    #[inline]
    pub fn callers(&self) -> Option<&Callers> {
        self.usage.as_deref()
    }

    /// A request begins: counted in flight until the returned guard is dropped.
    #[inline]
    pub fn begin(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight {
            route: self,
            started: Instant::now(),
        }
    }
}

/// A request being answered.
pub struct InFlight<'a> {
    route: &'a RouteMetrics,
    started: Instant,
}

impl InFlight<'_> {
    /// It was answered with `status`.
    #[inline]
    pub fn done(self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.route.requests[class].inc();
        self.route.duration.observe(self.started.elapsed());
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.route.in_flight.dec();
    }
}

/// What is read at each scrape.
struct Scraped(Arc<Probes>);

impl std::fmt::Debug for Scraped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scraped")
    }
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut gauge = |name: &str, help: &str, values: &[(&str, &str, i64)]| {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (key, value, n) in values {
                let labels = [(*key, *value)];
                let metric = family.encode_family(&labels)?;
                ConstGauge::new(*n).encode(metric)?;
            }
            Ok::<(), std::fmt::Error>(())
        };
        let states = (self.0.states)();
        let by_state: Vec<(&str, &str, i64)> =
            states.iter().map(|(s, n)| ("state", *s, *n)).collect();
        gauge("modules", "Modules by state", &by_state)?;
        if let Some((in_use, idle, waiting)) = (self.0.pool)() {
            gauge(
                "db_pool_connections",
                "The database pool's connections, in use by a call or idle",
                &[("state", "in_use", in_use), ("state", "idle", idle)],
            )?;
            let mut family = encoder.encode_descriptor(
                "db_pool_waiting",
                "Calls waiting for a connection of the pool",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            ConstGauge::new(waiting).encode(family.encode_family(&[("pool", "hub")])?)?;
        }
        Ok(())
    }
}

/// A duration histogram with the bounds of [`BUCKETS`]: a count per bucket and the sum, each an
/// atomic add (no lock), readable by the usage flusher.
#[derive(Clone, Debug, Default)]
pub struct Durations(Arc<DurationCounts>);

#[derive(Debug, Default)]
struct DurationCounts {
    nanos: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len() + 1],
}

impl Durations {
    /// Count one duration.
    #[inline]
    pub fn observe(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKET_NANOS
            .iter()
            .position(|bound| nanos <= *bound)
            .unwrap_or(BUCKETS.len());
        self.0.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.0.nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The sum of the durations in nanoseconds, and the counts per bucket.
    pub fn read(&self) -> (u64, BucketCounts) {
        let buckets = std::array::from_fn(|i| self.0.buckets[i].load(Ordering::Relaxed));
        (self.0.nanos.load(Ordering::Relaxed), buckets)
    }
}

impl TypedMetric for Durations {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Durations {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (nanos, counts) = self.read();
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(counts)
            .collect();
        encoder.encode_histogram::<NoLabelSet>(
            nanos as f64 / 1e9,
            counts.iter().sum(),
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// Who a call was for, as usage analytics count distinct callers: the user (whether signed in
/// or calling with one of its tokens), a token that belongs to no user, or the bootstrap
/// administrator of a hub without a database.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum CallerKey {
    User(i64),
    Token(i64),
    Admin,
}

impl std::fmt::Display for CallerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallerKey::User(id) => write!(f, "user:{id}"),
            CallerKey::Token(id) => write!(f, "token:{id}"),
            CallerKey::Admin => f.write_str("admin"),
        }
    }
}

/// Who called one route since the last flush: its distinct callers, and how many calls were
/// for nobody signed in.
#[derive(Debug, Default)]
pub struct Callers {
    anonymous: AtomicU64,
    seen: Mutex<HashSet<CallerKey>>,
}

impl Callers {
    /// A call the module answered for `caller` (`None`: anonymous).
    #[inline]
    pub fn count(&self, caller: Option<CallerKey>) {
        match caller {
            None => {
                self.anonymous.fetch_add(1, Ordering::Relaxed);
            }
            Some(key) => {
                let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.insert(key);
            }
        }
    }

    /// Take what was counted (the counts start again from zero).
    fn take(&self) -> (u64, HashSet<CallerKey>) {
        let anonymous = self.anonymous.swap(0, Ordering::Relaxed);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        (anonymous, std::mem::take(&mut *seen))
    }
}

/// What one module route counted over one flush period.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteCounts {
    pub module: String,
    /// `METHOD /pattern`.
    pub route: String,
    pub calls: u64,
    /// 4xx answers.
    pub client_errors: u64,
    /// 5xx answers.
    pub errors: u64,
    /// Calls answered for nobody signed in.
    pub anonymous_calls: u64,
    pub duration_seconds: f64,
    pub buckets: BucketCounts,
    pub callers: Vec<CallerKey>,
}

/// The module routes counted for usage analytics, each with the values of its last flush; a
/// route keeps its entry across reloads (the same labels, the same counters).
#[derive(Default)]
pub struct Tally {
    routes: Mutex<HashMap<(String, String), Tracked>>,
}

struct Tracked {
    requests: [Counter; 5],
    duration: Durations,
    callers: Arc<Callers>,
    /// Calls per status class, the sum of durations and the buckets at the last flush.
    flushed: ([u64; 5], u64, BucketCounts),
}

impl Tally {
    /// Count `route` (`METHOD /pattern`) of `module` from now on: its callers' set.
    fn track(&self, module: &str, route: &str, handles: &RouteMetrics) -> Arc<Callers> {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let tracked = routes
            .entry((module.to_owned(), route.to_owned()))
            .or_insert_with(|| Tracked {
                requests: handles.requests.clone(),
                duration: handles.duration.clone(),
                callers: Arc::default(),
                flushed: (
                    handles.requests.each_ref().map(Counter::get),
                    handles.duration.read().0,
                    handles.duration.read().1,
                ),
            });
        tracked.callers.clone()
    }

    /// What each route counted since the last call (routes that counted nothing are left out).
    pub fn take(&self) -> Vec<RouteCounts> {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for ((module, route), tracked) in routes.iter_mut() {
            let requests = tracked.requests.each_ref().map(Counter::get);
            let (nanos, buckets) = tracked.duration.read();
            let (anonymous_calls, callers) = tracked.callers.take();
            let (was_requests, was_nanos, was_buckets) = tracked.flushed;
            tracked.flushed = (requests, nanos, buckets);
            let by_class: [u64; 5] = std::array::from_fn(|i| requests[i] - was_requests[i]);
            let calls = by_class.iter().sum();
            if calls == 0 && anonymous_calls == 0 && callers.is_empty() {
                continue;
            }
            out.push(RouteCounts {
                module: module.clone(),
                route: route.clone(),
                calls,
                client_errors: by_class[3],
                errors: by_class[4],
                anonymous_calls,
                duration_seconds: nanos.wrapping_sub(was_nanos) as f64 / 1e9,
                buckets: std::array::from_fn(|i| buckets[i] - was_buckets[i]),
                callers: callers.into_iter().collect(),
            });
        }
        out
    }
}

/// The kinds of modules' own metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleMetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl ModuleMetricKind {
    fn name(self) -> &'static str {
        match self {
            ModuleMetricKind::Counter => "counter",
            ModuleMetricKind::Gauge => "gauge",
            ModuleMetricKind::Histogram => "histogram",
        }
    }
}

/// One series of a module's metric.
#[derive(Clone, Debug)]
pub enum ModuleSeries {
    Counter(Counter),
    Gauge(Gauge<f64, AtomicU64>),
    Histogram(Durations),
}

/// A family can have at most this many series, a module this many families: a module's
/// metrics cannot grow without bound.
const MAX_SERIES: usize = 200;
const MAX_FAMILIES: usize = 50;

/// Modules' own families, by exported name (`module_<module>__<name>`).
#[derive(Debug, Default)]
struct ModuleFamilies {
    families: Mutex<std::collections::BTreeMap<String, ModuleFamily>>,
}

#[derive(Debug)]
struct ModuleFamily {
    module: String,
    kind: ModuleMetricKind,
    help: String,
    /// By label values (the `module` label first).
    series: std::collections::BTreeMap<Vec<(String, String)>, ModuleSeries>,
}

/// Whether `name` follows the rule of module metric and label names.
fn valid_metric_name(name: &str, max: usize) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.contains("__")
        && !name.ends_with('_')
}

/// Suffixes the exposition format gives families: not part of a module metric's name.
const RESERVED_SUFFIXES: [&str; 6] = ["_total", "_count", "_sum", "_bucket", "_created", "_info"];

impl ModuleFamilies {
    fn series(
        &self,
        module: &str,
        kind: ModuleMetricKind,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
    ) -> Result<ModuleSeries, String> {
        check_metric(name, help, labels)?;
        let exported = format!("module_{module}__{name}");
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let owned = families.values().filter(|f| f.module == module).count();
        if !families.contains_key(&exported) && owned >= MAX_FAMILIES {
            return Err(format!(
                "module '{module}' has {MAX_FAMILIES} metrics already, the most a module may have"
            ));
        }
        let family = families.entry(exported).or_insert_with(|| ModuleFamily {
            module: module.to_owned(),
            kind,
            help: help.to_owned(),
            series: Default::default(),
        });
        if family.kind != kind {
            return Err(format!(
                "metric '{name}' of module '{module}' is a {} already: give the {} another name",
                family.kind.name(),
                kind.name()
            ));
        }
        // A new version may word its help anew.
        help.clone_into(&mut family.help);
        let key: Vec<(String, String)> = std::iter::once(("module".to_owned(), module.to_owned()))
            .chain(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            )
            .collect();
        if let Some(series) = family.series.get(&key) {
            return Ok(series.clone());
        }
        if family.series.len() >= MAX_SERIES {
            return Err(format!(
                "metric '{name}' of module '{module}' has {MAX_SERIES} series already (one per set of label values): use fewer label values"
            ));
        }
        let series = match kind {
            ModuleMetricKind::Counter => ModuleSeries::Counter(Counter::default()),
            ModuleMetricKind::Gauge => ModuleSeries::Gauge(Gauge::default()),
            ModuleMetricKind::Histogram => ModuleSeries::Histogram(Durations::default()),
        };
        family.series.insert(key, series.clone());
        Ok(series)
    }
}

/// Check a module metric's name, help and labels; `Err` names the rule broken.
pub fn check_metric(name: &str, help: &str, labels: &[(&str, &str)]) -> Result<(), String> {
    if !valid_metric_name(name, 63) {
        return Err(format!(
            "metric name '{name}' is invalid: use lowercase letters, digits and single underscores, starting with a letter (^[a-z][a-z0-9_]{{0,62}}$, no \"__\", no trailing \"_\")"
        ));
    }
    if let Some(suffix) = RESERVED_SUFFIXES.iter().find(|s| name.ends_with(*s)) {
        return Err(format!(
            "metric name '{name}' ends in '{suffix}', which the exposition format adds itself: leave it out"
        ));
    }
    if help.len() > 200 || help.chars().any(char::is_control) {
        return Err(format!(
            "the help of metric '{name}' must be one line of at most 200 bytes"
        ));
    }
    if labels.len() > 4 {
        return Err(format!(
            "metric '{name}' has {} labels: at most 4 (the hub adds `module`)",
            labels.len()
        ));
    }
    for (i, (label, value)) in labels.iter().enumerate() {
        if !valid_metric_name(label, 32) || matches!(*label, "module" | "le" | "quantile") {
            return Err(format!(
                "label '{label}' of metric '{name}' is invalid: lowercase letters, digits and single underscores, up to 32, not module, le or quantile"
            ));
        }
        if labels[..i].iter().any(|(other, _)| other == label) {
            return Err(format!("label '{label}' of metric '{name}' is given twice"));
        }
        if value.len() > 128 || value.chars().any(char::is_control) {
            return Err(format!(
                "the value of label '{label}' of metric '{name}' must be at most 128 bytes, without control characters"
            ));
        }
    }
    Ok(())
}

impl ModuleSeries {
    /// Add `value` (counters: a whole number, not negative; gauges: may be negative).
    pub fn add(&self, value: f64) {
        match self {
            ModuleSeries::Counter(c) if value.is_finite() && value >= 0.0 => {
                c.inc_by(value as u64);
            }
            ModuleSeries::Gauge(g) if value.is_finite() => {
                g.inc_by(value);
            }
            _ => {}
        }
    }

    /// Take `value` (gauges only).
    pub fn set(&self, value: f64) {
        if let ModuleSeries::Gauge(g) = self {
            g.set(value);
        }
    }

    /// Observe `seconds` (histograms only; negative or not a number: not counted).
    pub fn observe(&self, seconds: f64) {
        if let ModuleSeries::Histogram(h) = self
            && let Ok(took) = Duration::try_from_secs_f64(seconds)
        {
            h.observe(took);
        }
    }
}

/// Encodes the modules' families at each scrape.
#[derive(Debug)]
struct ModulesCollector(Arc<ModuleFamilies>);

impl Collector for ModulesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let families = self.0.families.lock().unwrap_or_else(|e| e.into_inner());
        for (name, family) in families.iter() {
            let kind = match family.kind {
                ModuleMetricKind::Counter => MetricType::Counter,
                ModuleMetricKind::Gauge => MetricType::Gauge,
                ModuleMetricKind::Histogram => MetricType::Histogram,
            };
            let mut out = encoder.encode_descriptor(name, &family.help, None, kind)?;
            for (labels, series) in &family.series {
                let metric = out.encode_family(labels)?;
                match series {
                    ModuleSeries::Counter(c) => c.encode(metric)?,
                    ModuleSeries::Gauge(g) => g.encode(metric)?,
                    ModuleSeries::Histogram(h) => h.encode(metric)?,
                }
            }
        }
        Ok(())
    }
}
