//! Installing a module package and rolling back to a kept version. A package is checked whole
//! (`packages::check`) before anything is written; then, under the module's lock, it is unpacked
//! into `MODULES_DIR/.staging/`, the module's folder (if any) is moved aside, the staged one
//! renamed into place, and the module started through the start protocol of a reload
//! (migrations, health check, swap). If it does not run, the folder is put back and the old
//! version keeps serving; if it runs, the package is kept (`packages::store`) for rollbacks.
//!
//! The hub writes `.package.json` in every folder an install made: the version, the package's
//! hash and its own `module.json`, so that a later install knows the folder is its own and which
//! settings the operator changed since.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use super::{Action, ActionError, Hub};
use crate::manifest::{self, Manifest, is_module_folder};
use crate::packages::store::{KeptVersion, KnownMigration};
use crate::packages::{self, Package, PackageError, Rules};
use crate::registry::ModuleEntry;

/// The hub's record in a folder an install made.
const MARKER: &str = ".package.json";

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Marker {
    pub(super) version: String,
    pub(super) sha256: String,
    /// The package's own `module.json` (before the operator's settings were carried over).
    pub(super) manifest: Value,
}

/// What an install did.
pub struct Installed {
    pub entry: Arc<ModuleEntry>,
    /// `false`: this version, with these bytes, was installed already.
    pub changed: bool,
    pub version: String,
    pub signer: Option<String>,
    /// Fleet mode: how the fleet applies it (`None` outside fleet mode, or nothing changed).
    pub rollout: Option<Rollout>,
}

/// How the fleet applies an installed version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rollout {
    /// `all` (every hub at once) or `rolling` (one hub at a time).
    pub mode: &'static str,
    /// Why it is not the mode asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its contract migrations (not marked expand), waiting until every live hub serves it.
    pub contract_pending: Vec<String>,
}

/// Why an install or a rollback did not happen; nothing was changed.
#[derive(Debug, Error)]
pub enum InstallError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(
        "version {version} of module '{name}' is installed with other contents: give the new build a new version"
    )]
    VersionConflict { name: String, version: String },
    #[error("module '{name}' in MODULES_DIR was not installed from a package (its folder holds {}): move those files away, or install under another name", .files.join(", "))]
    NotFromPackage { name: String, files: Vec<String> },
    #[error("module '{name}' {version} did not start: {error}; {}", match .serving { Some(v) => format!("version {v} keeps serving"), None => "nothing was installed".to_owned() })]
    StartFailed {
        name: String,
        version: String,
        error: String,
        serving: Option<String>,
    },
    #[error("module '{name}' has no kept version before {serving}: nothing to roll back to")]
    NoPrevious { name: String, serving: String },
    #[error(
        "module '{name}' has no kept version {version} (GET /api/v1/modules/{name}/versions lists them)"
    )]
    NotKept { name: String, version: String },
    #[error("module '{name}' {version} does not know migrations {} that a newer version applied and that are not marked expand: it may not work on that schema", .migrations.join(", "))]
    MigrationsAhead {
        name: String,
        version: String,
        migrations: Vec<String>,
    },
    #[error("the kept versions cannot be read or written: {0}")]
    Store(String),
    #[error("no catalog offers module '{name}'{}: GET /api/v1/catalog lists what they offer", match .version { Some(v) => format!(" version {v}"), None => " in a version this hub can run".to_owned() })]
    NotInCatalog {
        name: String,
        version: Option<String>,
    },
    #[error("the catalog cannot be read: {0}")]
    CatalogUnavailable(String),
    #[error("{0}: the catalog or the package was changed; nothing was installed")]
    CatalogHash(String),
    #[error("cannot write module '{name}' in MODULES_DIR: {error}")]
    Io { name: String, error: String },
    #[error(transparent)]
    Action(#[from] ActionError),
}

impl Hub {
    /// Install `bytes` (a package) for the caller named `by`.
    pub async fn install_package(
        &self,
        bytes: Vec<u8>,
        by: &str,
    ) -> Result<Installed, InstallError> {
        self.install_package_rolling(bytes, by, None).await
    }

