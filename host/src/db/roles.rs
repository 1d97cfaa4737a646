//! A PostgreSQL role per module, so that PostgreSQL enforces each module's data boundary. Each
//! module has a writer role (its migrations run as it, so it owns its objects; its calls run as
//! it) and a reader role (its calls while `READ_ONLY`: it may only read). A module reads or writes
//! another module's tables only as its `uses` declares (`"uses": {"customers": "read"}`): the
//! hub grants exactly that, on the tables there are and, through default privileges, on the ones
//! the other module creates later. Without the grant PostgreSQL answers 42501.
//!
//! Roles are cluster-wide, databases are not: role names carry a prefix this database's hub keeps
//! in `hub_meta` (`hub_mod_<8 hex>_<module>`), creation takes an advisory lock and tolerates a
//! concurrent `CREATE ROLE` (42710), and the roles this database created are recorded in
//! `hub_module_roles` (the hub never drops another's). The hub's own user needs `CREATEROLE`; it
//! becomes a member of each module role, to switch to it.
//!
//! On the first start with roles, a module's existing objects (created by an earlier version of
//! the hub, as the hub's user) are given to its writer role.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use thiserror::Error;
use tokio_postgres::Transaction;

use super::{Database, DbUnavailable, quote_ident};

/// How a module may use another module's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseMode {
    Read,
    Write,
}

/// What a module declares about its data: its table prefix and what it uses of others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declaration {
    pub prefix: String,
    /// (module, mode), for modules among its dependencies.
    pub uses: Vec<(String, UseMode)>,
}

/// A module's two roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRoles {
    pub writer: String,
    pub reader: String,
}

#[derive(Debug, Error)]
pub enum RoleError {
    #[error(transparent)]
    Unavailable(#[from] DbUnavailable),
    #[error(
        "cannot set up the PostgreSQL roles of module '{module}': {error}; the hub's database user needs CREATEROLE (ALTER ROLE <user> CREATEROLE) and to own the database"
    )]
    Setup { module: String, error: String },
}

/// The declarations of running modules and the roles set up for them.
#[derive(Default)]
pub struct Roles {
    declared: RwLock<HashMap<String, Declaration>>,
    /// Modules whose roles and grants are set up for their current declaration.
    ready: RwLock<HashMap<String, Arc<ModuleRoles>>>,
    /// Serializes set-ups within this hub (the advisory lock does across hubs).
    setting_up: tokio::sync::Mutex<()>,
}

/// The advisory lock of role set-ups (`pg_advisory_xact_lock(int4, int4)`'s first key).
const LOCK_NAMESPACE: i32 = 0x484d_524c; // "HMRL"

impl Roles {
    /// Record `module`'s declaration; its roles are set up again before its next use.
    pub fn declare(&self, module: &str, declaration: Declaration) {
        if let Ok(mut declared) = self.declared.write() {
            declared.insert(module.to_owned(), declaration);
        }
        if let Ok(mut ready) = self.ready.write() {
            ready.remove(module);
        }
    }

    /// The module whose table prefix `table` starts with, among the declared ones.
    pub fn owner_of(&self, table: &str) -> Option<String> {
        let declared = self.declared.read().ok()?;
        declared
            .iter()
            .filter(|(_, d)| !d.prefix.is_empty() && table.starts_with(&d.prefix))
            .max_by_key(|(_, d)| d.prefix.len())
            .map(|(m, _)| m.clone())
    }

    /// Forget `module`'s roles (dropped by a purge): set up again before its next use.
    pub fn forget(&self, module: &str) {
        if let Ok(mut ready) = self.ready.write() {
            ready.remove(module);
        }
    }

    /// `module`'s set-up roles, when they are.
    pub fn ready(&self, module: &str) -> Option<Arc<ModuleRoles>> {
        self.ready.read().ok()?.get(module).cloned()
    }
}

