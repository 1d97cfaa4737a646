//! The hub's side of the ABI: the host object a module instance calls back into (logging,
//! settings, the timer, the database gateway, the module's own metrics). Every method catches panics, so none crosses the
//! boundary.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use abi_stable::sabi_trait::prelude::TD_Opaque;
use abi_stable::std_types::{RNone, ROption, RResult, RSlice, RSome, RStr, RString, Tuple2};
use async_ffi::{FfiFuture, FutureExt as _};
use futures_util::FutureExt as _;
use plugin_api::ffi::{
    BlockingBox, FfiInbound, FfiOutbound, HostObj, LogLevel, MetricBox, MetricKind, MetricObj,
    MetricObj_TO, MetricOp,
};
use serde_json::{Map, Value};

use crate::db::Database;
use crate::db::gateway::{self, Caller};
use crate::metrics::{self, ModuleMetricKind, ModuleSeries};

/// The host object a module instance calls back into.
pub(super) struct HostServices {
    pub(super) caller: Caller,
    pub(super) config: Map<String, Value>,
    pub(super) database: Arc<Database>,
    pub(super) outbound: Arc<crate::outbound::Client>,
    /// Permits for the module's blocking tasks.
    pub(super) blocking: Arc<tokio::sync::Semaphore>,
    /// The module's jobs, by name (set once `init` returned).
    pub(super) job_names: Arc<std::sync::OnceLock<Vec<String>>>,
}

