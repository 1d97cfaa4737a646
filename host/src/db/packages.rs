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
    keep_with(conn.client(), module, row, bytes).await
}

/// [`keep`] on `client` (a transaction's, say).
pub async fn keep_with(
    client: &impl tokio_postgres::GenericClient,
    module: &str,
    row: &PackageRow,
    bytes: &[u8],
) -> Result<(), StoreError> {
    client
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

/// Delete every kept version of `module`.
pub async fn delete_all(db: &Database, module: &str) -> Result<u64, StoreError> {
    let conn = db.hub_client().await?;
    Ok(conn
        .client()
        .execute("DELETE FROM hub_packages WHERE module = $1", &[&module])
        .await?)
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

/// What a module has in the database, as the uninstall preview lists it.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct ModuleObjects {
    /// Its tables, with their rows (counted) and size on disk.
    pub tables: Vec<TableObject>,
    /// Its other objects: views, sequences, functions, types (`kind name`).
    pub other_objects: Vec<String>,
    /// Its PostgreSQL roles (writer, reader); none before its first use of the database.
    pub roles: Vec<String>,
    /// What its roles were granted on other modules' objects (`SELECT on customers_items`).
    pub grants: Vec<String>,
}

/// One of a module's tables.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TableObject {
    pub name: String,
    pub rows: i64,
    /// With indexes and TOAST.
    pub bytes: i64,
}

/// The objects `module`'s roles own and what they were granted elsewhere.
pub async fn module_objects(db: &Database, module: &str) -> Result<ModuleObjects, StoreError> {
    let conn = db.hub_client().await?;
    let client = conn.client();
    let Some(row) = client
        .query_opt(
            "SELECT writer, reader FROM hub_module_roles WHERE module = $1",
            &[&module],
        )
        .await?
    else {
        return Ok(ModuleObjects::default());
    };
    let (writer, reader): (String, String) = (row.get(0), row.get(1));
    let mut objects = ModuleObjects {
        roles: vec![writer.clone(), reader.clone()],
        ..ModuleObjects::default()
    };
    let relations = client
        .query(
            "SELECT c.relkind::text, quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relname::text, \
                    pg_total_relation_size(c.oid) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relowner = (SELECT oid FROM pg_roles WHERE rolname = $1) \
               AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
             ORDER BY c.relname",
            &[&writer],
        )
        .await?;
    for row in &relations {
        let (kind, qualified, name, bytes): (String, String, String, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        match kind.as_str() {
            "r" | "p" => {
                let rows: i64 = client
                    .query_one(&format!("SELECT count(*) FROM {qualified}"), &[])
                    .await?
                    .get(0);
                objects.tables.push(TableObject { name, rows, bytes });
            }
            "v" => objects.other_objects.push(format!("view {name}")),
            "m" => objects
                .other_objects
                .push(format!("materialized view {name}")),
            "S" => objects.other_objects.push(format!("sequence {name}")),
            _ => objects.other_objects.push(format!("foreign table {name}")),
        }
    }
    for row in client
        .query(
            "SELECT 'function ' || p.proname::text FROM pg_proc p \
             WHERE p.proowner = (SELECT oid FROM pg_roles WHERE rolname = $1) \
             UNION ALL \
             SELECT 'type ' || t.typname::text FROM pg_type t \
             WHERE t.typowner = (SELECT oid FROM pg_roles WHERE rolname = $1) AND t.typtype IN ('e', 'd', 'r') \
             ORDER BY 1",
            &[&writer],
        )
        .await?
    {
        objects.other_objects.push(row.get(0));
    }
    for row in client
        .query(
            "SELECT string_agg(privilege_type, ', ' ORDER BY privilege_type) || ' on ' || table_name \
             FROM information_schema.role_table_grants \
             WHERE grantee IN ($1, $2) AND grantor NOT IN ($1, $2) \
               AND table_name NOT IN (SELECT c.relname FROM pg_class c \
                   WHERE c.relowner = (SELECT oid FROM pg_roles WHERE rolname = $1)) \
             GROUP BY grantee, table_name ORDER BY 1",
            &[&writer, &reader],
        )
        .await?
    {
        objects.grants.push(row.get(0));
    }
    Ok(objects)
}

/// Drop everything `module` has in the database, in one transaction: its objects (`DROP OWNED
/// BY` its roles, which also takes back their grants), its migration rows, its roles, its
/// jobs. The number of migration rows deleted.
pub async fn purge(db: &Database, module: &str) -> Result<u64, StoreError> {
    let mut conn = db.hub_client().await?;
    let tx = conn.client_mut().transaction().await?;
    let roles = tx
        .query_opt(
            "DELETE FROM hub_module_roles WHERE module = $1 RETURNING writer, reader",
            &[&module],
        )
        .await?;
    if let Some(row) = roles {
        let (writer, reader): (String, String) = (row.get(0), row.get(1));
        let (w, r) = (super::quote_ident(&writer), super::quote_ident(&reader));
        tx.batch_execute(&format!(
            // One role at a time: both at once trips over the writer's default privileges
            // that name the reader ("could not find tuple for default ACL").
            "DROP OWNED BY {w} CASCADE; DROP OWNED BY {r} CASCADE; DROP ROLE IF EXISTS {w}; DROP ROLE IF EXISTS {r}"
        ))
        .await?;
    }
    let migrations = tx
        .execute(
            "DELETE FROM module_migrations WHERE module = $1",
            &[&module],
        )
        .await?;
    tx.execute("DELETE FROM hub_jobs WHERE module = $1", &[&module])
        .await?;
    tx.commit().await?;
    db.roles.forget(module);
    Ok(migrations)
}
