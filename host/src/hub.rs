//! The module lifecycle: discovery, start (open → init → migrate → health), enable, disable,
//! reload and shutdown.Every change to one module runs under that module's lock, so changes to one module
//! are serialized while different modules proceed independently; the result is swapped into the
//! registry whole.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use plugin_api::LogLevel;
use serde_json::{Map, Value};
use thiserror::Error;
use tracing::level_filters::LevelFilter;

use crate::config::{Config, ModuleEnv, parse_bool};
use crate::db::migrate::{self, MigrationSpec};
use crate::db::{Access, Database};
use crate::deps::{self, Graph};
use crate::instance::{Instance, Reaper};
use crate::loader::{InstanceArgs, LibraryFile, Loader};
use crate::manifest::{self, Manifest, ManifestError};
use crate::names;
use crate::registry::{
    AppliedMigration, MigrationStatus, ModuleEntry, ModuleObject, PendingMigration, Registry,
    ReloadRecord, Safety, SafetySources, Source, State, TableStatus,
};
use sha2::{Digest, Sha256};
/// Why a management action could not be carried out.
#[derive(Debug, Error)]
pub enum ActionError {
    #[error("no module '{0}' is installed (no {0}/module.json in MODULES_DIR)")]
    NotInstalled(String),
    #[error("the module system is off (MODULES_ENABLED=false)")]
    ModulesOff,
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("module '{name}' needs {}, which {} not running: enable them first, or ask for ?with_dependencies=true", .missing.join(", "), if .missing.len() == 1 { "is" } else { "are" })]
    DependenciesNotRunning { name: String, missing: Vec<String> },
    #[error("{} needs module '{name}': disable {} first, or ask for ?cascade=true", .dependents.join(", "), if .dependents.len() == 1 { "it" } else { "them" })]
    HasDependents {
        name: String,
        dependents: Vec<String>,
    },
}

/// How enable and disable treat the graph.
#[derive(Debug, Clone, Copy, Default)]
pub struct GraphOptions {
    /// Enabling: enable the dependencies that do not run first, in order.
    pub with_dependencies: bool,
    /// Disabling: disable the running dependents first, in reverse order.
    pub cascade: bool,
}