impl Database {
    /// `module`'s roles, set up (created, granted its declared uses) when they are not yet for
    /// its current declaration.
    pub async fn module_roles(&self, module: &str) -> Result<Arc<ModuleRoles>, RoleError> {
        if let Some(roles) = self.roles.ready(module) {
            return Ok(roles);
        }
        let _one = self.roles.setting_up.lock().await;
        if let Some(roles) = self.roles.ready(module) {
            return Ok(roles);
        }
        let declaration = self
            .roles
            .declared
            .read()
            .ok()
            .and_then(|d| d.get(module).cloned())
            .unwrap_or_default();
        let setup = |error: tokio_postgres::Error| RoleError::Setup {
            module: module.to_owned(),
            error: super::explain(&error),
        };
        let mut client = self.hub_client().await?;
        let conn = &mut *client;
        let result = async {
            let tx = conn.client_mut().transaction().await.map_err(setup)?;
            tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_NAMESPACE])
                .await
                .map_err(setup)?;
            let roles = set_up(&tx, module, &declaration).await.map_err(setup)?;
            tx.commit().await.map_err(setup)?;
            Ok::<_, RoleError>(roles)
        }
        .await;
        let roles = match result {
            Ok(roles) => Arc::new(roles),
            Err(error) => {
                client.discard();
                return Err(error);
            }
        };
        if let Ok(mut ready) = self.roles.ready.write() {
            ready.insert(module.to_owned(), roles.clone());
        }
        Ok(roles)
    }

    /// Record `module`'s declaration (at each start); its roles are set up again before use.
    pub fn declare(&self, module: &str, declaration: Declaration) {
        self.roles.declare(module, declaration);
    }
}

/// The role names of `module` in this database.
async fn names(tx: &Transaction<'_>, module: &str) -> Result<ModuleRoles, tokio_postgres::Error> {
    let prefix: String = tx
        .query_one("SELECT value FROM hub_meta WHERE key = 'role_prefix'", &[])
        .await?
        .get(0);
    let writer = format!("{prefix}{module}");
    Ok(ModuleRoles {
        reader: format!("{writer}_r"),
        writer,
    })
}

/// Create `module`'s roles when missing, give it its existing objects, and grant exactly what
/// `declaration` says; one transaction, under the set-up lock.
async fn set_up(
    tx: &Transaction<'_>,
    module: &str,
    declaration: &Declaration,
) -> Result<ModuleRoles, tokio_postgres::Error> {
    let roles = ensure_roles(tx, module).await?;
    let (w, r) = (quote_ident(&roles.writer), quote_ident(&roles.reader));
    let mut script = vec![
        format!("GRANT USAGE, CREATE ON SCHEMA public TO {w}"),
        format!("GRANT USAGE ON SCHEMA public TO {r}"),
        format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {w} IN SCHEMA public GRANT SELECT ON TABLES TO {r}"
        ),
    ];
    // The module's objects that the hub's user owns (made by an earlier version): its own now.
    for row in tx.query(ADOPTABLE, &[&declaration.prefix]).await? {
        let (kind, name): (String, String) = (row.get(0), row.get(1));
        script.push(format!("ALTER {kind} {name} OWNER TO {w}"));
    }
    // What the module may read of itself when READ_ONLY.
    for row in tx.query(OWNED_TABLES, &[&roles.writer]).await? {
        let table: String = row.get(0);
        script.push(format!("GRANT SELECT ON {table} TO {r}"));
    }
    // What it may use of others: first nothing, then what it declares.
    for row in tx
        .query(GRANTED_ELSEWHERE, &[&roles.writer, &roles.reader])
        .await?
    {
        let (kind, name): (String, String) = (row.get(0), row.get(1));
        script.push(format!("REVOKE ALL ON {kind} {name} FROM {w}, {r}"));
    }
    for row in tx
        .query(DEFAULTS_ELSEWHERE, &[&roles.writer, &roles.reader])
        .await?
    {
        let owner: String = row.get(0);
        let owner = quote_ident(&owner);
        script.push(format!("ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public REVOKE ALL ON TABLES FROM {w}, {r}"));
        script.push(format!("ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {w}, {r}"));
    }
    for (other, mode) in &declaration.uses {
        let theirs = ensure_roles(tx, other).await?;
        let owner = quote_ident(&theirs.writer);
        let (tables, sequences) = match mode {
            UseMode::Read => ("SELECT", "SELECT"),
            UseMode::Write => ("SELECT, INSERT, UPDATE, DELETE", "USAGE, SELECT, UPDATE"),
        };
        for row in tx.query(OWNED_RELATIONS, &[&theirs.writer]).await? {
            let (kind, name): (String, String) = (row.get(0), row.get(1));
            if kind == "SEQUENCE" {
                script.push(format!("GRANT {sequences} ON SEQUENCE {name} TO {w}"));
            } else {
                script.push(format!("GRANT {tables} ON TABLE {name} TO {w}"));
                script.push(format!("GRANT SELECT ON TABLE {name} TO {r}"));
            }
        }
        script.push(format!("ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT {tables} ON TABLES TO {w}"));
        script.push(format!("ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT SELECT ON TABLES TO {r}"));
        script.push(format!("ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT {sequences} ON SEQUENCES TO {w}"));
    }
    tx.batch_execute(&script.join(";\n")).await?;
    Ok(roles)
}

