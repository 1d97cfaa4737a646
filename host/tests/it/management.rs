//! The management API: token auth, name validation (nothing outside `MODULES_DIR`), enable,
//! disable and reload without a restart, and the module object.

use serde_json::json;

use crate::support::{Setup, TOKEN, lib_file};

fn unauthenticated(message: &str) -> serde_json::Value {
    json!({"error": {"code": "unauthenticated", "message": message}})
}

const SIGN_IN_FIRST: &str = "sign in first: send Authorization: Bearer <token> (the admin token or an API token), or sign in at /login";
const INVALID_TOKEN: &str = "the token is not valid (unknown, expired or revoked): create a new one with POST /api/v1/tokens";
const MALFORMED: &str = "the Authorization header must be `Bearer <token>`, with the admin token or an API token (hub_…)";

#[test]
fn every_management_call_needs_the_admin_token() {
    // Twelve wrong tokens from one address would be refused with 429 by default.
    let hub = Setup::new().hello().env("HUB_AUTH_FAILURES", "100").start();
    for (method, path) in [
        ("GET", "/api/v1/modules"),
        ("GET", "/api/v1/modules/hello"),
        ("POST", "/api/v1/modules/hello/enable"),
        ("POST", "/api/v1/modules/hello/disable"),
        ("POST", "/api/v1/modules/hello/reload"),
        ("POST", "/api/v1/modules/../enable"),
    ] {
        let reply = hub.anonymous(method, path, None);
        assert_eq!(reply.status, 401, "{method} {path} anonymous");
        assert_eq!(reply.json(), unauthenticated(SIGN_IN_FIRST));
        for (token, message) in [("wrong-token", INVALID_TOKEN), ("", MALFORMED)] {
            let reply = hub.request(method, path, Some(token), None);
            assert_eq!(reply.status, 401, "{method} {path} with {token:?}");
            assert_eq!(
                reply.json(),
                unauthenticated(message),
                "{method} {path} with {token:?}"
            );
        }
    }
    assert_eq!(
        hub.get("/api/v1/hello/ping").status,
        200,
        "disable did not happen"
    );
    assert_eq!(hub.module("hello")["state"], "running");
}

#[test]
fn the_module_object_has_its_fields() {
    let hub = Setup::new().hello().start();
    let module = hub.module("hello");
    let keys: Vec<&str> = module
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "name",
            "version",
            "description",
            "enabled",
            "state",
            "error",
            "health",
            "routes",
            "safety",
            "library",
            "api_version",
            "loaded_at",
            "mapped_libraries",
            "reloads",
            "last_reload",
            "reload_history",
            "health_history",
            "audience",
            "permissions",
            "settings",
            "table_prefix",
            "migrations",
            "tables",
            "dependencies",
            "dependents"
        ]
    );
    assert_eq!(module["name"], "hello");
    assert_eq!(module["version"], "0.1.0");
    assert_eq!(
        module["description"],
        "Greets visitors; the smallest working module"
    );
    assert_eq!(module["enabled"], true);
    assert_eq!(module["state"], "running");
    assert_eq!(module["error"], json!(null));
    assert_eq!(module["health"]["status"], "healthy");
    assert_eq!(
        module["routes"],
        json!([
            {"method": "GET", "path": "/api/v1/hello/health", "access": "public"},
            {"method": "GET", "path": "/api/v1/hello/", "access": "signed_in"},
            {"method": "GET", "path": "/api/v1/hello/ping", "access": "public"},
            {"method": "GET", "path": "/api/v1/hello/pong", "access": "signed_in"},
            {"method": "GET", "path": "/api/v1/hello/echo/{n}", "access": "public"},
            {"method": "GET", "path": "/api/v1/hello/greet/{name}", "access": "signed_in"},
        ])
    );
    assert_eq!(
        module["safety"],
        json!({"read_only": true, "dry_run": true, "source": {"read_only": "default", "dry_run": "default"}})
    );
    assert_eq!(module["library"], lib_file("hello"));
    assert_eq!(module["api_version"], plugin_api::API_VERSION);
    assert_eq!(module["mapped_libraries"], 1);
    assert_eq!(module["reloads"], 0);
    assert_eq!(module["last_reload"], json!(null));
    assert_eq!(module["reload_history"], json!([]));
    assert_eq!(module["health_history"].as_array().map(Vec::len), Some(1));
    assert_eq!(module["health_history"][0], module["health"]);
    assert_eq!(module["audience"], json!(null));
    assert_eq!(module["permissions"], json!({}));
    assert_eq!(
        module["settings"],
        json!([{"key": "greeting", "value": "Hello", "secret": false, "source": "manifest"}])
    );
    assert_eq!(module["table_prefix"], "hello_");
    assert_eq!(module["migrations"], json!({"applied": [], "pending": []}));
    assert_eq!(module["tables"], json!([]));
    assert_eq!(module["dependencies"], json!([]));
    assert_eq!(module["dependents"], json!([]));
    assert_eq!(hub.admin_get("/api/v1/modules").json(), json!([module]));
}

