//! Module dependencies (issue 7): start order, unmet and cyclic dependencies named with their
//! ranges, enable/disable following the graph, reloads that would break a dependent, removed
//! dependencies, the graph's JSON and SVG. The fixture's version is 0.1.0 throughout.

use serde_json::{Value, json};

use crate::support::{Hub, Setup, TOKEN};

fn needs(deps: Value) -> Value {
    json!({"dependencies": deps})
}

fn error(hub: &Hub, name: &str) -> Value {
    hub.module(name)["error"].clone()
}

#[test]
fn dependencies_start_first_whatever_their_names() {
    let hub = Setup::new()
        .fixture("aaa", needs(json!({"mmm": "^0.1"})))
        .fixture("mmm", needs(json!({"zzz": "^0.1"})))
        .fixture("zzz", json!({}))
        .start();
    for name in ["aaa", "mmm", "zzz"] {
        assert_eq!(hub.module(name)["state"], "running", "{name}");
    }
    let logs = hub.logs();
    let at = |name: &str| {
        logs.find(&format!("start {name}: running"))
            .unwrap_or(usize::MAX)
    };
    assert!(at("zzz") < at("mmm") && at("mmm") < at("aaa"), "{logs}");
    let aaa = hub.module("aaa");
    assert_eq!(
        aaa["dependencies"],
        json!([{"name": "mmm", "range": "^0.1", "satisfied": true}])
    );
    assert_eq!(hub.module("zzz")["dependents"], json!(["mmm"]));
}

#[test]
fn unmet_dependencies_fail_the_module_naming_module_and_range() {
    let hub = Setup::new()
        .hello()
        .fixture("base", json!({}))
        .fixture("off", json!({"enabled": false}))
        .fixture("lost", needs(json!({"ghost": "^1.0"})))
        .fixture("picky", needs(json!({"base": "^1.2"})))
        .fixture("waits", needs(json!({"off": "^0.1"})))
        .fixture("chained", needs(json!({"picky": "*"})))
        .start();
    assert_eq!(
        error(&hub, "lost"),
        "needs ghost ^1.0, which is not installed"
    );
    assert_eq!(error(&hub, "picky"), "needs base ^1.2, found 0.1.0");
    assert_eq!(error(&hub, "waits"), "needs off, which is disabled");
    assert_eq!(error(&hub, "chained"), "needs picky, which failed");
    for name in ["lost", "picky", "waits", "chained"] {
        assert_eq!(hub.module(name)["state"], "failed", "{name}");
        assert_eq!(hub.get(&format!("/api/v1/{name}/build")).status, 503);
    }
    assert_eq!(
        hub.get("/api/v1/base/build").status,
        200,
        "not involved: serving"
    );
    assert_eq!(hub.get("/api/v1/hello/ping").status, 200);
}

#[test]
fn a_dependency_on_itself_or_an_invalid_range_is_refused() {
    let setup = Setup::new()
        .fixture("narcissus", needs(json!({"narcissus": "^0.1"})))
        .fixture("vague", needs(json!({"hello": "soon"})))
        .hello();
    let dir = setup.modules_dir();
    let hub = setup.start();
    assert_eq!(
        error(&hub, "narcissus"),
        format!(
            "{}: module \"narcissus\" depends on itself: remove it from \"dependencies\"",
            dir.join("narcissus/module.json").display()
        )
    );
    assert_eq!(
        error(&hub, "vague"),
        format!(
            "{}: dependency hello \"soon\" is not a semver range (unexpected character 's' while parsing major version number): write e.g. \"^1.2\"",
            dir.join("vague/module.json").display()
        )
    );
    assert_eq!(hub.get("/api/v1/hello/ping").status, 200);
}

#[test]
fn cycles_of_two_and_three_fail_every_module_in_them_spelled_out() {
    let hub = Setup::new()
        .fixture("x", needs(json!({"y": "^0.1"})))
        .fixture("y", needs(json!({"x": "^0.1"})))
        .fixture("p", needs(json!({"q": "^0.1"})))
        .fixture("q", needs(json!({"r": "^0.1"})))
        .fixture("r", needs(json!({"p": "^0.1"})))
        .fixture("bystander", json!({}))
        .start();
    assert_eq!(error(&hub, "x"), "dependency cycle x → y → x");
    assert_eq!(error(&hub, "y"), "dependency cycle y → x → y");
    assert_eq!(error(&hub, "p"), "dependency cycle p → q → r → p");
    assert_eq!(error(&hub, "q"), "dependency cycle q → r → p → q");
    assert_eq!(error(&hub, "r"), "dependency cycle r → p → q → r");
    assert_eq!(hub.module("bystander")["state"], "running");
}