impl HostObj for HostServices {
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        let (module, source, message) = (&self.caller.module, target.as_str(), message.as_str());
        let _ = catch_unwind(AssertUnwindSafe(|| match level {
            LogLevel::Error => tracing::error!(module = %module, source = %source, "{message}"),
            LogLevel::Warn => tracing::warn!(module = %module, source = %source, "{message}"),
            LogLevel::Info => tracing::info!(module = %module, source = %source, "{message}"),
            LogLevel::Debug => tracing::debug!(module = %module, source = %source, "{message}"),
            LogLevel::Trace => tracing::trace!(module = %module, source = %source, "{message}"),
        }));
    }

    fn config(&self, key: RStr<'_>) -> ROption<RString> {
        let found = catch_unwind(AssertUnwindSafe(|| {
            let key = key.as_str();
            self.config
                .get(key)
                .or_else(|| {
                    self.config
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(key))
                        .map(|(_, v)| v)
                })
                .map(|v| v.to_string())
        }));
        match found {
            Ok(Some(text)) => RSome(text.into()),
            _ => RNone,
        }
    }

    fn sleep(&self, millis: u64) -> FfiFuture<()> {
        // The timer is created when first polled, on the hub's runtime.
        async move { tokio::time::sleep(Duration::from_millis(millis)).await }.into_ffi()
    }

    fn metric(
        &self,
        kind: MetricKind,
        name: RStr<'_>,
        help: RStr<'_>,
        labels: RSlice<'_, Tuple2<RStr<'_>, RStr<'_>>>,
    ) -> RResult<MetricBox, RString> {
        let made = catch_unwind(AssertUnwindSafe(|| {
            let kind = match kind {
                MetricKind::Counter => ModuleMetricKind::Counter,
                MetricKind::Gauge => ModuleMetricKind::Gauge,
                MetricKind::Histogram => ModuleMetricKind::Histogram,
            };
            let labels: Vec<(&str, &str)> = labels
                .iter()
                .map(|t| (t.0.as_str(), t.1.as_str()))
                .collect();
            let (module, name, help) = (&self.caller.module, name.as_str(), help.as_str());
            let series = match metrics::get() {
                Some(metrics) => metrics.module_metric(module, kind, name, help, &labels)?,
                // Metrics are off: checked all the same, counted nowhere.
                None => {
                    metrics::check_metric(name, help, &labels)?;
                    return Ok(None);
                }
            };
            Ok::<_, String>(Some(series))
        }));
        match made {
            Ok(Ok(series)) => RResult::ROk(MetricObj_TO::from_value(Series(series), TD_Opaque)),
            Ok(Err(e)) => RResult::RErr(format!("module '{}': {e}", self.caller.module).into()),
            Err(_) => RResult::RErr("the hub panicked making a metric".into()),
        }
    }

    fn http(&self, request: FfiOutbound) -> FfiFuture<RResult<FfiInbound, RString>> {
        let request = crate::outbound::Request {
            method: request.method.into_string(),
            url: request.url.into_string(),
            headers: request
                .headers
                .into_iter()
                .map(|Tuple2(k, v)| (k.into_string(), v.into_string()))
                .collect(),
            body: request.body.into_vec(),
            timeout_ms: request.timeout_ms,
            max_bytes: request.max_bytes,
            redirects: request.redirects,
        };
        // The client is the instance's: the future holds it, not `self`.
        let client = self.outbound.clone();
        async move {
            let answer = AssertUnwindSafe(client.send(request))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(crate::outbound::Refusal {
                        status: 502,
                        code: "outbound_failed",
                        message: "the hub's HTTP client panicked".to_owned(),
                    })
                });
            match answer {
                Ok(answer) => RResult::ROk(FfiInbound {
                    status: answer.status,
                    headers: answer
                        .headers
                        .into_iter()
                        .map(|(k, v)| Tuple2(k.into(), v.into()))
                        .collect(),
                    body: answer.body.into(),
                    dry_run: answer.dry_run,
                }),
                Err(refusal) => RResult::RErr(refusal.to_json().into()),
            }
        }
        .into_ffi()
    }

    fn spawn_blocking(&self, task: BlockingBox) -> FfiFuture<RResult<(), RString>> {
        let permits = self.blocking.clone();
        let module = self.caller.module.clone();
        async move {
            // Waits while the module's other tasks hold every permit.
            let Ok(_permit) = permits.acquire_owned().await else {
                return RResult::RErr("the module is stopping".into());
            };
            // The task catches its own panic (plugin-api's side); a join error is the pool's.
            match tokio::task::spawn_blocking(move || task.run()).await {
                Ok(()) => RResult::ROk(()),
                Err(e) => RResult::RErr(
                    format!("module '{module}': the blocking task did not finish: {e}").into(),
                ),
            }
        }
        .into_ffi()
    }

    fn enqueue(
        &self,
        name: RStr<'_>,
        payload: RString,
        delay_ms: u64,
    ) -> FfiFuture<RResult<i64, RString>> {
        let module = self.caller.module.clone();
        let name = name.as_str().to_owned();
        let known = self
            .job_names
            .get()
            .is_some_and(|names| names.contains(&name));
        let database = self.database.clone();
        async move {
            if !known {
                return RResult::RErr(
                    format!("module '{module}' has no job '{name}': declare it with r.job(\"{name}\", …)")
                        .into(),
                );
            }
            let payload: Value = serde_json::from_str(payload.as_str()).unwrap_or(Value::Null);
            match crate::db::jobs::enqueue(&database, &module, &name, &payload, delay_ms).await {
                Ok(id) => RResult::ROk(id),
                Err(e) => RResult::RErr(
                    format!("module '{module}' cannot enqueue job '{name}': {e}").into(),
                ),
            }
        }
        .into_ffi()
    }

    fn database(&self, request: RString) -> FfiFuture<RResult<RString, RString>> {
        let (database, caller) = (self.database.clone(), self.caller.clone());
        async move {
            let call = gateway::call(&database, &caller, request.as_str());
            let answer = AssertUnwindSafe(call)
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(r#"{"kind":"database","message":"the gateway panicked"}"#.to_owned())
                });
            match answer {
                Ok(result) => RResult::ROk(result.into()),
                Err(error) => RResult::RErr(error.into()),
            }
        }
        .into_ffi()
    }
}

/// A series of a module's metric as the module updates it; `None` while metrics are off.
struct Series(Option<ModuleSeries>);

impl MetricObj for Series {
    fn update(&self, op: MetricOp, value: f64) {
        let Some(series) = &self.0 else {
            return;
        };
        match op {
            MetricOp::Add => series.add(value),
            MetricOp::Set => series.set(value),
            MetricOp::Observe => series.observe(value),
        }
    }
}
