//! The hub's metrics, for Prometheus: one registry (`prometheus-client`) for the process, its
//! families named by Prometheus' conventions (`hub_` prefix, base units, `_total` counters,
//! `_seconds` histograms), and what is read at scrape time (pool connections, modules by state)
//! from probes the hub installs. The rooms that count call in here: `http` (module requests,
//! panics, timeouts), `instance` (each route's handles, made once at start, so a request pays
//! no label lookup), `db` (statements, migrations), `lifecycle` (reloads).
//!
//! Counting is on only when `HUB_METRICS_BIND` is set ([`init`]); off, a route's handles are
//! `None` and a request pays one branch.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Request and statement durations, in seconds: 1 ms to 10 s.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

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
struct OutcomeLabels {
    module: String,
    outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

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
}

/// What the hub reads at scrape time: (in use, idle, waiting) connections of the pool, and the
/// number of modules in each state.
pub struct Probes {
    pub pool: Box<dyn Fn() -> Option<(i64, i64, i64)> + Send + Sync>,
    pub states: Box<dyn Fn() -> [(&'static str, i64); 3] + Send + Sync>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Turn counting on (once, at start, when `HUB_METRICS_BIND` is set), with the hub's `probes`.
pub fn init(probes: Probes) {
    METRICS.get_or_init(|| Metrics::new(probes));
}

/// The metrics, if counting is on.
#[inline]
pub fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

impl Metrics {
    fn new(probes: Probes) -> Metrics {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("hub");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "module_requests",
            "Requests for modules' API routes, by module, route pattern, method and status class",
            requests.clone(),
        );
        let durations: Histograms<RouteLabels> = Family::new_with_constructor(histogram);
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
        let statement_durations: Histograms<ModuleLabel> = Family::new_with_constructor(histogram);
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
        registry.register(
            "build",
            "The hub's version and the plugin-api version its modules are built against",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("plugin_api", plugin_api::API_VERSION.to_owned()),
            ]),
        );
        registry.register_collector(Box::new(Scraped(Arc::new(probes))));
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
        }
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

    /// A database call of `module` ended with `outcome` after `seconds`.
    pub fn statement(&self, module: &str, outcome: &'static str, seconds: f64) {
        let labels = OutcomeLabels {
            module: module.to_owned(),
            outcome,
        };
        self.statements.get_or_create(&labels).inc();
        self.statement_durations
            .get_or_create(&module_label(module))
            .observe(seconds);
    }

    /// A reload of `module` ended with `outcome` (`ok` or `failed`).
    pub fn reloaded(&self, module: &str, outcome: &'static str) {
        let labels = OutcomeLabels {
            module: module.to_owned(),
            outcome,
        };
        self.reloads.get_or_create(&labels).inc();
    }

    /// This hub applied one of `module`'s migrations.
    pub fn migration_applied(&self, module: &str) {
        self.migrations.get_or_create(&module_label(module)).inc();
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
        }
    }
}

fn module_label(module: &str) -> ModuleLabel {
    ModuleLabel {
        module: module.to_owned(),
    }
}

/// One route's series: a counter per status class, its duration histogram, and its module's
/// in-flight gauge. Cloned handles: counting is an atomic add, no label lookup.
#[derive(Clone)]
pub struct RouteMetrics {
    requests: [Counter; 5],
    duration: Histogram,
    in_flight: Gauge,
}

impl RouteMetrics {
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
        self.route
            .duration
            .observe(self.started.elapsed().as_secs_f64());
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
