//! Calling into modules: requests reach handlers whole, panics become 500s, hangs become 504s,
//! health gates the start and then only reports, settings and log lines cross the boundary.

use std::time::Duration;

use serde_json::json;

use crate::support::Setup;

#[test]
fn a_request_reaches_the_handler_whole() {
    let hub = Setup::new().fixture("fx", json!({})).start();
    let reply = hub.request("POST", "/api/v1/fx/echo?a=1&b=two", None, Some("payload"));
    assert_eq!(reply.status, 200);
    let mut echoed = reply.json();
    // The hub's request id for it, which the module sees as a header.
    let id = echoed["x_request_id"].take();
    assert!(
        id.as_str()
            .is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())),
        "{id}"
    );
    assert_eq!(
        echoed,
        json!({"method": "POST", "path": "/echo", "query": "a=1&b=two", "x_test": null, "x_request_id": null, "body": "payload"})
    );
    let reply = hub.get("/api/v1/fx/items/42");
    assert_eq!((reply.status, reply.json()), (200, json!({"id": 42})));
    let reply = hub.get("/api/v1/fx/items/forty-two");
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "bad_parameter", "message": "path parameter 'id' = 'forty-two' is invalid: invalid digit found in string"}})
    );
}

#[test]
fn unknown_routes_and_methods_are_told_apart() {
    let hub = Setup::new().fixture("fx", json!({})).start();
    let reply = hub.get("/api/v1/fx/nowhere");
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "route_not_found", "message": "module 'fx' has no route GET /nowhere"}})
    );
    let reply = hub.request("DELETE", "/api/v1/fx/items/1", None, None);
    assert_eq!(reply.status, 405);
    assert_eq!(reply.allow.as_deref(), Some("GET"));
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "method_not_allowed", "message": "module 'fx' has no route DELETE /items/1; it allows GET"}})
    );
    let reply = hub.get("/api/v1/ghost/items");
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "module_not_found", "message": "no module 'ghost' is installed"}})
    );
}

#[test]
fn a_panicking_handler_answers_500_with_the_message_and_the_module_keeps_serving() {
    let hub = Setup::new().fixture("fx", json!({})).start();
    let reply = hub.get("/api/v1/fx/panic");
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "handler_panicked", "message": "module 'fx' panicked in GET /panic: fixture handler panicked on purpose"}})
    );
    let reply = hub.get("/api/v1/fx/panic-later");
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.json()["error"]["message"],
        "module 'fx' panicked in GET /panic-later: fixture handler panicked after yielding"
    );
    let reply = hub.get("/api/v1/fx/items/7");
    assert_eq!((reply.status, reply.json()), (200, json!({"id": 7})));
    assert_eq!(hub.module("fx")["state"], "running");
}

#[test]
fn a_handler_that_never_finishes_is_cut_off_with_504() {
    let hub = Setup::new()
        .fixture("fx", json!({}))
        .env("HUB_REQUEST_TIMEOUT_MS", "300")
        .start();
    let reply = hub.get("/api/v1/fx/hang");
    assert_eq!(reply.status, 504);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "handler_timeout", "message": "module 'fx' did not answer GET /hang within 300 ms (HUB_REQUEST_TIMEOUT_MS)"}})
    );
    assert_eq!(hub.get("/api/v1/fx/items/1").status, 200);
}

#[test]
fn a_body_over_the_limit_is_refused_with_413() {
    let hub = Setup::new()
        .fixture("fx", json!({}))
        .env("HUB_BODY_LIMIT_BYTES", "10")
        .start();
    let reply = hub.request("POST", "/api/v1/fx/echo", None, Some("0123456789!"));
    assert_eq!(reply.status, 413);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "payload_too_large", "message": "request body is larger than 10 bytes (HUB_BODY_LIMIT_BYTES)"}})
    );
    let reply = hub.request("POST", "/api/v1/fx/echo", None, Some("0123456789"));
    assert_eq!(reply.status, 200);
}

#[test]
fn init_that_fails_or_panics_fails_the_module() {
    let hub = Setup::new()
        .hello()
        .fixture("refuses", json!({"config": {"init": "error"}}))
        .fixture("panics", json!({"config": {"init": "panic"}}))
        .start();
    assert_eq!(
        hub.module("refuses")["error"],
        "init failed: fixture init refused on purpose"
    );
    assert_eq!(
        hub.module("panics")["error"],
        "init panicked: fixture init panicked on purpose"
    );
    for name in ["refuses", "panics"] {
        assert_eq!(hub.module(name)["state"], "failed");
        assert_eq!(hub.get(&format!("/api/v1/{name}/items/1")).status, 503);
    }
    assert_eq!(hub.get("/api/v1/hello/ping").status, 200);
}

