//! The identity tables as rows (`migrations/0003_identity.sql`): users, roles, tokens, sessions,
//! pending sign-ins and the audit log. What they mean, and the checks around them, are the
//! identity room's; this file only reads and writes them, as the hub's own user.

use chrono::{DateTime, Utc};
use serde_json::Value;
use thiserror::Error;
use tokio_postgres::error::SqlState;

use super::{Database, DbUnavailable};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(transparent)]
    Unavailable(#[from] DbUnavailable),
    /// A row with the same key exists (a role's name, a service user's name).
    #[error("{0}")]
    Exists(String),
    /// A row the statement names does not exist (a role given to a user).
    #[error("{0}")]
    Missing(String),
    #[error("{0}")]
    Query(String),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        match e.code() {
            Some(code) if *code == SqlState::UNIQUE_VIOLATION => {
                StoreError::Exists(super::explain(&e))
            }
            Some(code) if *code == SqlState::FOREIGN_KEY_VIOLATION => {
                StoreError::Missing(super::explain(&e))
            }
            // A text PostgreSQL cannot store (a NUL character): the request's, not the hub's.
            Some(code) if *code == SqlState::CHARACTER_NOT_IN_REPERTOIRE => {
                StoreError::Missing(format!(
                    "a text of the request holds a character PostgreSQL cannot store (NUL): {}",
                    super::explain(&e)
                ))
            }
            _ => StoreError::Query(super::explain(&e)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub subject: String,
    /// `person`, `service` or `admin`.
    pub kind: String,
    pub name: String,
    pub email: Option<String>,
    pub groups: Vec<String>,
    pub disabled: bool,
    /// Roles given to the user directly (not through groups).
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct RoleRow {
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub builtin: bool,
}

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub hash: Vec<u8>,
    pub permissions: Vec<String>,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub hash: Vec<u8>,
    pub user_id: i64,
    pub token_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Everything a hub keeps in memory, as of change `change`.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub change: i64,
    pub users: Vec<UserRow>,
    pub roles: Vec<RoleRow>,
    /// Tokens neither revoked nor expired.
    pub tokens: Vec<TokenRow>,
    /// Sessions not expired.
    pub sessions: Vec<SessionRow>,
}

/// A sign-in on its way through the identity provider.
#[derive(Debug, Clone)]
pub struct LoginRow {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub next: String,
}

/// One row of the audit log: its id and its entry.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    pub id: i64,
    #[serde(flatten)]
    pub entry: NewAudit,
}

/// An entry of the audit log.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct NewAudit {
    pub at: DateTime<Utc>,
    /// `user:<id>`, `token:<id>`, `admin`, `module:<name>` (a module's job), `watcher`, `hub` or `anonymous`.
    pub actor: String,
    pub actor_name: Option<String>,
    /// The caller's address.
    pub address: Option<String>,
    pub action: String,
    pub module: Option<String>,
    pub target: Option<String>,
    /// `ok`, `failed`, `denied`, or how a module action ended (`running`, `disabled`, …).
    pub outcome: String,
    pub details: Option<Value>,
    /// The request the entry was made in (its `X-Request-Id`); `null` for the watcher's and the
    /// hub's own.
    pub request_id: Option<String>,
}

/// Which audit rows to read: each filter when set, newest first, `limit` rows before `before`.
#[derive(Debug, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub module: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Rows with a smaller id than this (the next page).
    pub before: Option<i64>,
    pub limit: i64,
}

const USER_COLUMNS: &str = "u.id, u.subject, u.kind, u.name, u.email, u.groups, u.disabled, \
     COALESCE((SELECT array_agg(r.role ORDER BY r.role) FROM hub_user_roles r WHERE r.user_id = u.id), '{}'), \
     u.created_at, u.last_login_at";

fn user(r: &tokio_postgres::Row) -> UserRow {
    UserRow {
        id: r.get(0),
        subject: r.get(1),
        kind: r.get(2),
        name: r.get(3),
        email: r.get(4),
        groups: r.get(5),
        disabled: r.get(6),
        roles: r.get(7),
        created_at: r.get(8),
        last_login_at: r.get(9),
    }
}

const TOKEN_COLUMNS: &str = "id, user_id, name, hash, permissions, created_by, created_at, \
     expires_at, last_used_at, revoked_at";

