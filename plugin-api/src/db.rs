//! The database as a module author sees it: `ctx.db().query(…)`, through the hub's gateway.
//!
//! Statements are queries and DML only, one per call (or several in [`Db::transaction`]); JSON
//! parameters are converted to the types the statement declares; rows come back as JSON objects
//! or deserialized into your types. The safety switches are enforced by PostgreSQL: under
//! `READ_ONLY` a write fails with [`DbErrorKind::ReadOnly`]; under `DRY_RUN` it is rolled back and
//! [`Rows::dry_run`] is true, `rows_affected` telling what would have changed.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::ctx::Ctx;
use crate::error::Error;

/// JSON parameters for a statement: `params![id, "text", 2.5]`.
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::json!($value)),*] as &[$crate::Value]
    };
}

/// The database, for one module.
#[derive(Debug, Clone)]
pub struct Db<'a> {
    ctx: &'a Ctx,
    timeout: Option<Duration>,
}

/// The result of one statement.
#[derive(Debug, Clone, Deserialize)]
pub struct Rows<T = Map<String, Value>> {
    pub rows: Vec<T>,
    /// Rows inserted, updated or deleted (or that would have been, under `DRY_RUN`).
    pub rows_affected: u64,
    /// Set after the call: the changes were rolled back because `DRY_RUN` is on.
    #[serde(skip)]
    pub dry_run: bool,
}

#[derive(Deserialize)]
struct Answer<T> {
    results: Vec<Rows<T>>,
    dry_run: bool,
}

/// What kind of failure a [`DbError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DbErrorKind {
    /// The module is `READ_ONLY` and the statement writes. HTTP 403 `read_only`.
    ReadOnly,
    /// The statement touches another module's table that the module's `uses` (in module.json)
    /// does not declare; PostgreSQL refused it (42501). HTTP 403 `not_granted`.
    NotGranted,
    /// A parameter does not fit its declared type, or their number is wrong. HTTP 400
    /// `bad_parameter`.
    BadParameter,
    /// The gateway does not run this kind of statement (transaction control, SET, DDL, …).
    /// HTTP 500 `statement_refused`.
    Refused,
    /// PostgreSQL reported an error; `sqlstate` says which. HTTP 500 `database`.
    Database,
    /// No database, or it cannot be reached. HTTP 503 `database_unavailable`.
    Unavailable,
    /// The request itself was malformed (a plugin-api bug). HTTP 500 `database`.
    BadRequest,
}

/// A failed database call.
#[derive(Debug, Clone, Deserialize)]
pub struct DbError {
    pub kind: DbErrorKind,
    pub message: String,
    #[serde(default)]
    pub sqlstate: Option<String>,
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sqlstate {
            Some(code) => write!(f, "{} (SQLSTATE {code})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DbError {}

impl From<DbError> for Error {
    fn from(e: DbError) -> Error {
        let details = e.sqlstate.as_ref().map(|code| json!({"sqlstate": code}));
        let error = match e.kind {
            DbErrorKind::ReadOnly => Error::new(403, "read_only", e.message),
            DbErrorKind::NotGranted => Error::new(403, "not_granted", e.message),
            DbErrorKind::BadParameter => Error::new(400, "bad_parameter", e.message),
            DbErrorKind::Refused => Error::new(500, "statement_refused", e.message),
            DbErrorKind::Database | DbErrorKind::BadRequest => {
                Error::new(500, "database", e.message)
            }
            DbErrorKind::Unavailable => Error::new(503, "database_unavailable", e.message),
        };
        match details {
            Some(details) => error.with_details(details),
            None => error,
        }
    }
}

#[derive(Serialize)]
struct StatementRequest<'a> {
    sql: &'a str,
    params: &'a [Value],
}

/// What the gateway is asked, written straight from the caller's borrowed values.
#[derive(Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Request<'a> {
    Query {
        sql: &'a str,
        params: &'a [Value],
        #[serde(skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    Transaction {
        statements: Vec<StatementRequest<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
}

impl Ctx {
    /// The module's database.
    pub fn db(&self) -> Db<'_> {
        Db {
            ctx: self,
            timeout: None,
        }
    }
}

impl<'a> Db<'a> {
    /// Bound each statement of the next calls by `timeout` (PostgreSQL's `statement_timeout`)
    /// instead of the hub's default (`HUB_DB_STATEMENT_TIMEOUT_MS`).
    pub fn timeout(mut self, timeout: Duration) -> Db<'a> {
        self.timeout = Some(timeout);
        self
    }

    fn timeout_ms(&self) -> Option<u64> {
        self.timeout
            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: &Request<'_>,
    ) -> Result<Vec<Rows<T>>, DbError> {
        let request = serde_json::to_string(request).map_err(|e| DbError {
            kind: DbErrorKind::BadRequest,
            message: format!("the request cannot be written as JSON: {e}"),
            sqlstate: None,
        })?;
        let answer = self.ctx.host_database(request).await;
        match answer {
            Ok(text) => {
                let answer: Answer<T> = serde_json::from_str(&text).map_err(|e| DbError {
                    kind: DbErrorKind::Database,
                    message: format!("the rows do not fit the expected type: {e}"),
                    sqlstate: None,
                })?;
                Ok(answer
                    .results
                    .into_iter()
                    .map(|r| Rows {
                        dry_run: answer.dry_run,
                        ..r
                    })
                    .collect())
            }
            Err(text) => Err(serde_json::from_str(&text).unwrap_or(DbError {
                kind: DbErrorKind::Database,
                message: text,
                sqlstate: None,
            })),
        }
    }

    /// Run one statement; its rows as JSON objects.
    pub async fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        self.query_rows(sql, params).await
    }

    /// Run one statement; its rows deserialized into `T` (columns by name).
    pub async fn query_as<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<T>, DbError> {
        Ok(self.query_rows(sql, params).await?.rows)
    }

    /// Run one statement; its first row as `T`, if any.
    pub async fn query_opt_as<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Option<T>, DbError> {
        Ok(self.query_rows(sql, params).await?.rows.into_iter().next())
    }

    /// Run one statement that returns no rows you need (INSERT, UPDATE, DELETE): how many rows it
    /// changed, or would have under `DRY_RUN`.
    pub async fn execute(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        self.query_rows(sql, params).await
    }

    /// Run one statement; its rows deserialized into `T`, with the counts.
    pub async fn query_rows<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Rows<T>, DbError> {
        let request = Request::Query {
            sql,
            params,
            timeout_ms: self.timeout_ms(),
        };
        self.send(&request).await?.pop().ok_or_else(|| DbError {
            kind: DbErrorKind::Database,
            message: "the gateway answered without a result".to_owned(),
            sqlstate: None,
        })
    }

    /// Run several statements in one transaction: all or nothing. One result per statement.
    pub async fn transaction(&self, statements: &[(&str, &[Value])]) -> Result<Vec<Rows>, DbError> {
        let statements: Vec<StatementRequest<'_>> = statements
            .iter()
            .map(|(sql, params)| StatementRequest { sql, params })
            .collect();
        let request = Request::Transaction {
            statements,
            timeout_ms: self.timeout_ms(),
        };
        self.send(&request).await
    }
}
