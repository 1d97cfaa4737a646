//! Applying migrations, the hub's own (`migrations/`, recorded as module `hub`) and each
//! module's (compiled into its library).
//!
//! Each pending migration runs in a transaction of its own that first takes a transaction-level
//! advisory lock for the module and then reads `module_migrations` again, so several hubs
//! starting at once apply each migration exactly once. Before commit, the module's migrations
//! pass the prefix check: every catalog row the transaction created or changed (`xmin` = this
//! transaction), every relation that disappeared, and every table whose rows it wrote, must
//! belong to the module's table prefix. Success is recorded with a SHA-256 checksum; an applied
//! migration whose SQL changed is refused; any failure rolls everything back.

use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio_postgres::{Client, Transaction};

use super::statement;

/// One migration as the hub applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationSpec {
    pub version: u32,
    pub name: String,
    pub sql: String,
}

impl MigrationSpec {
    pub fn checksum(&self) -> String {
        hex(&Sha256::digest(self.sql.as_bytes()))
    }

    /// `001_init`, as messages name it.
    pub fn label(&self) -> String {
        format!("{:03}_{}", self.version, self.name)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hub's own migrations, in order.
pub fn host_migrations() -> Vec<MigrationSpec> {
    vec![MigrationSpec {
        version: 1,
        name: "module_migrations".to_owned(),
        sql: include_str!("../../../migrations/0001_module_migrations.sql").to_owned(),
    }]
}

/// Why a module's migrations were not (all) applied. Messages name the module and migration.
#[derive(Debug, Error)]
pub enum MigrationError {
    #[error(
        "migrations of module '{module}' are not in order: version {version} ({name}) follows version {previous}; number them 1, 2, 3, …"
    )]
    Order {
        module: String,
        version: u32,
        name: String,
        previous: u32,
    },
    #[error(
        "migration {label} of module '{module}' was applied with checksum {applied} but its SQL now has checksum {now}: an applied migration must not change; add a new migration instead"
    )]
    Changed {
        module: String,
        label: String,
        applied: String,
        now: String,
    },
    #[error("migration {label} of module '{module}' failed and was rolled back: {error}")]
    Failed {
        module: String,
        label: String,
        error: String,
    },
    #[error(
        "migration {label} of module '{module}' was refused and rolled back: {violations}; a module's objects must start with its table prefix '{prefix}'"
    )]
    Prefix {
        module: String,
        label: String,
        prefix: String,
        violations: String,
    },
    #[error(
        "migration {label} of module '{module}' was refused: it contains {keyword}, but each migration already runs in a transaction of its own"
    )]
    TransactionControl {
        module: String,
        label: String,
        keyword: String,
    },
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

/// What was applied now.
#[derive(Debug, Default, Serialize)]
pub struct Applied {
    pub versions: Vec<u32>,
}

/// The advisory lock namespace of migrations (`pg_advisory_xact_lock(int4, int4)`'s first key).
const LOCK_NAMESPACE: i32 = 0x484d_4d47; // "HMMG"

/// Apply the pending `migrations` of `module`. `prefix` is the module's table prefix, or `None`
/// for the hub's own migrations (no prefix check).
pub async fn apply_pending(
    client: &mut Client,
    module: &str,
    prefix: Option<&str>,
    migrations: &[MigrationSpec],
) -> Result<Applied, MigrationError> {
    let mut previous = 0;
    for m in migrations {
        if m.version <= previous {
            return Err(MigrationError::Order {
                module: module.to_owned(),
                version: m.version,
                name: m.name.clone(),
                previous,
            });
        }
        previous = m.version;
        if let Some(keyword) = statement::split(&m.sql)
            .into_iter()
            .find(|s| statement::ends_transaction(s))
            .and_then(statement::first_keyword)
        {
            return Err(MigrationError::TransactionControl {
                module: module.to_owned(),
                label: m.label(),
                keyword,
            });
        }
    }
    // Without a lock first: when everything is applied already, no lock is taken.
    let applied = applied_checksums(client, module).await?;
    let mut report = Applied::default();
    for m in migrations {
        if let Some(checksum) = applied
            .iter()
            .find(|(v, _)| *v == m.version)
            .map(|(_, c)| c)
        {
            check_unchanged(module, m, checksum)?;
            continue;
        }
        if apply_one(client, module, prefix, m).await? {
            report.versions.push(m.version);
        }
    }
    Ok(report)
}

