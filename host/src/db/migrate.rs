//! Applying migrations, the hub's own (`migrations/`, recorded as module `hub`) and each
//! module's (compiled into its library).
//!
//! Each pending migration runs in a transaction of its own that first takes a transaction-level
//! advisory lock for the module and then reads `module_migrations` again, so several hubs
//! starting at once apply each migration exactly once. A module's migration runs as the module's
//! role (`SET LOCAL ROLE`), so it owns what it creates and cannot touch what it was not granted,
//! statement by statement through the extended protocol (one statement per message: a statement
//! the lexer joined by mistake is refused by PostgreSQL, so nothing can hide a `COMMIT`). Before
//! commit, the prefix check compares the catalog before and after: every object the migration
//! created, changed (a new row version, in a subtransaction too: a rename, a dropped column) or
//! dropped, and every table whose rows it wrote, must belong to the module's table prefix, by its
//! old name and its new one. Success is recorded with a SHA-256 checksum; an applied migration
//! whose SQL changed is refused; any failure rolls everything back.

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

    /// Whether the migration declares itself **expand** (its first line is `-- hub: expand`):
    /// the module's previous version keeps working on the schema it leaves (it adds; it does not
    /// rename, drop or narrow). A failed reload after expand migrations only keeps the previous
    /// version serving; after any other, the module is failed.
    pub fn expands(&self) -> bool {
        self.sql
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .is_some_and(|line| {
                line.strip_prefix("--")
                    .map(|rest| rest.split_whitespace().collect::<Vec<_>>())
                    .is_some_and(|words| {
                        words.len() == 2
                            && words[0].eq_ignore_ascii_case("hub:")
                            && words[1].eq_ignore_ascii_case("expand")
                    })
            })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hub's own migrations, in order.
pub fn host_migrations() -> Vec<MigrationSpec> {
    vec![
        MigrationSpec {
            version: 1,
            name: "module_migrations".to_owned(),
            sql: include_str!("../../../migrations/0001_module_migrations.sql").to_owned(),
        },
        MigrationSpec {
            version: 2,
            name: "module_roles".to_owned(),
            sql: include_str!("../../../migrations/0002_module_roles.sql").to_owned(),
        },
        MigrationSpec {
            version: 3,
            name: "identity".to_owned(),
            sql: include_str!("../../../migrations/0003_identity.sql").to_owned(),
        },
        MigrationSpec {
            version: 4,
            name: "request_ids".to_owned(),
            sql: include_str!("../../../migrations/0004_request_ids.sql").to_owned(),
        },
        MigrationSpec {
            version: 5,
            name: "usage".to_owned(),
            sql: include_str!("../../../migrations/0005_usage.sql").to_owned(),
        },
        MigrationSpec {
            version: 6,
            name: "jobs".to_owned(),
            sql: include_str!("../../../migrations/0006_jobs.sql").to_owned(),
        },
        MigrationSpec {
            version: 7,
            name: "packages".to_owned(),
            sql: include_str!("../../../migrations/0007_packages.sql").to_owned(),
        },
        MigrationSpec {
            version: 8,
            name: "instances".to_owned(),
            sql: include_str!("../../../migrations/0008_instances.sql").to_owned(),
        },
        MigrationSpec {
            version: 9,
            name: "module_state".to_owned(),
            sql: include_str!("../../../migrations/0009_module_state.sql").to_owned(),
        },
    ]
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
    #[error(
        "migration {label} of module '{module}' was refused: `{statement}` would change the role it runs as (the module's own)"
    )]
    RoleChange {
        module: String,
        label: String,
        statement: String,
    },
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

/// What was applied now, in order.
#[derive(Debug, Default, Serialize)]
pub struct Applied {
    pub migrations: Vec<AppliedNow>,
}

#[derive(Debug, Serialize)]
pub struct AppliedNow {
    pub version: u32,
    /// `003_rename_title`.
    pub label: String,
    /// Marked `-- hub: expand`.
    pub expand: bool,
}

impl Applied {
    pub fn is_empty(&self) -> bool {
        self.migrations.is_empty()
    }

    pub fn versions(&self) -> Vec<u32> {
        self.migrations.iter().map(|m| m.version).collect()
    }

    /// The labels of the migrations applied now that are not expand.
    pub fn contracting(&self) -> Vec<String> {
        self.migrations
            .iter()
            .filter(|m| !m.expand)
            .map(|m| m.label.clone())
            .collect()
    }
}

/// The advisory lock namespace of migrations (`pg_advisory_xact_lock(int4, int4)`'s first key).
const LOCK_NAMESPACE: i32 = 0x484d_4d47; // "HMMG"

