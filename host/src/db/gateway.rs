//! The database gateway: the only way a module reaches PostgreSQL.
//!
//! A request is one statement or a list run as one transaction, as JSON (see
//! [`GatewayRequest`]). Each statement must be a query or DML (transaction control, session
//! settings, LISTEN, DDL, COPY, DO and CALL are refused by name), goes through the extended
//! protocol (one statement per Parse, prepared and cached per connection), and gets its JSON
//! parameters converted to the types the prepared statement declares.
//!
//! The module's boundary and its safety switches are enforced by PostgreSQL. A call runs as the
//! module's role (`roles.rs`): its writer role, or while `READ_ONLY` its reader role on a session
//! whose `default_transaction_read_only` is on, so every transaction is read only (a write fails
//! with SQLSTATE 25006, and the reader could not write anyway); another module's table answers
//! 42501 unless the module's `uses` declares it (403 `not_granted`). `DRY_RUN` calls run in a
//! transaction that is rolled back (the module learns how many rows would have changed); with both
//! on, READ_ONLY decides. A connection's session changes only when the call needs another one,
//! in the same round trip as the call. The default `statement_timeout` is set per connection; a
//! call asking for another (capped by `HUB_DB_MAX_STATEMENT_TIMEOUT_MS`; 0 means the cap) sets it
//! with `SET LOCAL` inside its transaction, so nothing leaks to the next user of a pooled
//! connection; when the hub gives up on a call (the database does not answer, or the module's
//! handler was abandoned mid-call) it cancels the query on the server and never uses the
//! connection again. A single statement that needs neither runs on its own (autocommit): one
//! message, as a direct query would. Otherwise BEGIN, the statements and COMMIT/ROLLBACK are sent
//! pipelined: one round trip for the whole call once the statements are prepared. A statement
//! whose cached plan no longer fits its table (SQLSTATE 0A000, after a migration) is prepared
//! again and the call retried once.

use std::time::Duration;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::convert::{self, Param};
use super::pool::Conn;
use super::roles::RoleError;
use super::{Database, DbUnavailable, Object, Session, statement};

/// What a module asks for: one statement (`"op": "query"` with `sql` and `params`) or several
/// in one transaction (`"op": "transaction"` with `statements`), `timeout_ms` for either. A plain
/// struct rather than an internally tagged enum, which serde reads by buffering the whole object
/// first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayRequest {
    pub op: Op,
    #[serde(default)]
    pub sql: Option<String>,
    #[serde(default)]
    pub params: Vec<Value>,
    #[serde(default)]
    pub statements: Option<Vec<Statement>>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Query,
    Transaction,
}