fn token(r: &tokio_postgres::Row) -> TokenRow {
    TokenRow {
        id: r.get(0),
        user_id: r.get(1),
        name: r.get(2),
        hash: r.get(3),
        permissions: r.get(4),
        created_by: r.get(5),
        created_at: r.get(6),
        expires_at: r.get(7),
        last_used_at: r.get(8),
        revoked_at: r.get(9),
    }
}

/// Where the identity tables are: the last change's number (moves on every change).
pub async fn change(db: &Database) -> Result<i64, StoreError> {
    let conn = db.hub_client().await?;
    let row = conn
        .client()
        .query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM hub_identity_changes",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Users, roles, live tokens and live sessions, read in one snapshot of the database.
pub async fn load(db: &Database) -> Result<Snapshot, StoreError> {
    let mut conn = db.hub_client().await?;
    let tx = conn
        .client_mut()
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let change = tx
        .query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM hub_identity_changes",
            &[],
        )
        .await?
        .get(0);
    let users = tx
        .query(&format!("SELECT {USER_COLUMNS} FROM hub_users u"), &[])
        .await?
        .iter()
        .map(user)
        .collect();
    let roles = tx
        .query(
            "SELECT name, description, permissions, builtin FROM hub_roles",
            &[],
        )
        .await?
        .iter()
        .map(|r| RoleRow {
            name: r.get(0),
            description: r.get(1),
            permissions: r.get(2),
            builtin: r.get(3),
        })
        .collect();
    let tokens = tx
        .query(
            &format!(
                "SELECT {TOKEN_COLUMNS} FROM hub_tokens WHERE revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > now())"
            ),
            &[],
        )
        .await?
        .iter()
        .map(token)
        .collect();
    let sessions = tx
        .query(
            "SELECT hash, user_id, token_id, created_at, last_seen_at, expires_at \
             FROM hub_sessions WHERE expires_at > now()",
            &[],
        )
        .await?
        .iter()
        .map(|r| SessionRow {
            hash: r.get(0),
            user_id: r.get(1),
            token_id: r.get(2),
            created_at: r.get(3),
            last_seen_at: r.get(4),
            expires_at: r.get(5),
        })
        .collect();
    tx.commit().await?;
    Ok(Snapshot {
        change,
        users,
        roles,
        tokens,
        sessions,
    })
}

/// The user behind `subject`, made or updated from what the identity provider says.
pub async fn sign_in_person(
    db: &Database,
    subject: &str,
    name: &str,
    email: Option<&str>,
    groups: &[String],
) -> Result<UserRow, StoreError> {
    let conn = db.hub_client().await?;
    let row = conn
        .client()
        .query_one(
            &format!(
                "WITH u AS (INSERT INTO hub_users (subject, kind, name, email, groups, last_login_at) \
                 VALUES ($1, 'person', $2, $3, $4, now()) \
                 ON CONFLICT (subject) DO UPDATE SET name = $2, email = $3, groups = $4, last_login_at = now() \
                 RETURNING *) SELECT {USER_COLUMNS} FROM u"
            ),
            &[&subject, &name, &email, &groups],
        )
        .await?;
    Ok(user(&row))
}

/// The bootstrap administrator's user (made by the hub's migration).
pub async fn admin_user(db: &Database) -> Result<UserRow, StoreError> {
    let conn = db.hub_client().await?;
    let row = conn
        .client()
        .query_one(
            &format!("SELECT {USER_COLUMNS} FROM hub_users u WHERE subject = 'hub:admin'"),
            &[],
        )
        .await?;
    Ok(user(&row))
}

pub async fn create_service_user(db: &Database, name: &str) -> Result<UserRow, StoreError> {
    let conn = db.hub_client().await?;
    let row = conn
        .client()
        .query_one(
            &format!(
                "WITH u AS (INSERT INTO hub_users (subject, kind, name) VALUES ('service:' || $1, 'service', $1) \
                 RETURNING *) SELECT {USER_COLUMNS} FROM u"
            ),
            &[&name],
        )
        .await?;
    Ok(user(&row))
}

