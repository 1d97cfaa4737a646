//! Kept versions of installed module packages in PostgreSQL (`hub_packages`), with their bytes,
//! and the migrations a module has applied (what a rollback checks).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Database;
use super::identity::StoreError;

/// A kept version, without its bytes.
#[derive(Debug, Clone)]
pub struct PackageRow {
    pub version: String,
    pub sha256: String,
    pub size: i64,
    pub signer: Option<String>,
    pub installed_at: DateTime<Utc>,
    pub installed_by: String,
    pub migrations: Value,
}

/// Keep `row` of `module` with its `bytes` (installed again: its time and installer renewed).
pub async fn keep(
    db: &Database,
    module: &str,
    row: &PackageRow,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let conn = db.hub_client().await?;
    conn.client()
        .execute(
            "INSERT INTO hub_packages (module, version, sha256, size, signer, installed_at, installed_by, migrations, bytes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (module, version) DO UPDATE SET sha256 = EXCLUDED.sha256, size = EXCLUDED.size, \
             signer = EXCLUDED.signer, installed_at = EXCLUDED.installed_at, installed_by = EXCLUDED.installed_by, \
             migrations = EXCLUDED.migrations, bytes = EXCLUDED.bytes",
            &[
                &module,
                &row.version,
                &row.sha256,
                &row.size,
                &row.signer,
                &row.installed_at,
                &row.installed_by,
                &row.migrations,
                &bytes,
            ],
        )
        .await?;
    Ok(())
}

/// The kept versions of `module`, the last installed first.
pub async fn list(db: &Database, module: &str) -> Result<Vec<PackageRow>, StoreError> {
    let conn = db.hub_client().await?;
    let rows = conn
        .client()
        .query(
            "SELECT version, sha256, size, signer, installed_at, installed_by, migrations \
             FROM hub_packages WHERE module = $1 ORDER BY installed_at DESC, version DESC",
            &[&module],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| PackageRow {
            version: row.get(0),
            sha256: row.get(1),
            size: row.get(2),
            signer: row.get(3),
            installed_at: row.get(4),
            installed_by: row.get(5),
            migrations: row.get(6),
        })
        .collect())
}

/// The bytes of version `version` of `module`, if kept.
pub async fn bytes(
    db: &Database,
    module: &str,
    version: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let conn = db.hub_client().await?;
    let row = conn
        .client()
        .query_opt(
            "SELECT bytes FROM hub_packages WHERE module = $1 AND version = $2",
            &[&module, &version],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Delete the kept versions of `module` named in `versions`.
pub async fn delete(db: &Database, module: &str, versions: &[String]) -> Result<(), StoreError> {
    let conn = db.hub_client().await?;
    conn.client()
        .execute(
            "DELETE FROM hub_packages WHERE module = $1 AND version = ANY($2)",
            &[&module, &versions],
        )
        .await?;
    Ok(())
}

/// The migrations `module` has applied: (version, name).
pub async fn applied_migrations(
    db: &Database,
    module: &str,
) -> Result<Vec<(i32, String)>, StoreError> {
    let conn = db.hub_client().await?;
    let rows = conn
        .client()
        .query(
            "SELECT version, name FROM module_migrations WHERE module = $1 ORDER BY version",
            &[&module],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
