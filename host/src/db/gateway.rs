//! The database gateway: the only way a module reaches PostgreSQL.
//!
//! A request is one statement or a list run as one transaction, as JSON (see
//! [`GatewayRequest`]). Each statement must be a query or DML (transaction control, session
//! settings, LISTEN, DDL, COPY, DO and CALL are refused by name), goes through the extended
//! protocol (one statement per Parse, prepared and cached per connection), and gets its JSON
//! parameters converted to the types the prepared statement declares.
//!
//! The safety switches are enforced by PostgreSQL. `READ_ONLY` calls use connections whose
//! `default_transaction_read_only` is on, so every transaction on them is read only (a write fails
//! with SQLSTATE 25006); `DRY_RUN` calls run in a transaction that is rolled back (the module
//! learns how many rows would have changed); with both on, READ_ONLY decides. The default
//! `statement_timeout` is set per connection; a call asking for another sets it with `SET LOCAL`
//! inside its transaction, so nothing leaks to the next user of a pooled connection. A single
//! statement that needs neither runs on its own (autocommit): one message, as a direct query
//! would. Otherwise BEGIN, the statements and COMMIT/ROLLBACK are sent pipelined: one round trip
//! for the whole call once the statements are prepared.

use std::time::Duration;

use deadpool_postgres::Object;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::convert::{self, Param};
use super::{Access, Database, DbUnavailable, statement};

