//! Fleet mode (`HUB_FLEET=true`): the desired state of every module lives in PostgreSQL
//! (`hub_module_state`, see `db::fleet`), and this hub's module folders are its copy of it.
//! Actions change the desired state in a transaction that notifies every hub, then apply it
//! here; every other hub applies it when the notification arrives (the `fleet` room listens).
//!
//! Applying reads the module's row again under the module's lock, so whatever order changes and
//! notifications come in, the last apply on every hub follows the last committed change. A new
//! version is materialized from the package kept in `hub_packages` (checked again here: hash,
//! signature, platform), unpacked and swapped in as an install does; a version that does not
//! start here keeps the old one serving, and the fleet's view shows the drift. In a rolling
//! upgrade, a hub waits for the module's turn (an advisory lock held by one hub at a time, for
//! its start and `HUB_FLEET_ROLL_SOAK_MS` after), and stops the roll for everyone if the version
//! fails here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::install::{InstallError, Marker, Rollout, not_from_package, read_marker};
use super::{Action, ActionError, Hub};
use crate::db::fleet::{self as store, Also, Change, DesiredRow, Turn};
use crate::deps::Graph;
use crate::manifest::{self, Manifest, is_module_folder, module_folders};
use crate::packages::store::KeptVersion;
use crate::packages::{self, Package, Rules};
use crate::registry::ModuleEntry;

/// What this hub knows of the fleet's state.
#[derive(Default)]
pub(super) struct FleetState {
    /// The generation of each module's desired state applied here last.
    applied: Mutex<HashMap<String, i64>>,
    /// The modules whose contract migrations wait until every live hub serves their version.
    deferred: Mutex<HashSet<String>>,
    /// The fleet's reload count of each module as this hub last applied it.
    reloads: Mutex<HashMap<String, i64>>,
}

/// How applying a module's desired state ended here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// As the fleet says already.
    Unchanged,
    /// Its `module.json` changed and was applied.
    Changed,
    /// A new version of its package serves.
    Started,
    /// It left the fleet: its folder is removed.
    Removed,
    /// A rolling upgrade was stopped by a hub that could not start the version.
    Halted,
    /// The fleet's state could not be applied here (the old version, if any, keeps serving).
    Failed(String),
}

impl Hub {
    /// Whether the hub runs in fleet mode (`HUB_FLEET=true`, with a database).
    pub fn in_fleet(&self) -> bool {
        self.config.fleet && self.database().is_configured()
    }

    /// The generation of module `name`'s desired state this hub applied last.
    pub fn applied_generation(&self, name: &str) -> Option<i64> {
        let applied = self.fleet.applied.lock().unwrap_or_else(|e| e.into_inner());
        applied.get(name).copied()
    }

    /// Whether module `name`'s contract migrations wait (its start runs only the expand ones
    /// before the first that is not).
    pub(super) fn contract_deferred(&self, name: &str) -> bool {
        let deferred = self
            .fleet
            .deferred
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        deferred.contains(name)
    }

    pub(super) fn defer_contract(&self, name: &str, defer: bool) {
        let mut deferred = self
            .fleet
            .deferred
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match defer {
            true => deferred.insert(name.to_owned()),
            false => deferred.remove(name),
        };
    }

    fn note_applied(&self, name: &str, generation: Option<i64>) {
        let mut applied = self.fleet.applied.lock().unwrap_or_else(|e| e.into_inner());
        match generation {
            Some(generation) => applied.insert(name.to_owned(), generation),
            None => applied.remove(name),
        };
    }

    /// Wait for module `name`'s turn in a rolling upgrade.
    pub(super) async fn take_turn(&self, name: &str) -> Result<Turn, InstallError> {
        store::take_turn(self.database(), name)
            .await
            .map_err(|e| InstallError::Store(e.to_string()))
    }

    /// Hold `turn` for the soak time in the background, then give it to the next hub.
    fn soak(&self, turn: Turn) {
        let soak = self.config.fleet_roll_soak;
        tokio::spawn(async move {
            tokio::time::sleep(soak).await;
            drop(turn);
        });
    }

