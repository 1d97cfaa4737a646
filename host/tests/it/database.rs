//! PostgreSQL (issue 4): migrations applied once, recorded, checked for changes and for the
//! module's table prefix, rolled back on failure; the safety switches enforced by the database;
//! the gateway's refusals, conversions and errors; a database that is missing, unreachable or cut
//! off mid-run. Each test has a database of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Hub, Proxy, Setup, TestDb};

/// dbfix with both safety switches off, unless `safety` says otherwise.
pub(crate) fn dbfix(safety: Value) -> Setup {
    Setup::new().dbfix(json!({"safety": safety}))
}

pub(crate) fn live() -> Value {
    json!({"read_only": false, "dry_run": false})
}

pub(crate) fn sql(hub: &Hub, sql: &str, params: Value) -> crate::support::Reply {
    let body = json!({"sql": sql, "params": params}).to_string();
    hub.request("POST", "/api/v1/dbfix/sql", None, Some(&body))
}

/// `POST /api/v1/dbfix/items` with `body`.
pub(crate) fn post_item(hub: &Hub, body: &str) -> crate::support::Reply {
    hub.request("POST", "/api/v1/dbfix/items", None, Some(body))
}

fn count(db: &TestDb, table: &str) -> i64 {
    db.client()
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .map(|r| r.get(0))
        .unwrap_or(-1)
}

fn exists(db: &TestDb, relation: &str) -> bool {
    db.client()
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&relation])
        .map(|r| r.get(0))
        .unwrap_or(false)
}

fn recorded(db: &TestDb, module: &str) -> Vec<(i32, String)> {
    db.client()
        .query(
            "SELECT version, name FROM module_migrations WHERE module = $1 ORDER BY version",
            &[&module],
        )
        .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        .unwrap_or_default()
}