impl GatewayRequest {
    /// The statements it asks for, or why the request does not fit its `op`.
    fn into_statements(self) -> Result<Vec<Statement>, String> {
        match (self.op, self.sql, self.statements) {
            (Op::Query, Some(sql), None) => Ok(vec![Statement {
                sql,
                params: self.params,
            }]),
            (Op::Transaction, None, Some(statements)) if self.params.is_empty() => Ok(statements),
            (Op::Query, _, _) => {
                Err("a query has `sql` (and `params`), not `statements`".to_owned())
            }
            (Op::Transaction, _, _) => {
                Err("a transaction has `statements`, not `sql` or `params`".to_owned())
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    pub sql: String,
    #[serde(default)]
    pub params: Vec<Value>,
}

/// The answer: one result per statement.
#[derive(Debug)]
pub struct GatewayResult {
    pub results: Vec<StatementResult>,
    /// The changes were rolled back (`DRY_RUN`): `rows_affected` says what would have changed.
    pub dry_run: bool,
}

#[derive(Debug)]
pub struct StatementResult {
    /// The rows as a JSON array of objects, written straight from PostgreSQL's rows.
    pub rows: String,
    pub rows_affected: u64,
}

impl GatewayResult {
    /// `{"results":[{"rows":[…],"rows_affected":n},…],"dry_run":false}`, put together by hand
    /// (no formatting machinery on the hot path).
    fn to_json(&self) -> String {
        let size: usize = self.results.iter().map(|r| r.rows.len() + 48).sum();
        let mut out = String::with_capacity(size + 32);
        out.push_str(r#"{"results":["#);
        for (n, result) in self.results.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(r#"{"rows":"#);
            out.push_str(&result.rows);
            out.push_str(r#","rows_affected":"#);
            push_decimal(&mut out, result.rows_affected);
            out.push('}');
        }
        out.push_str(if self.dry_run {
            r#"],"dry_run":true}"#
        } else {
            r#"],"dry_run":false}"#
        });
        out
    }
}

/// `n` in decimal, appended to `out`.
fn push_decimal(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for d in &digits[at..] {
        out.push(char::from(*d));
    }
}

/// SQL texts that passed the gateway's refusal checks, which depend on the text alone: a
/// module's statements are scanned once, not at every call. Bounded: emptied when full.
#[derive(Default)]
pub struct Passed(std::sync::RwLock<std::collections::HashSet<String>>);

impl Passed {
    const MOST: usize = 4096;

    /// Why `sql` is refused, if it is.
    fn refusal(&self, sql: &str) -> Option<String> {
        if self.0.read().is_ok_and(|passed| passed.contains(sql)) {
            return None;
        }
        let why = statement::refusal(sql);
        if why.is_none()
            && let Ok(mut passed) = self.0.write()
        {
            if passed.len() >= Self::MOST {
                passed.clear();
            }
            passed.insert(sql.to_owned());
        }
        why
    }
}

/// Why a call failed; the author API maps `kind` onto HTTP.
#[derive(Debug, Serialize)]
pub struct GatewayError {
    /// `read_only`, `not_granted`, `bad_parameter`, `refused`, `database`, `unavailable` or
    /// `bad_request`.
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
    let started = crate::metrics::get().map(|m| (m, std::time::Instant::now()));
    let parsed = serde_json::from_str::<GatewayRequest>(request)
        .map_err(|e| e.to_string())
        .and_then(|r| {
            let timeout_ms = r.timeout_ms;
            r.into_statements().map(|s| (s, timeout_ms))
        });
    let outcome = match parsed {
        Ok((statements, timeout_ms)) => run(db, caller, statements, timeout_ms).await,
        Err(e) => Err(GatewayError::new(
            "bad_request",
            format!("the gateway request is invalid: {e}"),
        )),
    };
    if let Some((metrics, started)) = started {
        let label = match &outcome {
            Ok(_) => "ok",
            Err(e) if e.kind == "refused" || e.kind == "bad_request" => "refused",
            Err(_) => "error",
        };
        metrics.statement(&caller.module, label, started.elapsed());
    }
    match outcome {
        Ok(result) => Ok(result.to_json()),
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
        if let Some(why) = db.passed.refusal(&s.sql) {
            return Err(GatewayError::new("refused", at(n, &statements, why)));
        }
    }
    let max = db.max_statement_timeout();
    let timeout = match timeout_ms {
        None => db.statement_timeout(),
        // 0 would be no limit at all: the cap stands instead.
        Some(0) => max,
        Some(ms) => Duration::from_millis(ms).min(max),
    };
    let unavailable = |e: DbUnavailable| GatewayError::new("unavailable", e.to_string());
    let roles = db.module_roles(&caller.module).await.map_err(|e| match e {
        RoleError::Unavailable(e) => unavailable(e),
        other => GatewayError::new("database", other.to_string()),
    })?;
    let session = Session {
        role: Some(if caller.read_only {
            roles.reader.clone()
        } else {
            roles.writer.clone()
        }),
        read_only: caller.read_only,
    };
    let plan = Plan::for_call(
        caller,
        statements.len(),
        timeout != db.statement_timeout(),
        timeout,
    );
    // No timer per call: the server bounds each statement (statement_timeout), TCP a database
    // that stopped answering (tcp_user_timeout and keepalives, set per connection), and the
    // handler's timeout anything else: dropping the call gives it up (`InFlight`).
    let mut client = InFlight(Some(db.pooled().await.map_err(unavailable)?));
    for attempt in 0..2 {
        let Some(conn) = client.0.as_mut() else {
            break;
        };
        match execute(conn, db, caller, &statements, &plan, &session).await {
            Err(Failed::Stale(sql)) if attempt == 0 => {
                // A migration changed the table under a cached plan: prepare it again.
                conn.forget(&sql);
            }
            Err(Failed::Stale(_)) => {
                client.done();
                return Err(GatewayError::new(
                    "database",
                    "the statement's plan does not fit its table after preparing it again",
                ));
            }
            Err(Failed::Error(error)) => {
                client.done();
                return Err(error);
            }
            Ok(result) => {
                client.done();
                return Ok(result);
            }
        }
    }
    Err(GatewayError::new("database", "the call was not run"))
}

/// The connection of a call under way. Dropped before [`InFlight::done`] (the hub stopped
/// waiting for the module's handler, or for a health check, and dropped its future),
/// it gives the call up: the server is asked to cancel what it runs, and the connection (maybe
/// mid-transaction) is never handed out again.
struct InFlight(Option<Object>);

impl InFlight {
    /// The call ended: the connection goes back to the pool.
    fn done(&mut self) {
        self.0 = None;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(mut client) = self.0.take() else {
            return;
        };
        client.discard();
        let cancel = client.cancel_token();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = cancel.cancel_query(tokio_postgres::NoTls).await {
                    tracing::warn!("cannot cancel a database call the hub gave up on: {e}");
                }
            });
        }
    }
}

/// Why a call did not give a result.
enum Failed {
    /// A cached statement's plan no longer fits its table (0A000): prepare `sql` again.
    Stale(String),
    Error(GatewayError),
}

impl From<GatewayError> for Failed {
    fn from(error: GatewayError) -> Failed {
        Failed::Error(error)
    }
}

/// How a call runs: in which transaction.
struct Plan {
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
            transaction,
            rolled_back,
        }
    }
}

