//! Where a module's installed versions are kept: with a database, in `hub_packages` (bytes and
//! all, so that another hub can install the same bytes); without one, in `MODULES_DIR/.packages/
//! <module>/` (a folder the hub owns: `<version>.hubpkg` and `<version>.json`).

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::db::Database;
use crate::db::packages::{self as rows, PackageRow};

/// A kept version, as `GET /api/v1/modules/{name}/versions` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeptVersion {
    pub version: String,
    /// SHA-256 of the package.
    pub sha256: String,
    pub size: u64,
    /// The id of the key that signed it (`null`: unsigned).
    pub signer: Option<String>,
    pub installed_at: DateTime<Utc>,
    /// Who installed it (`user:<id>`, `token:<id>`, `admin`).
    pub installed_by: String,
    /// The migrations this version declares.
    pub migrations: Vec<KnownMigration>,
}

/// A migration a version declares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KnownMigration {
    pub version: u32,
    pub name: String,
    /// Marked `-- hub: expand`: older versions keep working on its schema.
    pub expand: bool,
}

/// `kept` as its row in `hub_packages`.
pub fn row(kept: &KeptVersion) -> PackageRow {
    PackageRow {
        version: kept.version.clone(),
        sha256: kept.sha256.clone(),
        size: i64::try_from(kept.size).unwrap_or(i64::MAX),
        signer: kept.signer.clone(),
        installed_at: kept.installed_at,
        installed_by: kept.installed_by.clone(),
        migrations: serde_json::to_value(&kept.migrations).unwrap_or_default(),
    }
}

/// The kept versions of every module.
pub enum Store {
    Database(Arc<Database>),
    Folder(PathBuf),
}

impl Store {
    /// The store of a hub with `database` (if configured) and `modules_dir`.
    pub fn new(database: Arc<Database>, modules_dir: &std::path::Path) -> Store {
        if database.is_configured() {
            Store::Database(database)
        } else {
            Store::Folder(modules_dir.join(".packages"))
        }
    }

    /// Keep `kept` of `module` with the package's `bytes`.
    pub async fn keep(&self, module: &str, kept: &KeptVersion, bytes: &[u8]) -> Result<(), String> {
        match self {
            Store::Database(db) => rows::keep(db, module, &row(kept), bytes)
                .await
                .map_err(|e| e.to_string()),
            Store::Folder(root) => {
                let folder = root.join(module);
                let write = || -> std::io::Result<()> {
                    std::fs::create_dir_all(&folder)?;
                    write_atomically(
                        &folder.join(format!("{}.{}", kept.version, hub_package::EXTENSION)),
                        bytes,
                    )?;
                    write_atomically(
                        &folder.join(format!("{}.json", kept.version)),
                        &serde_json::to_vec_pretty(kept).unwrap_or_default(),
                    )
                };
                write().map_err(|e| format!("cannot keep it in {}: {e}", folder.display()))
            }
        }
    }

    /// The kept versions of `module`, the last installed first.
    pub async fn list(&self, module: &str) -> Result<Vec<KeptVersion>, String> {
        match self {
            Store::Database(db) => Ok(rows::list(db, module)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|row| KeptVersion {
                    version: row.version,
                    sha256: row.sha256,
                    size: u64::try_from(row.size).unwrap_or(0),
                    signer: row.signer,
                    installed_at: row.installed_at,
                    installed_by: row.installed_by,
                    migrations: serde_json::from_value(row.migrations).unwrap_or_default(),
                })
                .collect()),
            Store::Folder(root) => {
                let folder = root.join(module);
                let Ok(entries) = std::fs::read_dir(&folder) else {
                    return Ok(Vec::new());
                };
                let mut kept: Vec<KeptVersion> = entries
                    .flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
                    .collect();
                kept.sort_by(|a, b| {
                    (b.installed_at, &b.version).cmp(&(a.installed_at, &a.version))
                });
                Ok(kept)
            }
        }
    }

    /// The package of version `version` of `module`, if kept.
    pub async fn bytes(&self, module: &str, version: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            Store::Database(db) => rows::bytes(db, module, version)
                .await
                .map_err(|e| e.to_string()),
            Store::Folder(root) => {
                let path = root
                    .join(module)
                    .join(format!("{version}.{}", hub_package::EXTENSION));
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(format!("cannot read {}: {e}", path.display())),
                }
            }
        }
    }

    /// Delete the kept versions of `module` beyond the last `keep` installed, never `serving`;
    /// the versions deleted.
    pub async fn prune(
        &self,
        module: &str,
        keep: usize,
        serving: &str,
    ) -> Result<Vec<String>, String> {
        let kept = self.list(module).await?;
        let gone: Vec<String> = kept
            .iter()
            .skip(keep)
            .filter(|k| k.version != serving)
            .map(|k| k.version.clone())
            .collect();
        if gone.is_empty() {
            return Ok(gone);
        }
        match self {
            Store::Database(db) => rows::delete(db, module, &gone)
                .await
                .map_err(|e| e.to_string())?,
            Store::Folder(root) => {
                for version in &gone {
                    for extension in [hub_package::EXTENSION, "json"] {
                        let _ = std::fs::remove_file(
                            root.join(module).join(format!("{version}.{extension}")),
                        );
                    }
                }
            }
        }
        Ok(gone)
    }

    /// Delete every kept version of `module`.
    pub async fn remove_all(&self, module: &str) -> Result<(), String> {
        match self {
            Store::Database(db) => rows::delete_all(db, module)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Store::Folder(root) => match std::fs::remove_dir_all(root.join(module)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!(
                    "cannot delete {}: {e}",
                    root.join(module).display()
                )),
                _ => Ok(()),
            },
        }
    }

    /// What `module` has in the database (nothing without one).
    pub async fn objects(&self, module: &str) -> Result<rows::ModuleObjects, String> {
        match self {
            Store::Database(db) if db.is_ready() => rows::module_objects(db, module)
                .await
                .map_err(|e| e.to_string()),
            _ => Ok(rows::ModuleObjects::default()),
        }
    }

    /// Drop what `module` has in the database (see `db::packages::purge`): the migration rows
    /// deleted.
    pub async fn purge(&self, module: &str) -> Result<u64, String> {
        match self {
            Store::Database(db) => rows::purge(db, module).await.map_err(|e| e.to_string()),
            Store::Folder(_) => Ok(0),
        }
    }

    /// The migrations `module` has applied (version, name); none without a database.
    pub async fn applied_migrations(&self, module: &str) -> Result<Vec<(i32, String)>, String> {
        match self {
            Store::Database(db) => rows::applied_migrations(db, module)
                .await
                .map_err(|e| e.to_string()),
            Store::Folder(_) => Ok(Vec::new()),
        }
    }
}

/// Write `bytes` to a temporary file beside `path`, then rename it into place.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}