/// Make the service identity of `module` (subject `module:<name>`, kind `service`) when it is
/// missing; `true` when it was made. Looked for first, so that a start which finds it does not
/// move `hub_identity_changes` (every hub would read the tables again).
pub async fn ensure_module_user(db: &Database, module: &str) -> Result<bool, StoreError> {
    let conn = db.hub_client().await?;
    let subject = format!("module:{module}");
    let found = conn
        .client()
        .query_opt("SELECT 1 FROM hub_users WHERE subject = $1", &[&subject])
        .await?;
    if found.is_some() {
        return Ok(false);
    }
    let made = conn
        .client()
        .execute(
            "INSERT INTO hub_users (subject, kind, name) VALUES ($1, 'service', $1) \
             ON CONFLICT (subject) DO NOTHING",
            &[&subject],
        )
        .await?;
    Ok(made == 1)
}

pub async fn users(db: &Database) -> Result<Vec<UserRow>, StoreError> {
    let conn = db.hub_client().await?;
    let rows = conn
        .client()
        .query(
            &format!("SELECT {USER_COLUMNS} FROM hub_users u ORDER BY u.id"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(user).collect())
}

/// Give user `id` exactly `roles` (directly). `Ok(false)` when there is no such user.
pub async fn set_user_roles(db: &Database, id: i64, roles: &[String]) -> Result<bool, StoreError> {
    let mut conn = db.hub_client().await?;
    let tx = conn.client_mut().transaction().await?;
    let found = tx
        .execute("SELECT 1 FROM hub_users WHERE id = $1 FOR UPDATE", &[&id])
        .await?;
    if found == 0 {
        return Ok(false);
    }
    tx.execute("DELETE FROM hub_user_roles WHERE user_id = $1", &[&id])
        .await?;
    tx.execute(
        "INSERT INTO hub_user_roles (user_id, role) SELECT $1, unnest($2::text[])",
        &[&id, &roles],
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Disable user `id`, end their sessions and revoke their tokens, in one transaction. `Ok(None)`
/// when there is no such user; else how many sessions and tokens went.
pub async fn offboard(db: &Database, id: i64) -> Result<Option<(u64, u64)>, StoreError> {
    let mut conn = db.hub_client().await?;
    let tx = conn.client_mut().transaction().await?;
    let found = tx
        .execute(
            "UPDATE hub_users SET disabled = true WHERE id = $1 AND kind <> 'admin'",
            &[&id],
        )
        .await?;
    if found == 0 {
        return Ok(None);
    }
    let sessions = tx
        .execute("DELETE FROM hub_sessions WHERE user_id = $1", &[&id])
        .await?;
    let tokens = tx
        .execute(
            "UPDATE hub_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
            &[&id],
        )
        .await?;
    tx.commit().await?;
    Ok(Some((sessions, tokens)))
}

pub async fn roles(db: &Database) -> Result<Vec<RoleRow>, StoreError> {
    let conn = db.hub_client().await?;
    let rows = conn
        .client()
        .query(
            "SELECT name, description, permissions, builtin FROM hub_roles ORDER BY builtin DESC, name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| RoleRow {
            name: r.get(0),
            description: r.get(1),
            permissions: r.get(2),
            builtin: r.get(3),
        })
        .collect())
}

pub async fn create_role(db: &Database, role: &RoleRow) -> Result<(), StoreError> {
    let conn = db.hub_client().await?;
    conn.client()
        .execute(
            "INSERT INTO hub_roles (name, description, permissions) VALUES ($1, $2, $3)",
            &[&role.name, &role.description, &role.permissions],
        )
        .await?;
    Ok(())
}

/// Change a role that is not built in; `Ok(false)` when there is no such role (or it is built
/// in).
pub async fn update_role(db: &Database, role: &RoleRow) -> Result<bool, StoreError> {
    let conn = db.hub_client().await?;
    let n = conn
        .client()
        .execute(
            "UPDATE hub_roles SET description = $2, permissions = $3 WHERE name = $1 AND NOT builtin",
            &[&role.name, &role.description, &role.permissions],
        )
        .await?;
    Ok(n == 1)
}

pub async fn delete_role(db: &Database, name: &str) -> Result<bool, StoreError> {
    let conn = db.hub_client().await?;
    let n = conn
        .client()
        .execute(
            "DELETE FROM hub_roles WHERE name = $1 AND NOT builtin",
            &[&name],
        )
        .await?;
    Ok(n == 1)
}

pub async fn insert_token(
    db: &Database,
    user_id: i64,
    name: &str,
    hash: &[u8],
    permissions: &[String],
    created_by: Option<i64>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<TokenRow, StoreError> {
    let conn = db.hub_client().await?;
    let row = conn
        .client()
        .query_one(
            &format!(
                "INSERT INTO hub_tokens (user_id, name, hash, permissions, created_by, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {TOKEN_COLUMNS}"
            ),
            &[
                &user_id,
                &name,
                &hash,
                &permissions,
                &created_by,
                &expires_at,
            ],
        )
        .await?;
    Ok(token(&row))
}

/// Tokens of `user` (every user's when `None`), newest first, revoked ones included.
pub async fn tokens(db: &Database, user: Option<i64>) -> Result<Vec<TokenRow>, StoreError> {
    let conn = db.hub_client().await?;
    let rows = conn
        .client()
        .query(
            &format!(
                "SELECT {TOKEN_COLUMNS} FROM hub_tokens WHERE $1::bigint IS NULL OR user_id = $1 \
                 ORDER BY id DESC"
            ),
            &[&user],
        )
        .await?;
    Ok(rows.iter().map(token).collect())
}

pub async fn token_by_id(db: &Database, id: i64) -> Result<Option<TokenRow>, StoreError> {
    let conn = db.hub_client().await?;
    let row = conn
        .client()
        .query_opt(
            &format!("SELECT {TOKEN_COLUMNS} FROM hub_tokens WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(token))
}

/// Revoke token `id` (and end the sessions opened with it).
pub async fn revoke_token(db: &Database, id: i64) -> Result<(), StoreError> {
    let mut conn = db.hub_client().await?;
    let tx = conn.client_mut().transaction().await?;
    tx.execute(
        "UPDATE hub_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        &[&id],
    )
    .await?;
    tx.execute("DELETE FROM hub_sessions WHERE token_id = $1", &[&id])
        .await?;
    tx.commit().await?;
    Ok(())
}

/// When tokens and sessions were last used, in one statement each.
pub async fn touch(
    db: &Database,
    tokens: &[(i64, DateTime<Utc>)],
    sessions: &[(Vec<u8>, DateTime<Utc>)],
) -> Result<(), StoreError> {
    let conn = db.hub_client().await?;
    if !tokens.is_empty() {
        let (ids, at): (Vec<i64>, Vec<DateTime<Utc>>) = tokens.iter().cloned().unzip();
        conn.client()
            .execute(
                "UPDATE hub_tokens t SET last_used_at = u.at FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, at) \
                 WHERE t.id = u.id AND (t.last_used_at IS NULL OR t.last_used_at < u.at)",
                &[&ids, &at],
            )
            .await?;
    }
    if !sessions.is_empty() {
        let (hashes, at): (Vec<Vec<u8>>, Vec<DateTime<Utc>>) = sessions.iter().cloned().unzip();
        conn.client()
            .execute(
                "UPDATE hub_sessions s SET last_seen_at = u.at FROM unnest($1::bytea[], $2::timestamptz[]) AS u(hash, at) \
                 WHERE s.hash = u.hash AND s.last_seen_at < u.at",
                &[&hashes, &at],
            )
            .await?;
    }
    Ok(())
}

pub async fn insert_session(db: &Database, session: &SessionRow) -> Result<(), StoreError> {
    let conn = db.hub_client().await?;
    conn.client()
        .execute(
            "INSERT INTO hub_sessions (hash, user_id, token_id, expires_at) VALUES ($1, $2, $3, $4)",
            &[
                &session.hash,
                &session.user_id,
                &session.token_id,
                &session.expires_at,
            ],
        )
        .await?;
    Ok(())
}

pub async fn delete_session(db: &Database, hash: &[u8]) -> Result<bool, StoreError> {
    let conn = db.hub_client().await?;
    let n = conn
        .client()
        .execute("DELETE FROM hub_sessions WHERE hash = $1", &[&hash])
        .await?;
    Ok(n == 1)
}

/// Delete what has expired: sessions past their absolute expiry or idle longer than `idle`,
/// sign-ins older than ten minutes, audit rows older than `audit_days`.
pub async fn prune(
    db: &Database,
    idle: std::time::Duration,
    audit_days: u32,
) -> Result<(), StoreError> {
    let conn = db.hub_client().await?;
    let idle = idle.as_secs_f64();
    conn.client()
        .execute(
            "DELETE FROM hub_sessions WHERE expires_at <= now() \
             OR last_seen_at < now() - make_interval(secs => $1)",
            &[&idle],
        )
        .await?;
    conn.client()
        .execute(
            "DELETE FROM hub_logins WHERE created_at < now() - interval '10 minutes'",
            &[],
        )
        .await?;
    conn.client()
        .execute(
            "DELETE FROM hub_audit WHERE at < now() - make_interval(days => $1)",
            &[&(audit_days as i32)],
        )
        .await?;
    Ok(())
}

pub async fn insert_login(db: &Database, login: &LoginRow) -> Result<(), StoreError> {
    let conn = db.hub_client().await?;
    conn.client()
        .execute(
            "INSERT INTO hub_logins (state, nonce, pkce_verifier, next) VALUES ($1, $2, $3, $4)",
            &[
                &login.state,
                &login.nonce,
                &login.pkce_verifier,
                &login.next,
            ],
        )
        .await?;
    Ok(())
}

/// The sign-in of `state`, removed (a `state` is good once), if it is younger than ten minutes.
pub async fn take_login(db: &Database, state: &str) -> Result<Option<LoginRow>, StoreError> {
    let conn = db.hub_client().await?;
    let row = conn
        .client()
        .query_opt(
            "DELETE FROM hub_logins WHERE state = $1 RETURNING state, nonce, pkce_verifier, next, \
             created_at > now() - interval '10 minutes'",
            &[&state],
        )
        .await?;
    Ok(row.filter(|r| r.get::<_, bool>(4)).map(|r| LoginRow {
        state: r.get(0),
        nonce: r.get(1),
        pkce_verifier: r.get(2),
        next: r.get(3),
    }))
}

/// Write audit entries, in one statement.
pub async fn insert_audit(db: &Database, rows: &[NewAudit]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let conn = db.hub_client().await?;
    let column = |f: fn(&NewAudit) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    let at: Vec<DateTime<Utc>> = rows.iter().map(|r| r.at).collect();
    let actor = column(|r| Some(r.actor.clone()));
    let actor_name = column(|r| r.actor_name.clone());
    let address = column(|r| r.address.clone());
    let action = column(|r| Some(r.action.clone()));
    let module = column(|r| r.module.clone());
    let target = column(|r| r.target.clone());
    let outcome = column(|r| Some(r.outcome.clone()));
    let details: Vec<Option<Value>> = rows.iter().map(|r| r.details.clone()).collect();
    let request_id = column(|r| r.request_id.clone());
    conn.client()
        .execute(
            "INSERT INTO hub_audit (at, actor, actor_name, address, action, module, target, outcome, details, request_id) \
             SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::text[])",
            &[
                &at,
                &actor,
                &actor_name,
                &address,
                &action,
                &module,
                &target,
                &outcome,
                &details,
                &request_id,
            ],
        )
        .await?;
    Ok(())
}

/// Audit rows matching `filter`, newest first.
pub async fn audit(db: &Database, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
    let conn = db.hub_client().await?;
    let rows = conn
        .client()
        .query(
            "SELECT id, at, actor, actor_name, address, action, module, target, outcome, details, request_id \
             FROM hub_audit WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR module = $2) \
             AND ($3::text IS NULL OR action = $3 OR action LIKE $3 || '.%') \
             AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::timestamptz IS NULL OR at < $5) \
             AND ($6::bigint IS NULL OR id < $6) ORDER BY id DESC LIMIT $7",
            &[
                &filter.actor,
                &filter.module,
                &filter.action,
                &filter.since,
                &filter.until,
                &filter.before,
                &filter.limit,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| AuditRow {
            id: r.get(0),
            entry: NewAudit {
                at: r.get(1),
                actor: r.get(2),
                actor_name: r.get(3),
                address: r.get(4),
                action: r.get(5),
                module: r.get(6),
                target: r.get(7),
                outcome: r.get(8),
                details: r.get(9),
                request_id: r.get(10),
            },
        })
        .collect())
}