async fn execute(
    conn: &mut Conn,
    db: &Database,
    caller: &Caller,
    statements: &[Statement],
    plan: &Plan,
    session: &Session,
) -> Result<GatewayResult, Failed> {
    let mut prepared = Vec::with_capacity(statements.len());
    for (n, s) in statements.iter().enumerate() {
        let statement = conn
            .prepare(&s.sql)
            .await
            .map_err(|e| sql_error(db, caller, n, statements, &e))?;
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
            )
            .into());
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

    // The session's commands (when it changes), then the transaction and the statements: all
    // polled in order, each sending its messages on its first poll, so one round trip for all.
    let switch = conn.switch_to(session);
    let client: &tokio_postgres::Client = conn.client();
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
    let switched = async {
        match &switch {
            Some(commands) => client.batch_execute(commands).await.map(|()| true),
            None => Ok(false),
        }
    };
    let (switched, results) = match &plan.transaction {
        // The common call: one statement on a connection already in the module's session.
        None if switch.is_none() && prepared.len() == 1 => {
            drop(switched);
            let mut runs = runs;
            let result = match runs.next() {
                Some(run) => run.await,
                None => return Err(GatewayError::new("database", "no statement to run").into()),
            };
            (Ok(false), vec![result])
        }
        None => futures_util::future::join(switched, futures_util::future::join_all(runs)).await,
        Some((begin, end)) => {
            let (switched, begun, results, ended) = futures_util::future::join4(
                switched,
                client.batch_execute(begin),
                futures_util::future::join_all(runs),
                client.batch_execute(end),
            )
            .await;
            if let Err(e) = &begun
                && switched.is_ok()
            {
                return Err(sql_error(db, caller, 0, statements, e).into());
            }
            // A failed statement aborts the transaction; its own error is the one to report.
            if let Err(e) = &ended
                && switched.is_ok()
                && results.iter().all(Result::is_ok)
            {
                return Err(sql_error(db, caller, statements.len() - 1, statements, e).into());
            }
            (switched, results)
        }
    };
    match switched {
        Ok(true) => conn.entered(session.clone()),
        Ok(false) => {}
        Err(e) => {
            // The session is unknown now: this connection is not used again.
            conn.discard();
            return Err(GatewayError::new(
                "database",
                format!(
                    "cannot act as module '{}' on the database: {}",
                    caller.module,
                    super::explain(&e)
                ),
            )
            .into());
        }
    }
    let mut out = Vec::with_capacity(results.len());
    for (n, result) in results.into_iter().enumerate() {
        let (rows, rows_affected) = match result {
            Ok(result) => result,
            Err(e)
                if e.code().map(|c| c.code()) == Some("0A000")
                    && e.as_db_error()
                        .is_some_and(|d| d.message().contains("cached plan")) =>
            {
                return Err(Failed::Stale(statements[n].sql.clone()));
            }
            Err(e) => return Err(sql_error(db, caller, n, statements, &e).into()),
        };
        let rows = convert::rows_json(&rows)
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
    db: &Database,
    caller: &Caller,
    n: usize,
    statements: &[Statement],
    error: &tokio_postgres::Error,
) -> GatewayError {
    let Some(db_error) = error.as_db_error() else {
        return GatewayError::new(
            "unavailable",
            format!("the database is unreachable: {}", super::explain(error)),
        );
    };
    let code = db_error.code().code().to_owned();
    // A READ_ONLY module's write is refused by its read-only transaction (25006) or, failing
    // that, by its reader role (42501): either way, READ_ONLY said no. A read it may not do is
    // not READ_ONLY's doing.
    if code == "25006" || (code == "42501" && caller.read_only && writes(&statements[n].sql)) {
        let upper = caller.module.to_ascii_uppercase();
        return GatewayError {
            kind: "read_only",
            message: at(
                n,
                statements,
                format!(
                    "module '{}' is READ_ONLY, and PostgreSQL refused the write ({}): turn it off with MODULES__{upper}__READ_ONLY=false or \"safety\": {{\"read_only\": false}} in module.json",
                    caller.module,
                    db_error.message()
                ),
            ),
            sqlstate: Some(code),
        };
    }
    if code == "42501" {
        return GatewayError {
            kind: "not_granted",
            message: at(
                n,
                statements,
                not_granted(db, caller, &statements[n].sql, db_error.message()),
            ),
            sqlstate: Some(code),
        };
    }
    let kind =
        if code == "42P18" || code.starts_with("22") && db_error.message().contains("parameter") {
            "bad_parameter"
        } else if code == "22021" {
            // A text PostgreSQL cannot store (a NUL character): the request's, not the module's.
            return GatewayError {
                kind: "bad_parameter",
                message: at(
                    n,
                    statements,
                    format!(
                        "a text holds a character PostgreSQL cannot store (NUL): {}",
                        db_error.message()
                    ),
                ),
                sqlstate: Some(code),
            };
        } else {
            "database"
        };
    GatewayError {
        kind,
        message: at(n, statements, db_error.message().to_owned()),
        sqlstate: Some(code),
    }
}