/// `module`'s roles, created and recorded when missing; the hub's user a member of both (it
/// switches to them with SET ROLE, and acts as their owner when it grants).
async fn ensure_roles(
    tx: &Transaction<'_>,
    module: &str,
) -> Result<ModuleRoles, tokio_postgres::Error> {
    let roles = names(tx, module).await?;
    for role in [&roles.writer, &roles.reader] {
        create_role(tx, role).await?;
    }
    tx.execute(
        "INSERT INTO hub_module_roles (module, writer, reader) VALUES ($1, $2, $3) \
         ON CONFLICT (module) DO NOTHING",
        &[&module, &roles.writer, &roles.reader],
    )
    .await?;
    tx.batch_execute(&format!(
        "GRANT {}, {} TO CURRENT_USER",
        quote_ident(&roles.writer),
        quote_ident(&roles.reader)
    ))
    .await?;
    Ok(roles)
}

/// `CREATE ROLE role NOLOGIN` unless it exists (another hub on this database may create it at
/// the same moment: its `duplicate_object` is fine).
async fn create_role(tx: &Transaction<'_>, role: &str) -> Result<(), tokio_postgres::Error> {
    let exists = tx
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await?
        .is_some();
    if exists {
        return Ok(());
    }
    tx.batch_execute(&format!(
        "SAVEPOINT create_role; CREATE ROLE {} NOLOGIN",
        quote_ident(role)
    ))
    .await
    .or_else(|e| match e.code().map(|c| c.code()) {
        Some("42710") => Ok(()),
        _ => Err(e),
    })?;
    tx.batch_execute("RELEASE SAVEPOINT create_role")
        .await
        .or(Ok(()))
}

/// The module's objects in `public` (name starting with its prefix, `$1`) that the hub's own
/// user owns: (kind for ALTER, quoted name).
const ADOPTABLE: &str = r#"
SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
         WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
       quote_ident(c.relname)
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relowner = current_user::regrole
   AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND $1 <> '' AND left(c.relname, length($1)) = $1
UNION ALL
SELECT 'SEQUENCE', quote_ident(c.relname)
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relowner = current_user::regrole
   AND c.relkind = 'S' AND $1 <> '' AND left(c.relname, length($1)) = $1
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))
UNION ALL
SELECT 'FUNCTION', p.oid::regprocedure::text
  FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace AND p.proowner = current_user::regrole
   AND $1 <> '' AND left(p.proname, length($1)) = $1
UNION ALL
SELECT 'TYPE', quote_ident(t.typname)
  FROM pg_type t
 WHERE t.typnamespace = 'public'::regnamespace AND t.typowner = current_user::regrole
   AND t.typtype IN ('c', 'e', 'd', 'r', 'm') AND t.typrelid = 0
   AND $1 <> '' AND left(t.typname, length($1)) = $1
"#;

/// The tables and views `$1` owns in `public`, quoted.
const OWNED_TABLES: &str = "SELECT quote_ident(relname) FROM pg_class \
     WHERE relnamespace = 'public'::regnamespace AND relowner = $1::text::regrole \
       AND relkind IN ('r', 'p', 'v', 'm', 'f')";

/// The tables, views and sequences `$1` owns in `public`: (TABLE or SEQUENCE, quoted name).
const OWNED_RELATIONS: &str = "SELECT CASE relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, \
     quote_ident(relname) FROM pg_class \
     WHERE relnamespace = 'public'::regnamespace AND relowner = $1::text::regrole \
       AND relkind IN ('r', 'p', 'v', 'm', 'f', 'S')";

/// Relations not owned by `$1` (the writer) on which `$1` or `$2` (the reader) hold a grant:
/// (TABLE or SEQUENCE, quoted name).
const GRANTED_ELSEWHERE: &str = r#"
SELECT DISTINCT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, quote_ident(c.relname)
  FROM pg_class c, aclexplode(c.relacl) a
 WHERE c.relnamespace = 'public'::regnamespace AND c.relowner <> $1::text::regrole
   AND a.grantee IN ($1::text::regrole, $2::text::regrole)
"#;

/// Other roles whose default privileges name `$1` or `$2`.
const DEFAULTS_ELSEWHERE: &str = r#"
SELECT DISTINCT d.defaclrole::regrole::text
  FROM pg_default_acl d, aclexplode(d.defaclacl) a
 WHERE d.defaclrole <> $1::text::regrole AND a.grantee IN ($1::text::regrole, $2::text::regrole)
"#;
