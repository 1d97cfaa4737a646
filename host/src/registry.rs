//! The registry: module name → its current entry, behind an atomic swap. A request loads the
//! map, clones the entry's `Arc<Instance>` and runs on that instance to the end, whatever is
//! swapped in meanwhile. Writers (the lifecycle in `hub.rs`) replace whole entries.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::instance::{HealthReport, Instance, RouteInfo};
use crate::manifest::Manifest;

/// The three states of a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Serving requests.
    Running,
    /// `enabled` is false.
    Disabled,
    /// `enabled` is true (or unknown) but the module could not start; `error` says why.
    Failed,
}

/// Where an effective safety switch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Default,
    Manifest,
    Environment,
}

/// The effective safety switches of a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Safety {
    pub read_only: bool,
    pub dry_run: bool,
    pub source: SafetySources,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SafetySources {
    pub read_only: Source,
    pub dry_run: Source,
}

/// Everything the hub knows about one module folder.
#[derive(Clone)]
pub struct ModuleEntry {
    pub name: String,
    /// The last manifest that parsed (`None` if none ever did).
    pub manifest: Option<Manifest>,
    pub state: State,
    /// Why the module failed, or why the last start attempt failed while an older instance kept
    /// serving.
    pub error: Option<String>,
    pub instance: Option<Arc<Instance>>,
    pub safety: Option<Safety>,
    pub mapped_libraries: usize,
    /// The module failed for want of the database; it is started again when it answers.
    pub waits_for_database: bool,
    /// What the module's files held when this entry was made.
    pub fingerprint: Option<crate::hub::Fingerprint>,
    /// How many times a running version was replaced by a new one since the hub started.
    pub reloads: u64,
    pub last_reload: Option<ReloadRecord>,
}

/// The last reload of a module: when, how it ended, why it failed, how long it took.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReloadRecord {
    pub at: String,
    /// `ok` (the new version serves) or `failed` (the old one keeps serving, if there was one).
    #[schema(value_type = String)]
    pub outcome: &'static str,
    pub error: Option<String>,
    pub duration_ms: u64,
}
impl ModuleEntry {
    /// The module object of the management API.
    pub fn to_object(&self) -> ModuleObject {
        let manifest = self.manifest.as_ref();
        let instance = self.instance.as_deref();
        ModuleObject {
            name: self.name.clone(),
            version: manifest.map(|m| m.version.clone()),
            description: manifest.map(|m| m.description.clone()).unwrap_or_default(),
            enabled: manifest.is_some_and(|m| m.enabled),
            state: self.state,
            error: self.error.clone(),
            health: instance.and_then(Instance::last_health),
            routes: instance.map(|i| i.routes().to_vec()).unwrap_or_default(),
            safety: self.safety,
            library: manifest.map(Manifest::library_file),
            api_version: instance.map(|i| i.info().api_version.clone()),
            loaded_at: instance.map(|i| i.loaded_at().to_rfc3339()),
            mapped_libraries: self.mapped_libraries,
            reloads: self.reloads,
            last_reload: self.last_reload.clone(),
            table_prefix: manifest.map(Manifest::table_prefix),
            migrations: None,
            tables: None,
            dependencies: manifest
                .map(|m| {
                    m.dependencies
                        .iter()
                        .map(|(name, range)| DependencyStatus {
                            name: name.clone(),
                            range: range.clone(),
                            satisfied: false,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            dependents: Vec::new(),
        }
    }
}

/// A module as the management API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModuleObject {
    pub name: String,
    pub version: Option<String>,
    pub description: String,
    pub enabled: bool,
    pub state: State,
    pub error: Option<String>,
    pub health: Option<HealthReport>,
    pub routes: Vec<RouteInfo>,
    pub safety: Option<Safety>,
    pub library: Option<String>,
    pub api_version: Option<String>,
    pub loaded_at: Option<String>,
    pub mapped_libraries: usize,
    /// How many times a running version was replaced by a new one since the hub started.
    pub reloads: u64,
    pub last_reload: Option<ReloadRecord>,
    /// Every table, index, type… the module's migrations create starts with it.
    pub table_prefix: Option<String>,
    /// Applied and pending migrations; `null` when the database cannot be asked.
    pub migrations: Option<MigrationStatus>,
    /// The tables and views the module's migrations created, present or missing; `null` when
    /// the database cannot be asked.
    pub tables: Option<Vec<TableStatus>>,
    /// What the module needs (`dependencies` of its manifest), each running in range or not.
    pub dependencies: Vec<DependencyStatus>,
    /// The modules whose manifests need this one.
    pub dependents: Vec<String>,
}

/// One dependency of a module.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DependencyStatus {
    pub name: String,
    pub range: String,
    /// The module runs, in a version within `range`.
    pub satisfied: bool,
}

/// A module's migrations.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct MigrationStatus {
    pub applied: Vec<AppliedMigration>,
    /// Declared by the running version, not yet applied.
    pub pending: Vec<PendingMigration>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AppliedMigration {
    pub version: u32,
    pub name: String,
    pub checksum: String,
    pub applied_at: String,
    pub duration_ms: u32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PendingMigration {
    pub version: u32,
    pub name: String,
}

/// A relation a migration created, and whether it still exists.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TableStatus {
    pub name: String,
    pub present: bool,
}
/// name → entry, swapped atomically as a whole.
#[derive(Default)]
pub struct Registry {
    modules: ArcSwap<BTreeMap<String, Arc<ModuleEntry>>>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<Arc<ModuleEntry>> {
        self.modules.load().get(name).cloned()
    }

    /// Every entry, by name.
    pub fn all(&self) -> Arc<BTreeMap<String, Arc<ModuleEntry>>> {
        self.modules.load_full()
    }

    pub fn insert(&self, entry: ModuleEntry) -> Arc<ModuleEntry> {
        let entry = Arc::new(entry);
        self.modules.rcu(|modules| {
            let mut modules = BTreeMap::clone(modules);
            modules.insert(entry.name.clone(), entry.clone());
            modules
        });
        entry
    }

    pub fn remove(&self, name: &str) -> Option<Arc<ModuleEntry>> {
        let mut removed = None;
        self.modules.rcu(|modules| {
            let mut modules = BTreeMap::clone(modules);
            removed = modules.remove(name);
            modules
        });
        removed
    }

    /// Empty the registry, returning what it held.
    pub fn clear(&self) -> Arc<BTreeMap<String, Arc<ModuleEntry>>> {
        self.modules.swap(Arc::default())
    }
}