/// The hub: configuration, loader, registry and the lifecycle operations on them.
pub struct Hub {
    config: Config,
    loader: Arc<Loader>,
    registry: Registry,
    reaper: Reaper,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    max_log_level: LogLevel,
    database: Arc<Database>,
    /// The hub itself, for work it starts in the background (retries of dependents).
    me: std::sync::Weak<Hub>,
}
impl Hub {
    /// Make a hub with no module loaded yet. Call from within the runtime that will run
    /// shutdown hooks.
    pub fn new(config: Config) -> anyhow::Result<Arc<Hub>> {
        let loader = Loader::new(config.runtime_dir.as_deref()).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the hub's private folder for library copies in {} (HUB_RUNTIME_DIR): {e}",
                config.runtime_dir.as_deref().unwrap_or(&std::env::temp_dir()).display()
            )
        })?;
        let reaper = Reaper::new(config.shutdown_grace);
        let database = Arc::new(Database::new(&config)?);
        Ok(Arc::new_cyclic(|me| Hub {
            config,
            loader: Arc::new(loader),
            registry: Registry::default(),
            reaper,
            locks: Mutex::default(),
            max_log_level: max_log_level(),
            database,
            me: me.clone(),
        }))
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The module objects of `entries`, with their migrations and tables from the database when
    /// it answers within `HUB_DB_POOL_TIMEOUT_MS` (else those fields stay `null`).
    pub async fn describe(&self, entries: &[Arc<ModuleEntry>]) -> Vec<ModuleObject> {
        let mut objects: Vec<ModuleObject> = entries.iter().map(|e| e.to_object()).collect();
        let all = self.registry.all();
        for object in &mut objects {
            for dependency in &mut object.dependencies {
                let entry = all.get(&dependency.name).map(|e| e.as_ref());
                dependency.satisfied =
                    deps::unmet(&dependency.name, &dependency.range, entry).is_none();
            }
            object.dependents = all
                .values()
                .filter(|e| {
                    e.manifest
                        .as_ref()
                        .is_some_and(|m| m.dependencies.contains_key(&object.name))
                })
                .map(|e| e.name.clone())
                .collect();
        }
        if !self.database.is_configured() || entries.is_empty() {
            return objects;
        }
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        let asked = tokio::time::timeout(self.config.db_pool_timeout, self.migration_rows(&names));
        let Ok(Ok((applied, present))) = asked.await else {
            return objects;
        };
        for (object, entry) in objects.iter_mut().zip(entries) {
            let mine: Vec<&(String, AppliedMigration, Vec<String>)> = applied
                .iter()
                .filter(|(m, _, _)| *m == entry.name)
                .collect();
            let declared = entry
                .instance
                .as_ref()
                .map(|i| i.migrations())
                .unwrap_or_default();
            let pending = declared
                .iter()
                .filter(|d| !mine.iter().any(|(_, a, _)| a.version == d.version))
                .map(|d| PendingMigration {
                    version: d.version,
                    name: d.name.clone(),
                })
                .collect();
            let mut tables: Vec<String> = mine
                .iter()
                .flat_map(|(_, _, r)| r.iter().cloned())
                .collect();
            tables.sort();
            tables.dedup();
            object.tables = Some(
                tables
                    .into_iter()
                    .map(|name| TableStatus {
                        present: present.contains(&name),
                        name,
                    })
                    .collect(),
            );
            object.migrations = Some(MigrationStatus {
                applied: mine.into_iter().map(|(_, a, _)| a.clone()).collect(),
                pending,
            });
        }
        objects
    }

    /// (module, applied migration, relations it created) for `names`, and which of those
    /// relations exist.
    #[allow(clippy::type_complexity)]
    async fn migration_rows(
        &self,
        names: &[&str],
    ) -> Result<(Vec<(String, AppliedMigration, Vec<String>)>, Vec<String>), String> {
        let client = self
            .database
            .client(Access::ReadOnly)
            .await
            .map_err(|e| e.to_string())?;
        let rows = client
            .query(
                "SELECT module, version, name, checksum, applied_at, duration_ms, relations                  FROM module_migrations WHERE module = ANY($1) ORDER BY module, version",
                &[&names],
            )
            .await
            .map_err(|e| crate::db::describe(&e))?;
        let applied: Vec<(String, AppliedMigration, Vec<String>)> = rows
            .iter()
            .map(|r| {
                let at: chrono::DateTime<chrono::Utc> = r.get(4);
                (
                    r.get(0),
                    AppliedMigration {
                        version: r.get::<_, i32>(1) as u32,
                        name: r.get(2),
                        checksum: r.get(3),
                        applied_at: at.to_rfc3339(),
                        duration_ms: r.get::<_, i32>(5) as u32,
                    },
                    r.get(6),
                )
            })
            .collect();
        let relations: Vec<&str> = applied
            .iter()
            .flat_map(|(_, _, r)| r.iter().map(String::as_str))
            .collect();
        let present = client
            .query(
                "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace                  WHERE c.relname = ANY($1) AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')",
                &[&relations],
            )
            .await
            .map_err(|e| crate::db::describe(&e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok((applied, present))
    }
    /// Reach the database and apply the hub's own migrations; logs the outcome.
    pub async fn prepare_database(&self) -> bool {
        if !self.database.is_configured() {
            tracing::warn!(
                "DATABASE_URL is not set: modules with migrations will fail until it is"
            );
            return false;
        }
        match self.database.prepare().await {
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

    /// While the database is configured but not ready, try it every `HUB_DB_RETRY_MS`; when it
    /// answers again, start the modules that failed for want of it.
    pub async fn watch_database(self: Arc<Self>) {
        if !self.database.is_configured() {
            return;
        }
        loop {
            tokio::time::sleep(self.config.db_retry).await;
            if self.database.is_ready() || self.database.prepare().await.is_err() {
                continue;
            }
            tracing::info!("database reachable again");
            let waiting: Vec<String> = self
                .registry
                .all()
                .values()
                .filter(|e| e.state == State::Failed && e.waits_for_database)
                .map(|e| e.name.clone())
                .collect();
            for name in waiting {
                let lock = self.lock_for(&name);
                let _guard = lock.lock().await;
                let _ = self.apply(&name, Action::Retry).await;
            }
        }
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
        // Dependencies first, ties by name; a folder whose manifest does not parse, by name.
        let manifests = self.manifests_on_disk();
        let mut order = Graph::new(manifests.iter().map(|(n, m)| (n.as_str(), m))).start_order();
        names.sort();
        order.extend(names.into_iter().filter(|n| !manifests.contains_key(n)));
        for name in order {
            let lock = self.lock_for(&name);
            let _guard = lock.lock().await;
            // An error here is NotInstalled, for a folder removed while we looked.
            let _ = self.apply(&name, Action::Start).await;
        }
    }

    /// The manifests of every module folder that parse, by name.
    fn manifests_on_disk(&self) -> BTreeMap<String, Manifest> {
        module_folders(&self.config.modules_dir)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|name| Some((name.clone(), Manifest::load(&self.folder(&name)).ok()?)))
            .collect()
    }

    /// The modules that need `name`, directly or not, running ones only, dependents of
    /// dependents first.
    fn running_dependents(&self, name: &str) -> Vec<String> {
        let all = self.registry.all();
        let needs = |entry: &ModuleEntry, of: &str| {
            entry.state == State::Running
                && entry
                    .manifest
                    .as_ref()
                    .is_some_and(|m| m.dependencies.contains_key(of))
        };
        let mut found: Vec<String> = Vec::new();
        let mut frontier = vec![name.to_owned()];
        while let Some(current) = frontier.pop() {
            for entry in all.values().filter(|e| needs(e, &current)) {
                if !found.contains(&entry.name) && entry.name != name {
                    found.push(entry.name.clone());
                    frontier.push(entry.name.clone());
                }
            }
        }
        // Reverse start order: a dependent before what it needs.
        let manifests: Vec<(&str, &Manifest)> = all
            .values()
            .filter_map(|e| Some((e.name.as_str(), e.manifest.as_ref()?)))
            .collect();
        let order = Graph::new(manifests).start_order();
        let mut ordered: Vec<String> = order
            .into_iter()
            .rev()
            .filter(|n| found.contains(n))
            .collect();
        let rest: Vec<String> = found.into_iter().filter(|n| !ordered.contains(n)).collect();
        ordered.extend(rest);
        ordered
    }

    /// The dependencies of `name` (from the manifests on disk), transitively, that do not run,
    /// in the order they must start.
    fn missing_dependencies(&self, name: &str) -> Vec<String> {
        let manifests = self.manifests_on_disk();
        let all = self.registry.all();
        let mut needed: Vec<String> = Vec::new();
        let mut frontier = vec![name.to_owned()];
        while let Some(current) = frontier.pop() {
            let Some(manifest) = manifests.get(&current) else {
                continue;
            };
            for dependency in manifest.dependencies.keys() {
                if !needed.contains(dependency) && dependency != name {
                    needed.push(dependency.clone());
                    frontier.push(dependency.clone());
                }
            }
        }
        let running = |n: &String| all.get(n).is_some_and(|e| e.state == State::Running);
        Graph::new(manifests.iter().map(|(n, m)| (n.as_str(), m)))
            .start_order()
            .into_iter()
            .filter(|n| needed.contains(n) && !running(n))
            .chain(
                needed
                    .iter()
                    .filter(|n| !manifests.contains_key(*n))
                    .cloned(),
            )
            .collect()
    }

    /// Start again, in the background, the failed modules that need `name` (it runs now).
    fn retry_dependents_of(&self, name: &str) {
        let waiting: Vec<String> = self
            .registry
            .all()
            .values()
            .filter(|e| e.state == State::Failed)
            .filter(|e| {
                e.manifest
                    .as_ref()
                    .is_some_and(|m| m.dependencies.contains_key(name))
            })
            .map(|e| e.name.clone())
            .collect();
        self.apply_in_background(waiting, Action::Retry);
    }

    /// Apply `names` one after the other, each under its lock, on the runtime.
    fn apply_in_background(&self, names: Vec<String>, action: Action) {
        let Some(hub) = self.me.upgrade() else { return };
        if names.is_empty() {
            return;
        }
        tokio::spawn(async move {
            for name in names {
                let lock = hub.lock_for(&name);
                let _guard = lock.lock().await;
                let _ = hub.apply(&name, action).await;
            }
        });
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
        options: GraphOptions,
    ) -> Result<Arc<ModuleEntry>, ActionError> {
        if !self.config.modules_enabled {
            return Err(ActionError::ModulesOff);
        }
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
                    Box::pin(self.set_enabled(&dependency, true, GraphOptions::default())).await?;
                }
            } else {
                let dependents = self.running_dependents(name);
                if !dependents.is_empty() && !options.cascade {
                    return Err(ActionError::HasDependents {
                        name: name.to_owned(),
                        dependents,
                    });
                }
                for dependent in dependents {
                    Box::pin(self.set_enabled(&dependent, false, GraphOptions::default())).await?;
                }
            }
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
                return;
            }
            read = Some((now, library));
        } else if self.registry.get(name).is_none() {
            return;
        }
        // A folder that is gone is forgotten; its routes answer 404.
        let _ = self.apply_read(name, Action::FileChange, read).await;
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
            // What needed it cannot run without it: applied again, they fail naming it.
            let dependents = self.running_dependents(name);
            self.apply_in_background(dependents, Action::Retry);
        }
    }

    /// Bring module `name` in line with its folder, and log one line saying what happened.
    async fn apply(&self, name: &str, action: Action) -> Result<Arc<ModuleEntry>, ActionError> {
        self.apply_read(name, action, None).await
    }

    /// [`Hub::apply`] with the folder's files already read (by the watcher's comparison).
    async fn apply_read(
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
        let current = previous.clone().filter(|e| e.state == State::Running);
        let (fingerprint, library) = match read {
            Some(read) => read,
            None => Fingerprint::read(&folder).await,
        };
        let (mut entry, outcome) = self
            .decide(name, &folder, current.clone(), action, library)
            .await;
        entry.fingerprint = Some(fingerprint);
        if let Some(previous) = &previous {
            entry.reloads = previous.reloads;
            entry.last_reload = previous.last_reload.clone();
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
                    if current.is_some() {
                        entry.reloads += 1;
                    }
                    entry.last_reload = Some(record("ok", None));
                }
                Outcome::Kept | Outcome::Failed => {
                    entry.last_reload = Some(record("failed", entry.error.clone()));
                }
                Outcome::Disabled | Outcome::Unchanged => {}
            }
        }
        let entry = self.registry.insert(entry);
        if outcome == Outcome::Running {
            self.retry_dependents_of(name);
        }
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
        library: Arc<LibraryFile>,
    ) -> (ModuleEntry, Outcome) {
        let entry = |state, manifest, error, instance, safety| ModuleEntry {
            name: name.to_owned(),
            manifest,
            state,
            error,
            instance,
            safety,
            mapped_libraries: self.loader.mapped_count(name),
            waits_for_database: false,
            fingerprint: None,
            reloads: 0,
            last_reload: None,
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
        let dependents = self.running_dependents(name);
        if !manifest.enabled {
            // An edit of module.json cannot be refused like an API call; it is reported instead.
            if let (Some(running), false) = (&current, dependents.is_empty()) {
                let error = format!(
                    "module.json says disabled, but {} needs it: it keeps running; disable {} first, or POST /api/v1/modules/{name}/disable?cascade=true",
                    dependents.join(", "),
                    if dependents.len() == 1 { "it" } else { "them" }
                );
                return (keep(running, error), Outcome::Kept);
            }
            let entry = entry(State::Disabled, Some(manifest), None, None, safety.ok());
            return (entry, Outcome::Disabled);
        }
        // Its dependencies: no cycle, each running in range. Unmet, it does not run.
        let graph_failure = if manifest.dependencies.is_empty() {
            None
        } else {
            let all = self.registry.all();
            let unmet = deps::check(&manifest, &all);
            // With every dependency running, a cycle through this module would run through
            // what runs, so the registry's manifests tell; otherwise the files do (modules of a
            // cycle never run), read only then.
            let on_disk;
            let mut manifests: BTreeMap<&str, &Manifest> = if unmet.is_none() {
                all.values()
                    .filter_map(|e| Some((e.name.as_str(), e.manifest.as_ref()?)))
                    .collect()
            } else {
                on_disk = self.manifests_on_disk();
                on_disk.iter().map(|(n, m)| (n.as_str(), m)).collect()
            };
            manifests.insert(name, &manifest);
            Graph::new(manifests)
                .cycle_through(name)
                .map(|cycle| format!("dependency cycle {cycle}"))
                .or(unmet)
        };
        if let Some(error) = graph_failure {
            let entry = entry(
                State::Failed,
                Some(manifest),
                Some(error),
                None,
                safety.ok(),
            );
            return (entry, Outcome::Failed);
        }
        // A new version must stay in the range of every module that needs it.
        if current.is_some() {
            let all = self.registry.all();
            let broken: Vec<String> = dependents
                .iter()
                .filter_map(|d| {
                    all.get(d)?
                        .manifest
                        .as_ref()?
                        .dependencies
                        .get(name)
                        .map(|r| (d, r))
                })
                .filter(|(_, range)| !deps::satisfies(&manifest.version, range))
                .map(|(d, range)| format!("{d} needs {name} {range}"))
                .collect();
            if let (false, Some(running)) = (broken.is_empty(), &current) {
                let error = format!(
                    "version {} is refused: {}; the running version keeps serving",
                    manifest.version,
                    broken.join(", ")
                );
                return (keep(running, error), Outcome::Kept);
            }
        }
        if let (false, Some(running)) = (action.restarts(), &current) {
            return (ModuleEntry::clone(running), Outcome::Unchanged);
        }
        let started = match (&safety, self.check_prefix(name, &manifest)) {
            (Ok(safety), Ok(())) => self.start(name, folder, &manifest, *safety, library).await,
            (Err(error), _) => Err(StartFailure::from(error.clone())),
            (_, Err(error)) => Err(StartFailure::from(error)),
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
            (Err(failure), Some(running)) => (keep(&running, failure.message), Outcome::Kept),
            (Err(failure), None) => {
                let mut entry = entry(
                    State::Failed,
                    Some(manifest),
                    Some(failure.message),
                    None,
                    safety.ok(),
                );
                entry.waits_for_database = failure.needs_database;
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
        library: Arc<LibraryFile>,
    ) -> Result<Arc<Instance>, StartFailure> {
        if let Some(range) = &manifest.hub_api
            && !deps::satisfies(plugin_api::API_VERSION, range)
        {
            return Err(format!(
                "module.json accepts plugin-api {range} (hub_api), but this hub has plugin-api {}: rebuild the module against it and widen hub_api",
                plugin_api::API_VERSION
            )
            .into());
        }
        let path = folder.join(manifest.library_file());
        let args = InstanceArgs {
            module: name.to_owned(),
            config: resolve_config(manifest, &self.config.module_env),
            read_only: safety.read_only,
            dry_run: safety.dry_run,
            max_log_level: self.max_log_level,
            database: self.database.clone(),
        };
        let loader = self.loader.clone();
        let manifest_version = manifest.version.clone();
        let name_owned = name.to_owned();
        // Reading, mapping and `init` block; keep them off the async threads.
        let (info, migrations, assets, object) = tokio::task::spawn_blocking(move || {
            // Read with the fingerprint, unless module.json changed its library since.
            let library = if library.path == path {
                library
            } else {
                Arc::new(LibraryFile::read(&path))
            };
            let library_file = loader
                .open(&name_owned, &library)
                .map_err(|e| e.to_string())?;
            let info = library_file.info();
            if info.version != manifest_version {
                return Err(format!(
                    "module.json says version {manifest_version} but {} is version {}: make them equal (the library reports its crate's version)",
                    path.display(),
                    info.version
                ));
            }
            let migrations = library_file.migrations()?;
            let assets = library_file.assets()?;
            let object = library_file.instantiate(args)?;
            Ok((info, migrations, assets, object))
        })
        .await
        .map_err(|e| format!("loading was interrupted: {e}"))??;
        let instance = Instance::new(name, info, object, migrations, assets, self.reaper.clone())?;
        let instance = Arc::new(instance);
        if !instance.migrations().is_empty() {
            self.migrate(name, &manifest.table_prefix(), instance.migrations())
                .await?;
        }
        let health = instance.check_health(self.config.health_timeout).await;
        if health.is_unhealthy() {
            return Err(format!("unhealthy at start: {}", health.detail).into());
        }
        Ok(instance)
    }

    /// Apply the module's pending migrations.
    async fn migrate(
        &self,
        name: &str,
        prefix: &str,
        migrations: &[MigrationSpec],
    ) -> Result<(), StartFailure> {
        let waiting = |message: String| StartFailure {
            message,
            needs_database: true,
        };
        if !self.database.is_configured() {
            return Err(waiting(format!(
                "module '{name}' has migrations but the hub has no database: set DATABASE_URL"
            )));
        }
        if !self.database.is_ready() {
            self.database.prepare().await.map_err(waiting)?;
        }
        let mut client = self
            .database
            .client(Access::ReadWrite)
            .await
            .map_err(|e| waiting(e.to_string()))?;
        match migrate::apply(&mut client, name, Some(prefix), migrations).await {
            Ok(applied) => {
                if !applied.versions.is_empty() {
                    tracing::info!(module = %name, "applied migrations {:?}", applied.versions);
                }
                Ok(())
            }
            Err(migrate::MigrationError::Unavailable(e)) => {
                Err(waiting(format!("the database is unavailable: {e}")))
            }
            Err(e) => Err(e.to_string().into()),
        }
    }

    /// The module's table prefix must be its own: not the hub's, and not overlapping another
    /// module's (one a prefix of the other).
    fn check_prefix(&self, name: &str, manifest: &Manifest) -> Result<(), String> {
        let prefix = manifest.table_prefix();
        for reserved in ["hub_", "module_", "pg_"] {
            if prefix.starts_with(reserved) {
                return Err(format!(
                    "table prefix '{prefix}' starts with '{reserved}', which is the hub's or PostgreSQL's: choose another \"table_prefix\""
                ));
            }
        }
        for other in self.registry.all().values() {
            let Some(theirs) = other.manifest.as_ref().filter(|_| other.name != name) else {
                continue;
            };
            let theirs = theirs.table_prefix();
            if prefix.starts_with(&theirs) || theirs.starts_with(&prefix) {
                return Err(format!(
                    "table prefix '{prefix}' overlaps module '{}'s '{theirs}': give one of them another \"table_prefix\"",
                    other.name
                ));
            }
        }
        Ok(())
    }
}

/// Why a start failed; `needs_database` when it will work once the database answers.
#[derive(Debug)]
pub struct StartFailure {
    message: String,
    needs_database: bool,
}

impl From<String> for StartFailure {
    fn from(message: String) -> StartFailure {
        StartFailure {
            message,
            needs_database: false,
        }
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
    /// The database answers again, and the module was waiting for it.
    Retry,
    /// The watcher saw the module's files change.
    FileChange,
}
impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Enable => "enable",
            Action::Disable => "disable",
            Action::Reload => "reload",
            Action::Retry => "retry",
            Action::FileChange => "file change",
        }
    }

    /// Whether a running instance is replaced (enable leaves a running module alone).
    fn restarts(self) -> bool {
        matches!(
            self,
            Action::Start | Action::Reload | Action::Retry | Action::FileChange
        )
    }

    /// Whether the action replaces a version (recorded in `last_reload`).
    fn is_reload(self) -> bool {
        matches!(self, Action::Reload | Action::FileChange)
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

/// What a module's files held when it was last applied: the SHA-256 of `module.json` and of its
/// library. The watcher applies a module again only when this changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    manifest: Option<[u8; 32]>,
    library: Option<[u8; 32]>,
}

impl Fingerprint {
    /// The fingerprint of `folder`'s files, and its library as read for it (blocking I/O, off
    /// the async threads), so that a start loads the very bytes the fingerprint describes.
    async fn read(folder: &Path) -> (Fingerprint, Arc<LibraryFile>) {
        let unread = folder.to_owned();
        let folder = folder.to_owned();
        let read = move || {
            let hash = |path: &Path| std::fs::read(path).ok().map(|b| Sha256::digest(&b).into());
            let library = Manifest::load(&folder)
                .map(|m| m.library_file())
                .unwrap_or_else(|_| {
                    let name = folder
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    format!(
                        "{}{name}{}",
                        std::env::consts::DLL_PREFIX,
                        std::env::consts::DLL_SUFFIX
                    )
                });
            let library = LibraryFile::read(&folder.join(library));
            let fingerprint = Fingerprint {
                manifest: hash(&folder.join(manifest::FILE_NAME)),
                library: library.digest(),
            };
            (fingerprint, Arc::new(library))
        };
        tokio::task::spawn_blocking(read).await.unwrap_or_else(|e| {
            let fingerprint = Fingerprint {
                manifest: None,
                library: None,
            };
            let library = LibraryFile::failed(&unread, format!("reading was interrupted: {e}"));
            (fingerprint, Arc::new(library))
        })
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
        let m = manifest(r#"{"name": "m", "version": "1.0.0", "safety": {"dry_run": false}}"#);
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
        let m =
            manifest(r#"{"name": "m", "version": "1.0.0", "config": {"Greeting": "Hi", "n": 1}}"#);
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
