//! The module lifecycle: discovery, enable, disable, reload, file changes and shutdown. Every change
//! to one module runs under that module's lock, so changes to one module are serialized while
//! different modules proceed independently; the result is swapped into the registry whole.
//!
//! An action reads the module's folder, decides what to do with the pure checks of `plan.rs`,
//! starts a new instance when the plan says so (`start.rs`), records the outcome in the registry
//! and writes one log line (`outcome.rs`).

mod error;
mod fleet;
mod install;
mod outcome;
mod plan;
mod start;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

pub use self::error::ActionError;
pub use self::fleet::Applied;
pub use self::install::{InstallError, Installed, Rollout, UninstallPreview};
pub use self::outcome::Action;
use self::outcome::{Outcome, log_action};
use self::plan::{Candidate, Plan};
use self::start::Starter;
use crate::config::Config;
use crate::config::module::resolve_safety;
use crate::db::Database;
use crate::deps::Graph;
use crate::deps::checks;
use crate::identity::{Actor, Event, Identity};
use crate::instance::Reaper;
use crate::loader::{Fingerprint, LibraryFile, Loader};
use crate::manifest::{self, Manifest, is_module_folder, module_folders};
use crate::registry::{ModuleEntry, ModuleState, Registry, ReloadRecord, StartError};

/// How enable and disable treat the graph.
#[derive(Debug, Clone, Copy, Default)]
pub struct GraphOptions {
    /// Enabling: enable the dependencies that do not run first, in order.
    pub with_dependencies: bool,
    /// Disabling: disable the running dependents first, in reverse order.
    pub cascade: bool,
}

/// The hub: its configuration, its modules (the registry) and the actions that change them.
pub struct Hub {
    config: Config,
    registry: Registry,
    starter: Starter,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Held by every enable and disable for its whole walk of the graph: the check of what runs
    /// and the write of `module.json` are one step, so two actions cannot interleave between them.
    graph: tokio::sync::Mutex<()>,
    /// A handle on the hub itself, for work it starts in the background (waking dependents).
    this: Weak<Hub>,
    /// Installed packages' kept versions.
    packages: crate::packages::store::Store,
    /// Fleet mode: what this hub applied of the fleet's state.
    fleet: self::fleet::FleetState,
}