#[test]
fn unknown_modules_and_actions_are_404() {
    let hub = Setup::new().hello().start();
    let reply = hub.admin_get("/api/v1/modules/ghost");
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "module_not_found", "message": "no module 'ghost' is installed"}})
    );
    assert_eq!(hub.admin_post("/api/v1/modules/ghost/enable").status, 404);
    let reply = hub.admin_post("/api/v1/modules/hello/explode");
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "not_found", "message": "unknown module action 'explode': use enable, disable or reload"}})
    );
    let reply = hub.admin_get("/api/v1/modules/hello/enable");
    assert_eq!(reply.status, 405);
    assert_eq!(reply.allow.as_deref(), Some("POST"));
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "method_not_allowed", "message": "enable takes POST, not GET"}})
    );
}

#[test]
fn names_from_urls_cannot_reach_outside_the_modules_dir() {
    let setup = Setup::new().hello();
    // A module folder beside MODULES_DIR that a path trick would reach.
    let outside = setup
        .modules_dir()
        .parent()
        .expect("parent")
        .join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    let manifest = r#"{"name": "outside", "version": "0.1.0", "enabled": false}"#;
    std::fs::write(outside.join("module.json"), manifest).expect("manifest");
    let hub = setup.start();
    let reply = hub.admin_post("/api/v1/modules/Upper/enable");
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "invalid_name", "message": "module name \"Upper\" is invalid: it must start with a lowercase letter a-z"}})
    );
    for target in [
        "/api/v1/modules/../enable",
        "/api/v1/modules/..%2foutside/enable",
        "/api/v1/modules/%2e%2e/enable",
        "/api/v1/modules/%2e%2e%2foutside/enable",
        "/api/v1/modules/a/b/enable",
        "/api/v1/modules/..%5coutside/enable",
        "/api/v1/modules/%2E%2E/reload",
    ] {
        let status = hub.raw_status("POST", target);
        assert!(matches!(status, 400 | 404), "{target}: {status}");
    }
    let status = hub.raw_status("GET", "/api/v1/modules/..");
    assert!(matches!(status, 400 | 404), "{status}");
    assert_eq!(
        std::fs::read_to_string(outside.join("module.json")).expect("read"),
        manifest
    );
    assert_eq!(
        hub.admin_get("/api/v1/modules")
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn enable_and_disable_take_effect_at_once_and_persist() {
    let setup = Setup::new().fixture(
        "fx",
        json!({"description": "kept", "enabled": false, "config": {"z": 1, "a": 2}}),
    );
    let manifest_path = setup.modules_dir().join("fx/module.json");
    let hub = setup.start();
    assert_eq!(hub.module("fx")["state"], "disabled");
    let reply = hub.get("/api/v1/fx/items/1");
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "module_not_found", "message": "module 'fx' is disabled: enable it with POST /api/v1/modules/fx/enable"}})
    );

    for _ in 0..2 {
        let reply = hub.admin_post("/api/v1/modules/fx/enable");
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json()["state"], "running");
        assert_eq!(reply.json()["enabled"], true);
    }
    assert_eq!(hub.get("/api/v1/fx/items/1").status, 200);
    // Only the value of `enabled` changes, character for character (issue 12).
    assert_eq!(
        std::fs::read_to_string(&manifest_path).expect("manifest"),
        r#"{"name":"fx","version":"0.1.0","enabled":true,"description":"kept","config":{"z":1,"a":2}}"#
    );

    for _ in 0..2 {
        let reply = hub.admin_post("/api/v1/modules/fx/disable");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["state"], "disabled");
    }
    assert_eq!(hub.get("/api/v1/fx/items/1").status, 404);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["enabled"], false);
    let leftovers: Vec<_> = std::fs::read_dir(manifest_path.parent().expect("folder"))
        .expect("folder")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(
        hub.module("fx")["mapped_libraries"],
        1,
        "re-enabling reuses the mapped library"
    );
}