#[test]
fn a_diamond_needing_two_majors_of_one_module_fails_the_branch_that_cannot_be_met() {
    let hub = Setup::new()
        .fixture("base", json!({}))
        .fixture("left", needs(json!({"base": "^0.1"})))
        .fixture("right", needs(json!({"base": "^2"})))
        .fixture("top", needs(json!({"left": "^0.1", "right": "^0.1"})))
        .start();
    assert_eq!(hub.module("left")["state"], "running");
    assert_eq!(error(&hub, "right"), "needs base ^2, found 0.1.0");
    assert_eq!(error(&hub, "top"), "needs right, which failed");
    assert_eq!(hub.get("/api/v1/left/build").status, 200);
}

#[test]
fn enabling_needs_running_dependencies_unless_asked_to_enable_them() {
    let setup = Setup::new()
        .fixture("base", json!({"enabled": false}))
        .fixture(
            "mid",
            json!({"enabled": false, "dependencies": {"base": "^0.1"}}),
        )
        .fixture(
            "top",
            json!({"enabled": false, "dependencies": {"mid": "^0.1"}}),
        );
    let dir = setup.modules_dir();
    let hub = setup.start();
    let reply = hub.admin_post("/api/v1/modules/top/enable");
    assert_eq!(reply.status, 409);
    assert_eq!(
        reply.json(),
        json!({"error": {
            "code": "dependencies_not_running",
            "message": "module 'top' needs base, mid, which are not running: enable them first, or ask for ?with_dependencies=true",
            "details": {"missing": ["base", "mid"]}
        }})
    );
    let manifest = std::fs::read_to_string(dir.join("top/module.json")).expect("manifest");
    assert!(
        manifest.contains("\"enabled\":false"),
        "nothing written: {manifest}"
    );

    let reply = hub.admin_post("/api/v1/modules/top/enable?with_dependencies=true");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["state"], "running");
    for name in ["base", "mid", "top"] {
        assert_eq!(hub.module(name)["state"], "running", "{name}");
        assert_eq!(hub.module(name)["enabled"], true, "{name} persisted");
    }
    let logs = hub.logs();
    let at = |name: &str| {
        logs.find(&format!("enable {name}: running"))
            .unwrap_or(usize::MAX)
    };
    assert!(
        at("base") < at("mid") && at("mid") < at("top"),
        "in order: {logs}"
    );
    let reply = hub.admin_post("/api/v1/modules/top/enable?with_dependencies=maybe");
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["code"], "bad_query");
}

#[test]
fn disabling_is_refused_while_dependents_run_unless_cascading() {
    let hub = Setup::new()
        .fixture("base", json!({}))
        .fixture("mid", needs(json!({"base": "^0.1"})))
        .fixture("top", needs(json!({"mid": "^0.1"})))
        .fixture("side", needs(json!({"base": "^0.1"})))
        .start();
    let reply = hub.admin_post("/api/v1/modules/base/disable");
    assert_eq!(reply.status, 409);
    assert_eq!(reply.json()["error"]["code"], "has_dependents");
    let mut dependents: Vec<String> =
        serde_json::from_value(reply.json()["error"]["details"]["dependents"].clone())
            .expect("names");
    dependents.sort();
    assert_eq!(dependents, ["mid", "side", "top"]);
    assert_eq!(hub.get("/api/v1/base/build").status, 200, "nothing changed");

    let reply = hub.admin_post("/api/v1/modules/base/disable?cascade=true");
    assert_eq!(reply.status, 200, "{}", reply.body);
    for name in ["base", "mid", "top", "side"] {
        assert_eq!(hub.module(name)["state"], "disabled", "{name}");
    }
    let logs = hub.logs();
    let at = |name: &str| {
        logs.find(&format!("disable {name}: disabled"))
            .unwrap_or(usize::MAX)
    };
    assert!(
        at("top") < at("mid") && at("mid") < at("base") && at("side") < at("base"),
        "dependents first: {logs}"
    );
}

#[test]
fn a_new_version_out_of_a_dependents_range_is_refused_and_the_old_one_serves() {
    let setup = Setup::new()
        .fixture("base", json!({}))
        .fixture("app", needs(json!({"base": "^0.1"})));
    let manifest = setup.modules_dir().join("base/module.json");
    let hub = setup.start();
    std::fs::write(
        &manifest,
        json!({"name": "base", "version": "0.2.0", "enabled": true}).to_string(),
    )
    .expect("write");
    let reply = hub.admin_post("/api/v1/modules/base/reload");
    assert_eq!(reply.status, 200);
    let module = reply.json();
    assert_eq!(module["state"], "running");
    assert_eq!(module["version"], "0.1.0", "the old version serves");
    assert_eq!(
        module["error"],
        "version 0.2.0 is refused: app needs base ^0.1; the running version keeps serving"
    );
    assert_eq!(hub.module("app")["state"], "running");
}