fn check_unchanged(module: &str, m: &MigrationSpec, applied: &str) -> Result<(), MigrationError> {
    let now = m.checksum();
    if applied == now {
        Ok(())
    } else {
        Err(MigrationError::Changed {
            module: module.to_owned(),
            label: m.label(),
            applied: applied.to_owned(),
            now,
        })
    }
}

fn unavailable(e: tokio_postgres::Error) -> MigrationError {
    MigrationError::Unavailable(super::explain(&e))
}

/// (version, checksum) of the module's applied migrations; none when the table does not exist.
async fn applied_checksums(
    client: &Client,
    module: &str,
) -> Result<Vec<(u32, String)>, MigrationError> {
    let exists = client
        .query_one("SELECT to_regclass('module_migrations') IS NOT NULL", &[])
        .await
        .map_err(unavailable)?
        .get::<_, bool>(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT version, checksum FROM module_migrations WHERE module = $1",
            &[&module],
        )
        .await
        .map_err(unavailable)?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, String>(1)))
        .collect())
}

/// Apply one migration in a transaction of its own; `false` when another hub applied it first.
async fn apply_one(
    client: &mut Client,
    module: &str,
    prefix: Option<&str>,
    m: &MigrationSpec,
) -> Result<bool, MigrationError> {
    let tx = client.transaction().await.map_err(unavailable)?;
    // Pooled connections carry the modules' default statement_timeout; a migration may be long.
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .await
        .map_err(unavailable)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&LOCK_NAMESPACE, &module],
    )
    .await
    .map_err(unavailable)?;
    // Another hub may have applied it while we waited for the lock.
    if let Some((_, checksum)) = applied_checksums_in(&tx, module, m.version).await? {
        check_unchanged(module, m, &checksum)?;
        return Ok(false);
    }
    let before = match prefix {
        Some(_) => Snapshot {
            relations: relations(&tx).await?,
            written: written(&tx).await?,
        },
        None => Snapshot::default(),
    };
    let started = Instant::now();
    let failed = |error: String| MigrationError::Failed {
        module: module.to_owned(),
        label: m.label(),
        error,
    };
    tx.batch_execute(&m.sql)
        .await
        .map_err(|e| failed(super::explain(&e)))?;
    let created = match prefix {
        Some(prefix) => objects_outside_prefix(&tx, module, prefix, m, &before).await?,
        None => Vec::new(),
    };
    let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    tx.execute(
        "INSERT INTO module_migrations (module, version, name, checksum, duration_ms, relations) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &module,
            &(m.version as i32),
            &m.name,
            &m.checksum(),
            &duration_ms,
            &created,
        ],
    )
    .await
    .map_err(|e| failed(super::explain(&e)))?;
    tx.commit().await.map_err(|e| failed(super::explain(&e)))?;
    Ok(true)
}

async fn applied_checksums_in(
    tx: &Transaction<'_>,
    module: &str,
    version: u32,
) -> Result<Option<(u32, String)>, MigrationError> {
    let exists = tx
        .query_one("SELECT to_regclass('module_migrations') IS NOT NULL", &[])
        .await
        .map_err(unavailable)?
        .get::<_, bool>(0);
    if !exists {
        return Ok(None);
    }
    let row = tx
        .query_opt(
            "SELECT checksum FROM module_migrations WHERE module = $1 AND version = $2",
            &[&module, &(version as i32)],
        )
        .await
        .map_err(unavailable)?;
    Ok(row.map(|r| (version, r.get(0))))
}

/// What the prefix check compares against: the state before the migration ran.
#[derive(Default)]
struct Snapshot {
    /// (oid, name) of every relation outside the system schemas.
    relations: Vec<(u32, String)>,
    /// (table, rows written) as the session counts them.
    written: Vec<(String, i64)>,
}