#[test]
fn migrations_are_applied_once_recorded_and_reported() {
    let setup = dbfix(live());
    let db = setup.db();
    let hub = setup.start();
    let module = hub.module("dbfix");
    assert_eq!(module["state"], "running", "{module}");
    assert!(exists(&db, "dbfix_items") && exists(&db, "dbfix_items_title"));
    assert_eq!(
        recorded(&db, "dbfix"),
        [(1, "init".to_owned()), (2, "title_index".to_owned())]
    );
    assert_eq!(
        recorded(&db, "hub"),
        [
            (1, "module_migrations".to_owned()),
            (2, "module_roles".to_owned()),
            (3, "identity".to_owned()),
            (4, "request_ids".to_owned()),
            (5, "usage".to_owned()),
            (6, "jobs".to_owned()),
            (7, "packages".to_owned()),
            (8, "instances".to_owned()),
            (9, "module_state".to_owned())
        ]
    );
    let applied = module["migrations"]["applied"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(applied.len(), 2);
    assert_eq!(applied[0]["version"], 1);
    assert_eq!(applied[0]["name"], "init");
    assert_eq!(applied[0]["checksum"].as_str().map(str::len), Some(64));
    assert!(applied[0]["applied_at"].is_string() && applied[0]["duration_ms"].is_u64());
    assert_eq!(module["migrations"]["pending"], json!([]));
    assert_eq!(tables(&module), vec![("dbfix_items".to_owned(), true)]);
    assert_eq!(module["table_prefix"], "dbfix_");
    let first_applied = applied[0]["applied_at"].clone();
    drop(hub);

    // A second start on the same database applies nothing again.
    let again = Setup::with_database(Some(db.clone()))
        .dbfix(json!({"safety": live()}))
        .start();
    let module = again.module("dbfix");
    assert_eq!(module["state"], "running");
    assert_eq!(
        module["migrations"]["applied"][0]["applied_at"],
        first_applied
    );
    assert_eq!(recorded(&db, "dbfix").len(), 2);

    // A table dropped behind the hub's back shows as missing.
    db.client()
        .batch_execute("DROP TABLE dbfix_items")
        .expect("drop");
    assert_eq!(
        again.module("dbfix")["tables"],
        json!([{"name": "dbfix_items", "present": false, "rows_estimate": null, "bytes": null}])
    );
}

#[test]
fn an_applied_migration_that_changed_is_refused_by_checksum() {
    let setup = dbfix(live());
    let db = setup.db();
    drop(setup.start());
    let hub = Setup::with_database(Some(db.clone()))
        .dbfix(json!({"safety": live()}))
        .env("DBFIX_MIGRATIONS", "edited")
        .start();
    let module = hub.module("dbfix");
    assert_eq!(module["state"], "failed");
    let error = module["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("migration 001_init of module 'dbfix' was applied with checksum "),
        "{error}"
    );
    assert!(
        error.ends_with(": an applied migration must not change; add a new migration instead"),
        "{error}"
    );
    let checksums: Vec<&str> = error.split("checksum ").skip(1).map(|s| &s[..64]).collect();
    assert_eq!(checksums.len(), 2, "both checksums are named: {error}");
    assert_ne!(checksums[0], checksums[1]);
}

#[test]
fn a_migration_failing_in_its_second_statement_leaves_nothing_behind() {
    let setup = dbfix(live()).env("DBFIX_MIGRATIONS", "second_fails");
    let db = setup.db();
    let hub = setup.start();
    let module = hub.module("dbfix");
    assert_eq!(module["state"], "failed");
    assert_eq!(
        module["error"],
        "migration 002_second of module 'dbfix' failed and was rolled back: relation \"dbfix_missing\" does not exist (SQLSTATE 42P01)"
    );
    assert!(
        !exists(&db, "dbfix_second"),
        "the first statement was rolled back too"
    );
    assert_eq!(
        recorded(&db, "dbfix"),
        [(1, "init".to_owned())],
        "only the migration that worked"
    );
    assert_eq!(hub.get("/healthz").status, 200);
}

#[test]
fn a_migration_outside_the_module_prefix_is_refused_and_rolled_back() {
    let setup = dbfix(live()).env("DBFIX_MIGRATIONS", "other_prefix");
    let db = setup.db();
    let hub = setup.start();
    assert_eq!(
        hub.module("dbfix")["error"],
        "migration 001_init of module 'dbfix' was refused and rolled back: it creates or changes table 'other_items'; a module's objects must start with its table prefix 'dbfix_'"
    );
    assert!(!exists(&db, "other_items"));
    assert!(recorded(&db, "dbfix").is_empty());
}

#[test]
fn a_migration_writing_a_host_table_is_refused_and_rolled_back() {
    let setup = dbfix(live()).env("DBFIX_MIGRATIONS", "host_table");
    let db = setup.db();
    let hub = setup.start();
    assert_eq!(
        hub.module("dbfix")["error"],
        // The module's role may not write the hub's table (issue 12); were it granted, the prefix
        // check would refuse it ("it writes rows of table 'module_migrations'").
        "migration 001_init of module 'dbfix' failed and was rolled back: permission denied for table module_migrations (SQLSTATE 42501)"
    );
    assert_eq!(
        count(&db, "module_migrations"),
        host::db::migrate::host_migrations().len() as i64,
        "only the hub's own records"
    );
}

#[test]
fn two_hubs_starting_at_once_apply_each_migration_once() {
    let db = Arc::new(TestDb::create());
    let start = |db: Arc<TestDb>| {
        std::thread::spawn(move || {
            Setup::with_database(Some(db))
                .dbfix(json!({"safety": live()}))
                .env("DBFIX_MIGRATIONS", "slow")
                .start()
        })
    };
    let (a, b) = (start(db.clone()), start(db.clone()));
    let (a, b) = (a.join().expect("hub a"), b.join().expect("hub b"));
    assert_eq!(a.module("dbfix")["state"], "running", "{}", a.logs());
    assert_eq!(b.module("dbfix")["state"], "running", "{}", b.logs());
    assert_eq!(
        recorded(&db, "dbfix"),
        [(1, "init".to_owned()), (2, "title_index".to_owned())]
    );
    assert_eq!(
        recorded(&db, "hub").len(),
        host::db::migrate::host_migrations().len()
    );
}

#[test]
fn overlapping_table_prefixes_fail_the_later_module_naming_both() {
    let hub = Setup::new()
        .dbfix(json!({}))
        .fixture("other", json!({"table_prefix": "dbfix_o_"}))
        .fixture("sneaky", json!({"table_prefix": "hub_x_"}))
        .start();
    assert_eq!(hub.module("dbfix")["state"], "running");
    assert_eq!(
        hub.module("other")["error"],
        "table prefix 'dbfix_o_' overlaps module 'dbfix's 'dbfix_': give one of them another \"table_prefix\""
    );
    assert_eq!(
        hub.module("sneaky")["error"],
        "table prefix 'hub_x_' overlaps 'hub_', the prefix of the hub's or PostgreSQL's own tables (one starts with the other): choose another \"table_prefix\""
    );
}

#[test]
fn read_only_refuses_writes_by_the_database() {
    let setup = Setup::new().dbfix(json!({}));
    let db = setup.db();
    let hub = setup.start();
    let reply = post_item(&hub, r#"{"title": "x"}"#);
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.json(),
        json!({"error": {
            "code": "read_only",
            "message": "module 'dbfix' is READ_ONLY, and PostgreSQL refused the write (cannot execute INSERT in a read-only transaction): turn it off with MODULES__DBFIX__READ_ONLY=false or \"safety\": {\"read_only\": false} in module.json",
            "details": {"sqlstate": "25006"}
        }})
    );
    assert_eq!(count(&db, "dbfix_items"), 0);
    assert_eq!(
        hub.get("/api/v1/dbfix/count").json(),
        json!({"count": 0}),
        "reads work"
    );
}

#[test]
fn dry_run_rolls_back_and_reports_what_would_change() {
    let setup = Setup::new()
        .dbfix(json!({"safety": {"read_only": false}}))
        .env("MODULES__DBFIX__DRY_RUN", "true");
    let db = setup.db();
    let hub = setup.start();
    let reply = post_item(&hub, r#"{"title": "x", "price": 9.5}"#);
    assert_eq!(reply.status, 201);
    assert_eq!(
        reply.json(),
        json!({"item": {"id": 1, "title": "x", "price": "9.50"}, "rows_affected": 1, "dry_run": true})
    );
    assert_eq!(count(&db, "dbfix_items"), 0);
}

#[test]
fn with_both_switches_off_writes_persist() {
    let setup = dbfix(live());
    let db = setup.db();
    let hub = setup.start();
    let reply = post_item(&hub, r#"{"title": "kept", "price": "12.345"}"#);
    assert_eq!(reply.status, 201);
    assert_eq!(reply.json()["dry_run"], false);
    assert_eq!(count(&db, "dbfix_items"), 1);
    let reply = hub.get("/api/v1/dbfix/items/1");
    assert_eq!(
        reply.json(),
        json!({"id": 1, "title": "kept", "price": "12.35"})
    );
}

#[test]
fn transaction_control_and_session_settings_are_refused() {
    let setup = dbfix(live());
    let db = setup.db();
    let hub = setup.start();
    for (statement, keyword, why) in [
        (
            "SET TRANSACTION READ WRITE",
            "SET",
            "session settings would leak to the next user of the pooled connection",
        ),
        (
            "COMMIT",
            "COMMIT",
            "transaction control is the hub's: use transaction(statements) for several statements in one transaction",
        ),
        (
            "BEGIN; INSERT INTO dbfix_items (title) VALUES ('x')",
            "BEGIN",
            "transaction control is the hub's: use transaction(statements) for several statements in one transaction",
        ),
        (
            "CREATE TABLE dbfix_more (id int)",
            "CREATE",
            "schema changes belong in a migration",
        ),
        (
            "LISTEN dbfix",
            "LISTEN",
            "LISTEN/NOTIFY needs a connection of its own, which modules do not get",
        ),
        (
            "COPY dbfix_items FROM STDIN",
            "COPY",
            "COPY is not available to modules: use INSERT",
        ),
        (
            "DO $$ BEGIN END $$",
            "DO",
            "DO and CALL run code the hub cannot see: write the statements out",
        ),
        (
            "CALL dbfix_p()",
            "CALL",
            "DO and CALL run code the hub cannot see: write the statements out",
        ),
    ] {
        let reply = sql(&hub, statement, json!([]));
        assert_eq!(reply.status, 500, "{statement}");
        assert_eq!(
            reply.json(),
            json!({"error": {"code": "statement_refused", "message": format!("{keyword} is refused: {why}")}}),
            "{statement}"
        );
    }
    // Two statements in one call cannot be prepared: PostgreSQL refuses them.
    let reply = sql(
        &hub,
        "SELECT 1; INSERT INTO dbfix_items (title) VALUES ('x')",
        json!([]),
    );
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "database", "message": "cannot insert multiple commands into a prepared statement", "details": {"sqlstate": "42601"}}})
    );
    assert_eq!(count(&db, "dbfix_items"), 0);
}

