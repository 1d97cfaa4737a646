//! A module's status as the management API shows it (the module object): its state, manifest,
//! health, routes, safety switches and reloads from the registry, its dependencies and dependents
//! from the snapshot, its migrations and tables from the migration ledger. Also the table of
//! modules the hub prints once discovery is done.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::module::{ModuleEnv, Safety, Setting, settings};
use crate::db::Database;
use crate::db::ledger::{self, Ledger};
use crate::deps::checks::{dependents, unmet};
use crate::instance::{HealthReport, Instance, RouteInfo};
use crate::manifest::{Audience, Manifest};
use crate::registry::{ModuleEntry, ReloadRecord, Snapshot, State};

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
    /// The reloads since the hub started, newest first (at most 10).
    pub reload_history: Vec<ReloadRecord>,
    /// The running version's last health reports, newest first (at most 20).
    pub health_history: Vec<HealthReport>,
    /// Who sees the module (`module.json`'s `audience`); `null`: everyone who may call its routes.
    pub audience: Option<Audience>,
    /// The module's own permissions (`area.verb` → what it allows), as its manifest declares them.
    pub permissions: std::collections::BTreeMap<String, String>,
    /// Its effective settings (`config`, overridden by `MODULES__{NAME}__{KEY}`), secrets masked.
    pub settings: Vec<Setting>,
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

/// A relation a migration created, whether it still exists, and how big it is.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TableStatus {
    pub name: String,
    pub present: bool,
    /// PostgreSQL's estimate of its rows; `null` until the table was first analyzed (autovacuum
    /// does it), for views, and when it is missing.
    pub rows_estimate: Option<i64>,
    /// Its size on disk, indexes included; `null` when it is missing.
    pub bytes: Option<i64>,
}

impl ModuleObject {
    /// What the registry knows of `entry`; dependencies unchecked, no migrations or tables yet.
    fn of(entry: &ModuleEntry, env: &ModuleEnv) -> ModuleObject {
        let manifest = entry.manifest.as_ref();
        let instance = entry.instance().map(Arc::as_ref);
        ModuleObject {
            name: entry.name.clone(),
            version: manifest.map(|m| m.version.clone()),
            description: manifest.map(|m| m.description.clone()).unwrap_or_default(),
            enabled: manifest.is_some_and(|m| m.enabled),
            state: entry.kind(),
            error: entry.state.error().map(ToString::to_string),
            health: instance.and_then(Instance::last_health),
            routes: instance.map(|i| i.routes().to_vec()).unwrap_or_default(),
            safety: entry.state.safety(),
            library: manifest.map(Manifest::library_file),
            api_version: instance.map(|i| i.info().api_version.clone()),
            loaded_at: instance.map(|i| i.loaded_at().to_rfc3339()),
            mapped_libraries: entry.mapped_libraries,
            reloads: entry.reloads,
            last_reload: entry.last_reload().cloned(),
            reload_history: entry.reload_history.clone(),
            health_history: instance.map(Instance::health_history).unwrap_or_default(),
            audience: manifest.and_then(|m| m.audience.clone()),
            permissions: manifest.map(|m| m.permissions.clone()).unwrap_or_default(),
            settings: manifest.map(|m| settings(m, env)).unwrap_or_default(),
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

    /// Fill `migrations` and `tables` from the ledger.
    fn add_ledger(&mut self, entry: &ModuleEntry, ledger: &Ledger) {
        let mine: Vec<&ledger::LedgerRow> = ledger
            .rows
            .iter()
            .filter(|r| r.module == entry.name)
            .collect();
        let declared = entry.instance().map(|i| i.migrations()).unwrap_or_default();
        let pending = declared
            .iter()
            .filter(|d| !mine.iter().any(|a| a.version == d.version))
            .map(|d| PendingMigration {
                version: d.version,
                name: d.name.clone(),
            })
            .collect();
        let mut tables: Vec<String> = mine.iter().flat_map(|r| r.relations.clone()).collect();
        tables.sort();
        tables.dedup();
        self.tables = Some(
            tables
                .into_iter()
                .map(|name| {
                    let size = ledger.present.iter().find(|p| p.name == name);
                    TableStatus {
                        present: size.is_some(),
                        rows_estimate: size.and_then(|s| s.rows_estimate),
                        bytes: size.map(|s| s.bytes),
                        name,
                    }
                })
                .collect(),
        );
        self.migrations = Some(MigrationStatus {
            applied: mine
                .into_iter()
                .map(|r| AppliedMigration {
                    version: r.version,
                    name: r.name.clone(),
                    checksum: r.checksum.clone(),
                    applied_at: r.applied_at.to_rfc3339(),
                    duration_ms: r.duration_ms,
                })
                .collect(),
            pending,
        });
    }
}

/// The module objects of `entries`, with their dependencies checked against `all`, and their
/// migrations and tables from the database when it answers within `timeout` (else those fields
/// stay `null`).
pub async fn objects(
    entries: &[Arc<ModuleEntry>],
    all: &Snapshot,
    env: &ModuleEnv,
    database: &Database,
    timeout: Duration,
) -> Vec<ModuleObject> {
    let mut objects: Vec<ModuleObject> = entries.iter().map(|e| ModuleObject::of(e, env)).collect();
    for object in &mut objects {
        for dependency in &mut object.dependencies {
            let node = all.get(&dependency.name);
            dependency.satisfied = unmet(&dependency.name, &dependency.range, node).is_none();
        }
        object.dependents = dependents(all.as_ref(), &object.name);
    }
    if !database.is_configured() || entries.is_empty() {
        return objects;
    }
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let Ok(Ok(ledger)) = tokio::time::timeout(timeout, ledger::read(database, &names)).await else {
        return objects;
    };
    for (object, entry) in objects.iter_mut().zip(entries) {
        object.add_ledger(entry, &ledger);
    }
    objects
}

/// The table of modules printed once discovery is done: name, version, state, error in one line.
pub fn startup_report(dir: &std::path::Path, all: &Snapshot) -> String {
    let dir = dir.display();
    if all.is_empty() {
        return format!("no modules in {dir}");
    }
    let rows: Vec<[String; 4]> = all
        .values()
        .map(|e| {
            let version = e.version().unwrap_or("-").to_owned();
            let state = serde_json::to_value(e.kind())
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let error = e.state.error().map(ToString::to_string).unwrap_or_default();
            let mut error = error.lines().next().unwrap_or_default().to_owned();
            if error.chars().count() > 160 {
                error = format!("{}…", error.chars().take(159).collect::<String>());
            }
            [e.name.clone(), version, state, error]
        })
        .collect();
    let header = ["MODULE", "VERSION", "STATE", "ERROR"].map(str::to_owned);
    let width = |i: usize| {
        rows.iter()
            .chain([&header])
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2)];
    let line = |r: &[String; 4]| {
        format!(
            "  {:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )
        .trim_end()
        .to_owned()
    };
    let mut out = format!("modules in {dir}:\n{}", line(&header));
    for row in &rows {
        out.push('\n');
        out.push_str(&line(row));
    }
    out
}
