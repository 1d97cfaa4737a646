//! Calls between modules and blocking work (issue 17): `req.call` reaches a dependency's route
//! in-process, for the request's caller (its permission checks, its request id), and only a
//! dependency; `ctx.spawn_blocking` runs at most the module's bound at once.

use serde_json::{Value, json};

use crate::support::{Hub, Setup, TOKEN};

/// `fx` (which depends on `fy`) calls as `order` says; `token`: who calls `fx`.
fn call(hub: &Hub, order: Value, token: Option<&str>, request_id: &str) -> (u16, Value) {
    let mut headers = vec![
        ("Content-Type", "application/json".to_owned()),
        ("X-Request-Id", request_id.to_owned()),
    ];
    if let Some(token) = token {
        headers.push(("Authorization", format!("Bearer {token}")));
    }
    let reply = hub.send(
        "POST",
        "/api/v1/fx/call",
        &headers,
        Some(&order.to_string()),
    );
    (reply.status, reply.json())
}

#[test]
fn a_module_calls_its_dependency_as_its_caller_with_the_same_request_id() {
    let hub = Setup::new()
        .fixture("fx", json!({"dependencies": {"fy": "^0.1"}}))
        .fixture("fy", json!({}))
        .hello()
        .start();
    // fy's echo (for signed-in callers) sees the path, the query, the body and the request id.
    let (status, answer) = call(
        &hub,
        json!({"module": "fy", "method": "POST", "path": "/echo?x=1", "body": {"n": 1}}),
        Some(TOKEN),
        "call-7",
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"status": 200, "body": {
            "method": "POST", "path": "/echo", "query": "x=1", "x_test": null,
            "x_request_id": "call-7", "body": "{\"n\":1}"
        }})
    );
    // An anonymous caller of fx's public route is anonymous for fy too: fy's route needs a
    // signed-in caller.
    let (_, answer) = call(
        &hub,
        json!({"module": "fy", "method": "GET", "path": "/echo"}),
        None,
        "call-8",
    );
    assert_eq!(answer["status"], 401, "{answer}");
    assert_eq!(answer["body"]["error"]["code"], "unauthenticated");
    // Typed inputs are checked as for a client; unknown routes are 404.
    let (_, answer) = call(
        &hub,
        json!({"module": "fy", "method": "GET", "path": "/typed/abc"}),
        Some(TOKEN),
        "call-9",
    );
    assert_eq!(answer["status"], 400, "{answer}");
    let (_, answer) = call(
        &hub,
        json!({"module": "fy", "method": "GET", "path": "/nothing"}),
        Some(TOKEN),
        "call-10",
    );
    assert_eq!(
        answer,
        json!({"status": 404, "body": {"error": {"code": "route_not_found",
            "message": "module 'fy' has no route GET /nothing"}}})
    );
    // Only a dependency.
    let (_, answer) = call(
        &hub,
        json!({"module": "hello", "method": "GET", "path": "/ping"}),
        Some(TOKEN),
        "call-11",
    );
    assert_eq!(
        answer,
        json!({"status": 403, "body": {"error": {"code": "call_not_allowed",
            "message": "module 'fx' may call only the modules it depends on: add \"hello\" to \"dependencies\" in its module.json"}}})
    );
}

#[test]
fn blocking_work_runs_off_the_request_threads_at_most_the_modules_bound_at_once() {
    let hub = Setup::new()
        .fixture("fx", json!({}))
        .env("HUB_MODULE_BLOCKING_THREADS", "2")
        .start();
    // Five tasks of 200 ms, two at a time.
    let reply = hub.get("/api/v1/fx/blocking/5");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"most_at_once": 2, "results": [0, 10, 20, 30, 40]})
    );
    // A panic in one is its error; the others' values come back.
    let reply = hub.get("/api/v1/fx/blocking/2?panic");
    assert_eq!(
        reply.json(),
        json!({"most_at_once": 2, "results": [0, "blocking work panicked: blocking work 1 panicked on purpose"]})
    );
    drop(hub);
    // Under the bound: all at once.
    let hub = Setup::new().fixture("fx", json!({})).start();
    assert_eq!(
        hub.get("/api/v1/fx/blocking/3").json(),
        json!({"most_at_once": 3, "results": [0, 10, 20]})
    );
}