/// Who a module's migrations run as and what they may touch.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The module's table prefix; `None` for the hub's own migrations (no prefix check).
    pub prefix: Option<&'a str>,
    /// The role the migration runs as (the module's); `None`: the hub's own user.
    pub role: Option<&'a str>,
}

/// Apply the pending `migrations` of `module` within `scope`, recording in `report` each one
/// applied (committed) before an error, if one comes.
pub async fn apply_pending(
    client: &mut Client,
    module: &str,
    scope: Scope<'_>,
    migrations: &[MigrationSpec],
    report: &mut Applied,
) -> Result<(), MigrationError> {
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
        let statements = statement::split(&m.sql);
        if let Some(keyword) = statements
            .iter()
            .find(|s| statement::ends_transaction(s))
            .and_then(|s| statement::first_keyword(s))
        {
            return Err(MigrationError::TransactionControl {
                module: module.to_owned(),
                label: m.label(),
                keyword,
            });
        }
        if let Some(statement) = statements.iter().find(|s| statement::changes_role(s)) {
            return Err(MigrationError::RoleChange {
                module: module.to_owned(),
                label: m.label(),
                statement: (*statement).to_owned(),
            });
        }
    }
    // Without a lock first: when everything is applied already, no lock is taken.
    let applied = applied_checksums(client, module).await?;
    for m in migrations {
        if let Some(checksum) = applied
            .iter()
            .find(|(v, _)| *v == m.version)
            .map(|(_, c)| c)
        {
            check_unchanged(module, m, checksum)?;
            continue;
        }
        if apply_one(client, module, scope, m).await? {
            if let Some(metrics) = crate::metrics::get() {
                metrics.migration_applied(module);
            }
            report.migrations.push(AppliedNow {
                version: m.version,
                label: m.label(),
                expand: m.expands(),
            });
        }
    }
    Ok(())
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
    scope: Scope<'_>,
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
    let before = match scope.prefix {
        Some(_) => Some(Snapshot {
            catalog: catalog(&tx).await?,
            written: written(&tx).await?,
        }),
        None => None,
    };
    let started = Instant::now();
    let failed = |error: String| MigrationError::Failed {
        module: module.to_owned(),
        label: m.label(),
        error,
    };
    if let Some(role) = scope.role {
        tx.batch_execute(&format!("SET LOCAL ROLE {}", super::quote_ident(role)))
            .await
            .map_err(|e| failed(super::explain(&e)))?;
    }
    for statement in statement::split(&m.sql) {
        tx.execute(statement, &[])
            .await
            .map_err(|e| failed(super::explain(&e)))?;
    }
    if let Some(role) = scope.role {
        let now: String = tx
            .query_one("SELECT current_user::text", &[])
            .await
            .map_err(|e| failed(super::explain(&e)))?
            .get(0);
        if now != role {
            return Err(failed(format!(
                "it ended as role {now}, not the module's {role}"
            )));
        }
        tx.batch_execute("SET LOCAL ROLE NONE")
            .await
            .map_err(|e| failed(super::explain(&e)))?;
    }
    // A dump's header empties search_path; the hub's statements below name tables unqualified.
    tx.batch_execute("RESET search_path")
        .await
        .map_err(|e| failed(super::explain(&e)))?;
    let created = match (scope.prefix, &before) {
        (Some(prefix), Some(before)) => {
            objects_outside_prefix(&tx, module, prefix, m, before).await?
        }
        _ => Vec::new(),
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
struct Snapshot {
    catalog: Vec<CatalogRow>,
    /// (table, rows written) as the session counts them.
    written: Vec<(String, i64)>,
}

/// One row of the catalog that the prefix check watches.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CatalogRow {
    /// `relation`, `type`, `constraint`, `trigger`, `function`, `column`.
    kind: String,
    /// What identifies the row across versions (an oid, or a table's oid and a column number).
    key: String,
    /// The row version: a new one means the row was changed (in a subtransaction too).
    version: String,
    name: String,
    /// The name that must carry the prefix: the object's own, or its table's.
    owner: String,
    /// For relations, `pg_class.relkind`.
    relkind: String,
}

/// The catalog rows of every object outside the system schemas.
async fn catalog(tx: &Transaction<'_>) -> Result<Vec<CatalogRow>, MigrationError> {
    let rows = tx.query(CATALOG, &[]).await.map_err(unavailable)?;
    Ok(rows
        .iter()
        .map(|r| CatalogRow {
            kind: r.get(0),
            key: r.get(1),
            version: r.get(2),
            name: r.get(3),
            owner: r.get(4),
            relkind: r.get(5),
        })
        .collect())
}

