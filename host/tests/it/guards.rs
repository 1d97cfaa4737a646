//! Migrations that got past the prefix check, sessions that outlived a call, and reloads that
//! failed after their migrations (issue 12). Each test here failed before its fix.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::database::{dbfix, live, post_item, sql};
use crate::support::{Hub, Setup, TestDb};

fn module_error(hub: &Hub, name: &str) -> String {
    hub.module(name)["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn relation_exists(db: &TestDb, relation: &str) -> bool {
    db.client()
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&relation])
        .map(|r| r.get(0))
        .unwrap_or(false)
}

fn dbfix_items(db: &TestDb) -> i64 {
    db.client()
        .query_one("SELECT count(*) FROM dbfix_items", &[])
        .map(|r| r.get(0))
        .unwrap_or(-1)
}

#[test]
fn a_commit_hidden_from_the_scanner_is_found() {
    for (sql, keyword) in [
        (
            "INSERT INTO dbfix_items (title) VALUES (E'it\\'s'); COMMIT; CREATE TABLE x (id int);",
            "COMMIT",
        ),
        (
            "INSERT INTO dbfix_items (title) VALUES ('a');\nROLLBACK /* back to the start */;\nCREATE TABLE x (id int);",
            "ROLLBACK",
        ),
        (
            "INSERT INTO dbfix_items (title) VALUES ('a'); -- a note\rCOMMIT;\nCREATE TABLE x (id int);",
            "COMMIT",
        ),
    ] {
        let setup = dbfix(live()).env("DBFIX_MIGRATIONS", &format!("sql:{sql}"));
        let db = setup.db();
        let hub = setup.start();
        assert_eq!(
            module_error(&hub, "dbfix"),
            format!(
                "migration 002_probe of module 'dbfix' was refused: it contains {keyword}, but each migration already runs in a transaction of its own"
            ),
            "{sql:?}"
        );
        assert!(!relation_exists(&db, "x"), "{sql:?}");
        assert!(!relation_exists(&db, "dbfix_items"), "{sql:?}: nothing ran");
    }
}

#[test]
fn objects_made_in_a_subtransaction_are_seen_by_the_prefix_check() {
    for sql in [
        "DO $$ BEGIN CREATE TABLE invoices (id int); EXCEPTION WHEN duplicate_table THEN NULL; END $$;",
        "SAVEPOINT s;\nCREATE TABLE invoices (id int);\nRELEASE SAVEPOINT s;",
    ] {
        let setup = dbfix(live()).env("DBFIX_MIGRATIONS", &format!("sql:{sql}"));
        let db = setup.db();
        let hub = setup.start();
        assert_eq!(
            module_error(&hub, "dbfix"),
            "migration 002_probe of module 'dbfix' was refused and rolled back: it creates or changes table 'invoices'; a module's objects must start with its table prefix 'dbfix_'",
            "{sql:?}"
        );
        assert!(!relation_exists(&db, "invoices"), "{sql:?}");
        assert_eq!(dbfix_items(&db), 0, "{sql:?}: the first migration stays");
    }
}

