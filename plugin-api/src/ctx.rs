//! `Ctx`: what a module knows about its place in the hub (its name, its safety switches, its
//! settings) and the calls it makes back into the hub through the host object (settings, timer,
//! database). Every request and health check carries one.

use std::fmt;
use std::sync::Arc;

use abi_stable::std_types::RString;
use async_ffi::FfiFuture;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::ffi::HostBox;

/// What a module knows about its place in the hub: its name, its safety switches, its settings.
/// Cheap to clone; every request carries one.
#[derive(Clone)]
pub struct Ctx(Arc<CtxInner>);

struct CtxInner {
    module: String,
    host: Arc<HostBox>,
    read_only: bool,
    dry_run: bool,
}

impl Ctx {
    pub(crate) fn new(module: String, host: Arc<HostBox>, read_only: bool, dry_run: bool) -> Ctx {
        Ctx(Arc::new(CtxInner {
            module,
            host,
            read_only,
            dry_run,
        }))
    }

    pub(crate) fn host(&self) -> &HostBox {
        &self.0.host
    }

    /// The module's name (its folder under `MODULES_DIR`).
    pub fn module_name(&self) -> &str {
        &self.0.module
    }

    /// `READ_ONLY` is on: the module must not change anything.
    pub fn read_only(&self) -> bool {
        self.0.read_only
    }

    /// `DRY_RUN` is on: the module must not cause external side effects.
    pub fn dry_run(&self) -> bool {
        self.0.dry_run
    }

    /// The setting `key`, from `MODULES__{NAME}__{KEY}` or else the manifest's `config`,
    /// deserialized into `T`. `Ok(None)` when it is not set; an error names the key when the
    /// value does not fit `T`.
    pub fn config<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let Some(text) = self.host_config(key) else {
            return Ok(None);
        };
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::internal(format!("setting '{key}' is not valid JSON: {e}")))?;
        // serde's message may quote the value, which may be a secret: the type says enough.
        serde_json::from_value(value).map(Some).map_err(|_| {
            Error::internal(format!(
                "setting '{key}' of module '{}' is not a {} (its value is not shown: it may be a secret)",
                self.module_name(),
                std::any::type_name::<T>()
            ))
        })
    }

    /// Wait for `duration` on the hub's timer. Use this instead of `std::thread::sleep` (which
    /// blocks a hub thread) or a runtime of the module's own (which a module cannot run).
    pub async fn sleep(&self, duration: std::time::Duration) {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self.host_sleep(millis).await;
    }

    /// The hub's HTTP client, for calls to other systems: only to the hosts the module's
    /// `outbound` list names; while `DRY_RUN` is on, requests that may change something (all but
    /// GET, HEAD, OPTIONS) are not sent and answer 202 with `dry_run: true`.
    pub fn http(&self) -> crate::outbound::Http<'_> {
        crate::outbound::Http::new(self.host())
    }

    /// Run blocking or CPU-heavy `work` (a file read, OCR, a synchronous client library, a
    /// long computation) on a thread of the hub's blocking pool instead of a thread that
    /// answers requests; at most `HUB_MODULE_BLOCKING_THREADS` of the module's at once, the
    /// others wait. Its value, or an error saying it panicked.
    pub async fn spawn_blocking<F, T>(&self, work: F) -> Result<T, Error>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        crate::blocking::spawn(self.host(), work).await
    }

    /// Where the module enqueues runs of its jobs (declared with `r.job(…)`).
    pub fn jobs(&self) -> crate::queue::Jobs<'_> {
        crate::queue::Jobs::new(self.host())
    }

    /// The module's own metrics, exported by the hub with a `module` label: make counters,
    /// gauges and histograms once (in `init`) and keep them in the module's state.
    pub fn metrics(&self) -> crate::metrics::Metrics<'_> {
        crate::metrics::Metrics::new(self.host())
    }

    /// The setting `key`, or `default` when it is not set.
    pub fn config_or<T: DeserializeOwned>(&self, key: &str, default: T) -> Result<T, Error> {
        Ok(self.config(key)?.unwrap_or(default))
    }
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("module", &self.0.module)
            .field("read_only", &self.0.read_only)
            .field("dry_run", &self.0.dry_run)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// Ask the hub for a setting (see `HostObj::config`).
    pub(crate) fn host_config(&self, key: &str) -> Option<String> {
        self.host()
            .config(key.into())
            .into_option()
            .map(RString::into_string)
    }

    /// Wait on the hub's timer (see `HostObj::sleep`).
    pub(crate) fn host_sleep(&self, millis: u64) -> FfiFuture<()> {
        self.host().sleep(millis)
    }

    /// Send a gateway request (see `HostObj::database`).
    pub(crate) async fn host_database(&self, request: String) -> Result<String, String> {
        self.host()
            .database(request.into())
            .await
            .into_result()
            .map(RString::into_string)
            .map_err(RString::into_string)
    }
}