#[test]
fn parameters_are_converted_to_the_declared_types() {
    let hub = dbfix(live()).start();
    let reply = sql(
        &hub,
        "SELECT $1::bool AS b, $2::int2 AS s, $3::int8 AS l, $4::float8 AS f, $5::numeric AS n, \
         $6::text AS t, $7::uuid AS u, $8::date AS d, $9::timestamp AS ts, $10::timestamptz AS tz, \
         $11::jsonb AS j, $12::bytea AS y, $13::int4[] AS a, $14::text AS nothing",
        json!([
            true, 7, 9007199254740993i64, 2.5, "12345678901234567890.1234567", "hello",
            "67e55044-10b1-426f-9247-bb680e5fe0c8", "2026-11-26", "2026-11-26T10:30:00.5",
            "2026-11-26T10:30:00+01:00", {"k": [1, "v"]}, "aGk=", [1, null, 3], null
        ]),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json()["rows"],
        json!([{
            "b": true, "s": 7, "l": 9007199254740993i64, "f": 2.5, "n": "12345678901234567890.1234567",
            "t": "hello", "u": "67e55044-10b1-426f-9247-bb680e5fe0c8", "d": "2026-11-26",
            "ts": "2026-11-26T10:30:00.500", "tz": "2026-11-26T09:30:00Z", "j": {"k": [1, "v"]},
            "y": "aGk=", "a": [1, null, 3], "nothing": null
        }])
    );
}