/// Another module's objects, touched by a migration of `dbfix`: PostgreSQL refuses, since they
/// belong to `customers`' role.
#[test]
fn another_modules_objects_are_out_of_a_migrations_reach() {
    let db = Arc::new(TestDb::create());
    let customers = || {
        Setup::with_database(Some(db.clone()))
            .example("customers")
            .env("MODULES__CUSTOMERS__READ_ONLY", "false")
            .env("MODULES__CUSTOMERS__DRY_RUN", "false")
    };
    let hub = customers().start();
    let reply = hub.request(
        "POST",
        "/api/v1/customers/",
        None,
        Some(r#"{"name": "Acme"}"#),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    drop(hub);
    // A function and a type of customers', as a migration of its would make them.
    let writer: String = db
        .client()
        .query_one(
            "SELECT writer FROM hub_module_roles WHERE module = 'customers'",
            &[],
        )
        .expect("customers' role")
        .get(0);
    db.client()
        .batch_execute(&format!(
            "CREATE FUNCTION customers_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM customers_customers';
             ALTER FUNCTION customers_count() OWNER TO \"{writer}\";
             CREATE TYPE customers_kind AS ENUM ('person', 'company');
             ALTER TYPE customers_kind OWNER TO \"{writer}\";"
        ))
        .expect("customers' function and type");
    for (sql, refusal) in [
        (
            "ALTER TABLE customers_customers RENAME TO dbfix_customers;",
            "must be owner of table customers_customers",
        ),
        (
            "SELECT setval('customers_customers_id_seq', 1);",
            "permission denied for sequence customers_customers_id_seq",
        ),
        (
            "DROP FUNCTION customers_count();",
            "must be owner of function customers_count",
        ),
        (
            "DROP TYPE customers_kind;",
            "must be owner of type customers_kind",
        ),
        (
            "ALTER TABLE customers_customers DROP COLUMN email;",
            "must be owner of table customers_customers",
        ),
        (
            "ALTER TABLE customers_customers RENAME COLUMN name TO full_name;",
            "must be owner of table customers_customers",
        ),
    ] {
        let hub = customers()
            .dbfix(json!({"safety": live()}))
            .env("DBFIX_MIGRATIONS", &format!("sql:{sql}"))
            .start();
        assert_eq!(
            module_error(&hub, "dbfix"),
            format!(
                "migration 002_probe of module 'dbfix' failed and was rolled back: {refusal} (SQLSTATE 42501)"
            ),
            "{sql}"
        );
        // customers' next insert still works: its sequence did not move.
        let reply = hub.request(
            "POST",
            "/api/v1/customers/",
            None,
            Some(r#"{"name": "Next"}"#),
        );
        assert_eq!(reply.status, 201, "{sql}: {}", reply.body);
    }
}

/// The second line: a migration run without a role of its own (as the hub's user, which owns
/// everything) is still checked against the catalog, subtransactions, renames, drops and
/// sequences included.
#[test]
fn the_catalog_check_names_what_a_migration_did_outside_its_prefix() {
    use host::db::migrate::{self, Applied, MigrationSpec, Scope};

    let db = TestDb::create();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (mut client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let hub = Scope {
            prefix: None,
            role: None,
        };
        migrate::apply_pending(
            &mut client,
            "hub",
            hub,
            &migrate::host_migrations(),
            &mut Applied::default(),
        )
        .await
        .expect("the hub's migrations");
        client
            .batch_execute(
                "CREATE TABLE customers_customers (id serial PRIMARY KEY, name text, email text);
                 INSERT INTO customers_customers (name) VALUES ('Acme');
                 CREATE FUNCTION customers_count() RETURNS bigint LANGUAGE sql AS 'SELECT 1::bigint';
                 CREATE TYPE customers_kind AS ENUM ('person', 'company');",
            )
            .await
            .expect("another module's objects");
        let cases = [
            (
                "DO $$ BEGIN CREATE TABLE invoices (id int); EXCEPTION WHEN duplicate_table THEN NULL; END $$;",
                "it creates or changes table 'invoices'",
            ),
            (
                "SAVEPOINT s; CREATE TABLE invoices (id int); RELEASE SAVEPOINT s;",
                "it creates or changes table 'invoices'",
            ),
            (
                "ALTER TABLE customers_customers RENAME TO dbfix_customers;",
                "it renames table 'customers_customers' to 'dbfix_customers'",
            ),
            (
                "SELECT setval('customers_customers_id_seq', 100);",
                "it moves sequence 'customers_customers_id_seq'",
            ),
            (
                "DROP FUNCTION customers_count();",
                "it drops function 'customers_count'",
            ),
            ("DROP TYPE customers_kind;", "it drops type 'customers_kind'"),
            (
                "ALTER TABLE customers_customers DROP COLUMN email;",
                "it drops column 'email' of 'customers_customers'",
            ),
            (
                "ALTER TABLE customers_customers RENAME COLUMN name TO full_name;",
                "it renames column 'name' of 'customers_customers' to 'full_name'",
            ),
            (
                "UPDATE customers_customers SET name = 'Mine';",
                "it writes rows of table 'customers_customers'",
            ),
        ];
        for (sql, violation) in cases {
            let spec = MigrationSpec {
                version: 1,
                name: "probe".to_owned(),
                sql: sql.to_owned(),
            };
            let scope = Scope {
                prefix: Some("dbfix_"),
                role: None,
            };
            let error = migrate::apply_pending(
                &mut client,
                "dbfix",
                scope,
                &[spec],
                &mut Applied::default(),
            )
            .await
            .expect_err(sql);
            assert_eq!(
                error.to_string(),
                format!(
                    "migration 001_probe of module 'dbfix' was refused and rolled back: {violation}; a module's objects must start with its table prefix 'dbfix_'"
                ),
                "{sql}"
            );
        }
        // All rolled back: the other module's objects are as they were, but for the sequence:
        // sequences are not transactional (setval moved it to 100 for good, which is why a
        // module's migrations run as its own role, to which PostgreSQL refuses it first).
        let row = client
            .query_one(
                "SELECT (SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
                          WHERE attrelid = 'customers_customers'::regclass AND attnum > 0),
                        (SELECT name FROM customers_customers),
                        nextval('customers_customers_id_seq'),
                        to_regprocedure('customers_count()') IS NOT NULL,
                        to_regtype('customers_kind') IS NOT NULL",
                &[],
            )
            .await
            .expect("the other module's objects");
        let state: (String, String, i64, bool, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        assert_eq!(
            state,
            ("id,name,email".to_owned(), "Acme".to_owned(), 101, true, true)
        );
    });
}

#[test]
fn a_migrations_session_settings_do_not_reach_later_calls() {
    // A pg_dump header, pasted into a migration; one connection in the pool, so a later call
    // gets the very connection the migration ran on, were it handed out again.
    let header = "SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET client_min_messages = warning;\nSELECT pg_catalog.set_config('search_path', '', false);\nCREATE TABLE public.dbfix_dump (id int);";
    let hub = dbfix(live())
        .env("DBFIX_MIGRATIONS", &format!("sql:{header}"))
        .env("HUB_DB_POOL_SIZE", "1")
        .start();
    assert_eq!(
        hub.module("dbfix")["state"],
        "running",
        "{}",
        hub.module("dbfix")
    );
    let reply = sql(
        &hub,
        "SELECT current_setting('statement_timeout') AS statement_timeout, current_setting('search_path') AS search_path, current_setting('lock_timeout') AS lock_timeout, current_setting('client_min_messages') AS client_min_messages",
        json!([]),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json()["rows"],
        json!([{"statement_timeout": "5s", "search_path": "\"$user\", public", "lock_timeout": "0", "client_min_messages": "notice"}])
    );
    // Unqualified names resolve.
    assert_eq!(hub.get("/api/v1/dbfix/count").json(), json!({"count": 0}));
}

#[test]
fn statements_that_change_the_session_are_refused() {
    let hub = dbfix(live()).env("HUB_DB_POOL_SIZE", "1").start();
    let leak = "settings would leak to the next user of the pooled connection";
    for (statement, message) in [
        (
            "UPDATE pg_settings SET setting = '' WHERE name = 'search_path'".to_owned(),
            "writing pg_settings is refused: it changes the session's settings, which would leak to the next user of the pooled connection".to_owned(),
        ),
        (
            "SELECT * INTO TEMP dbfix_scratch FROM dbfix_items".to_owned(),
            "SELECT … INTO is refused: it creates a table, and tables belong in a migration; use INSERT INTO … SELECT".to_owned(),
        ),
        (
            "SELECT title INTO dbfix_copy FROM dbfix_items".to_owned(),
            "SELECT … INTO is refused: it creates a table, and tables belong in a migration; use INSERT INTO … SELECT".to_owned(),
        ),
        (
            r#"SELECT U&"set\005fconfig"('statement_timeout', '0', false)"#.to_owned(),
            format!("set_config() is refused: {leak}"),
        ),
        (
            "SELECT E'it\\'s', set_config('statement_timeout', '0', false) --'".to_owned(),
            format!("set_config() is refused: {leak}"),
        ),
        (
            "SELECT pg_catalog.set_config('search_path', '', false)".to_owned(),
            format!("set_config() is refused: {leak}"),
        ),
        (
            "-- a note\rSET statement_timeout = 0".to_owned(),
            format!("SET is refused: session {leak}"),
        ),
        (
            "SELECT pg_advisory_lock(1)".to_owned(),
            "session advisory locks are refused: they outlive the call; use pg_advisory_xact_lock in a transaction".to_owned(),
        ),
    ] {
        let reply = sql(&hub, &statement, json!([]));
        assert_eq!(reply.status, 500, "{statement:?}: {}", reply.body);
        assert_eq!(
            reply.json(),
            json!({"error": {"code": "statement_refused", "message": message}}),
            "{statement:?}"
        );
    }
    let reply = sql(
        &hub,
        "SELECT current_setting('statement_timeout') AS t, current_setting('search_path') AS p",
        json!([]),
    );
    assert_eq!(
        reply.json()["rows"],
        json!([{"t": "5s", "p": "\"$user\", public"}])
    );
}

#[test]
fn a_plan_cached_before_a_column_type_changed_is_prepared_again() {
    let setup = dbfix(live()).env("HUB_DB_POOL_SIZE", "1");
    let db = setup.db();
    let hub = setup.start();
    let reply = post_item(&hub, r#"{"title": "x"}"#);
    assert_eq!(reply.status, 201, "{}", reply.body);
    let all = "SELECT * FROM dbfix_items";
    assert_eq!(sql(&hub, all, json!([])).status, 200);
    // Behind the hub's back, as another hub's migration would.
    db.client()
        .batch_execute("ALTER TABLE dbfix_items ALTER COLUMN title TYPE varchar(300)")
        .expect("alter");
    for _ in 0..2 {
        let reply = sql(&hub, all, json!([]));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.json()["rows"],
            json!([{"id": 1, "title": "x", "price": null}])
        );
    }
}

#[test]
fn prepared_statements_stay_bounded() {
    let hub = dbfix(live()).env("HUB_DB_POOL_SIZE", "1").start();
    for n in 0..300 {
        let reply = sql(&hub, &format!("SELECT {n} AS n"), json!([]));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let reply = sql(
        &hub,
        "SELECT count(*) AS n FROM pg_prepared_statements",
        json!([]),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json()["rows"],
        json!([{"n": host::db::pool::STATEMENTS}])
    );
}

/// `SELECT pg_sleep(30)` calls the server still runs.
fn sleeping(db: &TestDb) -> i64 {
    db.client()
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'",
            &[],
        )
        .map(|r| r.get(0))
        .unwrap_or(-1)
}

#[test]
fn a_timeout_of_zero_is_capped_and_a_call_given_up_is_cancelled_on_the_server() {
    let setup = dbfix(live())
        .env("HUB_DB_MAX_STATEMENT_TIMEOUT_MS", "300")
        .env("HUB_REQUEST_TIMEOUT_MS", "60000");
    let db = setup.db();
    let hub = setup.start();
    let body = json!({"sql": "SELECT pg_sleep(30)", "params": [], "timeout_ms": 0}).to_string();
    let reply = hub.request("POST", "/api/v1/dbfix/sql", None, Some(&body));
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "database", "message": "canceling statement due to statement timeout", "details": {"sqlstate": "57014"}}})
    );
    drop(hub);

    // The hub stops waiting for the handler (HUB_REQUEST_TIMEOUT_MS): the query it ran is
    // cancelled on the server, not left running until its own timeout.
    let hub = Setup::with_database(Some(db.clone()))
        .dbfix(json!({"safety": live()}))
        .env("HUB_REQUEST_TIMEOUT_MS", "500")
        .start();
    let body = json!({"sql": "SELECT pg_sleep(30)", "params": [], "timeout_ms": 60000}).to_string();
    let reply = hub.request("POST", "/api/v1/dbfix/sql", None, Some(&body));
    assert_eq!(reply.status, 504, "{}", reply.body);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleeping(&db) != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(sleeping(&db), 0, "the query still runs on the server");
    // And the hub carries on.
    assert_eq!(hub.get("/api/v1/dbfix/count").json(), json!({"count": 0}));
}