impl Hub {
    /// Make a hub with no module loaded yet. Call from within the runtime that will run
    /// shutdown hooks.
    pub fn new(config: Config, admin_token: &str) -> anyhow::Result<Arc<Hub>> {
        let loader = Loader::new(config.runtime_dir.as_deref()).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the hub's private folder for library copies in {} (HUB_RUNTIME_DIR): {e}",
                config.runtime_dir.as_deref().unwrap_or(&std::env::temp_dir()).display()
            )
        })?;
        let reaper = Reaper::new(config.shutdown_grace);
        let database = Arc::new(Database::new(&config)?);
        let identity = Arc::new(Identity::new(&config, database.clone(), admin_token)?);
        let packages = crate::packages::store::Store::new(database.clone(), &config.modules_dir);
        let starter = Starter::new(Arc::new(loader), database, reaper, identity);
        Ok(Arc::new_cyclic(|this| Hub {
            packages,
            config,
            registry: Registry::default(),
            starter,
            locks: Mutex::default(),
            graph: tokio::sync::Mutex::new(()),
            this: this.clone(),
            fleet: Default::default(),
        }))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn database(&self) -> &Database {
        &self.starter.database
    }

    /// The database, for a task that outlives a borrow of the hub.
    pub fn database_handle(&self) -> Arc<Database> {
        self.starter.database.clone()
    }

    /// Who is calling, and what they may do.
    pub fn identity(&self) -> &Arc<Identity> {
        &self.starter.identity
    }

    /// Reach the database and apply the hub's own migrations; logs the outcome.
    pub async fn prepare_database(&self) -> bool {
        if !self.database().is_configured() {
            tracing::warn!(
                "DATABASE_URL is not set: modules with migrations will fail until it is"
            );
            return false;
        }
        match self.database().prepare().await {
            Ok(()) => {
                tracing::info!("database ready");
                true
            }
            Err(e) => {
                tracing::warn!(
                    "database not ready: {e}; retrying every {} ms (HUB_DB_RETRY_MS)",
                    self.config.db_retry.as_millis()
                );
                false
            }
        }
    }

    /// While the database is not ready, try it again; when it answers, start the modules that
    /// failed for want of it.
    pub async fn watch_database(self: Arc<Self>) {
        let database = self.starter.database.clone();
        database
            .watch(self.config.db_retry, || async {
                let waiting: Vec<String> = self
                    .registry
                    .all()
                    .values()
                    .filter(|e| {
                        matches!(&e.state, ModuleState::Failed { error, .. } if error.waits_for_database())
                    })
                    .map(|e| e.name.clone())
                    .collect();
                for name in waiting {
                    let lock = self.lock_for(&name);
                    let _guard = lock.lock().await;
                    let _ = self.converge(&name, Action::Retry, None).await;
                }
            })
            .await;
    }

    /// Start every module found in `MODULES_DIR`, dependencies first.
    pub async fn discover(&self) {
        if !self.config.modules_enabled {
            tracing::info!("module system is off (MODULES_ENABLED=false): no module is loaded");
            return;
        }
        if self.in_fleet() {
            // The fleet's state decides what runs: the fleet room applies it once it listens.
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
        // Dependencies first, ties by name; a folder whose manifest does not parse, by name.
        let manifests = self.manifests_on_disk();
        let mut order = Graph::new(manifests.iter().map(|(n, m)| (n.as_str(), m))).start_order();
        names.sort();
        order.extend(names.into_iter().filter(|n| !manifests.contains_key(n)));
        for name in order {
            let lock = self.lock_for(&name);
            let _guard = lock.lock().await;
            // An error here is NotInstalled, for a folder removed while we looked.
            let _ = self.converge(&name, Action::Start, None).await;
        }
    }

    /// Read module `name` from disk again and apply it: start the new version (keeping the old
    /// one serving if that fails), disable it, or forget it if its folder is gone.
    pub async fn reload(&self, name: &str) -> Result<Arc<ModuleEntry>, ActionError> {
        let lock = self.lock_for(name);
        let _guard = lock.lock().await;
        if self.in_fleet() {
            return self.reload_fleet(name).await;
        }
        self.converge(name, Action::Reload, None).await
    }

    /// Set the module's audience in its `module.json` (`None`: everyone), then apply it as a
    /// reload does.
    pub async fn set_audience(
        &self,
        name: &str,
        audience: Option<manifest::Audience>,
    ) -> Result<Arc<ModuleEntry>, ActionError> {
        let value = audience.map(|a| serde_json::to_value(a).unwrap_or_default());
        self.update_manifest(name, "audience", |_| Ok(value)).await
    }

    /// Under the module's lock: compute the new value of `module.json`'s top-level `key` from
    /// the manifest as it is (`None` removes the key), write it (only if the result is a valid
    /// manifest), then apply it as a reload does. Nothing is written when `change` refuses.
    pub async fn update_manifest(
        &self,
        name: &str,
        key: &str,
        change: impl FnOnce(&Manifest) -> Result<Option<serde_json::Value>, ActionError>,
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
        let current = Manifest::load(&folder)?;
        let value = change(&current)?;
        if self.in_fleet() {
            return self.change_desired(name, key, value, Action::Reload).await;
        }
        manifest::write_key(&folder.join(manifest::FILE_NAME), key, value)?;
        self.converge(name, Action::Reload, None).await
    }

    /// Persist `enabled` in the module's `module.json`, then apply it. Idempotent: enabling a
    /// running module changes nothing. Enables and disables run one at a time (the graph lock),
    /// so what they check (which modules run) still holds when they write.
    pub async fn set_enabled(
        &self,
        name: &str,
        enabled: bool,
        options: GraphOptions,
    ) -> Result<Arc<ModuleEntry>, ActionError> {
        if !self.config.modules_enabled {
            return Err(ActionError::ModulesOff);
        }
        let _graph = self.graph.lock().await;
        if is_module_folder(&self.folder(name)) {
            // The graph first, each module under its own lock, before this one's.
            if enabled {
                let missing = self.missing_dependencies(name);
                if !missing.is_empty() && !options.with_dependencies {
                    return Err(ActionError::DependenciesNotRunning {
                        name: name.to_owned(),
                        missing,
                    });
                }
                for dependency in missing {
                    self.write_and_apply(&dependency, true, || Ok(())).await?;
                }
            } else {
                let dependents = checks::running_dependents(&self.registry.all(), name);
                if !dependents.is_empty() && !options.cascade {
                    return Err(ActionError::HasDependents {
                        name: name.to_owned(),
                        dependents,
                    });
                }
                for dependent in dependents {
                    self.write_and_apply(&dependent, false, || Ok(())).await?;
                }
            }
        }
        // Checked again under this module's lock, right before the write: a reload or a start
        // of another module may have changed what runs while the graph was walked.
        let recheck = || {
            if enabled {
                let missing = self.missing_dependencies(name);
                match missing.is_empty() {
                    true => Ok(()),
                    false => Err(ActionError::DependenciesNotRunning {
                        name: name.to_owned(),
                        missing,
                    }),
                }
            } else {
                let dependents = checks::running_dependents(&self.registry.all(), name);
                match dependents.is_empty() {
                    true => Ok(()),
                    false => Err(ActionError::HasDependents {
                        name: name.to_owned(),
                        dependents,
                    }),
                }
            }
        };
        self.write_and_apply(name, enabled, recheck).await
    }

    /// Under module `name`'s lock: `check`, then write `enabled` into its `module.json` and
    /// apply it.
    async fn write_and_apply(
        &self,
        name: &str,
        enabled: bool,
        check: impl FnOnce() -> Result<(), ActionError>,
    ) -> Result<Arc<ModuleEntry>, ActionError> {
        let lock = self.lock_for(name);
        let _guard = lock.lock().await;
        let folder = self.folder(name);
        if !is_module_folder(&folder) {
            self.forget(name);
            return Err(ActionError::NotInstalled(name.to_owned()));
        }
        // Refuse to rewrite a manifest the hub cannot read; the operator must fix it first.
        Manifest::load(&folder)?;
        check()?;
        let action = if enabled {
            Action::Enable
        } else {
            Action::Disable
        };
        if self.in_fleet() {
            return self
                .change_desired(name, "enabled", Some(enabled.into()), action)
                .await;
        }
        manifest::write_enabled(&folder.join(manifest::FILE_NAME), enabled)?;
        self.converge(name, action, None).await
    }

    /// The dependencies of `name` that do not run, transitively, in the order they must start.
    fn missing_dependencies(&self, name: &str) -> Vec<String> {
        checks::missing_dependencies(&self.manifests_on_disk(), &self.registry.all(), name)
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

    /// Files of module `name` changed: apply them if their content differs from what the module
    /// last applied (the hub's own writes of `module.json` do not).
    pub async fn on_file_change(&self, name: &str) {
        if !self.config.modules_enabled {
            return;
        }
        let lock = self.lock_for(name);
        let _guard = lock.lock().await;
        let folder = self.folder(name);
        let mut read = None;
        if is_module_folder(&folder) {
            let (now, library) = Fingerprint::read(&folder).await;
            let known = self.registry.get(name).and_then(|e| e.fingerprint.clone());
            if known.as_ref() == Some(&now) {
                tracing::debug!(module = %name, "{name}: its files are as last applied; the file event changes nothing");
                return;
            }
            if self.in_fleet() {
                self.refuse_file_change(name).await;
                return;
            }
            read = Some((now, library));
        } else if self.registry.get(name).is_none() {
            return;
        }
        // A folder that is gone is forgotten; its routes answer 404.
        let _ = self.converge(name, Action::FileChange, read).await;
    }

    /// Every module the hub knows and every module folder on disk.
    pub fn known_and_present_modules(&self) -> Vec<String> {
        let mut names: Vec<String> = self.registry.all().keys().cloned().collect();
        names.extend(module_folders(&self.config.modules_dir).unwrap_or_default());
        names.sort();
        names.dedup();
        names
    }

    /// Stop serving every module and run their shutdown hooks, each bounded by the grace
    /// period.
    pub async fn shutdown(&self) {
        let all = self.registry.clear();
        for entry in all.values() {
            if let Some(instance) = entry.instance() {
                instance.begin_shutdown();
            }
        }
        drop(all);
        self.starter.reaper.drain().await;
    }

    fn folder(&self, name: &str) -> PathBuf {
        self.config.modules_dir.join(name)
    }

    fn lock_for(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(name.to_owned()).or_default().clone()
    }

    /// The manifests of every module folder that parse, by name.
    fn manifests_on_disk(&self) -> BTreeMap<String, Manifest> {
        module_folders(&self.config.modules_dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|name| Some((name.clone(), Manifest::load(&self.folder(&name)).ok()?)))
            .collect()
    }

    fn forget(&self, name: &str) {
        if self.registry.remove(name).is_some() {
            tracing::info!(module = %name, "module folder removed: module unloaded");
            // What needed it cannot run without it: applied again, they fail naming it.
            let dependents = checks::running_dependents(&self.registry.all(), name);
            self.converge_in_background(dependents, Action::Retry);
        }
    }

    /// Apply `names` one after the other, each under its lock, on the runtime.
    fn converge_in_background(&self, names: Vec<String>, action: Action) {
        let Some(hub) = self.this.upgrade() else {
            return;
        };
        if names.is_empty() {
            return;
        }
        tokio::spawn(async move {
            for name in names {
                let lock = hub.lock_for(&name);
                let _guard = lock.lock().await;
                let _ = hub.converge(&name, action, None).await;
            }
        });
    }

    /// Bring module `name` in line with its folder (under its lock), and log one line saying
    /// what happened. `read` is the folder's files when the caller read them already (the
    /// watcher, to compare fingerprints).
    async fn converge(
        &self,
        name: &str,
        action: Action,
        read: Option<(Fingerprint, Arc<LibraryFile>)>,
    ) -> Result<Arc<ModuleEntry>, ActionError> {
        if !self.config.modules_enabled {
            return Err(ActionError::ModulesOff);
        }
        let folder = self.folder(name);
        if !is_module_folder(&folder) {
            self.forget(name);
            return Err(ActionError::NotInstalled(name.to_owned()));
        }
        let started = Instant::now();
        let previous = self.registry.get(name);
        let running = previous.clone().filter(|e| e.is_running());
        let (fingerprint, library) = match read {
            Some(read) => read,
            None => Fingerprint::read(&folder).await,
        };
        let (mut entry, outcome) = self
            .next_entry(name, running.as_deref(), action, library)
            .await;
        entry.fingerprint = Some(fingerprint);
        if let Some(previous) = &previous {
            entry.reloads = previous.reloads;
            entry.reload_history = previous.reload_history.clone();
        }
        if action.is_reload() {
            let record = |outcome: &'static str, error: Option<String>| ReloadRecord {
                at: chrono::Utc::now().to_rfc3339(),
                outcome,
                error,
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            };
            match outcome {
                Outcome::Running => {
                    // Counted when a running version was replaced, not when a failed one started.
                    if running.is_some() {
                        entry.reloads += 1;
                    }
                    entry.record_reload(record("ok", None));
                    if let Some(metrics) = crate::metrics::get() {
                        metrics.reloaded(name, "ok");
                    }
                }
                Outcome::Kept | Outcome::Failed => {
                    let error = entry.state.error().map(ToString::to_string);
                    entry.record_reload(record("failed", error));
                    if let Some(metrics) = crate::metrics::get() {
                        metrics.reloaded(name, "failed");
                    }
                }
                Outcome::Disabled | Outcome::Unchanged => {}
            }
        }
        let entry = self.registry.insert(entry);
        if outcome == Outcome::Running {
            // Failed modules that need this one may start now.
            let waiting = checks::failed_dependents(&self.registry.all(), name);
            self.converge_in_background(waiting, Action::Retry);
        } else if outcome == Outcome::Failed && running.is_some() {
            // It stopped serving (a new version failed on a schema its old one may not work on):
            // what needs it is applied again, and fails naming it.
            let dependents = checks::running_dependents(&self.registry.all(), name);
            self.converge_in_background(dependents, Action::Retry);
        }
        log_action(
            action,
            &entry,
            running.as_deref(),
            outcome,
            started.elapsed(),
        );
        // The API's actions are audited by the API, with the caller; the hub's own here.
        let actor = match action {
            Action::FileChange => Some("watcher"),
            Action::Start | Action::Retry => Some("hub"),
            Action::Enable | Action::Disable | Action::Reload => None,
        };
        if let Some(actor) = actor.filter(|_| outcome != Outcome::Unchanged) {
            self.identity().auditor.record(
                &Actor::system(actor),
                Event {
                    action: action.audit_name(),
                    module: Some(name),
                    target: entry.version(),
                    outcome: outcome.as_str(),
                    details: entry
                        .state
                        .error()
                        .map(|e| serde_json::json!({"error": e.to_string()})),
                },
            );
        }
        Ok(entry)
    }

    /// The entry module `name` should have now, and how the action ended: read its manifest,
    /// decide (`plan`), and start a new instance if the plan says so.
    async fn next_entry(
        &self,
        name: &str,
        running: Option<&ModuleEntry>,
        action: Action,
        library: Arc<LibraryFile>,
    ) -> (ModuleEntry, Outcome) {
        // Counted when the entry is made: a start may have mapped one more.
        let mapped_libraries = || self.starter.loader.mapped_count(name);
        let entry = |manifest: Option<Manifest>, state: ModuleState| ModuleEntry {
            name: name.to_owned(),
            manifest,
            state,
            mapped_libraries: mapped_libraries(),
            fingerprint: None,
            reloads: 0,
            reload_history: Vec::new(),
        };
        // A failure while an instance runs keeps that instance serving, with the reason shown.
        let keep = |running: &ModuleEntry, error: StartError| {
            let mut kept = ModuleEntry {
                mapped_libraries: mapped_libraries(),
                ..running.clone()
            };
            if let ModuleState::Running { error: last, .. } = &mut kept.state {
                *last = Some(Arc::new(error));
            }
            kept
        };
        let folder = self.folder(name);
        let manifest = match Manifest::load_named(&folder, name) {
            Ok(manifest) => manifest,
            Err(error) => {
                let error = StartError::from(error);
                return match running {
                    Some(running) => (keep(running, error), Outcome::Kept),
                    None => {
                        let state = ModuleState::Failed {
                            error: Arc::new(error),
                            safety: None,
                        };
                        (entry(None, state), Outcome::Failed)
                    }
                };
            }
        };
        let safety = resolve_safety(&manifest, &self.config.module_env);
        let candidate = Candidate {
            name,
            manifest: &manifest,
            safety: &safety,
            running,
            restarts: action.restarts(),
        };
        let plan = plan::decide(candidate, &self.registry.all(), || self.manifests_on_disk());
        let safety = safety.ok();
        let failed = |error: StartError| ModuleState::Failed {
            error: Arc::new(error),
            safety,
        };
        let safety = match plan {
            Plan::Start(safety) => safety,
            Plan::Disable => {
                let state = ModuleState::Disabled { safety };
                return (entry(Some(manifest), state), Outcome::Disabled);
            }
            Plan::Unchanged(running) => return (running.clone(), Outcome::Unchanged),
            Plan::Keep(running, error) => return (keep(running, error), Outcome::Kept),
            Plan::Fail(error) => return (entry(Some(manifest), failed(error)), Outcome::Failed),
        };
        let started = self
            .starter
            .start(
                &self.config,
                name,
                &folder,
                &manifest,
                safety,
                library,
                self.contract_deferred(name),
            )
            .await;
        match (started, running) {
            (Ok(instance), _) => {
                let state = ModuleState::Running {
                    instance,
                    safety,
                    error: None,
                };
                (entry(Some(manifest), state), Outcome::Running)
            }
            (Err(error), Some(running)) if !error.leaves_a_new_schema() => {
                if let Some(kept) = &running.manifest {
                    self.starter.declare_again(name, kept);
                }
                (keep(running, error), Outcome::Kept)
            }
            (Err(error), Some(_)) => (entry(Some(manifest), failed(error)), Outcome::Failed),
            (Err(error), None) => {
                let error = error.without_older_version();
                (entry(Some(manifest), failed(error)), Outcome::Failed)
            }
        }
    }
}