/// What a module asks for.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum GatewayRequest {
    /// One statement.
    Query {
        sql: String,
        #[serde(default)]
        params: Vec<Value>,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    /// Several statements in one transaction.
    Transaction {
        statements: Vec<Statement>,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    pub sql: String,
    #[serde(default)]
    pub params: Vec<Value>,
}

/// The answer: one result per statement.
#[derive(Debug, Serialize)]
pub struct GatewayResult {
    pub results: Vec<StatementResult>,
    /// The changes were rolled back (`DRY_RUN`): `rows_affected` says what would have changed.
    pub dry_run: bool,
}

#[derive(Debug, Serialize)]
pub struct StatementResult {
    pub rows: Vec<Map<String, Value>>,
    pub rows_affected: u64,
}

/// Why a call failed; the author API maps `kind` onto HTTP.
#[derive(Debug, Serialize)]
pub struct GatewayError {
    /// `read_only`, `bad_parameter`, `refused`, `database`, `unavailable` or `bad_request`.
    pub kind: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
}

impl GatewayError {
    fn new(kind: &'static str, message: impl Into<String>) -> GatewayError {
        GatewayError {
            kind,
            message: message.into(),
            sqlstate: None,
        }
    }
}

/// Who calls: the module and its effective safety switches.
#[derive(Debug, Clone)]
pub struct Caller {
    pub module: String,
    pub read_only: bool,
    pub dry_run: bool,
}

/// Run `request` (JSON) for `caller`; the result or the error, as JSON.
pub async fn call(db: &Database, caller: &Caller, request: &str) -> Result<String, String> {
    let outcome = match serde_json::from_str::<GatewayRequest>(request) {
        Ok(GatewayRequest::Query {
            sql,
            params,
            timeout_ms,
        }) => run(db, caller, vec![Statement { sql, params }], timeout_ms).await,
        Ok(GatewayRequest::Transaction {
            statements,
            timeout_ms,
        }) => run(db, caller, statements, timeout_ms).await,
        Err(e) => Err(GatewayError::new(
            "bad_request",
            format!("the gateway request is invalid: {e}"),
        )),
    };
    match outcome {
        Ok(result) => Ok(to_json(&result)),
        Err(error) => Err(to_json(&error)),
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        format!(r#"{{"kind":"database","message":"cannot encode the result: {e}"}}"#)
    })
}

async fn run(
    db: &Database,
    caller: &Caller,
    statements: Vec<Statement>,
    timeout_ms: Option<u64>,
) -> Result<GatewayResult, GatewayError> {
    if statements.is_empty() {
        return Err(GatewayError::new(
            "bad_request",
            "a transaction needs at least one statement",
        ));
    }
    for (n, s) in statements.iter().enumerate() {
        if let Some(why) = statement::refusal(&s.sql) {
            return Err(GatewayError::new("refused", at(n, &statements, why)));
        }
    }
    let timeout = timeout_ms.map_or(db.statement_timeout(), Duration::from_millis);
    let plan = Plan::for_call(
        caller,
        statements.len(),
        timeout != db.statement_timeout(),
        timeout,
    );
    let client = db.client(plan.access).await.map_err(|e| match e {
        DbUnavailable::NotConfigured => GatewayError::new("unavailable", e.to_string()),
        DbUnavailable::Unreachable(_) => GatewayError::new("unavailable", e.to_string()),
    })?;
    // The server bounds each statement; this bounds a database that stopped answering.
    let deadline = timeout + Duration::from_secs(2);
    match tokio::time::timeout(deadline, execute(&client, caller, &statements, &plan)).await {
        Ok(result) => result,
        Err(_) => {
            // The connection may be mid-transaction: never hand it to the next user.
            drop(Object::take(client));
            Err(GatewayError::new(
                "unavailable",
                format!(
                    "the database did not answer within {} ms",
                    deadline.as_millis()
                ),
            ))
        }
    }
}

/// How a call runs: which pool, and in which transaction.
struct Plan {
    access: Access,
    /// `BEGIN …; SET LOCAL …` and `COMMIT`/`ROLLBACK`, or none for a single statement that the
    /// connection's own settings already cover (autocommit).
    transaction: Option<(String, &'static str)>,
    rolled_back: bool,
}

impl Plan {
    fn for_call(
        caller: &Caller,
        statements: usize,
        custom_timeout: bool,
        timeout: Duration,
    ) -> Plan {
        let access = if caller.read_only {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        };
        // READ_ONLY decides when both switches are on: nothing is written, nothing to roll back.
        let rolled_back = caller.dry_run && !caller.read_only;
        let bare = statements == 1 && !custom_timeout && !rolled_back;
        let transaction = (!bare).then(|| {
            let mut begin = if caller.read_only {
                "BEGIN READ ONLY"
            } else {
                "BEGIN"
            }
            .to_owned();
            if custom_timeout {
                begin.push_str(&format!(
                    "; SET LOCAL statement_timeout = {}",
                    timeout.as_millis()
                ));
            }
            (begin, if rolled_back { "ROLLBACK" } else { "COMMIT" })
        });
        Plan {
            access,
            transaction,
            rolled_back,
        }
    }
}

async fn execute(
    client: &Object,
    caller: &Caller,
    statements: &[Statement],
    plan: &Plan,
) -> Result<GatewayResult, GatewayError> {
    let mut prepared = Vec::with_capacity(statements.len());
    for (n, s) in statements.iter().enumerate() {
        let statement = client
            .prepare_cached(&s.sql)
            .await
            .map_err(|e| sql_error(caller, n, statements, &e))?;
        let expected = statement.params();
        if s.params.len() != expected.len() {
            return Err(GatewayError::new(
                "bad_parameter",
                at(
                    n,
                    statements,
                    format!(
                        "the statement takes {} parameter(s), but {} were given",
                        expected.len(),
                        s.params.len()
                    ),
                ),
            ));
        }
        let params: Vec<Param> = expected
            .iter()
            .zip(&s.params)
            .enumerate()
            .map(|(i, (ty, value))| convert::param(i + 1, ty, value))
            .collect::<Result<_, _>>()
            .map_err(|why| GatewayError::new("bad_parameter", at(n, statements, why)))?;
        prepared.push((statement, params));
    }

    let client: &tokio_postgres::Client = client;
    // Polled in order, each sends its messages on its first poll: one round trip for all.
    let runs = prepared.iter().map(|(statement, params)| async move {
        let stream = client.query_raw(statement, params.iter()).await?;
        let mut stream = std::pin::pin!(stream);
        let mut rows = Vec::new();
        while let Some(row) = stream.next().await {
            rows.push(row?);
        }
        let affected = stream.rows_affected().unwrap_or(0);
        Ok::<_, tokio_postgres::Error>((rows, affected))
    });
    let results = match &plan.transaction {
        None => futures_util::future::join_all(runs).await,
        Some((begin, end)) => {
            let (begun, results, ended) = futures_util::future::join3(
                client.batch_execute(begin),
                futures_util::future::join_all(runs),
                client.batch_execute(end),
            )
            .await;
            begun.map_err(|e| sql_error(caller, 0, statements, &e))?;
            // A failed statement aborts the transaction; its own error is the one to report.
            if results.iter().all(Result::is_ok) {
                ended.map_err(|e| sql_error(caller, statements.len() - 1, statements, &e))?;
            }
            results
        }
    };
    let mut out = Vec::with_capacity(results.len());
    for (n, result) in results.into_iter().enumerate() {
        let (rows, rows_affected) = result.map_err(|e| sql_error(caller, n, statements, &e))?;
        let rows = rows
            .iter()
            .map(convert::row)
            .collect::<Result<_, _>>()
            .map_err(|why| GatewayError::new("database", at(n, statements, why)))?;
        out.push(StatementResult {
            rows,
            rows_affected,
        });
    }
    Ok(GatewayResult {
        results: out,
        dry_run: plan.rolled_back,
    })
}

/// `message`, prefixed with the statement's number when the call has several.
fn at(n: usize, statements: &[Statement], message: impl Into<String>) -> String {
    let message = message.into();
    if statements.len() > 1 {
        format!("statement {} of {}: {message}", n + 1, statements.len())
    } else {
        message
    }
}

fn sql_error(
    caller: &Caller,
    n: usize,
    statements: &[Statement],
    error: &tokio_postgres::Error,
) -> GatewayError {
    let Some(db) = error.as_db_error() else {
        return GatewayError::new(
            "unavailable",
            format!("the database is unreachable: {}", super::explain(error)),
        );
    };
    let code = db.code().code().to_owned();
    if code == "25006" {
        let upper = caller.module.to_ascii_uppercase();
        return GatewayError {
            kind: "read_only",
            message: at(
                n,
                statements,
                format!(
                    "module '{}' is READ_ONLY, and PostgreSQL refused the write ({}): turn it off with MODULES__{upper}__READ_ONLY=false or \"safety\": {{\"read_only\": false}} in module.json",
                    caller.module,
                    db.message()
                ),
            ),
            sqlstate: Some(code),
        };
    }
    let kind = if code == "42P18" || code.starts_with("22") && db.message().contains("parameter") {
        "bad_parameter"
    } else {
        "database"
    };
    GatewayError {
        kind,
        message: at(n, statements, db.message().to_owned()),
        sqlstate: Some(code),
    }
}
