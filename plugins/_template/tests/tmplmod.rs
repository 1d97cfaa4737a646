//! tmplmod's own tests: the module built by `cargo xtask test`, loaded into a real hub on a real
//! database of the test's own, spoken to over HTTP. Run them with `cargo xtask test`.

use hub_testkit::{Hub, Setup};
use serde_json::json;

/// The hub with this module and its safety switches set as given (whatever module.json says).
fn hub(read_only: bool, dry_run: bool) -> Hub {
    Setup::new()
        .module_folder(env!("CARGO_MANIFEST_DIR"))
        .env("MODULES__TMPLMOD__READ_ONLY", &read_only.to_string())
        .env("MODULES__TMPLMOD__DRY_RUN", &dry_run.to_string())
        .start()
}

/// Both switches off: writes are kept.
fn live() -> Hub {
    hub(false, false)
}

#[test]
fn the_api_creates_lists_reads_updates_and_deletes_items() {
    let hub = live();
    let reply = hub.request(
        "POST",
        "/api/v1/tmplmod/items",
        None,
        Some(r#"{"title": "First", "description": "one"}"#),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let item = reply.json();
    assert_eq!(
        (
            item["id"].clone(),
            item["title"].clone(),
            item["done"].clone()
        ),
        (json!(1), json!("First"), json!(false))
    );
    hub.request(
        "POST",
        "/api/v1/tmplmod/items",
        None,
        Some(r#"{"title": "Second"}"#),
    );

    let list = hub.get("/api/v1/tmplmod/items?limit=1&offset=1").json();
    assert_eq!(
        (list["limit"].clone(), list["offset"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        list["items"]
            .as_array()
            .map(|items| items.iter().map(|i| i["title"].clone()).collect::<Vec<_>>()),
        Some(vec![json!("Second")])
    );

    assert_eq!(
        hub.get("/api/v1/tmplmod/items/1").json()["description"],
        "one"
    );
    let reply = hub.request(
        "PUT",
        "/api/v1/tmplmod/items/1",
        None,
        Some(r#"{"title": "First, done", "done": true}"#),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        (reply.json()["title"].clone(), reply.json()["done"].clone()),
        (json!("First, done"), json!(true))
    );

    assert_eq!(
        hub.request("DELETE", "/api/v1/tmplmod/items/1", None, None)
            .status,
        204
    );
    let reply = hub.get("/api/v1/tmplmod/items/1");
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "not_found", "message": "no item 1"}})
    );
    assert_eq!(
        hub.request(
            "PUT",
            "/api/v1/tmplmod/items/1",
            None,
            Some(r#"{"title": "x"}"#)
        )
        .status,
        404
    );
    assert_eq!(
        hub.request("DELETE", "/api/v1/tmplmod/items/1", None, None)
            .status,
        404
    );
}

#[test]
fn invalid_items_are_refused_with_422_naming_each_field() {
    let hub = live();
    let body = json!({"title": " ", "description": "x".repeat(2001)}).to_string();
    let reply = hub.request("POST", "/api/v1/tmplmod/items", None, Some(&body));
    assert_eq!(reply.status, 422);
    let details = json!([
        {"location": "body", "field": "description", "message": format!(r#""{}" is longer than 2000 characters"#, "x".repeat(2001))},
        {"location": "body", "field": "title", "message": r#"" " does not match the pattern \S"#},
    ]);
    assert_eq!(reply.json()["error"]["code"], "validation_failed");
    assert_eq!(reply.json()["error"]["details"], details);
    // An unknown field, and a missing one: the type says no to both.
    let reply = hub.request(
        "POST",
        "/api/v1/tmplmod/items",
        None,
        Some(r#"{"titel": "x"}"#),
    );
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "validation_failed", "message": "the request is invalid: body 'titel' is not a known field; body 'title' is required", "details": [
            {"location": "body", "field": "titel", "message": "is not a known field"},
            {"location": "body", "field": "title", "message": "is required"},
        ]}})
    );
}

#[test]
fn the_pages_list_show_create_and_edit_items_with_forms() {
    let hub = live();
    let page = hub.get("/modules/tmplmod/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert!(
        page.body.contains("<h1>Tmplmod</h1>") && page.body.contains("No items yet."),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("READ_ONLY"),
        "no banner with the switches off"
    );

    let new = hub.get("/modules/tmplmod/items/new");
    assert!(
        new.body.contains(r#"action="/modules/tmplmod/items/new""#),
        "{}",
        new.body
    );
    let created = hub.post_form(
        "/modules/tmplmod/items/new",
        "title=Tea+%26+%3Cbiscuits%3E&description=with+milk",
    );
    assert_eq!(created.status, 303, "{}", created.body);
    assert_eq!(
        created.location.as_deref(),
        Some("/modules/tmplmod/items/1")
    );
    let item = hub.get("/modules/tmplmod/items/1");
    assert_eq!(item.status, 200);
    assert!(
        item.body.contains("<h1>Tea &amp; &lt;biscuits&gt;</h1>"),
        "escaped: {}",
        item.body
    );

    let edited = hub.post_form("/modules/tmplmod/items/1/edit", "title=Coffee&done=on");
    assert_eq!(
        (edited.status, edited.location.as_deref()),
        (303, Some("/modules/tmplmod/items/1"))
    );
    assert!(
        hub.get("/modules/tmplmod/")
            .body
            .contains(r#"class="tmplmod-done">Coffee</a>"#)
    );
    let css = hub.get("/modules/tmplmod/static/tmplmod.css");
    assert_eq!(
        (css.status, css.content_type.as_deref()),
        (200, Some("text/css"))
    );

    let deleted = hub.post_form("/modules/tmplmod/items/1/delete", "");
    assert_eq!(
        (deleted.status, deleted.location.as_deref()),
        (303, Some("/modules/tmplmod/"))
    );
    let gone = hub.get("/modules/tmplmod/items/1");
    assert_eq!(gone.status, 404);
    assert!(
        gone.body.contains("no item 1"),
        "an error page, not JSON: {}",
        gone.body
    );
}

#[test]
fn an_invalid_form_comes_back_with_its_field_errors() {
    let hub = live();
    let reply = hub.post_form("/modules/tmplmod/items/new", "title=+&description=kept");
    assert_eq!(reply.status, 422);
    assert!(
        reply
            .body
            .contains(r#"<p class="field-error">must be 1 to 200 characters</p>"#),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains(">kept</textarea>"),
        "the input is kept: {}",
        reply.body
    );
    assert_eq!(hub.get("/api/v1/tmplmod/items").json()["items"], json!([]));
}

#[test]
fn with_the_default_switches_writes_are_refused_and_the_pages_say_so() {
    let hub = hub(true, true);
    let page = hub.get("/modules/tmplmod/");
    assert!(
        page.body.contains("<strong>READ_ONLY</strong> is on"),
        "{}",
        page.body
    );
    let reply = hub.request(
        "POST",
        "/api/v1/tmplmod/items",
        None,
        Some(r#"{"title": "x"}"#),
    );
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"]["code"], "read_only");
    let form = hub.post_form("/modules/tmplmod/items/new", "title=x");
    assert_eq!(form.status, 403);
    assert!(
        form.body.contains("READ_ONLY is on: nothing was saved."),
        "{}",
        form.body
    );
}

#[test]
fn dry_run_rolls_changes_back_and_says_so() {
    let hub = hub(false, true);
    let reply = hub.request(
        "POST",
        "/api/v1/tmplmod/items",
        None,
        Some(r#"{"title": "x"}"#),
    );
    assert_eq!(reply.status, 201);
    assert_eq!(hub.get("/api/v1/tmplmod/items").json()["items"], json!([]));
    let form = hub.post_form("/modules/tmplmod/items/new", "title=x");
    assert_eq!(form.status, 200);
    assert!(
        form.body
            .contains("DRY_RUN is on: the item would have been created"),
        "{}",
        form.body
    );
}

#[test]
fn health_checks_the_table_and_the_status_shows_it() {
    let hub = live();
    let reply = hub.get("/api/v1/tmplmod/health");
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({"status": "healthy", "detail": ""}))
    );
    let module = hub.module("tmplmod");
    let table = &module["tables"][0];
    assert_eq!(
        (table["name"].clone(), table["present"].clone()),
        (json!("tmplmod_items"), json!(true))
    );
    assert!(table["bytes"].as_i64().is_some_and(|b| b > 0), "{table}");
    assert_eq!(module["migrations"]["applied"][0]["name"], "init");
}

#[test]
fn routes_answer_whom_they_say() {
    let hub = live();
    // Public: anyone.
    assert_eq!(hub.anonymous_get("/api/v1/tmplmod/about").status, 200);
    // The default: signed-in callers.
    let reply = hub.anonymous_get("/api/v1/tmplmod/items");
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"]["code"], "unauthenticated");
    // A token that may read the hub but holds no tmplmod permission: reads, does not write.
    let reply = hub.request(
        "POST",
        "/api/v1/tokens",
        None,
        Some(r#"{"name": "reader", "permissions": ["modules.read"]}"#),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let token = reply.json()["token_secret"]
        .as_str()
        .expect("the token's secret")
        .to_owned();
    assert_eq!(
        hub.request("GET", "/api/v1/tmplmod/items", Some(&token), None)
            .status,
        200
    );
    let reply = hub.request(
        "POST",
        "/api/v1/tmplmod/items",
        Some(&token),
        Some(r#"{"title": "x"}"#),
    );
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.json()["error"]["details"],
        json!({"permission": "tmplmod:items.write"})
    );
}

#[test]
fn upstream_is_fetched_through_the_hub_only_from_a_listed_host() {
    // Not configured yet.
    let hub = live();
    let reply = hub.get("/api/v1/tmplmod/upstream");
    assert_eq!(reply.status, 409);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "not_configured", "message": "set config.status_url (or MODULES__TMPLMOD__STATUS_URL) and add its host to \"outbound\" in module.json"}})
    );
    drop(hub);
    // A server of the test's own, answering one request.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    let url = format!("http://127.0.0.1:{port}/status");
    // Its host not in "outbound": refused before anything is sent.
    let hub = Setup::new()
        .module_folder(env!("CARGO_MANIFEST_DIR"))
        .env("MODULES__TMPLMOD__STATUS_URL", &url)
        .start();
    let reply = hub.get("/api/v1/tmplmod/upstream");
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"]["code"], "outbound_not_allowed");
    drop(hub);
    // Listed (here by the operator's setting): fetched.
    let hub = Setup::new()
        .module_folder(env!("CARGO_MANIFEST_DIR"))
        .env("MODULES__TMPLMOD__STATUS_URL", &url)
        .env("MODULES__TMPLMOD__OUTBOUND", &format!("127.0.0.1:{port}"))
        .start();
    let reply = hub.get("/api/v1/tmplmod/upstream");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), json!({"status": 200, "bytes": 2}));
}

#[test]
fn the_hourly_job_runs_once_for_the_current_hour() {
    let hub = live();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let page = hub.get("/api/v1/modules/tmplmod/jobs").json();
        assert_eq!(page["declared"][0]["name"], "count_items", "{page}");
        let runs = page["runs"].as_array().cloned().unwrap_or_default();
        if runs.iter().any(|r| r["state"] == "done") {
            assert_eq!(runs.len(), 1, "one run for the hour: {page}");
            assert_eq!(runs[0]["attempts"], 1);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job did not run: {page}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
