//! The module lifecycle: discovery, start (open → init → health), enable, disable, reload and
//! shutdown. Every change to one module runs under that module's lock, so changes to one module
//! are serialized while different modules proceed independently; the result is swapped into the
//! registry whole.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use plugin_api::LogLevel;
use serde_json::{Map, Value};
use thiserror::Error;
use tracing::level_filters::LevelFilter;

use crate::config::{Config, ModuleEnv, parse_bool};
use crate::instance::{Instance, Reaper};
use crate::loader::{InstanceArgs, Loader};
use crate::manifest::{self, Manifest, ManifestError};
use crate::names;
use crate::registry::{ModuleEntry, Registry, Safety, SafetySources, Source, State};

/// Why a management action could not be carried out.
#[derive(Debug, Error)]
pub enum ActionError {
    #[error("no module '{0}' is installed (no {0}/module.json in MODULES_DIR)")]
    NotInstalled(String),
    #[error("the module system is off (MODULES_ENABLED=false)")]
    ModulesOff,
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// The hub: configuration, loader, registry and the lifecycle operations on them.
pub struct Hub {
    config: Config,
    loader: Arc<Loader>,
    registry: Registry,
    reaper: Reaper,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    max_log_level: LogLevel,
}

impl Hub {
    /// Make a hub with no module loaded yet. Call from within the runtime that will run
    /// shutdown hooks.
    pub fn new(config: Config) -> std::io::Result<Arc<Hub>> {
        let loader = Arc::new(Loader::new(config.runtime_dir.as_deref())?);
        let reaper = Reaper::new(config.shutdown_grace);
        Ok(Arc::new(Hub {
            config,
            loader,
            registry: Registry::default(),
            reaper,
            locks: Mutex::default(),
            max_log_level: max_log_level(),
        }))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Start every module found in `MODULES_DIR`, in name order.
    pub async fn discover(&self) {
        if !self.config.modules_enabled {
            tracing::info!("module system is off (MODULES_ENABLED=false): no module is loaded");
            return;
        }
        let dir = &self.config.modules_dir;
        let mut names = match module_folders(dir) {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!(
                    "cannot read MODULES_DIR {}: {e}; no module is loaded",
                    dir.display()
                );
                return;
            }
        };
        names.sort();
        for name in names {
            let lock = self.lock_for(&name);
            let _guard = lock.lock().await;
            // An error here is NotInstalled, for a folder removed while we looked.
            let _ = self.apply(&name, Action::Start).await;
        }
    }

    /// Read module `name` from disk again and apply it: start the new version (keeping the old
    /// one serving if that fails), disable it, or forget it if its folder is gone.
    pub async fn reload(&self, name: &str) -> Result<Arc<ModuleEntry>, ActionError> {
        let lock = self.lock_for(name);
        let _guard = lock.lock().await;
        self.apply(name, Action::Reload).await
    }

    /// Persist `enabled` in the module's `module.json`, then apply it. Idempotent: enabling a
    /// running module changes nothing.
    pub async fn set_enabled(
        &self,
        name: &str,
        enabled: bool,
    ) -> Result<Arc<ModuleEntry>, ActionError> {
        if !self.config.modules_enabled {
            return Err(ActionError::ModulesOff);
        }
        let lock = self.lock_for(name);
        let _guard = lock.lock().await;
        let folder = self.folder(name);
        if !is_module_folder(&folder) {
            self.forget(name);
            return Err(ActionError::NotInstalled(name.to_owned()));
        }
        // Refuse to rewrite a manifest the hub cannot read; the operator must fix it first.
        Manifest::load(&folder)?;
        manifest::write_enabled(&folder.join(manifest::FILE_NAME), enabled)?;
        let action = if enabled {
            Action::Enable
        } else {
            Action::Disable
        };
        self.apply(name, action).await
    }

    /// The current entry of module `name`.
    pub fn get(&self, name: &str) -> Result<Arc<ModuleEntry>, ActionError> {
        if !self.config.modules_enabled {
            return Err(ActionError::ModulesOff);
        }
        self.registry
            .get(name)
            .ok_or_else(|| ActionError::NotInstalled(name.to_owned()))
    }

