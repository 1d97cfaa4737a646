//! A PostgreSQL role per module (issue 12): PostgreSQL, not only the gateway, keeps a module to
//! its own tables. The hub runs as a role without superuser (the test database's owner, with
//! CREATEROLE), so PostgreSQL checks every privilege as on a deployment: a module that touches
//! another's table without declaring it gets 42501, on every path (a statement on its own, a
//! transaction, DRY_RUN, a migration), which the hub answers 403 `not_granted`.

use serde_json::{Value, json};

use crate::database::{live, post_item, sql};
use crate::support::{Hub, Setup, TestDb};

/// `customers` (writable) and `dbfix` with `manifest` merged into its module.json.
fn customers_and_dbfix(manifest: Value) -> Setup {
    Setup::new()
        .example("customers")
        .env("MODULES__CUSTOMERS__READ_ONLY", "false")
        .env("MODULES__CUSTOMERS__DRY_RUN", "false")
        .dbfix(manifest)
}

fn add_customer(hub: &Hub, name: &str) {
    let body = json!({"name": name}).to_string();
    let reply = hub.request("POST", "/api/v1/customers/", None, Some(&body));
    assert_eq!(reply.status, 201, "{}", reply.body);
}

fn not_granted(message: &str) -> Value {
    json!({"error": {"code": "not_granted", "message": message, "details": {"sqlstate": "42501"}}})
}

const READ_CUSTOMERS: &str = "module 'dbfix' may not read table customers_customers of module 'customers': declare it in its module.json, \"uses\": {\"customers\": \"read\"} ('customers' must be among its dependencies)";
const WRITE_CUSTOMERS: &str = "module 'dbfix' may not write table customers_customers of module 'customers': declare it in its module.json, \"uses\": {\"customers\": \"write\"} ('customers' must be among its dependencies)";

fn customer_names(db: &TestDb) -> Vec<String> {
    db.client()
        .query("SELECT name FROM customers_customers ORDER BY id", &[])
        .expect("read customers")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn another_modules_table_is_not_granted_by_postgresql_on_every_path() {
    let setup = customers_and_dbfix(json!({"safety": live()}));
    let db = setup.db();
    let hub = setup.start();
    add_customer(&hub, "Acme");

    // A statement on its own (autocommit).
    let reply = sql(&hub, "SELECT name FROM customers_customers", json!([]));
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.json(), not_granted(READ_CUSTOMERS));
    let reply = sql(
        &hub,
        "UPDATE customers_customers SET name = 'Mine'",
        json!([]),
    );
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.json(), not_granted(WRITE_CUSTOMERS));

    // In a transaction: nothing of it stays.
    let body = json!({"statements": [
        {"sql": "INSERT INTO dbfix_items (title) VALUES ('x')"},
        {"sql": "DELETE FROM customers_customers"}
    ]})
    .to_string();
    let reply = hub.request("POST", "/api/v1/dbfix/tx", None, Some(&body));
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(
        reply.json(),
        not_granted(&format!("statement 2 of 2: {WRITE_CUSTOMERS}"))
    );
    assert_eq!(customer_names(&db), ["Acme"]);
    assert_eq!(hub.get("/api/v1/dbfix/count").json(), json!({"count": 0}));
}

#[test]
fn dry_run_and_read_only_calls_are_refused_by_privilege_too() {
    let setup = customers_and_dbfix(json!({"safety": {"read_only": false, "dry_run": true}}));
    let db = setup.db();
    let hub = setup.start();
    add_customer(&hub, "Acme");
    let reply = sql(&hub, "DELETE FROM customers_customers", json!([]));
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.json(), not_granted(WRITE_CUSTOMERS));
    assert_eq!(customer_names(&db), ["Acme"]);
    drop(hub);

    // READ_ONLY: a read it was not granted is not_granted (not read_only); a write is
    // read_only, as always.
    let hub = Setup::with_database(Some(db.clone()))
        .example("customers")
        .dbfix(json!({}))
        .start();
    let reply = sql(&hub, "SELECT name FROM customers_customers", json!([]));
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.json(), not_granted(READ_CUSTOMERS));
    let reply = sql(&hub, "DELETE FROM customers_customers", json!([]));
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], "read_only", "{}", reply.body);
    assert_eq!(customer_names(&db), ["Acme"]);
}