#[test]
fn bad_parameters_syntax_errors_and_timeouts_get_their_codes_and_the_hub_carries_on() {
    let hub = dbfix(live()).start();
    let reply = sql(&hub, "SELECT $1::int4 AS a", json!(["seven"]));
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "bad_parameter", "message": "parameter $1 (int4) must be an integer, not a string"}})
    );
    let reply = sql(&hub, "SELECT $1::int4 AS a, $2::text AS b", json!([1]));
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "bad_parameter", "message": "the statement takes 2 parameter(s), but 1 were given"}})
    );
    let reply = sql(&hub, "SELECT 1 +", json!([]));
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "database", "message": "syntax error at end of input", "details": {"sqlstate": "42601"}}})
    );
    let body = json!({"sql": "SELECT pg_sleep(5)", "params": [], "timeout_ms": 100}).to_string();
    let started = Instant::now();
    let reply = hub.request("POST", "/api/v1/dbfix/sql", None, Some(&body));
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "database", "message": "canceling statement due to statement timeout", "details": {"sqlstate": "57014"}}})
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(hub.get("/api/v1/dbfix/count").json(), json!({"count": 0}));
}

#[test]
fn a_transaction_is_all_or_nothing() {
    let setup = dbfix(live());
    let db = setup.db();
    let hub = setup.start();
    let body = json!({"statements": [
        {"sql": "INSERT INTO dbfix_items (title) VALUES ($1)", "params": ["a"]},
        {"sql": "INSERT INTO dbfix_items (title) VALUES ($1)", "params": [null]},
    ]})
    .to_string();
    let reply = hub.request("POST", "/api/v1/dbfix/tx", None, Some(&body));
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "database", "message": "statement 2 of 2: null value in column \"title\" of relation \"dbfix_items\" violates not-null constraint", "details": {"sqlstate": "23502"}}})
    );
    assert_eq!(count(&db, "dbfix_items"), 0);
    let body = json!({"statements": [
        {"sql": "INSERT INTO dbfix_items (title) VALUES ($1)", "params": ["a"]},
        {"sql": "UPDATE dbfix_items SET title = $1", "params": ["b"]},
    ]})
    .to_string();
    let reply = hub.request("POST", "/api/v1/dbfix/tx", None, Some(&body));
    assert_eq!(
        reply.json(),
        json!({"rows_affected": [1, 1], "dry_run": false})
    );
    assert_eq!(count(&db, "dbfix_items"), 1);
}