/// Why module `caller` may not touch what PostgreSQL refused (`message`: "permission denied for
/// table customers_customers"), and the declaration that would allow it.
fn not_granted(db: &Database, caller: &Caller, sql: &str, message: &str) -> String {
    let (what, name) = message
        .strip_prefix("permission denied for ")
        .and_then(|rest| rest.split_once(' '))
        .unwrap_or(("object", message));
    let (verb, mode) = if writes(sql) {
        ("write", "write")
    } else {
        ("read", "read")
    };
    let module = &caller.module;
    match db.roles.owner_of(name) {
        Some(owner) if owner != *module => format!(
            "module '{module}' may not {verb} {what} {name} of module '{owner}': declare it in its module.json, \"uses\": {{\"{owner}\": \"{mode}\"}} ('{owner}' must be among its dependencies)"
        ),
        _ => format!(
            "module '{module}' may not {verb} {what} {name}: it is neither its own nor another module's ({message})"
        ),
    }
}

/// Whether `sql` writes rows (INSERT, UPDATE, DELETE or MERGE anywhere in it, a CTE's too).
fn writes(sql: &str) -> bool {
    statement::tokens(sql).iter().any(|t| {
        matches!(t, statement::Token::Word(w) if matches!(w.as_str(), "insert" | "update" | "delete" | "merge"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statements(request: &str) -> Result<Vec<(String, usize)>, String> {
        serde_json::from_str::<GatewayRequest>(request)
            .map_err(|e| e.to_string())?
            .into_statements()
            .map(|s| s.into_iter().map(|s| (s.sql, s.params.len())).collect())
    }

    #[test]
    fn requests_fit_their_op() {
        assert_eq!(
            statements(r#"{"op":"query","sql":"SELECT $1","params":[1]}"#),
            Ok(vec![("SELECT $1".to_owned(), 1)])
        );
        assert_eq!(
            statements(
                r#"{"op":"transaction","statements":[{"sql":"SELECT 1"},{"sql":"SELECT $1","params":[2]}],"timeout_ms":5}"#
            ),
            Ok(vec![
                ("SELECT 1".to_owned(), 0),
                ("SELECT $1".to_owned(), 1)
            ])
        );
        assert_eq!(
            statements(r#"{"op":"query","statements":[]}"#),
            Err("a query has `sql` (and `params`), not `statements`".to_owned())
        );
        assert_eq!(
            statements(r#"{"op":"transaction","sql":"SELECT 1"}"#),
            Err("a transaction has `statements`, not `sql` or `params`".to_owned())
        );
        assert!(statements(r#"{"op":"drop"}"#).is_err());
        assert!(statements(r#"{"op":"query","sql":"SELECT 1","extra":1}"#).is_err());
    }

    #[test]
    fn results_are_json() {
        let result = GatewayResult {
            results: vec![
                StatementResult {
                    rows: r#"[{"a":1}]"#.to_owned(),
                    rows_affected: 0,
                },
                StatementResult {
                    rows: "[]".to_owned(),
                    rows_affected: 18_446_744_073_709_551_615,
                },
            ],
            dry_run: true,
        };
        let value: Value = serde_json::from_str(&result.to_json()).expect("JSON");
        assert_eq!(
            value,
            serde_json::json!({"results": [
                {"rows": [{"a": 1}], "rows_affected": 0},
                {"rows": [], "rows_affected": 18_446_744_073_709_551_615u64}
            ], "dry_run": true})
        );
    }
}