#[test]
fn a_migration_touching_another_modules_table_is_refused_by_privilege() {
    let setup = customers_and_dbfix(json!({"safety": live()}))
        .env("DBFIX_MIGRATIONS", "sql:DELETE FROM customers_customers;");
    let db = setup.db();
    // customers starts first (by name); its table is empty, and PostgreSQL refuses the DELETE
    // before it looks at rows.
    let hub = setup.start();
    assert_eq!(
        hub.module("dbfix")["error"],
        "migration 002_probe of module 'dbfix' failed and was rolled back: permission denied for table customers_customers (SQLSTATE 42501)"
    );
    assert_eq!(hub.module("customers")["state"], "running");
    assert_eq!(customer_names(&db), Vec::<String>::new());
}

#[test]
fn uses_grants_what_it_declares_and_must_name_a_dependency() {
    // Declared without being a dependency: refused by name, before anything runs.
    let hub = customers_and_dbfix(json!({"safety": live(), "uses": {"customers": "read"}})).start();
    let module = hub.module("dbfix");
    assert_eq!(module["state"], "failed");
    let error = module["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.ends_with("/dbfix/module.json: \"uses\" names \"customers\", which is not among \"dependencies\": add it there (a module uses only what it needs)"),
        "{error}"
    );
    drop(hub);

    // Read: reads work, writes are not granted.
    let read = json!({"safety": live(), "dependencies": {"customers": "^0.1"}, "uses": {"customers": "read"}});
    let setup = customers_and_dbfix(read);
    let db = setup.db();
    let hub = setup.start();
    add_customer(&hub, "Acme");
    let reply = sql(&hub, "SELECT name FROM customers_customers", json!([]));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["rows"], json!([{"name": "Acme"}]));
    let reply = sql(
        &hub,
        "UPDATE customers_customers SET name = 'Mine'",
        json!([]),
    );
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.json(), not_granted(WRITE_CUSTOMERS));
    drop(hub);

    // Write: the grant follows the declaration at the next start.
    let write = json!({"safety": live(), "dependencies": {"customers": "^0.1"}, "uses": {"customers": "write"}});
    let hub = Setup::with_database(Some(db.clone()))
        .example("customers")
        .env("MODULES__CUSTOMERS__READ_ONLY", "false")
        .env("MODULES__CUSTOMERS__DRY_RUN", "false")
        .dbfix(write)
        .start();
    let reply = sql(
        &hub,
        "UPDATE customers_customers SET name = 'Mine'",
        json!([]),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["rows_affected"], 1);
    assert_eq!(customer_names(&db), ["Mine"]);
    drop(hub);

    // And taken back when the declaration goes.
    let hub = Setup::with_database(Some(db.clone()))
        .example("customers")
        .dbfix(json!({"safety": live()}))
        .start();
    let reply = sql(&hub, "SELECT name FROM customers_customers", json!([]));
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.json(), not_granted(READ_CUSTOMERS));
}

#[test]
fn tickets_checks_its_customer_by_a_call_and_needs_no_grant_on_customers_table() {
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::support::plugins().join("tickets/module.json"))
            .expect("tickets' module.json"),
    )
    .expect("JSON");
    assert_eq!(manifest["uses"], Value::Null);
    let hub = Setup::new()
        .example("customers")
        .example("tickets")
        .env("MODULES__CUSTOMERS__READ_ONLY", "false")
        .env("MODULES__CUSTOMERS__DRY_RUN", "false")
        .env("MODULES__TICKETS__READ_ONLY", "false")
        .env("MODULES__TICKETS__DRY_RUN", "false")
        .start();
    add_customer(&hub, "Acme");
    let open = |customer: i32| {
        hub.request(
            "POST",
            "/api/v1/tickets/",
            None,
            Some(&format!(
                r#"{{"customer_id": {customer}, "subject": "Printer offline"}}"#
            )),
        )
    };
    let reply = open(1);
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.json()["ticket"]["customer_id"], 1);
    let reply = open(7);
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(
        reply.json()["error"]["details"],
        json!([{"location": "body", "field": "customer_id", "message": "names no customer (7)"}])
    );
    // Its own role still may not read customers' table.
    let db = hub.database().expect("a database");
    let (writer, reader) = roles_of(&db, "tickets");
    for role in [writer, reader] {
        let granted: bool = db
            .client()
            .query_one(
                "SELECT has_table_privilege($1, 'customers_customers', 'SELECT')",
                &[&role],
            )
            .expect("privilege")
            .get(0);
        assert!(!granted, "{role}");
    }
}

