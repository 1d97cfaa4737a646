//! Loading modules: the example module serves by default; each bad manifest or library leaves
//! its module `failed` with a message naming the file, while the hub and `hello` keep serving.

use serde_json::json;

use crate::support::{Hub, Setup, api_versions, lib_file};

/// `name` is `failed` with exactly `error`, its routes answer 503 saying so (without the reason:
/// that is for the log and the management API, issue 12), and `hello` still serves.
fn assert_failed(hub: &Hub, name: &str, error: &str) {
    let module = hub.module(name);
    assert_eq!(module["state"], "failed", "{module}");
    assert_eq!(module["error"], error, "{module}");
    let reply = hub.get(&format!("/api/v1/{name}/anything"));
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "module_failed", "message": format!("module '{name}' failed to start; why is in the hub's log and in GET /api/v1/modules/{name}")}})
    );
    let hello = hub.get("/api/v1/hello/greet/Ada");
    assert_eq!(
        (hello.status, hello.body.as_str()),
        (200, r#"{"message":"Hello, Ada!"}"#)
    );
}

#[test]
fn the_example_module_is_served_by_default() {
    let hub = Setup::new().hello().start();
    let reply = hub.get("/api/v1/hello/");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"module": "hello", "version": "0.1.0", "greeting": "Hello"})
    );
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    let reply = hub.get("/api/v1/hello");
    assert_eq!(
        reply.status, 200,
        "the mount point without a slash is the module's root"
    );
    let reply = hub.get("/healthz");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"status": "ok", "modules": {"running": 1, "disabled": 0, "failed": 0}})
    );
}

#[test]
fn a_manifest_that_is_not_json_fails_the_module() {
    let setup = Setup::new()
        .hello()
        .file("broken/module.json", "{\"name\": \"broken\",");
    let path = setup.modules_dir().join("broken/module.json");
    let hub = setup.start();
    let error = format!(
        "{} is not valid JSON: EOF while parsing a value at line 1 column 18",
        path.display()
    );
    assert_failed(&hub, "broken", &error);
    assert_eq!(hub.module("broken")["version"], json!(null));
}

#[test]
fn a_manifest_with_an_unknown_field_fails_the_module() {
    let setup = Setup::new()
        .hello()
        .fixture("extra", json!({"colour": "red"}));
    let path = setup.modules_dir().join("extra/module.json");
    let hub = setup.start();
    let error = format!(
        "{} is invalid: unknown field `colour`, expected one of `$schema`, `name`, `version`, `description`, `enabled`, `library`, `dependencies`, `uses`, `hub_api`, `config`, `safety`, `table_prefix`, `permissions`, `audience`, `outbound`, `secrets`",
        path.display()
    );
    assert_failed(&hub, "extra", &error);
}

#[test]
fn a_manifest_without_a_name_fails_the_module() {
    let setup = Setup::new().hello().file(
        "noname/module.json",
        r#"{"version": "0.1.0", "enabled": true}"#,
    );
    let path = setup.modules_dir().join("noname/module.json");
    let hub = setup.start();
    assert_failed(
        &hub,
        "noname",
        &format!("{} is invalid: missing field `name`", path.display()),
    );
}