    /// An install ran here (this hub went first): make it the fleet's state, with the package's
    /// bytes kept for the other hubs, in one transaction. How the fleet applies it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn join_fleet(
        &self,
        entry: &ModuleEntry,
        package: &Package,
        manifest: &str,
        kept: &KeptVersion,
        bytes: &[u8],
        rolling: bool,
        turn: Option<Turn>,
    ) -> Result<Rollout, InstallError> {
        let name = &package.info.name;
        let pending = self.pending_contract(entry).await?;
        let (mode, reason) = match (rolling, pending.is_empty()) {
            (true, true) => ("rolling", None),
            (true, false) => (
                "all",
                Some(match pending.len() {
                    1 => format!(
                        "migration {} is not marked expand, so {name} {} cannot roll: every hub starts it at once, and it runs when every live hub serves it",
                        pending[0], package.info.version
                    ),
                    _ => format!(
                        "migrations {} are not marked expand, so {name} {} cannot roll: every hub starts it at once, and they run when every live hub serves it",
                        pending.join(", "),
                        package.info.version
                    ),
                }),
            ),
            (false, _) => ("all", None),
        };
        if pending.is_empty() {
            self.defer_contract(name, false);
        }
        let row = DesiredRow {
            name: name.clone(),
            version: package.info.version.clone(),
            sha256: package.sha256.clone(),
            manifest: serde_json::from_str(manifest).unwrap_or(Value::Null),
            shipped: serde_json::from_str(&package.manifest_text).unwrap_or(Value::Null),
            rollout: mode.to_owned(),
            contract: if pending.is_empty() {
                "done"
            } else {
                "pending"
            }
            .to_owned(),
            halted: None,
            reloads: 0,
            generation: 0,
            updated_by: kept.installed_by.clone(),
        };
        let package_row = crate::packages::store::row(kept);
        let after = store::change(
            self.database(),
            name,
            Also::Keep(&package_row, bytes),
            |_| Ok::<_, Infallible>(Change::Put(Box::new(row))),
        )
        .await
        .map_err(|e| InstallError::Store(e.to_string()))?;
        let Ok(after) = after;
        self.note_applied(name, after.map(|r| r.generation));
        let mut reloads = self.fleet.reloads.lock().unwrap_or_else(|e| e.into_inner());
        reloads.insert(name.clone(), 0);
        drop(reloads);
        if let Some(turn) = turn {
            self.soak(turn);
        }
        Ok(Rollout {
            mode,
            reason,
            contract_pending: pending,
        })
    }

    /// The migrations of the version `entry` runs that are not marked expand and not applied.
    async fn pending_contract(&self, entry: &ModuleEntry) -> Result<Vec<String>, InstallError> {
        let Some(instance) = entry.instance() else {
            return Ok(Vec::new());
        };
        let applied: HashSet<i32> = self
            .packages
            .applied_migrations(&entry.name)
            .await
            .map_err(InstallError::Store)?
            .into_iter()
            .map(|(version, _)| version)
            .collect();
        Ok(instance
            .migrations()
            .iter()
            .filter(|m| !m.expands() && !applied.contains(&(m.version as i32)))
            .map(|m| m.label())
            .collect())
    }

    /// An uninstall: the fleet forgets module `name` and its kept versions, in one transaction.
    pub(super) async fn leave_fleet(&self, name: &str) -> Result<(), InstallError> {
        let result = store::change(self.database(), name, Also::ForgetPackages, |_| {
            Ok::<_, Infallible>(Change::Delete)
        })
        .await;
        let Ok(_) = result.map_err(|e| InstallError::Store(e.to_string()))?;
        self.note_applied(name, None);
        Ok(())
    }

    /// Fleet mode, under module `name`'s lock: set `key` of its desired `module.json` to `value`
    /// (`None` removes it), then apply here what the fleet holds (`action` names it in the log).
    pub(super) async fn change_desired(
        &self,
        name: &str,
        key: &str,
        value: Option<Value>,
        action: Action,
    ) -> Result<Arc<ModuleEntry>, ActionError> {
        let path = self.folder(name).join(manifest::FILE_NAME);
        let decided = store::change(self.database(), name, Also::Nothing, |row| {
            let row = row.ok_or_else(|| ActionError::NotInFleet(name.to_owned()))?;
            let mut manifest = row.manifest.clone();
            let Some(map) = manifest.as_object_mut() else {
                return Err(ActionError::NotInFleet(name.to_owned()));
            };
            if map.get(key) == value.as_ref() {
                return Ok(Change::Keep);
            }
            match value {
                Some(value) => drop(map.insert(key.to_owned(), value)),
                None => drop(map.shift_remove(key)),
            }
            let text = serde_json::to_string(&manifest).unwrap_or_default();
            Manifest::parse(&path, name, &text)?;
            Ok(Change::Put(Box::new(DesiredRow {
                manifest,
                ..row.clone()
            })))
        })
        .await
        .map_err(|e| ActionError::FleetUnavailable(e.to_string()))?;
        decided?;
        match self.apply_locked(name, action).await {
            Applied::Failed(error) => Err(ActionError::FleetUnavailable(error)),
            _ => self.get(name),
        }
    }

    /// Fleet mode, under module `name`'s lock: ask every hub to reload it (each restarts it from
    /// its files), then reload it here.
    pub(super) async fn reload_fleet(&self, name: &str) -> Result<Arc<ModuleEntry>, ActionError> {
        let decided = store::change(self.database(), name, Also::Nothing, |row| {
            let row = row.ok_or_else(|| ActionError::NotInFleet(name.to_owned()))?;
            Ok::<_, ActionError>(Change::Put(Box::new(DesiredRow {
                reloads: row.reloads + 1,
                ..row.clone()
            })))
        })
        .await
        .map_err(|e| ActionError::FleetUnavailable(e.to_string()))?;
        decided?;
        match self.apply_locked(name, Action::Reload).await {
            Applied::Failed(error) => Err(ActionError::FleetUnavailable(error)),
            _ => self.get(name),
        }
    }

    /// Apply module `name`'s desired state here (it changed, or the hub catches up). A rolling
    /// upgrade waits for the module's turn first.
    pub async fn apply_desired(&self, name: &str) -> Applied {
        let row = match store::desired(self.database(), name).await {
            Ok(row) => row,
            Err(e) => return Applied::Failed(e.to_string()),
        };
        let serving = self
            .registry
            .get(name)
            .and_then(|e| e.instance().map(|i| i.info().version.clone()));
        let turn = match &row {
            Some(row)
                if row.rollout == "rolling"
                    && row.halted.is_none()
                    && serving.as_ref().is_some_and(|v| *v != row.version) =>
            {
                match store::take_turn(self.database(), name).await {
                    Ok(turn) => Some(turn),
                    Err(e) => return Applied::Failed(e.to_string()),
                }
            }
            _ => None,
        };
        let lock = self.lock_for(name);
        let guard = lock.lock().await;
        let applied = self.apply_locked(name, Action::Reload).await;
        drop(guard);
        if let Some(turn) = turn {
            match applied {
                Applied::Started => self.soak(turn),
                _ => drop(turn),
            }
        }
        applied
    }

    /// Under module `name`'s lock: make its folder and its entry what the fleet's row says.
    async fn apply_locked(&self, name: &str, action: Action) -> Applied {
        let row = match store::desired(self.database(), name).await {
            Ok(row) => row,
            Err(e) => return Applied::Failed(e.to_string()),
        };
        let folder = self.folder(name);
        let marker = read_marker(&folder);
        let Some(row) = row else {
            self.note_applied(name, None);
            if marker.is_none() || !is_module_folder(&folder) {
                return Applied::Unchanged;
            }
            // It left the fleet: the folder an install made goes, and the module with it.
            let gone = self.config.modules_dir.join(".staging").join(format!(
                "{name}-{}-{}.left",
                std::process::id(),
                chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
            ));
            if let Err(e) = std::fs::create_dir_all(self.config.modules_dir.join(".staging"))
                .and_then(|()| std::fs::rename(&folder, &gone))
            {
                return Applied::Failed(format!("cannot remove {}: {e}", folder.display()));
            }
            let _ = self.converge(name, Action::Reload, None).await;
            let _ = std::fs::remove_dir_all(&gone);
            tracing::info!(module = %name, "fleet: {name} was uninstalled from the fleet: removed here");
            return Applied::Removed;
        };
        self.defer_contract(name, row.contract == "pending");
        let applied = if marker.as_ref().map(|m| &m.sha256) != Some(&row.sha256) {
            self.materialize(name, &row, marker.as_ref()).await
        } else {
            self.apply_manifest(name, &row, action).await
        };
        if !matches!(applied, Applied::Failed(_) | Applied::Halted) {
            self.note_applied(name, Some(row.generation));
        }
        let mut reloads = self.fleet.reloads.lock().unwrap_or_else(|e| e.into_inner());
        reloads.insert(name.to_owned(), row.reloads);
        applied
    }

    /// The same package: write the fleet's `module.json` if it differs, and apply it.
    async fn apply_manifest(&self, name: &str, row: &DesiredRow, action: Action) -> Applied {
        let path = self.folder(name).join(manifest::FILE_NAME);
        let before: Option<Value> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        // A reload asked of the fleet since this hub last applied the module restarts it here.
        let reload = {
            let reloads = self.fleet.reloads.lock().unwrap_or_else(|e| e.into_inner());
            reloads.get(name).is_some_and(|seen| *seen < row.reloads)
        };
        match manifest::write_value(&path, &row.manifest) {
            Ok(false) if reload => match self.converge(name, Action::Reload, None).await {
                Ok(_) => Applied::Changed,
                Err(e) => Applied::Failed(e.to_string()),
            },
            Ok(false) if self.registry.get(name).is_some() => Applied::Unchanged,
            Ok(changed) => {
                // Only `enabled` changed: an enable leaves a running module alone.
                let without_enabled = |v: &Value| {
                    let mut v = v.clone();
                    if let Some(map) = v.as_object_mut() {
                        map.shift_remove("enabled");
                    }
                    v
                };
                let action = match (&before, changed) {
                    (Some(before), true)
                        if action == Action::Reload
                            && without_enabled(before) == without_enabled(&row.manifest) =>
                    {
                        match row.manifest["enabled"].as_bool().unwrap_or(false) {
                            true => Action::Enable,
                            false => Action::Disable,
                        }
                    }
                    _ => action,
                };
                match self.converge(name, action, None).await {
                    Ok(_) => Applied::Changed,
                    Err(e) => Applied::Failed(e.to_string()),
                }
            }
            Err(e) => {
                tracing::warn!(module = %name, "fleet: cannot apply the fleet's module.json of {name} here: {e}");
                Applied::Failed(e.to_string())
            }
        }
    }

    /// Another package (or none here yet): unpack the fleet's version from `hub_packages`,
    /// checked again as any package, and start it.
    async fn materialize(&self, name: &str, row: &DesiredRow, marker: Option<&Marker>) -> Applied {
        let folder = self.folder(name);
        let serving = self.registry.get(name).is_some_and(|e| e.is_running());
        if row.rollout == "rolling"
            && serving
            && let Some(why) = &row.halted
        {
            tracing::warn!(module = %name, "fleet: the rolling upgrade of {name} to {} is stopped ({why}): this hub keeps its version; install a fixed version or roll back", row.version);
            return Applied::Halted;
        }
        if marker.is_none() && is_module_folder(&folder) {
            let current = std::fs::read_to_string(folder.join(manifest::FILE_NAME))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok());
            let foreign = not_from_package(&folder, current.as_ref());
            if !foreign.is_empty() {
                let error = format!(
                    "the folder of {name} in MODULES_DIR holds files no package put there ({}): move them away so this hub can install the fleet's {name} {}",
                    foreign.join(", "),
                    row.version
                );
                tracing::warn!(module = %name, "fleet: {error}");
                return Applied::Failed(error);
            }
        }
        let package = match self.fleet_package(row).await {
            Ok(package) => package,
            Err(error) => {
                tracing::warn!(module = %name, "fleet: cannot install {name} {} here: {error}", row.version);
                return Applied::Failed(error);
            }
        };
        let text = {
            let mut text = serde_json::to_string_pretty(&row.manifest).unwrap_or_default();
            text.push('\n');
            text
        };
        match self.swap_in(name, &package, &text).await {
            Ok(_) => {
                tracing::info!(module = %name, "fleet: {name} {} installed here from the fleet's package", row.version);
                Applied::Started
            }
            Err(error) => {
                let error = error.to_string();
                tracing::warn!(module = %name, "fleet: {error}");
                if row.rollout == "rolling" && serving {
                    self.halt(name, row, &error).await;
                }
                Applied::Failed(error)
            }
        }
    }

    /// The fleet's package of `row`, read from `hub_packages` and checked as an upload is.
    async fn fleet_package(&self, row: &DesiredRow) -> Result<Package, String> {
        let bytes = self
            .packages
            .bytes(&row.name, &row.version)
            .await?
            .ok_or_else(|| {
                format!(
                    "{} {} is not kept in hub_packages: install it again through any hub",
                    row.name, row.version
                )
            })?;
        // Dependencies are the fleet's: each hub installs them from the same state.
        let installed: BTreeMap<String, String> = store::desired_all(self.database())
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|r| (r.name, r.version))
            .collect();
        let (trusted, allow_unsigned, max_bytes) = (
            self.config.trusted_keys.clone(),
            self.config.allow_unsigned_packages,
            self.config.package_max_bytes,
        );
        let package = tokio::task::spawn_blocking(move || {
            packages::check(
                &bytes,
                &Rules {
                    max_bytes,
                    trusted: &trusted,
                    allow_unsigned,
                    installed: &installed,
                },
            )
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        if package.sha256 != row.sha256 {
            return Err(format!(
                "the kept package of {} {} has SHA-256 {}, the fleet's state says {}",
                row.name, row.version, package.sha256, row.sha256
            ));
        }
        Ok(package)
    }

    /// A rolling upgrade failed here: stop it for the fleet (the hubs that have not started the
    /// version keep theirs).
    async fn halt(&self, name: &str, row: &DesiredRow, error: &str) {
        let why = format!("a hub could not start it: {error}");
        let result = store::change(self.database(), name, Also::Nothing, |now| {
            Ok::<_, Infallible>(match now {
                Some(now) if now.generation == row.generation && now.halted.is_none() => {
                    Change::Put(Box::new(DesiredRow {
                        halted: Some(why.clone()),
                        ..now.clone()
                    }))
                }
                _ => Change::Keep,
            })
        })
        .await;
        if let Err(e) = result {
            tracing::warn!(module = %name, "fleet: cannot stop the rolling upgrade of {name}: {e}");
        }
    }

    /// Bring every module in line with the fleet's state (at start, and after the listener's
    /// connection came back: notifications may have been lost), dependencies first. A hub
    /// switched to fleet mode first brings in the packages it had installed.
    pub async fn resync(&self) -> Result<(), String> {
        self.adopt_installed().await;
        let rows = store::desired_all(self.database())
            .await
            .map_err(|e| e.to_string())?;
        let manifests: BTreeMap<String, Manifest> = rows
            .iter()
            .filter_map(|r| {
                let text = serde_json::to_string(&r.manifest).ok()?;
                let path = self.folder(&r.name).join(manifest::FILE_NAME);
                Some((r.name.clone(), Manifest::parse(&path, &r.name, &text).ok()?))
            })
            .collect();
        let mut order = Graph::new(manifests.iter().map(|(n, m)| (n.as_str(), m))).start_order();
        order.extend(
            rows.iter()
                .map(|r| r.name.clone())
                .filter(|n| !manifests.contains_key(n)),
        );
        let fleet: HashSet<String> = rows.iter().map(|r| r.name.clone()).collect();
        for name in module_folders(&self.config.modules_dir).unwrap_or_default() {
            if fleet.contains(&name) {
                continue;
            }
            if read_marker(&self.folder(&name)).is_some() {
                order.push(name);
            } else {
                tracing::warn!(module = %name, "fleet: module {name} in MODULES_DIR is not part of the fleet and is not loaded: in fleet mode every hub runs what the fleet holds; install it as a package through any hub (POST /api/v1/packages)");
            }
        }
        for name in order {
            self.apply_desired(&name).await;
        }
        Ok(())
    }

    /// The packages installed in this hub's folders that the fleet does not have yet (and that
    /// `hub_packages` keeps) join it as they are.
    async fn adopt_installed(&self) {
        for name in module_folders(&self.config.modules_dir).unwrap_or_default() {
            let folder = self.folder(&name);
            let Some(marker) = read_marker(&folder) else {
                continue;
            };
            let Some(current) = std::fs::read_to_string(folder.join(manifest::FILE_NAME))
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            else {
                continue;
            };
            match store::adopt(
                self.database(),
                &name,
                &marker.version,
                &marker.sha256,
                &current,
                &marker.manifest,
            )
            .await
            {
                Ok(true) => {
                    tracing::info!(module = %name, "fleet: {name} {} joined the fleet as installed here", marker.version);
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(module = %name, "fleet: cannot bring {name} into the fleet: {e}")
                }
            }
        }
    }

    /// Fleet mode: files of module `name` changed on this machine. The fleet's state wins: the
    /// change is undone (its `module.json` written again as the fleet holds it), with a log line
    /// naming the API.
    pub(super) async fn refuse_file_change(&self, name: &str) {
        tracing::warn!(
            module = %name,
            "fleet: {name}'s files in MODULES_DIR changed on this machine; in fleet mode the fleet's state in PostgreSQL wins and the change is undone: change it through any hub's API: POST /api/v1/modules/{name}/enable or /disable, PUT /api/v1/modules/{name}/settings, /safety or /audience, POST /api/v1/packages"
        );
        self.apply_locked(name, Action::Reload).await;
    }

    /// Run module `name`'s pending migrations (its contract migrations, once every live hub
    /// serves its version), then tell the fleet they ran. The migrations applied now.
    pub async fn finish_migrations(&self, name: &str) -> Result<Vec<String>, ActionError> {
        let lock = self.lock_for(name);
        let _guard = lock.lock().await;
        let entry = self.get(name)?;
        let (Some(instance), Some(manifest)) = (entry.instance(), entry.manifest.as_ref()) else {
            return Err(ActionError::NotRunning(name.to_owned()));
        };
        let version = instance.info().version.clone();
        let applied = self
            .starter
            .finish(name, manifest, instance)
            .await
            .map_err(|e| ActionError::Migrations(e.to_string()))?;
        self.defer_contract(name, false);
        if self.in_fleet() {
            let Ok(_) = store::change(self.database(), name, Also::Nothing, |row| {
                Ok::<_, Infallible>(match row {
                    Some(row) if row.contract == "pending" && row.version == version => {
                        Change::Put(Box::new(DesiredRow {
                            contract: "done".to_owned(),
                            ..row.clone()
                        }))
                    }
                    _ => Change::Keep,
                })
            })
            .await
            .map_err(|e| ActionError::FleetUnavailable(e.to_string()))?;
        }
        Ok(applied)
    }

    /// The desired state of every module of the fleet.
    pub async fn desired_states(&self) -> Result<Vec<DesiredRow>, String> {
        store::desired_all(self.database())
            .await
            .map_err(|e| e.to_string())
    }
}