    /// Stop serving every module and run their shutdown hooks, each bounded by the grace
    /// period.
    pub async fn shutdown(&self) {
        let all = self.registry.clear();
        for entry in all.values() {
            if let Some(instance) = &entry.instance {
                instance.begin_shutdown();
            }
        }
        drop(all);
        self.reaper.drain().await;
    }

    fn folder(&self, name: &str) -> PathBuf {
        self.config.modules_dir.join(name)
    }

    fn lock_for(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(name.to_owned()).or_default().clone()
    }

    fn forget(&self, name: &str) {
        if self.registry.remove(name).is_some() {
            tracing::info!(module = %name, "module folder removed: module unloaded");
        }
    }

    /// Bring module `name` in line with its folder, and log one line saying what happened.
    async fn apply(&self, name: &str, action: Action) -> Result<Arc<ModuleEntry>, ActionError> {
        if !self.config.modules_enabled {
            return Err(ActionError::ModulesOff);
        }
        let folder = self.folder(name);
        if !is_module_folder(&folder) {
            self.forget(name);
            return Err(ActionError::NotInstalled(name.to_owned()));
        }
        let started = Instant::now();
        let current = self
            .registry
            .get(name)
            .filter(|e| e.state == State::Running);
        let (entry, outcome) = self.decide(name, &folder, current.clone(), action).await;
        let entry = match outcome {
            Outcome::Unchanged => current.clone().unwrap_or_else(|| Arc::new(entry)),
            _ => self.registry.insert(entry),
        };
        log_action(
            action,
            &entry,
            current.as_deref(),
            outcome,
            started.elapsed(),
        );
        Ok(entry)
    }

    /// The entry module `name` should have now, and how the action ended.
    async fn decide(
        &self,
        name: &str,
        folder: &Path,
        current: Option<Arc<ModuleEntry>>,
        action: Action,
    ) -> (ModuleEntry, Outcome) {
        let entry = |state, manifest, error, instance, safety| ModuleEntry {
            name: name.to_owned(),
            manifest,
            state,
            error,
            instance,
            safety,
            mapped_libraries: self.loader.mapped_count(name),
        };
        // A failure while an instance runs keeps that instance serving, with the reason shown.
        let keep = |running: &ModuleEntry, error: String| ModuleEntry {
            error: Some(error),
            mapped_libraries: self.loader.mapped_count(name),
            ..running.clone()
        };
        let manifest = match Manifest::load(folder).and_then(|m| check_folder_name(name, m)) {
            Ok(manifest) => manifest,
            Err(error) => {
                let error = error.to_string();
                return match current {
                    Some(running) => (keep(&running, error), Outcome::Kept),
                    None => (
                        entry(State::Failed, None, Some(error), None, None),
                        Outcome::Failed,
                    ),
                };
            }
        };
        let safety = resolve_safety(&manifest, &self.config.module_env);
        if !manifest.enabled {
            let entry = entry(State::Disabled, Some(manifest), None, None, safety.ok());
            return (entry, Outcome::Disabled);
        }
        if let (false, Some(running)) = (action.restarts(), &current) {
            return (ModuleEntry::clone(running), Outcome::Unchanged);
        }
        let started = match &safety {
            Ok(safety) => self.start(name, folder, &manifest, *safety).await,
            Err(error) => Err(error.clone()),
        };
        match (started, current) {
            (Ok(instance), _) => {
                let entry = entry(
                    State::Running,
                    Some(manifest),
                    None,
                    Some(instance),
                    safety.ok(),
                );
                (entry, Outcome::Running)
            }
            (Err(error), Some(running)) => (keep(&running, error), Outcome::Kept),
            (Err(error), None) => {
                let entry = entry(
                    State::Failed,
                    Some(manifest),
                    Some(error),
                    None,
                    safety.ok(),
                );
                (entry, Outcome::Failed)
            }
        }
    }

