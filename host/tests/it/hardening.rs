//! Hardening (issue 12): input sizes bounded before allocation, the loader and the watcher
//! robust against transient failures and half-written files, enable/disable as one step, no
//! cross-site state changes, no error details for anonymous clients, `module.json` rewritten
//! character for character. Each test here failed before its fix.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::database::{dbfix, live, sql};
use crate::support::{Setup, TOKEN, artifacts, lib_file};

#[test]
fn a_huge_numeric_exponent_is_a_400_and_the_hub_keeps_serving() {
    let hub = dbfix(live()).start();
    for huge in ["1e100000000000000", "1e3000000000"] {
        let reply = sql(&hub, "SELECT $1::numeric AS n", json!([huge]));
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(
            reply.json(),
            json!({"error": {"code": "bad_parameter", "message": format!("parameter $1 (numeric) is not a decimal number: {huge:?} is outside numeric's range")}})
        );
    }
    let reply = sql(&hub, "SELECT $1::numeric AS n", json!(["1e3"]));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["rows"], json!([{"n": "1000"}]));
}

#[test]
fn the_runtime_folder_is_made_again_when_a_cleaner_removed_it() {
    let setup = Setup::new().fixture("fx", json!({}));
    let runtime = setup
        .modules_dir()
        .parent()
        .expect("setup folder")
        .join("runtime");
    let hub = setup.start();
    for entry in std::fs::read_dir(&runtime).expect("runtime folder") {
        std::fs::remove_dir_all(entry.expect("entry").path()).expect("remove the private folder");
    }
    // A new build, so that the loader has to copy it.
    let folder = hub.modules_dir().join("fx");
    std::fs::copy(
        artifacts().join("fixture-b").join(lib_file("fixture")),
        folder.join(lib_file("fx")),
    )
    .expect("build b");
    let reply = hub.admin_post("/api/v1/modules/fx/reload");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json()["last_reload"]["outcome"],
        "ok",
        "{}",
        reply.body
    );
    assert_eq!(hub.get("/api/v1/fx/build").json()["build"], "b");
}

#[test]
fn a_truncated_library_is_refused_by_name_and_the_old_one_serves() {
    let hub = Setup::new()
        .fixture("fx", json!({}))
        .env("MODULES_AUTO_RELOAD", "false")
        .start();
    let bytes = std::fs::read(artifacts().join("fixture-b").join(lib_file("fixture"))).unwrap();
    let target = hub.modules_dir().join("fx").join(lib_file("fx"));
    std::fs::write(&target, &bytes[..bytes.len() / 2]).expect("half a library");
    let reply = hub.admin_post("/api/v1/modules/fx/reload");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let error = reply.json()["last_reload"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let prefix = format!(
        "{} is truncated: it has {} bytes, but its headers say it has at least ",
        target.display(),
        bytes.len() / 2
    );
    assert!(error.starts_with(&prefix), "{error}");
    assert!(
        error
            .ends_with("(is it still being copied?): wait until the copy is complete, then reload"),
        "{error}"
    );
    assert_eq!(hub.get("/api/v1/fx/build").json()["build"], "a");
}

/// The hub's CPU time so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    let after = stat.rsplit_once(')').expect("comm").1;
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().expect("ticks"))
        .collect();
    fields.iter().sum()
}

