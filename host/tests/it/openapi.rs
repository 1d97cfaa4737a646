//! `GET /api/v1/openapi.json`: public, and a valid OpenAPI 3.1 document while modules run, fail,
//! are disabled, reloaded or removed. Validated against the OpenAPI Initiative's published JSON
//! Schema for 3.1 (`tests/fixtures/openapi-3.1.schema.json`, schema 2022-10-07, Apache-2.0),
//! plus what a schema cannot say: every `$ref` resolves and every path parameter is declared.

use serde_json::{Value, json};

use crate::support::{Hub, Setup};

fn validator() -> jsonschema::Validator {
    let schema: Value =
        serde_json::from_str(include_str!("../fixtures/openapi-3.1.schema.json")).expect("schema");
    jsonschema::validator_for(&schema).expect("compile the OpenAPI schema")
}

fn assert_valid(doc: &Value) {
    let errors: Vec<String> = validator()
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "not valid OpenAPI 3.1: {errors:#?}");
    let mut refs = Vec::new();
    collect_refs(doc, &mut refs);
    for reference in refs {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {reference}"));
        assert!(
            doc.pointer(pointer).is_some(),
            "$ref {reference} does not resolve"
        );
    }
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let templated: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, operation) in item.as_object().expect("path item") {
            let declared: Vec<&str> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert_eq!(declared, templated, "{method} {path}: path parameters");
        }
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn document(hub: &Hub) -> Value {
    let reply = hub.get("/api/v1/openapi.json");
    assert_eq!(reply.status, 200, "public, no token");
    let doc = reply.json();
    assert_valid(&doc);
    doc
}