/// What this transaction created, changed or dropped that does not belong to `prefix`, by the
/// catalog before and after it; the relations (tables, views) it created when everything belongs.
async fn objects_outside_prefix(
    tx: &Transaction<'_>,
    module: &str,
    prefix: &str,
    m: &MigrationSpec,
    before: &Snapshot,
) -> Result<Vec<String>, MigrationError> {
    let after = catalog(tx).await.map_err(|e| MigrationError::Failed {
        module: module.to_owned(),
        label: m.label(),
        error: format!("the prefix check could not run: {e}"),
    })?;
    let old: std::collections::HashMap<(&str, &str), &CatalogRow> = before
        .catalog
        .iter()
        .map(|r| ((r.kind.as_str(), r.key.as_str()), r))
        .collect();
    let mine = |name: &str| name.starts_with(prefix);
    let kind = |row: &CatalogRow| match (row.kind.as_str(), row.relkind.as_str()) {
        ("relation", "r" | "p") => "table".to_owned(),
        ("relation", "v" | "m") => "view".to_owned(),
        ("relation", "i" | "I") => "index".to_owned(),
        ("relation", "S") => "sequence".to_owned(),
        ("relation", "c") => "type".to_owned(),
        ("relation", "f") => "foreign table".to_owned(),
        (other, _) => other.to_owned(),
    };
    let of = |row: &CatalogRow| {
        if row.owner == row.name {
            String::new()
        } else {
            format!(" of '{}'", row.owner)
        }
    };
    let mut violations = Vec::new();
    let mut created = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // Relations created outside the prefix are named once; what comes with them (their row
    // type, its array type, their columns, constraints, triggers) is not listed again.
    let new_relations: std::collections::HashSet<&str> = after
        .iter()
        .filter(|r| r.kind == "relation" && !old.contains_key(&(r.kind.as_str(), r.key.as_str())))
        .map(|r| r.name.as_str())
        .collect();
    // Likewise a renamed relation's row type and its array type.
    let renamed_relations: std::collections::HashSet<&str> = after
        .iter()
        .filter(|r| {
            r.kind == "relation"
                && old
                    .get(&(r.kind.as_str(), r.key.as_str()))
                    .is_some_and(|was| was.name != r.name)
        })
        .map(|r| r.name.as_str())
        .collect();
    for row in &after {
        seen.insert((row.kind.as_str(), row.key.as_str()));
        match old.get(&(row.kind.as_str(), row.key.as_str())) {
            None => {
                let comes_with_a_new_relation =
                    row.kind != "relation" && new_relations.contains(row.owner.as_str());
                if !mine(&row.owner) && !comes_with_a_new_relation {
                    violations.push(format!(
                        "it creates or changes {} '{}'{}",
                        kind(row),
                        row.name,
                        of(row)
                    ));
                } else if row.kind == "relation"
                    && matches!(row.relkind.as_str(), "r" | "p" | "v" | "m")
                {
                    created.push(row.name.clone());
                }
            }
            Some(was) if was.version != row.version => {
                let comes_with_a_renamed_relation =
                    row.kind == "type" && renamed_relations.contains(row.owner.as_str());
                if (!mine(&was.owner) || !mine(&row.owner)) && !comes_with_a_renamed_relation {
                    violations.push(if row.kind == "sequence value" {
                        format!("it moves sequence '{}'", row.name)
                    } else if row.kind == "column" && row.name.starts_with("........pg.dropped.") {
                        format!("it drops column '{}'{}", was.name, of(was))
                    } else if was.name != row.name {
                        format!(
                            "it renames {} '{}'{} to '{}'",
                            kind(row),
                            was.name,
                            of(was),
                            row.name
                        )
                    } else {
                        format!(
                            "it creates or changes {} '{}'{}",
                            kind(row),
                            row.name,
                            of(row)
                        )
                    });
                }
            }
            Some(_) => {}
        }
    }
    // Dropped objects are named once too: not what went with them (a dropped type's array
    // type, a dropped table's columns and sequence value).
    let dropped: Vec<&CatalogRow> = before
        .catalog
        .iter()
        .filter(|row| !seen.contains(&(row.kind.as_str(), row.key.as_str())))
        .collect();
    let rank = |kind: &str| match kind {
        "relation" => 2,
        "type" => 1,
        _ => 0,
    };
    for row in &dropped {
        // A parent: the object whose name this row carries (a column's table, an array type's
        // element), or an object of the same name that outranks it (a table over its row type).
        let goes_with_another = dropped.iter().any(|parent| {
            parent.name == row.owner
                && rank(&parent.kind) > 0
                && (row.owner != row.name || rank(&parent.kind) > rank(&row.kind))
        });
        if !mine(&row.owner) && !goes_with_another {
            violations.push(format!("it drops {} '{}'{}", kind(row), row.name, of(row)));
        }
    }
    for (table, count) in written(tx).await? {
        let earlier = before
            .written
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, c)| *c);
        if count > earlier && !mine(&table) {
            violations.push(format!("it writes rows of table '{table}'"));
        }
    }
    if violations.is_empty() {
        created.sort();
        created.dedup();
        Ok(created)
    } else {
        let mut unique = Vec::new();
        for v in violations {
            if !unique.contains(&v) {
                unique.push(v);
            }
        }
        Err(MigrationError::Prefix {
            module: module.to_owned(),
            label: m.label(),
            prefix: prefix.to_owned(),
            violations: unique.join(", "),
        })
    }
}