#[test]
fn the_watcher_reports_a_disable_it_cannot_apply_and_a_removed_dependency_fails_its_dependents() {
    let setup = Setup::new()
        .fixture("base", json!({}))
        .fixture("app", needs(json!({"base": "^0.1"})));
    let dir = setup.modules_dir();
    let hub = setup.start();
    std::fs::write(
        dir.join("base/module.json"),
        json!({"name": "base", "version": "0.1.0", "enabled": false}).to_string(),
    )
    .expect("write");
    hub.eventually("the refusal reported", || {
        error(&hub, "base")
            .as_str()
            .is_some_and(|e| e.contains("app needs it"))
    });
    assert_eq!(
        error(&hub, "base"),
        "module.json says disabled, but app needs it: it keeps running; disable it first, or POST /api/v1/modules/base/disable?cascade=true"
    );
    assert_eq!(hub.module("base")["state"], "running");

    std::fs::remove_dir_all(dir.join("base")).expect("remove");
    hub.eventually("app failing", || hub.module("app")["state"] == "failed");
    assert_eq!(
        error(&hub, "app"),
        "needs base ^0.1, which is not installed"
    );
    assert_eq!(hub.get("/api/v1/app/build").status, 503);
}

#[test]
fn a_dependency_that_comes_later_starts_its_waiting_dependents() {
    let hub = Setup::new()
        .fixture("app", needs(json!({"late": "^0.1"})))
        .start();
    assert_eq!(
        error(&hub, "app"),
        "needs late ^0.1, which is not installed"
    );
    let staging = hub.modules_dir().join(".late");
    std::fs::create_dir_all(&staging).expect("staging");
    std::fs::copy(
        crate::support::artifacts()
            .join("fixture")
            .join(crate::support::lib_file("fixture")),
        staging.join(crate::support::lib_file("late")),
    )
    .expect("library");
    std::fs::write(
        staging.join("module.json"),
        json!({"name": "late", "version": "0.1.0", "enabled": true}).to_string(),
    )
    .expect("manifest");
    std::fs::rename(&staging, hub.modules_dir().join("late")).expect("appear");
    hub.eventually("app started", || hub.module("app")["state"] == "running");
}

#[test]
fn a_hub_api_range_the_hub_does_not_meet_fails_the_module() {
    let hub = Setup::new()
        .fixture("future", json!({"hub_api": "^0.9"}))
        .fixture(
            "now",
            json!({"hub_api": format!("^{}", plugin_api::API_VERSION)}),
        )
        .start();
    assert_eq!(
        error(&hub, "future"),
        format!(
            "module.json accepts plugin-api ^0.9 (hub_api), but this hub has plugin-api {}: rebuild the module against it and widen hub_api",
            plugin_api::API_VERSION
        )
    );
    assert_eq!(hub.module("now")["state"], "running");
}

#[test]
fn the_graph_is_json_and_a_picture() {
    let hub = Setup::new()
        .fixture("base", json!({}))
        .fixture("app", needs(json!({"base": "^0.1"})))
        .fixture("picky", needs(json!({"base": "^3"})))
        .start();
    assert_eq!(hub.anonymous_get("/api/v1/modules/graph").status, 401);
    let graph = hub.admin_get("/api/v1/modules/graph").json();
    assert_eq!(
        graph["nodes"],
        json!([
            {"name": "app", "version": "0.1.0", "state": "running"},
            {"name": "base", "version": "0.1.0", "state": "running"},
            {"name": "picky", "version": "0.1.0", "state": "failed"},
        ])
    );
    assert_eq!(
        graph["edges"],
        json!([
            {"from": "app", "to": "base", "range": "^0.1", "satisfied": true},
            {"from": "picky", "to": "base", "range": "^3", "satisfied": false},
        ])
    );
    let reply = hub.request("GET", "/api/v1/modules/graph.svg", Some(TOKEN), None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type.as_deref(), Some("image/svg+xml"));
    let svg = reply.body;
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    assert!(
        svg.contains(r#"<g class="node failed">"#) && svg.contains(r#"<g class="node running">"#)
    );
    assert_eq!(svg.matches(r#"class="edge unsatisfied""#).count(), 1);
    assert!(svg.contains("<title>picky needs base ^3</title>"));
    assert!(svg.trim_end().ends_with("</svg>"));
}