#[test]
fn an_invalid_or_reserved_name_fails_the_module() {
    let setup = Setup::new()
        .hello()
        .file(
            "shouty/module.json",
            r#"{"name": "Shouty", "version": "0.1.0", "enabled": true}"#,
        )
        .file(
            "admin/module.json",
            r#"{"name": "admin", "version": "0.1.0", "enabled": true}"#,
        );
    let (shouty, admin) = (
        setup.modules_dir().join("shouty/module.json"),
        setup.modules_dir().join("admin/module.json"),
    );
    let hub = setup.start();
    assert_failed(
        &hub,
        "shouty",
        &format!(
            "{}: name \"Shouty\" is invalid: it must start with a lowercase letter a-z (names match ^[a-z][a-z0-9_]{{0,39}}$)",
            shouty.display()
        ),
    );
    // A reserved name cannot be asked for through the API; the list shows it.
    let list = hub.admin_get("/api/v1/modules").json();
    let admin_module = list
        .as_array()
        .and_then(|l| l.iter().find(|m| m["name"] == "admin"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(admin_module["state"], "failed");
    assert_eq!(
        admin_module["error"],
        format!(
            "{}: name \"admin\" is invalid: it is reserved (names match ^[a-z][a-z0-9_]{{0,39}}$)",
            admin.display()
        )
    );
}

#[test]
fn a_name_that_differs_from_the_folder_fails_the_module() {
    let setup = Setup::new()
        .hello()
        .fixture("folder", json!({"name": "other"}));
    let path = setup.modules_dir().join("folder/module.json");
    let hub = setup.start();
    assert_failed(
        &hub,
        "folder",
        &format!(
            "{} says name \"other\" but its folder is \"folder\": make them equal",
            path.display()
        ),
    );
}

#[test]
fn a_manifest_version_unlike_the_library_version_fails_the_module() {
    let setup = Setup::new()
        .hello()
        .fixture("versioned", json!({"version": "9.9.9"}));
    let lib = setup
        .modules_dir()
        .join("versioned")
        .join(lib_file("versioned"));
    let hub = setup.start();
    assert_failed(
        &hub,
        "versioned",
        &format!(
            "module.json says version 9.9.9 but {} is version 0.1.0: make them equal (the library reports its crate's version)",
            lib.display()
        ),
    );
}

#[test]
fn a_missing_library_fails_the_module() {
    let setup = Setup::new().hello().file(
        "nolib/module.json",
        r#"{"name": "nolib", "version": "0.1.0", "enabled": true}"#,
    );
    let lib = setup.modules_dir().join("nolib").join(lib_file("nolib"));
    let hub = setup.start();
    assert_failed(
        &hub,
        "nolib",
        &format!(
            "library {} not found: build the module (cargo xtask build) or fix \"library\" in module.json",
            lib.display()
        ),
    );
}

#[test]
fn a_file_that_is_not_a_library_fails_the_module() {
    let setup = Setup::new()
        .hello()
        .file(
            "junk/module.json",
            r#"{"name": "junk", "version": "0.1.0", "enabled": true}"#,
        )
        .file(
            &format!("junk/{}", lib_file("junk")),
            "\u{7f}ELF but not really a library",
        );
    let lib = setup.modules_dir().join("junk").join(lib_file("junk"));
    let hub = setup.start();
    let module = hub.module("junk");
    let error = module["error"].as_str().unwrap_or_default().to_owned();
    let prefix = format!("{} is not a loadable library: ", lib.display());
    assert!(error.starts_with(&prefix), "{error}");
    assert_failed(&hub, "junk", &error);
    assert_eq!(module["mapped_libraries"], 0);
}

#[test]
fn a_library_built_against_another_plugin_api_fails_in_a_few_lines() {
    let setup = Setup::new()
        .hello()
        .fixture_from("incompatible", "incompat", json!({}));
    let lib = setup
        .modules_dir()
        .join("incompat")
        .join(lib_file("incompat"));
    let hub = setup.start();
    let (next, line) = api_versions();
    let error = format!(
        "{} was built against plugin-api {next}, but this hub has plugin-api {}: rebuild the module against plugin-api {line}",
        lib.display(),
        plugin_api::API_VERSION
    );
    assert_failed(&hub, "incompat", &error);
    let logs = hub.logs();
    assert!(
        logs.contains(&error),
        "the log names the module and the fix:\n{logs}"
    );
    assert!(
        logs.lines().filter(|l| l.contains("incompat")).count() <= 3,
        "no layout dump in the log:\n{logs}"
    );
}

#[test]
fn a_folder_without_a_manifest_or_hidden_is_not_a_module() {
    let hub = Setup::new()
        .hello()
        .file("notes/README.txt", "not a module")
        .file(
            "_template/module.json",
            r#"{"name": "tmplmod", "version": "0.1.0", "enabled": true}"#,
        )
        .start();
    let names: Vec<_> = hub
        .admin_get("/api/v1/modules")
        .json()
        .as_array()
        .map(|l| l.iter().map(|m| m["name"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec![json!("hello")]);
}