#[test]
fn the_pool_size_bounds_every_connection_the_hub_holds() {
    let setup = Setup::new()
        .example("customers")
        .dbfix(json!({"safety": live()}))
        .env("HUB_DB_POOL_SIZE", "2");
    let db = setup.db();
    let hub = Arc::new(setup.start());
    let connections = || -> i64 {
        db.client()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
                &[&db.owner],
            )
            .map(|r| r.get(0))
            .unwrap_or(-1)
    };
    // Writes and sleeps as dbfix (read-write), lists as customers (READ_ONLY), all at once.
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let hub = hub.clone();
            std::thread::spawn(move || {
                if i % 2 == 0 {
                    let reply = sql(&hub, "SELECT pg_sleep(0.4)::text AS slept", json!([]));
                    (reply.status, reply.body)
                } else {
                    let mut last = (0, String::new());
                    for _ in 0..10 {
                        let reply = hub.get("/api/v1/customers/");
                        last = (reply.status, reply.body);
                    }
                    last
                }
            })
        })
        .collect();
    let mut most = 0;
    while !calls.iter().all(|c| c.is_finished()) {
        most = most.max(connections());
        std::thread::sleep(Duration::from_millis(20));
    }
    for call in calls {
        let (status, body) = call.join().expect("call");
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(most, 2, "HUB_DB_POOL_SIZE=2");
}