    /// Open, init and health-check a new instance of the module.
    async fn start(
        &self,
        name: &str,
        folder: &Path,
        manifest: &Manifest,
        safety: Safety,
    ) -> Result<Arc<Instance>, String> {
        let library = folder.join(manifest.library_file());
        let args = InstanceArgs {
            module: name.to_owned(),
            config: resolve_config(manifest, &self.config.module_env),
            read_only: safety.read_only,
            dry_run: safety.dry_run,
            max_log_level: self.max_log_level,
        };
        let loader = self.loader.clone();
        let manifest_version = manifest.version.clone();
        let name_owned = name.to_owned();
        // Reading, mapping and `init` block; keep them off the async threads.
        let (info, object) = tokio::task::spawn_blocking(move || {
            let library_file = loader.open(&name_owned, &library).map_err(|e| e.to_string())?;
            let info = library_file.info();
            if info.version != manifest_version {
                return Err(format!(
                    "module.json says version {manifest_version} but {} is version {}: make them equal (the library reports its crate's version)",
                    library.display(),
                    info.version
                ));
            }
            let object = library_file.instantiate(args)?;
            Ok((info, object))
        })
        .await
        .map_err(|e| format!("loading was interrupted: {e}"))??;
        let instance = Arc::new(Instance::new(name, info, object, self.reaper.clone())?);
        let health = instance.check_health(self.config.health_timeout).await;
        if health.is_unhealthy() {
            return Err(format!("unhealthy at start: {}", health.detail));
        }
        Ok(instance)
    }
}

/// What asked for a change to a module; named in the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Discovery when the hub starts.
    Start,
    Enable,
    Disable,
    Reload,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Enable => "enable",
            Action::Disable => "disable",
            Action::Reload => "reload",
        }
    }

    /// Whether a running instance is replaced (enable leaves a running module alone).
    fn restarts(self) -> bool {
        matches!(self, Action::Start | Action::Reload)
    }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A new instance serves.
    Running,
    Disabled,
    /// Nothing serves; `error` says why.
    Failed,
    /// The new version failed; the running one keeps serving.
    Kept,
    /// Already as asked.
    Unchanged,
}

/// One log line per action: module, version(s), duration, outcome.
fn log_action(
    action: Action,
    entry: &ModuleEntry,
    before: Option<&ModuleEntry>,
    outcome: Outcome,
    took: std::time::Duration,
) {
    let (module, ms) = (&entry.name, took.as_millis());
    let version = entry
        .manifest
        .as_ref()
        .map(|m| m.version.as_str())
        .unwrap_or("-");
    let old = before
        .and_then(|b| b.manifest.as_ref())
        .map(|m| m.version.as_str());
    let error = entry.error.as_deref().unwrap_or_default();
    let action = action.as_str();
    match outcome {
        Outcome::Running => {
            let versions = match old {
                Some(old) => format!("{old} → {version}"),
                None => version.to_owned(),
            };
            tracing::info!(module = %module, version, duration_ms = ms, outcome = "running", "{action} {module}: running {versions} ({ms} ms)");
        }
        Outcome::Disabled => {
            tracing::info!(module = %module, version, duration_ms = ms, outcome = "disabled", "{action} {module}: disabled ({ms} ms)");
        }
        Outcome::Unchanged => {
            tracing::info!(module = %module, version, duration_ms = ms, outcome = "unchanged", "{action} {module}: already running {version}");
        }
        Outcome::Failed => {
            tracing::warn!(module = %module, version, duration_ms = ms, outcome = "failed", "{action} {module}: failed ({ms} ms): {error}");
        }
        Outcome::Kept => {
            tracing::warn!(module = %module, version, duration_ms = ms, outcome = "kept", "{action} {module}: failed, the running version keeps serving ({ms} ms): {error}");
        }
    }
}

/// Names of the folders of `dir` that hold a `module.json` and are not hidden (`_x`, `.x`).
fn module_folders(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !names::is_hidden_folder(&name) && is_module_folder(&entry.path()) {
            names.push(name);
        }
    }
    Ok(names)
}

fn is_module_folder(folder: &Path) -> bool {
    folder.join(manifest::FILE_NAME).is_file()
}

/// A folder whose own name breaks the rule cannot hold a valid module, whatever its manifest.
fn check_folder_name(folder: &str, manifest: Manifest) -> Result<Manifest, ManifestError> {
    match names::validate(folder) {
        Ok(()) => Ok(manifest),
        Err(reason) => Err(ManifestError::BadName {
            path: PathBuf::from(folder).join(manifest::FILE_NAME),
            name: folder.to_owned(),
            reason,
        }),
    }
}