/// Every catalog row the prefix check watches, outside the system schemas: relations, types,
/// constraints, triggers, functions and the columns of relations, with the row version (`xmin`)
/// and the name that must carry the prefix (a table's for its columns, constraints and triggers;
/// the element's for an array type; the relation's for its row type); and each sequence's last
/// value, as its version (`setval` or `nextval` on another module's sequence moves it).
const CATALOG: &str = r#"
WITH ns AS (
  SELECT oid FROM pg_namespace
   WHERE nspname NOT IN ('pg_catalog', 'information_schema')
     AND nspname NOT LIKE 'pg\_toast%' AND nspname NOT LIKE 'pg\_temp%'
)
SELECT 'relation', c.oid::text, c.xmin::text, c.relname::text, c.relname::text, c.relkind::text
  FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM ns)
UNION ALL
SELECT 'type', t.oid::text, t.xmin::text, t.typname::text,
       COALESCE(r.relname, e.typname, t.typname)::text, ''
  FROM pg_type t
  LEFT JOIN pg_class r ON r.oid = t.typrelid
  LEFT JOIN pg_type e ON e.oid = t.typelem AND e.typarray = t.oid
 WHERE t.typnamespace IN (SELECT oid FROM ns)
UNION ALL
SELECT 'constraint', con.oid::text, con.xmin::text, con.conname::text,
       COALESCE(rel.relname, typ.typname, con.conname)::text, ''
  FROM pg_constraint con
  LEFT JOIN pg_class rel ON rel.oid = con.conrelid
  LEFT JOIN pg_type typ ON typ.oid = con.contypid
 WHERE con.connamespace IN (SELECT oid FROM ns)
UNION ALL
SELECT 'trigger', tg.oid::text, tg.xmin::text, tg.tgname::text, rel.relname::text, ''
  FROM pg_trigger tg JOIN pg_class rel ON rel.oid = tg.tgrelid
 WHERE rel.relnamespace IN (SELECT oid FROM ns)
UNION ALL
SELECT 'function', p.oid::text, p.xmin::text, p.proname::text, p.proname::text, ''
  FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM ns)
UNION ALL
SELECT 'column', a.attrelid::text || '.' || a.attnum::text, a.xmin::text, a.attname::text,
       c.relname::text, ''
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE a.attnum > 0 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
   AND c.relnamespace IN (SELECT oid FROM ns)
UNION ALL
SELECT 'sequence value', c.oid::text, COALESCE(s.last_value::text, ''), c.relname::text,
       c.relname::text, 'S'
  FROM pg_sequences s
  JOIN pg_class c ON c.relname = s.sequencename AND c.relnamespace = s.schemaname::regnamespace
 WHERE c.relnamespace IN (SELECT oid FROM ns)
   -- The hub's own sequences move all the time (audit rows, identity changes), from other
   -- sessions; a module's role has no right to them anyway.
   AND c.relname NOT LIKE 'hub\_%' AND c.relname NOT LIKE 'module\_%'
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

    #[test]
    fn expand_is_the_first_lines_marker() {
        let spec = |sql: &str| MigrationSpec {
            version: 2,
            name: "x".to_owned(),
            sql: sql.to_owned(),
        };
        for expand in [
            "-- hub: expand\nALTER TABLE t_x ADD COLUMN y int;",
            "\n  --  HUB:  Expand  \nALTER TABLE t_x ADD COLUMN y int;",
        ] {
            assert!(spec(expand).expands(), "{expand:?}");
        }
        for other in [
            "ALTER TABLE t_x RENAME COLUMN a TO b;",
            "ALTER TABLE t_x ADD COLUMN y int;\n-- hub: expand",
            "-- hub: expand later\nSELECT 1;",
            "-- hub expand\nSELECT 1;",
        ] {
            assert!(!spec(other).expands(), "{other:?}");
        }
    }
}