/// A file of migrations for `dbfix` (`file:` in DBFIX_MIGRATIONS), one per paragraph.
fn migrations_file(hub_dir: &std::path::Path) -> std::path::PathBuf {
    let path = hub_dir.join("dbfix-migrations.sql");
    std::fs::write(&path, "").expect("migrations file");
    path
}

fn reload_with(hub: &Hub, path: &std::path::Path, migrations: &str) -> Value {
    std::fs::write(path, migrations).expect("new migrations");
    let reply = hub.admin_post("/api/v1/modules/dbfix/reload");
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

#[test]
fn a_failed_reload_after_expand_migrations_keeps_the_old_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = migrations_file(dir.path());
    let setup = dbfix(live())
        .env("DBFIX_MIGRATIONS", &format!("file:{}", path.display()))
        .env("MODULES_AUTO_RELOAD", "false");
    let db = setup.db();
    let hub = setup.start();
    assert_eq!(hub.module("dbfix")["state"], "running");
    let module = reload_with(
        &hub,
        &path,
        "-- hub: expand\nALTER TABLE dbfix_items ADD COLUMN note text;\n\n-- hub: expand\nCREATE TABLE dbfix_sick (id int);",
    );
    assert_eq!(module["state"], "running", "{module}");
    assert_eq!(module["last_reload"]["outcome"], "failed");
    assert_eq!(
        module["last_reload"]["error"],
        "unhealthy at start: table dbfix_sick exists"
    );
    assert!(
        relation_exists(&db, "dbfix_sick"),
        "the migrations stay applied"
    );
    let reply = post_item(&hub, r#"{"title": "x"}"#);
    assert_eq!(reply.status, 201, "the old version serves: {}", reply.body);
}

#[test]
fn a_failed_reload_after_other_migrations_fails_the_module_naming_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = migrations_file(dir.path());
    let hub = dbfix(live())
        .env("DBFIX_MIGRATIONS", &format!("file:{}", path.display()))
        .env("MODULES_AUTO_RELOAD", "false")
        .start();
    assert_eq!(hub.module("dbfix")["state"], "running");
    let module = reload_with(
        &hub,
        &path,
        "ALTER TABLE dbfix_items RENAME COLUMN title TO name;\n\n-- hub: expand\nCREATE TABLE dbfix_sick (id int);",
    );
    let error = "version 0.1.0 failed after its migrations 002_probe, 003_probe were applied (002_probe not marked `-- hub: expand`, so no older version is kept serving on the new schema): unhealthy at start: table dbfix_sick exists; fix this version and reload";
    assert_eq!(module["state"], "failed", "{module}");
    assert_eq!(module["error"], error);
    assert_eq!(module["last_reload"]["outcome"], "failed");
    assert_eq!(module["last_reload"]["error"], error);
    // The old version no longer answers on a schema it does not know (it would say 42703).
    let reply = post_item(&hub, r#"{"title": "x"}"#);
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], "module_failed");
}