    /// [`Hub::install_package`]; in fleet mode `rolling` chooses how the fleet applies it
    /// (default: `HUB_FLEET_ROLLOUT`).
    pub async fn install_package_rolling(
        &self,
        bytes: Vec<u8>,
        by: &str,
        rolling: Option<bool>,
    ) -> Result<Installed, InstallError> {
        if !self.config.modules_enabled {
            return Err(ActionError::ModulesOff.into());
        }
        let installed: BTreeMap<String, String> = self
            .registry
            .all()
            .values()
            .filter_map(|e| Some((e.name.clone(), e.manifest.as_ref()?.version.clone())))
            .collect();
        let bytes: Arc<[u8]> = bytes.into();
        let (trusted, allow_unsigned, max_bytes) = (
            self.config.trusted_keys.clone(),
            self.config.allow_unsigned_packages,
            self.config.package_max_bytes,
        );
        let checked = {
            let bytes = bytes.clone();
            tokio::task::spawn_blocking(move || {
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
            .map_err(|e| InstallError::Io {
                name: String::new(),
                error: e.to_string(),
            })??
        };
        let rolling = rolling.unwrap_or(self.config.fleet_rolling);
        self.install_checked(checked, &bytes, by, rolling).await
    }

    async fn install_checked(
        &self,
        package: Package,
        bytes: &[u8],
        by: &str,
        rolling: bool,
    ) -> Result<Installed, InstallError> {
        let name = package.info.name.clone();
        let version = package.info.version.clone();
        // Fleet mode: an upgrade of a module that serves here defers its contract migrations,
        // and a rolling one waits for the module's turn first.
        let upgrade = self.in_fleet()
            && self
                .registry
                .get(&name)
                .and_then(|e| e.instance().map(|i| i.info().version != version))
                .unwrap_or(false);
        let turn = match upgrade && rolling {
            true => Some(self.take_turn(&name).await?),
            false => None,
        };
        let lock = self.lock_for(&name);
        let _guard = lock.lock().await;
        let folder = self.folder(&name);
        let marker = read_marker(&folder);
        let current: Option<Value> = std::fs::read_to_string(folder.join(manifest::FILE_NAME))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok());
        if is_module_folder(&folder) {
            match &marker {
                Some(marker) if marker.version == version => {
                    if marker.sha256 == package.sha256 {
                        let entry = self.get(&name)?;
                        return Ok(Installed {
                            entry,
                            changed: false,
                            version,
                            signer: package.signer,
                            rollout: None,
                        });
                    }
                    return Err(InstallError::VersionConflict { name, version });
                }
                Some(_) => {}
                None => {
                    let ours = not_from_package(&folder, current.as_ref());
                    if !ours.is_empty() {
                        return Err(InstallError::NotFromPackage { name, files: ours });
                    }
                }
            }
        }
        let text = merged_manifest(
            &package.manifest_text,
            current.as_ref(),
            marker.as_ref().map(|m| &m.manifest),
        );
        self.defer_contract(&name, upgrade);
        let entry = self.swap_in(&name, &package, &text).await?;
        let migrations = entry
            .instance()
            .map(|i| {
                i.migrations()
                    .iter()
                    .map(|m| KnownMigration {
                        version: m.version,
                        name: m.name.clone(),
                        expand: m.expands(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let kept = KeptVersion {
            version: version.clone(),
            sha256: package.sha256.clone(),
            size: bytes.len() as u64,
            signer: package.signer.clone(),
            installed_at: chrono::Utc::now(),
            installed_by: by.to_owned(),
            migrations,
        };
        let rollout = match self.in_fleet() {
            true => Some(
                self.join_fleet(&entry, &package, &text, &kept, bytes, rolling, turn)
                    .await?,
            ),
            false => {
                if let Err(e) = self.packages.keep(&name, &kept, bytes).await {
                    tracing::warn!(module = %name, "{name} {version} is installed but not kept for rollbacks: {e}");
                }
                None
            }
        };
        let keep = self.config.package_versions_kept as usize;
        match self.packages.prune(&name, keep, &version).await {
            Ok(gone) if !gone.is_empty() => {
                tracing::info!(module = %name, "kept versions beyond the last {keep} deleted: {}", gone.join(", "));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(module = %name, "cannot delete old kept versions: {e}"),
        }
        Ok(Installed {
            entry,
            changed: true,
            version,
            signer: package.signer,
            rollout,
        })
    }

    /// Under the module's lock: unpack `package` with `manifest` (the `module.json` to write) in
    /// `MODULES_DIR/.staging`, swap it for the module's folder and start it. If the version does
    /// not run, the folder is put back as it was (the old version keeps serving) and the error
    /// says why.
    pub(super) async fn swap_in(
        &self,
        name: &str,
        package: &Package,
        manifest: &str,
    ) -> Result<Arc<ModuleEntry>, InstallError> {
        let version = &package.info.version;
        let folder = self.folder(name);
        let io = |error: std::io::Error| InstallError::Io {
            name: name.to_owned(),
            error: error.to_string(),
        };
        let root = self.config.modules_dir.join(".staging");
        let stamp = format!(
            "{name}-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        let staged = root.join(&stamp);
        write_folder(&staged, package, manifest).map_err(io)?;
        let previous = folder
            .exists()
            .then(|| root.join(format!("{stamp}.previous")));
        if let Some(previous) = &previous {
            std::fs::rename(&folder, previous).map_err(io)?;
        }
        if let Err(e) = std::fs::rename(&staged, &folder) {
            if let Some(previous) = &previous {
                let _ = std::fs::rename(previous, &folder);
            }
            let _ = std::fs::remove_dir_all(&staged);
            return Err(io(e));
        }
        let serving_before = self
            .registry
            .get(name)
            .and_then(|e| e.instance().map(|i| i.info().version.clone()));
        let result = self.converge(name, Action::Reload, None).await;
        // Started, or disabled as its module.json says (an upgrade of a disabled module).
        let runs = |entry: &ModuleEntry| match entry.instance() {
            Some(instance) => &instance.info().version == version,
            None => {
                matches!(entry.state, crate::registry::ModuleState::Disabled { .. })
                    && entry
                        .manifest
                        .as_ref()
                        .is_some_and(|m| &m.version == version)
            }
        };
        match result {
            Ok(entry) if runs(&entry) => {
                if let Some(previous) = &previous {
                    let _ = std::fs::remove_dir_all(previous);
                }
                Ok(entry)
            }
            other => {
                let error = match &other {
                    Ok(entry) => entry
                        .state
                        .error()
                        .map(ToString::to_string)
                        .unwrap_or_else(|| format!("it is {}", entry.kind().as_str())),
                    Err(e) => e.to_string(),
                };
                // Put the folder back as it was: the old version keeps serving from it.
                let failed = root.join(format!("{stamp}.failed"));
                let _ = std::fs::rename(&folder, &failed);
                match &previous {
                    Some(previous) => {
                        let _ = std::fs::rename(previous, &folder);
                    }
                    None => self.forget(name),
                }
                let _ = std::fs::remove_dir_all(&failed);
                Err(InstallError::StartFailed {
                    name: name.to_owned(),
                    version: version.clone(),
                    error,
                    serving: serving_before,
                })
            }
        }
    }

    /// The kept versions of `name`, the last installed first.
    pub async fn kept_versions(&self, name: &str) -> Result<Vec<KeptVersion>, InstallError> {
        self.packages.list(name).await.map_err(InstallError::Store)
    }

    /// Make the kept version `to` of `name` serve again (default: the highest kept version
    /// below the serving one), for the caller named `by`: the version it left, and the install.
    pub async fn rollback(
        &self,
        name: &str,
        to: Option<&str>,
        by: &str,
    ) -> Result<(String, Installed), InstallError> {
        let entry = self.get(name)?;
        let serving = entry
            .instance()
            .map(|i| i.info().version.clone())
            .or_else(|| entry.manifest.as_ref().map(|m| m.version.clone()))
            .unwrap_or_default();
        let kept = self.kept_versions(name).await?;
        let target =
            match to {
                Some(version) => kept.iter().find(|k| k.version == version).ok_or_else(|| {
                    InstallError::NotKept {
                        name: name.to_owned(),
                        version: version.to_owned(),
                    }
                })?,
                // The highest kept version below the serving one: a rollback always goes down.
                None => {
                    let below = semver::Version::parse(&serving).ok();
                    kept.iter()
                        .filter_map(|k| Some((semver::Version::parse(&k.version).ok()?, k)))
                        .filter(|(version, _)| below.as_ref().is_some_and(|b| version < b))
                        .max_by(|a, b| a.0.cmp(&b.0))
                        .map(|(_, k)| k)
                        .ok_or_else(|| InstallError::NoPrevious {
                            name: name.to_owned(),
                            serving: serving.clone(),
                        })?
                }
            };
        let known: BTreeSet<u32> = target.migrations.iter().map(|m| m.version).collect();
        let applied = self
            .packages
            .applied_migrations(name)
            .await
            .map_err(InstallError::Store)?;
        let blocking: Vec<String> = applied
            .iter()
            .filter(|(version, _)| !known.contains(&(*version as u32)))
            .filter(|(version, _)| {
                !kept
                    .iter()
                    .flat_map(|k| &k.migrations)
                    .any(|m| m.version == *version as u32 && m.expand)
            })
            .map(|(version, name)| format!("{version:04} {name}"))
            .collect();
        if !blocking.is_empty() {
            return Err(InstallError::MigrationsAhead {
                name: name.to_owned(),
                version: target.version.clone(),
                migrations: blocking,
            });
        }
        let bytes = self
            .packages
            .bytes(name, &target.version)
            .await
            .map_err(InstallError::Store)?
            .ok_or_else(|| InstallError::NotKept {
                name: name.to_owned(),
                version: target.version.clone(),
            })?;
        let installed = self.install_package(bytes, by).await?;
        Ok((serving, installed))
    }
}

impl Hub {
    /// The modules installed here: name → version.
    fn installed_versions(&self) -> BTreeMap<String, String> {
        self.registry
            .all()
            .values()
            .filter_map(|e| Some((e.name.clone(), e.manifest.as_ref()?.version.clone())))
            .collect()
    }

    /// What the catalogs of `HUB_CATALOGS` offer, as this hub sees it; and each catalog's error.
    pub async fn catalog(&self) -> (Vec<crate::packages::catalog::Offer>, Vec<(String, String)>) {
        let read = crate::packages::catalog::read_all(&self.config.catalogs).await;
        let errors = read
            .iter()
            .filter_map(|r| Some((r.location.describe(), r.catalog.as_ref().err()?.clone())))
            .collect();
        (
            crate::packages::catalog::offers(&read, &self.installed_versions()),
            errors,
        )
    }

    /// Install `version` (default: the newest it can run) of `name` from the catalogs, with its
    /// dependencies first when `with_dependencies` (each the newest version its range allows).
    /// Every package is checked against the SHA-256 its index lists, then installed as
    /// `install_package` does (its signature checked). The installs, in order.
    pub async fn install_from_catalog(
        &self,
        name: &str,
        version: Option<&str>,
        with_dependencies: bool,
        by: &str,
    ) -> Result<Vec<Installed>, InstallError> {
        use crate::packages::catalog::{self, FetchError};
        let read = catalog::read_all(&self.config.catalogs).await;
        if let Some(error) = read.iter().find_map(|r| r.catalog.as_ref().err())
            && read.iter().all(|r| r.catalog.is_err())
        {
            return Err(InstallError::CatalogUnavailable(error.clone()));
        }
        let installed = self.installed_versions();
        let (location, wanted) =
            catalog::find(&read, name, version, &installed).ok_or_else(|| {
                InstallError::NotInCatalog {
                    name: name.to_owned(),
                    version: version.map(str::to_owned),
                }
            })?;
        // The plan: dependencies first (depth first), each once, those not satisfied here.
        let mut plan: Vec<(&catalog::Location, &hub_package::CatalogVersion, String)> = Vec::new();
        if with_dependencies {
            let mut stack: Vec<(String, String)> = wanted
                .dependencies
                .iter()
                .map(|(d, r)| (d.clone(), r.clone()))
                .collect();
            let mut seen = BTreeSet::new();
            while let Some((dependency, range)) = stack.pop() {
                if !seen.insert(dependency.clone())
                    || installed
                        .get(&dependency)
                        .is_some_and(|v| crate::deps::satisfies(v, &range))
                {
                    continue;
                }
                let (at, found) =
                    catalog::newest_matching(&read, &dependency, &range).ok_or_else(|| {
                        InstallError::NotInCatalog {
                            name: dependency.clone(),
                            version: Some(range.clone()),
                        }
                    })?;
                plan.insert(0, (at, found, dependency.clone()));
                stack.extend(
                    found
                        .dependencies
                        .iter()
                        .map(|(d, r)| (d.clone(), r.clone())),
                );
            }
        }
        plan.push((location, wanted, name.to_owned()));
        let mut done = Vec::new();
        for (at, found, _) in plan {
            let bytes = catalog::fetch(at, found, self.config.package_max_bytes)
                .await
                .map_err(|e| match e {
                    FetchError::Unavailable(e) => InstallError::CatalogUnavailable(e),
                    FetchError::Hash(e) => InstallError::CatalogHash(e),
                })?;
            done.push(self.install_package(bytes, by).await?);
        }
        Ok(done)
    }
}

/// What uninstalling a module takes with it, and what stops it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UninstallPreview {
    pub module: String,
    /// The version that serves (`null`: none runs).
    pub version: Option<String>,
    /// The files of its folder in MODULES_DIR.
    pub files: Vec<String>,
    /// Its kept versions (deleted with it).
    pub kept_versions: Vec<String>,
    /// Its rows in `module_migrations` (`0001 init`; deleted by a purge).
    pub migrations: Vec<String>,
    /// What it has in the database (dropped by a purge).
    #[serde(flatten)]
    pub objects: crate::db::packages::ModuleObjects,
    /// Modules that need it: while there are any, it stays.
    pub dependents: Vec<String>,
    /// Files of its folder that no package holds (a source crate): while they are there, it
    /// stays (uninstall removes only what an install put there).
    pub foreign_files: Vec<String>,
}

impl Hub {
    /// What uninstalling `name` would remove, and what stops it.
    pub async fn uninstall_preview(&self, name: &str) -> Result<UninstallPreview, InstallError> {
        let entry = self.get(name)?;
        let folder = self.folder(name);
        let current: Option<Value> = std::fs::read_to_string(folder.join(manifest::FILE_NAME))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok());
        let mut files: Vec<String> = std::fs::read_dir(&folder)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        let foreign_files = not_from_package(&folder, current.as_ref())
            .into_iter()
            .filter(|f| f != MARKER)
            .collect();
        let mut dependents: Vec<String> = self
            .registry
            .all()
            .values()
            .filter(|e| {
                e.manifest
                    .as_ref()
                    .is_some_and(|m| m.dependencies.contains_key(name))
            })
            .map(|e| e.name.clone())
            .collect();
        dependents.sort();
        let kept_versions = self
            .kept_versions(name)
            .await?
            .into_iter()
            .map(|k| k.version)
            .collect();
        let migrations = self
            .packages
            .applied_migrations(name)
            .await
            .map_err(InstallError::Store)?
            .into_iter()
            .map(|(version, migration)| format!("{version:04} {migration}"))
            .collect();
        let objects = self
            .packages
            .objects(name)
            .await
            .map_err(InstallError::Store)?;
        Ok(UninstallPreview {
            module: name.to_owned(),
            version: entry.instance().map(|i| i.info().version.clone()),
            files,
            kept_versions,
            migrations,
            objects,
            dependents,
            foreign_files,
        })
    }

    /// Remove module `name`: its folder and its kept versions, and with `purge` what it has in
    /// the database (one transaction). The preview as checked again just before, and the
    /// migration rows a purge deleted.
    pub async fn uninstall(
        &self,
        name: &str,
        purge: bool,
    ) -> Result<(UninstallPreview, u64), InstallError> {
        let lock = self.lock_for(name);
        let _guard = lock.lock().await;
        let preview = self.uninstall_preview(name).await?;
        if !preview.dependents.is_empty() {
            return Err(ActionError::HasDependents {
                name: name.to_owned(),
                dependents: preview.dependents.clone(),
            }
            .into());
        }
        if !preview.foreign_files.is_empty() {
            return Err(InstallError::NotFromPackage {
                name: name.to_owned(),
                files: preview.foreign_files.clone(),
            });
        }
        let folder = self.folder(name);
        let io = |error: std::io::Error| InstallError::Io {
            name: name.to_owned(),
            error: error.to_string(),
        };
        if self.in_fleet() {
            // The fleet forgets it (and its kept versions) first: every hub removes it.
            self.leave_fleet(name).await?;
        }
        let root = self.config.modules_dir.join(".staging");
        std::fs::create_dir_all(&root).map_err(io)?;
        let gone = root.join(format!(
            "{name}-{}-{}.uninstalled",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::rename(&folder, &gone).map_err(io)?;
        // Its folder is gone: the module stops serving and is forgotten.
        let _ = self.converge(name, Action::Reload, None).await;
        let _ = std::fs::remove_dir_all(&gone);
        if !self.in_fleet() {
            self.packages
                .remove_all(name)
                .await
                .map_err(InstallError::Store)?;
        }
        let purged = if purge {
            self.packages
                .purge(name)
                .await
                .map_err(InstallError::Store)?
        } else {
            0
        };
        Ok((preview, purged))
    }
}

/// The hub's record in `folder`, if an install made it.
pub(super) fn read_marker(folder: &Path) -> Option<Marker> {
    let text = std::fs::read_to_string(folder.join(MARKER)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The files of `folder` a package would not hold (a source crate, say): an install must not
/// replace them.
pub(super) fn not_from_package(folder: &Path, current: Option<&Value>) -> Vec<String> {
    let library = current
        .and_then(|m| m["library"].as_str().map(str::to_owned))
        .or_else(|| {
            let name = current?["name"].as_str()?.to_owned();
            Some(format!(
                "{}{name}{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            ))
        })
        .unwrap_or_default();
    let mut extra: Vec<String> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| {
                    f != manifest::FILE_NAME && *f != library && f != "README.md" && f != MARKER
                })
                .collect()
        })
        .unwrap_or_default();
    extra.sort();
    extra
}

/// The `module.json` to write: the package's, with what the operator set on the installed
/// version carried over — `enabled`, `safety` and `audience`, and each setting whose value
/// differs from what the previous package shipped. A first install is enabled.
pub(super) fn merged_manifest(
    package: &str,
    current: Option<&Value>,
    shipped: Option<&Value>,
) -> String {
    let Ok(Value::Object(mut new)) = serde_json::from_str::<Value>(package) else {
        return package.to_owned();
    };
    match current {
        None => {
            new.insert("enabled".to_owned(), Value::Bool(true));
        }
        Some(current) => {
            for key in ["enabled", "safety", "audience"] {
                if let Some(value) = current.get(key) {
                    new.insert(key.to_owned(), value.clone());
                }
            }
            if let (Some(theirs), Some(Value::Object(config))) =
                (current["config"].as_object(), new.get_mut("config"))
            {
                for (key, value) in theirs {
                    let default = shipped.and_then(|s| s["config"].get(key));
                    if config.contains_key(key) && default != Some(value) {
                        config.insert(key.clone(), value.clone());
                    }
                }
            }
        }
    }
    let mut text = serde_json::to_string_pretty(&Value::Object(new)).unwrap_or_default();
    text.push('\n');
    text
}

/// Write the module's files, its merged `module.json` and the hub's record into `folder`.
fn write_folder(folder: &Path, package: &Package, manifest: &str) -> std::io::Result<()> {
    // The merged manifest must still be a valid one.
    Manifest::parse(
        &Path::new(&package.info.name).join(manifest::FILE_NAME),
        &package.info.name,
        manifest,
    )
    .map_err(|e| std::io::Error::other(e.to_string()))?;
    std::fs::create_dir_all(folder)?;
    for (path, bytes) in &package.files {
        if path == manifest::FILE_NAME {
            continue;
        }
        std::fs::write(folder.join(path), bytes)?;
    }
    std::fs::write(folder.join(manifest::FILE_NAME), manifest)?;
    let marker = Marker {
        version: package.info.version.clone(),
        sha256: package.sha256.clone(),
        manifest: serde_json::from_str(&package.manifest_text).unwrap_or(Value::Null),
    };
    std::fs::write(
        folder.join(MARKER),
        serde_json::to_vec_pretty(&marker).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_upgrade_keeps_what_the_operator_set() {
        let package = r#"{"name": "x", "version": "2.0.0", "enabled": false, "config": {"page_size": 50, "title": "X", "new": 1}}"#;
        let shipped =
            json!({"name": "x", "version": "1.0.0", "config": {"page_size": 50, "title": "X"}});
        let current = json!({"name": "x", "version": "1.0.0", "enabled": true, "safety": {"read_only": false},
            "config": {"page_size": 20, "title": "X", "gone": true}});
        let merged: Value =
            serde_json::from_str(&merged_manifest(package, Some(&current), Some(&shipped)))
                .unwrap();
        assert_eq!(
            merged,
            json!({"name": "x", "version": "2.0.0", "enabled": true, "safety": {"read_only": false},
                "config": {"page_size": 20, "title": "X", "new": 1}})
        );
        let fresh: Value = serde_json::from_str(&merged_manifest(package, None, None)).unwrap();
        assert_eq!(fresh["enabled"], true);
    }
}
