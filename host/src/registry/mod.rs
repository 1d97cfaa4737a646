//! The registry: module name → its current entry, behind an atomic swap. A request loads the
//! map, clones the entry's `Arc<Instance>` and runs on that instance to the end, whatever is
//! swapped in meanwhile. Writers (the lifecycle) replace whole entries.

mod state;

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use self::state::{ModuleState, ReloadRecord, StartError, State};
use crate::instance::Instance;
use crate::loader::Fingerprint;
use crate::manifest::Manifest;

/// Everything the hub knows about one module folder.
#[derive(Clone)]
pub struct ModuleEntry {
    pub name: String,
    /// The last manifest that parsed (`None` if none ever did).
    pub manifest: Option<Manifest>,
    pub state: ModuleState,
    pub mapped_libraries: usize,
    /// What the module's files held when this entry was made.
    pub fingerprint: Option<Fingerprint>,
    /// How many times a running version was replaced by a new one since the hub started.
    pub reloads: u64,
    /// The reloads since the hub started, newest first (at most [`RELOADS_KEPT`]).
    pub reload_history: Vec<ReloadRecord>,
}

/// How many reloads a module's entry remembers.
pub const RELOADS_KEPT: usize = 10;

impl ModuleEntry {
    /// Remember `record` as the newest reload.
    pub fn record_reload(&mut self, record: ReloadRecord) {
        self.reload_history.insert(0, record);
        self.reload_history.truncate(RELOADS_KEPT);
    }

    /// The last reload, if there was one.
    pub fn last_reload(&self) -> Option<&ReloadRecord> {
        self.reload_history.first()
    }

    pub fn kind(&self) -> State {
        self.state.kind()
    }

    pub fn is_running(&self) -> bool {
        self.kind() == State::Running
    }

    pub fn instance(&self) -> Option<&Arc<Instance>> {
        self.state.instance()
    }

    /// The manifest's version, if a manifest parsed.
    pub fn version(&self) -> Option<&str> {
        self.manifest.as_ref().map(|m| m.version.as_str())
    }

    /// Whether this module's manifest needs module `name`.
    pub fn needs(&self, name: &str) -> bool {
        self.manifest
            .as_ref()
            .is_some_and(|m| m.dependencies.contains_key(name))
    }
}

/// Every entry at one moment, by name: what questions about several modules are asked of.
pub type Snapshot = Arc<BTreeMap<String, Arc<ModuleEntry>>>;

/// name → entry, swapped atomically as a whole.
#[derive(Default)]
pub struct Registry {
    modules: ArcSwap<BTreeMap<String, Arc<ModuleEntry>>>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<Arc<ModuleEntry>> {
        self.modules.load().get(name).cloned()
    }

    /// `read` of module `name`'s entry (`None` when unknown), without taking a reference to the
    /// entry: the request path's lookup.
    pub fn with<T>(&self, name: &str, read: impl FnOnce(Option<&ModuleEntry>) -> T) -> T {
        let modules = self.modules.load();
        read(modules.get(name).map(Arc::as_ref))
    }

    /// Every entry, by name.
    pub fn all(&self) -> Snapshot {
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
    pub fn clear(&self) -> Snapshot {
        self.modules.swap(Arc::default())
    }
}