/// (writer, reader) of `module` in `db`, as the hub recorded them.
fn roles_of(db: &TestDb, module: &str) -> (String, String) {
    let row = db
        .client()
        .query_one(
            "SELECT writer, reader FROM hub_module_roles WHERE module = $1",
            &[&module],
        )
        .expect("the module's roles are recorded");
    (row.get(0), row.get(1))
}

#[test]
fn role_names_are_this_databases_and_the_roles_have_no_login() {
    let (a, b) = (TestDb::create(), TestDb::create());
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let hub_a = Setup::with_database(Some(a.clone()))
        .dbfix(json!({"safety": live()}))
        .start();
    let hub_b = Setup::with_database(Some(b.clone()))
        .dbfix(json!({"safety": live()}))
        .start();
    assert_eq!(hub_a.module("dbfix")["state"], "running");
    assert_eq!(hub_b.module("dbfix")["state"], "running");
    let (writer_a, reader_a) = roles_of(&a, "dbfix");
    let (writer_b, _) = roles_of(&b, "dbfix");
    assert_ne!(writer_a, writer_b, "two databases on one cluster");
    for writer in [&writer_a, &writer_b] {
        assert!(
            writer.starts_with("hub_mod_") && writer.ends_with("_dbfix"),
            "{writer}"
        );
    }
    assert_eq!(reader_a, format!("{writer_a}_r"));
    let row = a
        .client()
        .query_one(
            "SELECT rolsuper, rolcanlogin, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = $1",
            &[&writer_a],
        )
        .expect("the writer role");
    let flags: (bool, bool, bool, bool) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(flags, (false, false, false, false));
    let owner: String = a
        .client()
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'dbfix_items'",
            &[],
        )
        .expect("dbfix_items")
        .get(0);
    assert_eq!(owner, writer_a, "the module owns what its migrations made");
}

#[test]
fn a_schema_made_by_the_previous_version_is_given_to_the_modules_role() {
    let setup = Setup::new().dbfix(json!({"safety": live()}));
    let db = setup.db();
    let hub = setup.start();
    let reply = post_item(&hub, r#"{"title": "kept"}"#);
    assert_eq!(reply.status, 201, "{}", reply.body);
    drop(hub);

    // Back to the schema the previous version left: every object owned by the hub's own user,
    // no module roles, no record of them.
    let (writer, reader) = roles_of(&db, "dbfix");
    db.client()
        .batch_execute(&format!(
            "REASSIGN OWNED BY \"{writer}\" TO \"{owner}\";
             DROP OWNED BY \"{reader}\";
             DROP OWNED BY \"{writer}\";
             DROP ROLE \"{writer}\"; DROP ROLE \"{reader}\";
             DROP TABLE hub_module_roles, hub_meta;
             DELETE FROM module_migrations WHERE module = 'hub' AND version > 1;",
            owner = db.owner
        ))
        .expect("the previous version's schema");
    let owner_of = |relation: &str| -> String {
        db.client()
            .query_one(
                "SELECT relowner::regrole::text FROM pg_class WHERE relname = $1",
                &[&relation],
            )
            .expect("relation")
            .get(0)
    };
    assert_eq!(owner_of("dbfix_items"), db.owner);

    for start in ["upgrade", "again"] {
        let hub = Setup::with_database(Some(db.clone()))
            .dbfix(json!({"safety": live()}))
            .start();
        assert_eq!(hub.module("dbfix")["state"], "running", "{start}");
        let (writer, _) = roles_of(&db, "dbfix");
        for relation in ["dbfix_items", "dbfix_items_id_seq", "dbfix_items_title"] {
            assert_eq!(owner_of(relation), writer, "{start}: {relation}");
        }
        let reply = hub.get("/api/v1/dbfix/items/1");
        assert_eq!(reply.status, 200, "{start}: {}", reply.body);
        assert_eq!(reply.json()["title"], "kept");
        let reply = post_item(&hub, r#"{"title": "new"}"#);
        assert_eq!(reply.status, 201, "{start}: {}", reply.body);
    }
    assert_eq!(
        hub_migrations(&db),
        host::db::migrate::host_migrations().len() as i64
    );
}

fn hub_migrations(db: &TestDb) -> i64 {
    db.client()
        .query_one(
            "SELECT count(*) FROM module_migrations WHERE module = 'hub'",
            &[],
        )
        .expect("count")
        .get(0)
}