#[test]
fn enabling_a_module_with_a_broken_manifest_is_refused_and_writes_nothing() {
    let setup = Setup::new()
        .hello()
        .file("broken/module.json", "{\"name\": ");
    let path = setup.modules_dir().join("broken/module.json");
    let hub = setup.start();
    let reply = hub.admin_post("/api/v1/modules/broken/enable");
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "invalid_manifest", "message": format!("{} is not valid JSON: EOF while parsing a value at line 1 column 9", path.display())}})
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("manifest"),
        "{\"name\": "
    );
}

#[test]
fn reload_applies_a_changed_manifest_and_keeps_the_old_version_when_the_new_one_fails() {
    let setup = Setup::new().fixture("fx", json!({"config": {"greeting": "one"}}));
    let manifest_path = setup.modules_dir().join("fx/module.json");
    let hub = setup.start();
    let greeting = || hub.get("/api/v1/fx/config/greeting").json()["value"].clone();
    assert_eq!(greeting(), "one");

    let manifest =
        json!({"name": "fx", "version": "0.1.0", "enabled": true, "config": {"greeting": "two"}});
    std::fs::write(&manifest_path, manifest.to_string()).expect("write");
    assert_eq!(greeting(), "one", "nothing changes before the reload");
    let reply = hub.admin_post("/api/v1/modules/fx/reload");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["state"], "running");
    assert_eq!(greeting(), "two");

    let broken = json!({"name": "fx", "version": "0.1.0", "enabled": true, "config": {"greeting": "three", "init": "error"}});
    std::fs::write(&manifest_path, broken.to_string()).expect("write");
    let reply = hub.admin_post("/api/v1/modules/fx/reload");
    assert_eq!(reply.status, 200);
    let module = reply.json();
    assert_eq!(module["state"], "running");
    assert_eq!(
        module["error"],
        "init failed: fixture init refused on purpose"
    );
    assert_eq!(greeting(), "two", "the old version keeps serving");

    std::fs::write(&manifest_path, "{ not json").expect("write");
    let module = hub.admin_post("/api/v1/modules/fx/reload").json();
    assert_eq!(module["state"], "running");
    assert_eq!(
        module["error"],
        format!(
            "{} is not valid JSON: key must be a string at line 1 column 3",
            manifest_path.display()
        )
    );
    assert_eq!(greeting(), "two");

    std::fs::remove_dir_all(manifest_path.parent().expect("folder")).expect("remove");
    let reply = hub.admin_post("/api/v1/modules/fx/reload");
    assert_eq!(reply.status, 404);
    assert_eq!(hub.get("/api/v1/fx/config/greeting").status, 404);
}

#[test]
fn with_the_module_system_off_no_module_is_loaded() {
    let hub = Setup::new().hello().env("MODULES_ENABLED", "false").start();
    let reply = hub.get("/api/v1/hello/ping");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["code"], "module_not_found");
    assert_eq!(hub.admin_get("/api/v1/modules").json(), json!([]));
    let reply = hub.admin_post("/api/v1/modules/hello/enable");
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "module_not_found", "message": "the module system is off (MODULES_ENABLED=false)"}})
    );
    assert_eq!(hub.get("/healthz").status, 200);
}

#[test]
fn the_admin_token_is_generated_when_unset() {
    let mut hub = Setup::new().hello().env("HUB_ADMIN_TOKEN", "").start();
    let line = hub
        .wait_for_log(
            "the admin token of this run is ",
            std::time::Duration::from_secs(5),
        )
        .unwrap_or_default();
    let token = line.rsplit(' ').next().unwrap_or_default().to_owned();
    assert_eq!(token.len(), 64, "{line}");
    assert_ne!(token, TOKEN);
    assert_eq!(
        hub.request("GET", "/api/v1/modules", Some(&token), None)
            .status,
        200
    );
    assert_eq!(hub.admin_get("/api/v1/modules").status, 401);
}