/// The effective safety switches: manifest (default on), overridden by
/// `MODULES__{NAME}__READ_ONLY` / `__DRY_RUN`.
fn resolve_safety(manifest: &Manifest, env: &ModuleEnv) -> Result<Safety, String> {
    let from_manifest = |value: Option<bool>| match value {
        Some(v) => (v, Source::Manifest),
        None => (true, Source::Default),
    };
    let (mut read_only, mut read_only_source) = from_manifest(manifest.safety.read_only);
    let (mut dry_run, mut dry_run_source) = from_manifest(manifest.safety.dry_run);
    for (key, raw) in env.for_module(&manifest.name) {
        let target = if key.eq_ignore_ascii_case("READ_ONLY") {
            (&mut read_only, &mut read_only_source)
        } else if key.eq_ignore_ascii_case("DRY_RUN") {
            (&mut dry_run, &mut dry_run_source)
        } else {
            continue;
        };
        *target.0 = parse_bool(raw).ok_or_else(|| {
            format!(
                "MODULES__{}__{}={raw:?} is not a boolean: use true or false",
                manifest.name.to_ascii_uppercase(),
                key.to_ascii_uppercase()
            )
        })?;
        *target.1 = Source::Environment;
    }
    Ok(Safety {
        read_only,
        dry_run,
        source: SafetySources {
            read_only: read_only_source,
            dry_run: dry_run_source,
        },
    })
}

/// The manifest's `config`, with `MODULES__{NAME}__{KEY}` overriding keys (matched
/// case-insensitively; a new key is lowercased). Values parse as JSON, else stay strings.
fn resolve_config(manifest: &Manifest, env: &ModuleEnv) -> Map<String, Value> {
    let mut config = manifest.config.clone();
    for (key, raw) in env.for_module(&manifest.name) {
        if key.eq_ignore_ascii_case("READ_ONLY") || key.eq_ignore_ascii_case("DRY_RUN") {
            continue;
        }
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
        let existing = config.keys().find(|k| k.eq_ignore_ascii_case(key)).cloned();
        config.insert(existing.unwrap_or_else(|| key.to_ascii_lowercase()), value);
    }
    config
}

/// The most verbose level the hub prints, told to modules so they skip the rest.
fn max_log_level() -> LogLevel {
    match LevelFilter::current() {
        LevelFilter::TRACE => LogLevel::Trace,
        LevelFilter::DEBUG => LogLevel::Debug,
        LevelFilter::INFO => LogLevel::Info,
        LevelFilter::WARN => LogLevel::Warn,
        _ => LogLevel::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn env(pairs: &[(&str, &str)]) -> ModuleEnv {
        Config::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .unwrap()
            .module_env
    }

    fn manifest(text: &str) -> Manifest {
        Manifest::parse(Path::new("m/module.json"), "m", text).unwrap()
    }

    #[test]
    fn safety_defaults_on_and_the_environment_overrides_the_manifest() {
        let m = manifest(r#"{"name": "m", "version": "1", "safety": {"dry_run": false}}"#);
        let s = resolve_safety(&m, &env(&[])).unwrap();
        assert_eq!((s.read_only, s.dry_run), (true, false));
        assert_eq!(
            (s.source.read_only, s.source.dry_run),
            (Source::Default, Source::Manifest)
        );
        let s = resolve_safety(&m, &env(&[("MODULES__M__READ_ONLY", "false")])).unwrap();
        assert_eq!(
            (s.read_only, s.source.read_only),
            (false, Source::Environment)
        );
        assert_eq!(
            resolve_safety(&m, &env(&[("MODULES__M__DRY_RUN", "perhaps")])).unwrap_err(),
            "MODULES__M__DRY_RUN=\"perhaps\" is not a boolean: use true or false"
        );
    }

    #[test]
    fn config_overrides_match_keys_and_parse_json() {
        let m = manifest(r#"{"name": "m", "version": "1", "config": {"Greeting": "Hi", "n": 1}}"#);
        let c = resolve_config(
            &m,
            &env(&[
                ("MODULES__M__GREETING", "Hej"),
                ("MODULES__M__N", "2"),
                ("MODULES__M__NEW_KEY", "[1,2]"),
                ("MODULES__M__READ_ONLY", "false"),
            ]),
        );
        assert_eq!(
            Value::Object(c),
            serde_json::json!({"Greeting": "Hej", "n": 2, "new_key": [1, 2]})
        );
    }
}