/// Every relation outside the system schemas: (oid, name).
async fn relations(tx: &Transaction<'_>) -> Result<Vec<(u32, String)>, MigrationError> {
    let rows = tx
        .query(
            "SELECT c.oid, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
               AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'",
            &[],
        )
        .await
        .map_err(unavailable)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// What this transaction touched that does not belong to `prefix`; the relations (tables, views)
/// it created when everything belongs.
async fn objects_outside_prefix(
    tx: &Transaction<'_>,
    module: &str,
    prefix: &str,
    m: &MigrationSpec,
    before: &Snapshot,
) -> Result<Vec<String>, MigrationError> {
    let (relations_before, written_before) = (&before.relations, &before.written); // (kind, name of the object, name that must carry the prefix)
    let touched = tx
        .query(PREFIX_CHECK, &[])
        .await
        .map_err(|e| MigrationError::Failed {
            module: module.to_owned(),
            label: m.label(),
            error: format!("the prefix check could not run: {}", super::explain(&e)),
        })?;
    let mut violations = Vec::new();
    let mut created = Vec::new();
    for row in &touched {
        let (kind, object, owner): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        if !owner.starts_with(prefix) {
            violations.push(if object == owner {
                format!("it creates or changes {kind} '{object}'")
            } else {
                format!("it creates or changes {kind} '{object}' of '{owner}'")
            });
        } else if kind == "table" || kind == "view" {
            created.push(object);
        }
    }
    for (table, count) in written(tx).await? {
        let earlier = written_before
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, c)| *c);
        if count > earlier && !table.starts_with(prefix) {
            violations.push(format!("it writes rows of table '{table}'"));
        }
    }
    let after = relations(tx).await?;
    for (oid, name) in relations_before {
        if !after.iter().any(|(o, _)| o == oid) && !name.starts_with(prefix) {
            violations.push(format!("it drops '{name}'"));
        }
    }
    if violations.is_empty() {
        created.sort();
        created.dedup();
        Ok(created)
    } else {
        violations.dedup();
        Err(MigrationError::Prefix {
            module: module.to_owned(),
            label: m.label(),
            prefix: prefix.to_owned(),
            violations: violations.join(", "),
        })
    }
}

/// The catalog rows this transaction created or changed, and the tables whose rows it wrote, as
/// (kind, object, the name that must carry the prefix). TOAST relations and the array types
/// PostgreSQL makes for each type are left out; a table's row type is its table's.
const PREFIX_CHECK: &str = r#"
WITH me AS (SELECT pg_current_xact_id()::xid AS x)
SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
         WHEN 'm' THEN 'view' WHEN 'i' THEN 'index' WHEN 'I' THEN 'index'
         WHEN 'S' THEN 'sequence' WHEN 'c' THEN 'type' ELSE 'relation' END,
       c.relname::text, c.relname::text
  FROM pg_class c, me, pg_namespace n
 WHERE c.xmin = me.x AND n.oid = c.relnamespace AND n.nspname <> 'pg_toast'
UNION ALL
SELECT 'type', t.typname::text, t.typname::text
  FROM pg_type t, me
 WHERE t.xmin = me.x AND t.typrelid = 0
   AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
UNION ALL
SELECT 'index', ic.relname::text, tc.relname::text
  FROM pg_index i, me, pg_class ic, pg_class tc
 WHERE i.xmin = me.x AND ic.oid = i.indexrelid AND tc.oid = i.indrelid
   AND ic.relnamespace <> 'pg_toast'::regnamespace
UNION ALL
SELECT 'constraint', con.conname::text, COALESCE(rel.relname, typ.typname)::text
  FROM pg_constraint con CROSS JOIN me
  LEFT JOIN pg_class rel ON rel.oid = con.conrelid
  LEFT JOIN pg_type typ ON typ.oid = con.contypid
 WHERE con.xmin = me.x
UNION ALL
SELECT 'trigger', tg.tgname::text, rel.relname::text
  FROM pg_trigger tg, me, pg_class rel
 WHERE tg.xmin = me.x AND rel.oid = tg.tgrelid
UNION ALL
SELECT 'function', p.proname::text, p.proname::text
  FROM pg_proc p, me
 WHERE p.xmin = me.x
"#;

/// Rows inserted, updated or deleted per table, as the session counts them so far. The counts
/// include earlier transactions of this connection that were not flushed yet, so what a migration
/// wrote is the difference between before and after it.
const WRITTEN: &str = "SELECT relname::text, (n_tup_ins + n_tup_upd + n_tup_del)::int8 \
                       FROM pg_stat_xact_user_tables";

async fn written(tx: &Transaction<'_>) -> Result<Vec<(String, i64)>, MigrationError> {
    let rows = tx.query(WRITTEN, &[]).await.map_err(unavailable)?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_checksums() {
        let m = MigrationSpec {
            version: 1,
            name: "init".to_owned(),
            sql: "SELECT 1".to_owned(),
        };
        assert_eq!(m.label(), "001_init");
        assert_eq!(m.checksum().len(), 64);
        assert_eq!(host_migrations()[0].label(), "001_module_migrations");
    }
}