fn tags(doc: &Value) -> Vec<String> {
    doc["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_document_lists_hub_routes_and_each_running_module_under_its_tag() {
    let hub = Setup::new()
        .hello()
        .fixture("fx", json!({}))
        .file("broken/module.json", "{")
        .start();
    let doc = document(&hub);
    assert_eq!(
        tags(&doc),
        ["hub", "modules", "identity", "packages", "fx", "hello"]
    );
    for path in [
        "/healthz",
        "/api/v1/openapi.json",
        "/api/v1/modules",
        "/api/v1/modules/{name}",
        "/api/v1/modules/{name}/{action}",
        "/api/v1/fx/health",
        "/api/v1/hello/health",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    let greet = &doc["paths"]["/api/v1/hello/greet/{name}"]["get"];
    assert_eq!(greet["tags"], json!(["hello"]));
    assert_eq!(greet["parameters"][0]["name"], "name");
    assert!(doc["paths"]["/api/v1/fx/echo"]["post"].is_object());
    assert_eq!(
        doc["paths"]["/api/v1/modules"]["get"]["responses"]["401"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/ErrorBody"
    );
    assert!(doc["components"]["schemas"]["ModuleObject"]["properties"]["state"].is_object());

    // The validator is not a rubber stamp: a document missing its `info`, or with an operation
    // whose responses are not a map, is refused.
    let mut broken = doc.clone();
    broken.as_object_mut().expect("object").remove("info");
    assert!(!validator().is_valid(&broken));
    let mut broken = doc;
    broken["paths"]["/healthz"]["get"]["responses"] = json!("none");
    assert!(!validator().is_valid(&broken));
}

#[test]
fn the_document_stays_valid_as_modules_fail_reload_and_disappear() {
    let setup = Setup::new()
        .hello()
        .fixture("fx", json!({}))
        .fixture("gone", json!({}));
    let (fx_manifest, gone) = (
        setup.modules_dir().join("fx/module.json"),
        setup.modules_dir().join("gone"),
    );
    let hub = setup.start();
    assert_eq!(
        tags(&document(&hub)),
        [
            "hub", "modules", "identity", "packages", "fx", "gone", "hello"
        ]
    );

    assert_eq!(hub.admin_post("/api/v1/modules/hello/disable").status, 200);
    let doc = document(&hub);
    assert_eq!(
        tags(&doc),
        ["hub", "modules", "identity", "packages", "fx", "gone"]
    );
    assert!(doc["paths"]["/api/v1/hello/greet/{name}"].is_null());

    std::fs::write(
        &fx_manifest,
        r#"{"name": "fx", "version": "0.1.0", "enabled": true, "config": {"init": "error"}}"#,
    )
    .expect("write");
    assert_eq!(
        hub.admin_post("/api/v1/modules/fx/reload").json()["state"],
        "running"
    );
    assert!(
        document(&hub)["paths"]["/api/v1/fx/echo"].is_object(),
        "the old version still serves"
    );

    std::fs::remove_dir_all(&gone).expect("remove");
    assert_eq!(hub.admin_post("/api/v1/modules/gone/reload").status, 404);
    assert_eq!(
        tags(&document(&hub)),
        ["hub", "modules", "identity", "packages", "fx"]
    );
}

/// A typed route is documented from its handler: the doc comment's first line as the summary,
/// the rest as the description, its extractors' schemas as parameters and body, its answer's
/// schema, every status it can give (no `default`), and who may call it. `/docs` shows the
/// document.
#[test]
fn typed_routes_are_documented_from_their_handlers_and_docs_shows_them() {
    let hub = Setup::new().hello().start();
    let doc = document(&hub);
    let greet = &doc["paths"]["/api/v1/hello/greet/{name}"]["get"];
    assert_eq!(greet["summary"], "A greeting for `name`.");
    assert_eq!(
        greet["parameters"],
        json!([{"name": "name", "in": "path", "required": true, "description": "A name of 1 to 64 characters.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 64}}])
    );
    assert_eq!(
        greet["responses"]["200"]["content"]["application/json"]["schema"],
        json!({"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]})
    );
    let statuses: Vec<&String> = greet["responses"]
        .as_object()
        .map(|r| r.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        statuses,
        ["200", "400", "401", "422", "429", "500", "503", "504"]
    );
    assert_eq!(greet["security"], json!([{"bearer": []}, {"session": []}]));
    let ping = &doc["paths"]["/api/v1/hello/ping"]["get"];
    assert_eq!(
        ping["summary"],
        "The cheapest possible answer: for anyone at `/ping`, for signed-in callers at `/pong`."
    );
    assert_eq!(
        ping["description"],
        "The dispatch benchmark compares `/ping` with the hub's own `GET /ping`, and `/pong` with\nan API token with `/ping` anonymous."
    );
    assert_eq!(ping["security"], json!([{}]));
    // No catch-all anywhere: every status is its own.
    let mut catch_alls = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            for status in operation["responses"]
                .as_object()
                .expect("responses")
                .keys()
            {
                if status.parse::<u16>().is_err() {
                    catch_alls.push(format!("{method} {path}: {status}"));
                }
            }
        }
    }
    assert_eq!(catch_alls, Vec::<String>::new());

    let page = hub.anonymous_get("/docs");
    assert_eq!(
        (page.status, page.content_type.as_deref()),
        (200, Some("text/html; charset=utf-8"))
    );
    assert!(
        page.body
            .contains(r#"<script src="/docs/swagger-ui-bundle.js"></script>"#)
            && page
                .body
                .contains(r#"<link rel="stylesheet" href="/docs/swagger-ui.css">"#),
        "{}",
        page.body
    );
    let init = hub.anonymous_get("/docs/init.js");
    assert!(
        init.body.contains(r#"url: "/api/v1/openapi.json""#),
        "{}",
        init.body
    );
    let bundle = hub.anonymous_get("/docs/swagger-ui-bundle.js");
    assert_eq!(
        (bundle.status, bundle.content_type.as_deref()),
        (200, Some("text/javascript; charset=utf-8"))
    );
    assert!(bundle.body.contains("SwaggerUIBundle"));
    let missing = hub.anonymous_get("/docs/secrets.txt");
    assert_eq!(
        (missing.status, missing.json()),
        (
            404,
            json!({"error": {"code": "not_found", "message": "/docs has no file secrets.txt"}})
        )
    );
}