#[test]
fn a_debounce_of_zero_does_not_spin_a_core() {
    let hub = Setup::new()
        .fixture("fx", json!({}))
        .env("HUB_RELOAD_DEBOUNCE_MS", "0")
        .start();
    // A second of an idle hub: a spinning watcher thread would use the whole second (100 ticks);
    // an idle one next to none.
    let before = cpu_ticks(hub.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(hub.pid()) - before;
    assert!(
        used < 30,
        "an idle hub used {used} ticks of CPU in one second"
    );
    // And it still reloads.
    std::fs::copy(
        artifacts().join("fixture-b").join(lib_file("fixture")),
        hub.modules_dir().join("fx").join(lib_file("fx")),
    )
    .expect("build b");
    hub.eventually("the new build serving", || {
        hub.get("/api/v1/fx/build").json()["build"] == "b"
    });
}

/// Whether each module's `module.json` and state agree: a file saying disabled means a disabled
/// module, a file saying enabled a running or failed one.
fn file_and_state_agree(hub: &crate::support::Hub, names: &[&str]) -> Result<(), String> {
    for name in names {
        let text = std::fs::read_to_string(hub.modules_dir().join(name).join("module.json"))
            .map_err(|e| e.to_string())?;
        let enabled = serde_json::from_str::<Value>(&text).map_err(|e| e.to_string())?["enabled"]
            == json!(true);
        let state = hub.module(name)["state"].clone();
        let agrees = if enabled {
            state == "running" || state == "failed"
        } else {
            state == "disabled"
        };
        if !agrees {
            return Err(format!(
                "{name}: module.json says enabled={enabled}, state is {state}"
            ));
        }
    }
    Ok(())
}

#[test]
fn concurrent_enable_and_disable_leave_files_and_states_agreeing() {
    // customers ← tickets; a slow start (each health check 300 ms) keeps a reload in flight
    // while a disable of customers and an enable of tickets come in at once.
    for round in 0..4 {
        let hub = Setup::new()
            .fixture("customers", json!({"config": {"health_ms": 300}}))
            .fixture(
                "tickets",
                json!({"enabled": false, "dependencies": {"customers": "*"}}),
            )
            .start();
        let hub = Arc::new(hub);
        let reload = {
            let hub = hub.clone();
            std::thread::spawn(move || hub.admin_post("/api/v1/modules/customers/reload").status)
        };
        std::thread::sleep(Duration::from_millis(50 * round));
        let (first, second) = if round % 2 == 0 {
            (
                "/api/v1/modules/customers/disable",
                "/api/v1/modules/tickets/enable",
            )
        } else {
            (
                "/api/v1/modules/tickets/enable",
                "/api/v1/modules/customers/disable",
            )
        };
        let a = {
            let hub = hub.clone();
            std::thread::spawn(move || hub.admin_post(first).status)
        };
        let b = {
            let hub = hub.clone();
            std::thread::spawn(move || hub.admin_post(second).status)
        };
        let statuses = [reload.join(), a.join(), b.join()].map(|s| s.expect("request thread"));
        assert_eq!(statuses[0], 200);
        assert!(
            statuses[1..].iter().all(|s| *s == 200 || *s == 409),
            "{statuses:?}"
        );
        assert_eq!(
            file_and_state_agree(&hub, &["customers", "tickets"]),
            Ok(()),
            "round {round}: {statuses:?}\n{}",
            hub.logs()
        );
    }
}

#[test]
fn unsafe_requests_from_another_site_are_refused() {
    let hub = Setup::new().fixture("fx", json!({})).start();
    let evil = |path: &str, headers: Vec<(&str, String)>| {
        hub.request_with("POST", path, &headers, Some("{}"))
    };
    let origin = vec![("Origin", "http://evil.example".to_owned())];
    let reply = evil("/api/v1/fx/echo", origin.clone());
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "cross_site", "message": "POST /api/v1/fx/echo from another site (Origin: http://evil.example) is refused: the hub changes state only for its own pages and for clients that send no Origin (curl, scripts)"}})
    );
    let fetch = vec![("Sec-Fetch-Site", "cross-site".to_owned())];
    assert_eq!(evil("/api/v1/fx/echo", fetch).status, 403);
    // A form of another site posted to a module's view gets the error page.
    let reply = evil("/modules/fx/go", origin.clone());
    assert_eq!(reply.status, 403);
    assert!(
        reply.body.contains("<code>cross_site</code>"),
        "{}",
        reply.body
    );
    // The management API too, even with the token.
    let mut with_token = origin.clone();
    with_token.push(("Authorization", format!("Bearer {TOKEN}")));
    let reply = evil("/api/v1/modules/fx/disable", with_token);
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"]["code"], "cross_site");
    assert_eq!(hub.module("fx")["state"], "running");
    // Same origin, or no Origin at all (curl), works.
    let host = hub.base.trim_start_matches("http://").to_owned();
    let same = vec![("Origin", format!("http://{host}"))];
    assert_eq!(evil("/api/v1/fx/echo", same).status, 200);
    assert_eq!(evil("/api/v1/fx/echo", Vec::new()).status, 200);
    let same_origin = vec![("Sec-Fetch-Site", "same-origin".to_owned())];
    assert_eq!(evil("/api/v1/fx/echo", same_origin).status, 200);
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let hub = Setup::new().fixture("fx", json!({})).start();
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let headers = [("Authorization", format!("{scheme} {TOKEN}"))];
        let reply = hub.request_with("GET", "/api/v1/modules/fx", &headers, None);
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.body);
    }
}

#[test]
fn enabling_rewrites_only_the_enabled_value() {
    let text = "{\n  \"name\": \"fx\", \"version\": \"0.1.0\",\n  \"enabled\":false,\n  \"config\": {\"ratio\": 1.10, \"big\": 123456789012345678901234567890}\n}\n";
    let setup = Setup::new()
        .fixture("fx", json!({}))
        .file("fx/module.json", text);
    let hub = setup.start();
    assert_eq!(hub.admin_post("/api/v1/modules/fx/enable").status, 200);
    let after = std::fs::read_to_string(hub.modules_dir().join("fx/module.json")).unwrap();
    assert_eq!(after, text.replace("\"enabled\":false", "\"enabled\":true"));
    assert_eq!(hub.module("fx")["state"], "running");
}

/// Makes a folder immutable (`chattr +i`) for as long as it lives: not even root can create a
/// file in it.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn new(folder: std::path::PathBuf) -> Immutable {
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .arg(&folder)
            .status()
            .expect("run chattr (e2fsprogs)");
        assert!(status.success(), "chattr +i {} failed", folder.display());
        Immutable(folder)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_module_json_that_cannot_be_written_is_a_500_with_the_os_error() {
    let hub = Setup::new().fixture("fx", json!({})).start();
    let folder = hub.modules_dir().join("fx");
    let reply = {
        let _frozen = Immutable::new(folder.clone());
        hub.admin_post("/api/v1/modules/fx/disable")
    };
    assert_eq!(reply.status, 500, "{}", reply.body);
    let error = reply.json()["error"].clone();
    assert_eq!(error["code"], "write_failed");
    let message = error["message"].as_str().unwrap_or_default();
    let expected = format!(
        "cannot write {}: Operation not permitted (os error 1)",
        folder.join("module.json").display()
    );
    assert!(message.starts_with(&expected), "{message}");
    assert_eq!(hub.module("fx")["state"], "running", "nothing changed");
}