#[test]
fn the_startup_report_and_one_line_per_action_say_what_happened() {
    let mut hub = Setup::new()
        .hello()
        .fixture("fx", json!({"enabled": false}))
        .file("broken/module.json", "{")
        .start();
    let logs = hub.logs();
    let table: Vec<&str> = logs
        .lines()
        .skip_while(|l| !l.contains("modules in "))
        .skip(1)
        .take(4)
        .map(str::trim_end)
        .collect();
    assert_eq!(table[0], "  MODULE  VERSION  STATE     ERROR");
    assert!(
        table[1].starts_with("  broken  -        failed    "),
        "{}",
        table[1]
    );
    assert!(
        table[1].ends_with("is not valid JSON: EOF while parsing an object at line 1 column 1"),
        "{}",
        table[1]
    );
    assert_eq!(table[2], "  fx      0.1.0    disabled");
    assert_eq!(table[3], "  hello   0.1.0    running");
    let listening = logs
        .lines()
        .position(|l| l.contains("listening on http://"));
    let report = logs.lines().position(|l| l.contains("modules in "));
    assert!(report < listening, "the report comes before the address");

    hub.admin_post("/api/v1/modules/fx/enable");
    hub.admin_post("/api/v1/modules/fx/enable");
    hub.admin_post("/api/v1/modules/fx/reload");
    hub.admin_post("/api/v1/modules/fx/disable");
    let wanted = [
        "enable fx: running 0.1.0 (",
        "enable fx: already running 0.1.0",
        "reload fx: running 0.1.0 → 0.1.0 (",
        "disable fx: disabled (",
    ];
    for needle in wanted {
        let line = hub.wait_for_log(needle, std::time::Duration::from_secs(5));
        let line = line.unwrap_or_else(|| panic!("no line with {needle:?} in:\n{}", hub.logs()));
        assert!(line.contains("module=fx"), "{line}");
        assert!(line.contains("duration_ms="), "{line}");
        assert!(line.contains("outcome="), "{line}");
    }
}

/// Every 405 names the methods the route takes (RFC 9110): the hub's routes, the management
/// API, a module's health check, its API routes and its views, and the home page.
#[test]
fn every_405_carries_allow() {
    let hub = Setup::new().hello().fixture("fx", json!({})).start();
    for (method, path, allow) in [
        ("POST", "/healthz", "GET"),
        ("DELETE", "/ping", "GET"),
        ("POST", "/api/v1/openapi.json", "GET"),
        ("PUT", "/login", "GET, POST"),
        ("POST", "/auth/callback", "GET"),
        ("GET", "/logout", "POST"),
        ("POST", "/api/v1/me", "GET"),
        ("PUT", "/api/v1/tokens", "GET, POST"),
        ("GET", "/api/v1/tokens/1", "DELETE"),
        ("DELETE", "/api/v1/users", "GET, POST"),
        ("GET", "/api/v1/users/1/roles", "PUT"),
        ("GET", "/api/v1/users/1/offboard", "POST"),
        ("DELETE", "/api/v1/roles", "GET, POST"),
        ("GET", "/api/v1/roles/x", "PUT, DELETE"),
        ("POST", "/api/v1/audit", "GET"),
        ("POST", "/api/v1/modules", "GET"),
        ("POST", "/api/v1/modules/graph", "GET"),
        ("POST", "/api/v1/modules/graph.svg", "GET"),
        ("PUT", "/api/v1/modules/hello", "GET, DELETE"),
        ("POST", "/api/v1/modules/hello/audience", "PUT"),
        ("GET", "/api/v1/modules/hello/reload", "POST"),
        ("POST", "/api/v1/hello/health", "GET"),
        ("DELETE", "/api/v1/hello/ping", "GET"),
        ("DELETE", "/modules/fx/", "GET"),
        ("GET", "/modules/fx/go", "POST"),
        ("POST", "/", "GET"),
    ] {
        let reply = hub.request(method, path, None, None);
        assert_eq!(reply.status, 405, "{method} {path}: {}", reply.body);
        assert_eq!(reply.allow.as_deref(), Some(allow), "{method} {path}");
    }
    let reply = hub.request("POST", "/healthz", None, None);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "method_not_allowed", "message": "POST is not allowed on /healthz: use GET"}})
    );
}