#[test]
fn health_that_is_unhealthy_or_panics_at_start_fails_the_module() {
    let hub = Setup::new()
        .fixture("sick", json!({"config": {"health": "unhealthy"}}))
        .fixture("crashy", json!({"config": {"health": "panic"}}))
        .fixture("tired", json!({"config": {"health": "degraded"}}))
        .start();
    assert_eq!(hub.module("sick")["state"], "failed");
    assert_eq!(
        hub.module("sick")["error"],
        "unhealthy at start: fixture told to be unhealthy"
    );
    assert_eq!(hub.module("crashy")["state"], "failed");
    assert_eq!(
        hub.module("crashy")["error"],
        "unhealthy at start: health check panicked: fixture health panicked on purpose"
    );
    assert_eq!(
        hub.module("tired")["state"],
        "running",
        "degraded still starts"
    );
    let reply = hub.get("/api/v1/tired/health");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"status": "degraded", "detail": "fixture told to be degraded"})
    );
}

#[test]
fn health_that_turns_unhealthy_later_is_only_reported() {
    let hub = Setup::new().fixture("fx", json!({})).start();
    let reply = hub.get("/api/v1/fx/health");
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({"status": "healthy", "detail": ""}))
    );
    let reply = hub.request(
        "POST",
        "/api/v1/fx/health-mode",
        None,
        Some("\"unhealthy\""),
    );
    assert_eq!(reply.status, 200);
    let reply = hub.get("/api/v1/fx/health");
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.json(),
        json!({"status": "unhealthy", "detail": "fixture told to be unhealthy"})
    );
    assert_eq!(hub.get("/api/v1/fx/items/3").status, 200, "still routed");
    let module = hub.module("fx");
    assert_eq!(module["state"], "running");
    assert_eq!(module["health"]["status"], "unhealthy");
    let reply = hub.request("POST", "/api/v1/fx/health-mode", None, Some("\"panic\""));
    assert_eq!(reply.status, 200);
    let reply = hub.get("/api/v1/fx/health");
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.json(),
        json!({"status": "unhealthy", "detail": "health check panicked: fixture health panicked on purpose"})
    );
}

#[test]
fn settings_come_from_the_manifest_and_the_environment_overrides_them() {
    let hub = Setup::new()
        .fixture("fx", json!({"config": {"greeting": "Hi", "n": 1}}))
        .env("MODULES__FX__GREETING", "Hej")
        .env("modules__fx__extra", r#"{"a": [1, 2]}"#)
        .start();
    let setting = |key: &str| hub.get(&format!("/api/v1/fx/config/{key}")).json();
    assert_eq!(
        setting("greeting"),
        json!({"key": "greeting", "value": "Hej"})
    );
    assert_eq!(setting("n"), json!({"key": "n", "value": 1}));
    assert_eq!(
        setting("extra"),
        json!({"key": "extra", "value": {"a": [1, 2]}})
    );
    assert_eq!(setting("missing"), json!({"key": "missing", "value": null}));
}

#[test]
fn safety_switches_start_on_and_the_environment_overrides_them() {
    let hub = Setup::new()
        .fixture("careful", json!({}))
        .fixture("bold", json!({"safety": {"dry_run": false}}))
        .env("MODULES__BOLD__READ_ONLY", "false")
        .start();
    assert_eq!(
        hub.get("/api/v1/careful/safety").json(),
        json!({"read_only": true, "dry_run": true})
    );
    assert_eq!(
        hub.get("/api/v1/bold/safety").json(),
        json!({"read_only": false, "dry_run": false})
    );
    assert_eq!(
        hub.module("bold")["safety"],
        json!({"read_only": false, "dry_run": false, "source": {"read_only": "environment", "dry_run": "manifest"}})
    );
}

#[test]
fn a_module_log_line_appears_in_the_hub_output_with_its_name() {
    let mut hub = Setup::new().fixture("fx", json!({})).start();
    assert_eq!(hub.get("/api/v1/fx/log").status, 200);
    let line = hub.wait_for_log("fixture says hello from /log", Duration::from_secs(5));
    let line = line.unwrap_or_else(|| panic!("no module log line in:\n{}", hub.logs()));
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains("answer=42"), "{line}");
    assert!(line.contains("module=fx"), "{line}");
}