#[test]
fn without_a_database_the_hub_starts_and_modules_with_migrations_fail() {
    let hub = Setup::without_database().hello().dbfix(json!({})).start();
    assert_eq!(hub.get("/api/v1/hello/ping").status, 200);
    let module = hub.module("dbfix");
    assert_eq!(module["state"], "failed");
    assert_eq!(
        module["error"],
        "module 'dbfix' has migrations but the hub has no database: set DATABASE_URL"
    );
    assert_eq!(module["migrations"], json!(null));
}

#[test]
fn a_database_unreachable_at_start_is_waited_for() {
    let setup = dbfix(live());
    let db = setup.db();
    let proxy = Proxy::start(false);
    let mut hub = setup
        .env("DATABASE_URL", &proxy.url(&db.name))
        .env("HUB_DB_POOL_TIMEOUT_MS", "1000")
        .hello()
        .start();
    assert_eq!(
        hub.get("/api/v1/hello/ping").status,
        200,
        "the hub serves without its database"
    );
    let module = hub.module("dbfix");
    assert_eq!(module["state"], "failed");
    let error = module["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.starts_with("the database is unreachable: "),
        "{error}"
    );
    proxy.set_up(true);
    let line = hub.wait_for_log("retry dbfix: running 0.1.0", Duration::from_secs(10));
    assert!(line.is_some(), "recovered by itself:\n{}", hub.logs());
    assert_eq!(hub.get("/api/v1/dbfix/count").json(), json!({"count": 0}));
}

#[test]
fn a_database_cut_mid_run_gives_503_without_hanging_and_recovers() {
    let setup = dbfix(live());
    let db = setup.db();
    let proxy = Proxy::start(true);
    let hub = setup
        .env("DATABASE_URL", &proxy.url(&db.name))
        .env("HUB_DB_POOL_TIMEOUT_MS", "1000")
        .start();
    assert_eq!(hub.get("/api/v1/dbfix/count").json(), json!({"count": 0}));
    proxy.set_up(false);
    let started = Instant::now();
    let reply = hub.get("/api/v1/dbfix/count");
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], "database_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(hub.get("/healthz").status, 200);
    proxy.set_up(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut reply = hub.get("/api/v1/dbfix/count");
    while reply.status != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        reply = hub.get("/api/v1/dbfix/count");
    }
    assert_eq!(reply.json(), json!({"count": 0}), "recovered by itself");
}

/// A module object's tables as (name, present); a present table has a size on disk.
fn tables(module: &Value) -> Vec<(String, bool)> {
    module["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            let present = t["present"].as_bool().expect("present");
            assert_eq!(t["bytes"].as_i64().is_some_and(|b| b > 0), present, "{t}");
            (t["name"].as_str().expect("name").to_owned(), present)
        })
        .collect()
}
