//! The example modules of `plugins/`, loaded as an operator would load them: `customers` keeps
//! its data in PostgreSQL behind the safety switches, and `tickets` needs `customers`.

use serde_json::json;

use crate::support::Setup;

#[test]
fn customers_starts_read_only_and_writes_once_the_switches_are_off() {
    let hub = Setup::new().example("customers").start();
    let reply = hub.get("/api/v1/customers/");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"customers": [], "limit": 50, "offset": 0})
    );
    let reply = hub.request(
        "POST",
        "/api/v1/customers/",
        None,
        Some(r#"{"name": "Acme"}"#),
    );
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"]["code"], "read_only");
    let tables = hub.module("customers")["tables"].clone();
    assert_eq!(tables.as_array().map(Vec::len), Some(1), "{tables}");
    assert_eq!(
        (tables[0]["name"].clone(), tables[0]["present"].clone()),
        (json!("customers_customers"), json!(true))
    );
    // An empty table with its primary key's index: a few pages on disk.
    assert!(
        tables[0]["bytes"].as_i64().is_some_and(|b| b >= 8192),
        "{tables}"
    );
}

#[test]
fn customers_creates_lists_and_validates_with_the_switches_off() {
    let hub = Setup::new()
        .example("customers")
        .env("MODULES__CUSTOMERS__READ_ONLY", "false")
        .env("MODULES__CUSTOMERS__DRY_RUN", "false")
        .start();
    let reply = hub.request(
        "POST",
        "/api/v1/customers/",
        None,
        Some(r#"{"name": "Acme", "email": "it@acme.example"}"#),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let created = reply.json();
    assert_eq!(created["customer"]["id"], 1);
    assert_eq!(created["customer"]["name"], "Acme");
    assert_eq!(created["dry_run"], false);
    let reply = hub.get("/api/v1/customers/1");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["email"], "it@acme.example");
    let reply = hub.get("/api/v1/customers/2");
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "not_found", "message": "no customer 2"}})
    );
    let reply = hub.request(
        "POST",
        "/api/v1/customers/",
        None,
        Some(r#"{"name": "  "}"#),
    );
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "validation_failed", "message": r#"the request is invalid: body 'name' "  " does not match the pattern \S"#, "details": [
            {"location": "body", "field": "name", "message": r#""  " does not match the pattern \S"#}
        ]}})
    );
    let reply = hub.get("/api/v1/customers/?limit=1&offset=0");
    assert_eq!(reply.json()["customers"].as_array().map(Vec::len), Some(1));
}

#[test]
fn tickets_needs_customers_and_keeps_it_from_being_disabled() {
    let hub = Setup::new()
        .example("customers")
        .example("tickets")
        .env("MODULES__CUSTOMERS__READ_ONLY", "false")
        .env("MODULES__CUSTOMERS__DRY_RUN", "false")
        .env("MODULES__TICKETS__READ_ONLY", "false")
        .env("MODULES__TICKETS__DRY_RUN", "false")
        .start();
    let tickets = hub.module("tickets");
    assert_eq!(tickets["state"], "running");
    assert_eq!(
        tickets["dependencies"],
        json!([{"name": "customers", "range": "^0.1", "satisfied": true}])
    );
    assert_eq!(hub.module("customers")["dependents"], json!(["tickets"]));

    let reply = hub.request(
        "POST",
        "/api/v1/customers/",
        None,
        Some(r#"{"name": "Acme"}"#),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = hub.request(
        "POST",
        "/api/v1/tickets/",
        None,
        Some(r#"{"customer_id": 7, "subject": ""}"#),
    );
    // The hub checks the body against its schema first, field by field ...
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "validation_failed", "message": r#"the request is invalid: body 'subject' "" does not match the pattern \S; body 'subject' "" is shorter than 1 character"#, "details": [
            {"location": "body", "field": "subject", "message": r#""" does not match the pattern \S"#},
            {"location": "body", "field": "subject", "message": r#""" is shorter than 1 character"#},
        ]}})
    );
    // ... then the module checks what only it can: that the customer exists.
    let reply = hub.request(
        "POST",
        "/api/v1/tickets/",
        None,
        Some(r#"{"customer_id": 7, "subject": "Printer"}"#),
    );
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "validation_failed", "message": "the request is invalid: body 'customer_id' names no customer (7)", "details": [
            {"location": "body", "field": "customer_id", "message": "names no customer (7)"}
        ]}})
    );
    let reply = hub.request(
        "POST",
        "/api/v1/tickets/",
        None,
        Some(r#"{"customer_id": 1, "subject": "Printer offline"}"#),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.json()["ticket"]["subject"], "Printer offline");
    assert_eq!(reply.json()["ticket"]["status"], "open");

    let reply = hub.admin_post("/api/v1/modules/customers/disable");
    assert_eq!(reply.status, 409);
    assert_eq!(
        reply.json(),
        json!({"error": {
            "code": "has_dependents",
            "message": "tickets needs module 'customers': disable it first, or ask for ?cascade=true",
            "details": {"dependents": ["tickets"]}
        }})
    );
    assert_eq!(hub.get("/api/v1/tickets/1").status, 200, "still serving");
}
