//! The migration ledger as a module's status reads it: the rows of `module_migrations` for some
//! modules, and which of the relations their migrations created still exist. (Writing the ledger
//! is `migrate.rs`'s.)

use chrono::{DateTime, Utc};
use thiserror::Error;

use super::{Database, DbUnavailable};

/// One applied migration of one module.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub module: String,
    pub version: u32,
    pub name: String,
    pub checksum: String,
    pub applied_at: DateTime<Utc>,
    pub duration_ms: u32,
    /// The tables and views the migration created.
    pub relations: Vec<String>,
}

/// The ledger of some modules.
#[derive(Debug, Default)]
pub struct Ledger {
    pub rows: Vec<LedgerRow>,
    /// Which of the rows' relations exist now, with their sizes.
    pub present: Vec<RelationSize>,
}

/// A relation that exists, and how big it is.
#[derive(Debug, Clone)]
pub struct RelationSize {
    pub name: String,
    /// PostgreSQL's estimate of its rows (`pg_class.reltuples`); `None` before the table was
    /// first vacuumed or analyzed, and for views.
    pub rows_estimate: Option<i64>,
    /// Its size on disk with indexes and TOAST (`pg_total_relation_size`).
    pub bytes: i64,
}

#[derive(Debug, Error)]
pub enum LedgerError {
    #[error(transparent)]
    Unavailable(#[from] DbUnavailable),
    #[error("reading module_migrations failed: {0}")]
    Query(String),
}

/// The applied migrations of `modules`, by module and version, and which of their relations exist.
pub async fn read(db: &Database, modules: &[&str]) -> Result<Ledger, LedgerError> {
    let conn = db.hub_client().await?;
    let client = conn.client();
    let failed = |e: tokio_postgres::Error| LedgerError::Query(super::explain(&e));
    let rows = client
        .query(
            "SELECT module, version, name, checksum, applied_at, duration_ms, relations \
             FROM module_migrations WHERE module = ANY($1) ORDER BY module, version",
            &[&modules],
        )
        .await
        .map_err(failed)?;
    let rows: Vec<LedgerRow> = rows
        .iter()
        .map(|r| LedgerRow {
            module: r.get(0),
            version: r.get::<_, i32>(1) as u32,
            name: r.get(2),
            checksum: r.get(3),
            applied_at: r.get(4),
            duration_ms: r.get::<_, i32>(5) as u32,
            relations: r.get(6),
        })
        .collect();
    let relations: Vec<&str> = rows
        .iter()
        .flat_map(|r| r.relations.iter().map(String::as_str))
        .collect();
    let present = client
        .query(
            "SELECT c.relname::text, CASE WHEN c.reltuples >= 0 AND c.relkind <> 'v' \
             THEN c.reltuples::int8 END, pg_total_relation_size(c.oid) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = ANY($1) AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')",
            &[&relations],
        )
        .await
        .map_err(failed)?
        .iter()
        .map(|r| RelationSize {
            name: r.get(0),
            rows_estimate: r.get(1),
            bytes: r.get(2),
        })
        .collect();
    Ok(Ledger { rows, present })
}
