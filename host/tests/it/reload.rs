//! Hot reload (issue 5): the watcher applies a replaced library or an edited `module.json`
//! without a restart; a broken new version leaves the old one serving; requests under load never
//! fail across reloads.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Hub, Setup, TOKEN, artifacts, lib_file};

/// Copy `artifact` next to `module`'s library under a temporary name, then rename it into place,
/// as `cargo xtask build` does.
fn swap(hub: &Hub, module: &str, artifact: &str) {
    let folder = hub.modules_dir().join(module);
    // The one library the artifact folder holds.
    let from = std::fs::read_dir(artifacts().join(artifact))
        .expect("artifact folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.extension()
                .is_some_and(|x| x == std::env::consts::DLL_EXTENSION)
        })
        .expect("a library in the artifact folder");
    let temp = folder.join(".incoming.tmp");
    std::fs::copy(&from, &temp).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    std::fs::rename(&temp, folder.join(lib_file(module))).expect("rename into place");
}

fn build(hub: &Hub) -> Value {
    hub.get("/api/v1/fx/build").json()["build"].clone()
}

fn write_manifest(hub: &Hub, module: &str, manifest: Value) {
    std::fs::write(
        hub.modules_dir().join(module).join("module.json"),
        manifest.to_string(),
    )
    .expect("write module.json");
}

/// Wait for `module`'s last reload to have failed with an error containing `needle`.
fn last_reload_failed_with(hub: &Hub, module: &str, needle: &str) -> Value {
    let mut last = Value::Null;
    hub.eventually("a failed reload", || {
        last = hub.module(module)["last_reload"].clone();
        last["outcome"] == "failed" && last["error"].as_str().is_some_and(|e| e.contains(needle))
    });
    last
}

#[test]
fn replacing_the_library_changes_the_response_without_a_restart() {
    let hub = Setup::new().fixture("fx", json!({})).start();
    assert_eq!(build(&hub), "a");
    let before = hub.module("fx");
    swap(&hub, "fx", "fixture-b");
    hub.eventually("the new build serving", || build(&hub) == "b");
    let after = hub.module("fx");
    assert_eq!(after["state"], "running");
    assert_eq!(after["reloads"], 1);
    assert_eq!(after["last_reload"]["outcome"], "ok");
    assert_eq!(after["last_reload"]["error"], Value::Null);
    assert!(after["last_reload"]["duration_ms"].is_u64());
    assert_ne!(after["loaded_at"], before["loaded_at"]);
    assert_eq!(after["mapped_libraries"], 2, "the old copy stays mapped");
    assert!(
        hub.logs().contains("file change fx: running 0.1.0 → 0.1.0"),
        "{}",
        hub.logs()
    );
}

#[test]
fn a_library_written_in_place_is_loaded_only_once_its_writer_is_done() {
    let mut hub = Setup::new()
        .fixture("fx", json!({}))
        .env("RUST_LOG", "info,host::watcher=debug")
        .start();
    let bytes =
        std::fs::read(artifacts().join("fixture-b").join(lib_file("fixture"))).expect("build b");
    let target = hub.modules_dir().join("fx").join(lib_file("fx"));
    let mut file = std::fs::File::create(&target).expect("open for writing");
    file.write_all(&bytes[..bytes.len() / 2])
        .expect("first half");
    file.flush().expect("flush");
    // Waits for the watcher to have seen the write, its debounce passed, and held the module
    // back: a watcher that did not wait for the writer would have loaded half a file by then.
    let held = hub.wait_for_log(
        "waiting for a writer to close its files",
        Duration::from_secs(5),
    );
    assert!(held.is_some_and(|l| l.contains("fx")), "{}", hub.logs());
    assert_eq!(
        build(&hub),
        "a",
        "nothing loaded while the file is half written"
    );
    file.write_all(&bytes[bytes.len() / 2..])
        .expect("second half");
    drop(file);
    hub.eventually("the new build serving", || build(&hub) == "b");
    assert_eq!(
        hub.module("fx")["last_reload"]["outcome"],
        "ok",
        "no attempt on the half file"
    );
}

#[test]
fn a_broken_new_version_leaves_the_old_one_serving_and_says_why() {
    let hub = Setup::new().fixture("fx", json!({})).start();
    let fx = |config: Value| json!({"name": "fx", "version": "0.1.0", "enabled": true, "config": config});

    swap(&hub, "fx", "incompatible");
    let (next, _) = crate::support::api_versions();
    last_reload_failed_with(
        &hub,
        "fx",
        &format!(
            "was built against plugin-api {next}, but this hub has plugin-api {}",
            plugin_api::API_VERSION
        ),
    );
    assert_eq!(build(&hub), "a");

    std::fs::write(
        hub.modules_dir().join("fx").join(lib_file("fx")),
        b"\x7fELF random bytes, not a library",
    )
    .expect("junk");
    last_reload_failed_with(&hub, "fx", "is not a loadable library");
    assert_eq!(build(&hub), "a");

    swap(&hub, "fx", "fixture");
    hub.eventually("the good build back", || {
        hub.module("fx")["last_reload"]["outcome"] == "ok"
    });

    write_manifest(&hub, "fx", fx(json!({"init": "error"})));
    last_reload_failed_with(&hub, "fx", "init failed: fixture init refused on purpose");
    assert_eq!(build(&hub), "a");

    write_manifest(&hub, "fx", fx(json!({"health": "unhealthy"})));
    last_reload_failed_with(
        &hub,
        "fx",
        "unhealthy at start: fixture told to be unhealthy",
    );
    assert_eq!(build(&hub), "a");

    let module = hub.module("fx");
    assert_eq!(
        module["state"], "running",
        "the old version kept serving throughout"
    );
    assert_eq!(module["reloads"], 1, "only the good build was swapped in");
}

#[test]
fn a_new_version_whose_migration_fails_leaves_the_old_one_serving() {
    let setup = Setup::new().dbfix(json!({"safety": {"read_only": false, "dry_run": false}}));
    let db = setup.db();
    let hub = setup.start();
    assert_eq!(hub.get("/api/v1/dbfix/count").json(), json!({"count": 0}));
    swap(&hub, "dbfix", "dbfix-b");
    let last = last_reload_failed_with(
        &hub,
        "dbfix",
        "migration 003_broken of module 'dbfix' failed and was rolled back",
    );
    assert_eq!(
        last["error"],
        "migration 003_broken of module 'dbfix' failed and was rolled back: relation \"dbfix_missing\" does not exist (SQLSTATE 42P01)"
    );
    assert_eq!(
        hub.get("/api/v1/dbfix/count").json(),
        json!({"count": 0}),
        "the old version serves"
    );
    let note_exists: bool = db
        .client()
        .query_one(
            "SELECT count(*) > 0 FROM information_schema.columns WHERE table_name = 'dbfix_items' AND column_name = 'note'",
            &[],
        )
        .map(|r| r.get(0))
        .unwrap_or(true);
    assert!(
        !note_exists,
        "the failed migration's first statement was rolled back"
    );
}

#[test]
fn enabled_flipped_by_hand_disables_and_enables_without_an_api_call() {
    let hub = Setup::new().fixture("fx", json!({})).start();
    let manifest = |enabled: bool| json!({"name": "fx", "version": "0.1.0", "enabled": enabled});
    write_manifest(&hub, "fx", manifest(false));
    hub.eventually("routes gone", || hub.get("/api/v1/fx/build").status == 404);
    assert_eq!(hub.module("fx")["state"], "disabled");
    write_manifest(&hub, "fx", manifest(true));
    hub.eventually("routes back", || hub.get("/api/v1/fx/build").status == 200);
}

#[test]
fn a_relative_modules_dir_is_watched_too() {
    // The default, MODULES_DIR=plugins, is relative to the hub's working directory (the
    // temporary folder holding plugins/ here); file events name absolute paths.
    let hub = Setup::new()
        .fixture("fx", json!({}))
        .env("MODULES_DIR", "plugins")
        .start();
    assert_eq!(build(&hub), "a");
    swap(&hub, "fx", "fixture-b");
    hub.eventually("build b served", || build(&hub) == "b");
    write_manifest(
        &hub,
        "fx",
        json!({"name": "fx", "version": "0.1.0", "enabled": false}),
    );
    hub.eventually("routes gone", || hub.get("/api/v1/fx/build").status == 404);
}

#[test]
fn invalid_json_keeps_the_running_version_and_shows_the_error() {
    let hub = Setup::new().fixture("fx", json!({})).start();
    std::fs::write(hub.modules_dir().join("fx/module.json"), "{ oops").expect("write");
    hub.eventually("the error shown", || {
        hub.module("fx")["error"]
            .as_str()
            .is_some_and(|e| e.contains("is not valid JSON"))
    });
    assert_eq!(hub.module("fx")["state"], "running");
    assert_eq!(build(&hub), "a");
}

#[test]
fn a_new_folder_is_served_and_a_removed_one_answers_404() {
    let hub = Setup::new().hello().start();
    let folder = hub.modules_dir().join("late");
    let staging = hub.modules_dir().join(".staging");
    std::fs::create_dir_all(&staging).expect("staging");
    std::fs::copy(
        artifacts().join("fixture").join(lib_file("fixture")),
        staging.join(lib_file("late")),
    )
    .expect("lib");
    std::fs::write(
        staging.join("module.json"),
        json!({"name": "late", "version": "0.1.0", "enabled": true}).to_string(),
    )
    .expect("manifest");
    std::fs::rename(&staging, &folder).expect("the folder appears at once");
    hub.eventually("the new module serving", || {
        hub.get("/api/v1/late/build").status == 200
    });
    std::fs::remove_dir_all(&folder).expect("remove");
    hub.eventually("the module gone", || {
        hub.get("/api/v1/late/build").status == 404
    });
    assert_eq!(hub.admin_get("/api/v1/modules/late").status, 404);
}

#[test]
fn a_folder_seen_before_its_library_is_loaded_when_the_library_appears() {
    let hub = Setup::new().hello().start();
    let folder = hub.modules_dir().join("early");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(
        folder.join("module.json"),
        json!({"name": "early", "version": "0.1.0", "enabled": true}).to_string(),
    )
    .expect("manifest");
    hub.eventually("the module failing for its missing library", || {
        hub.admin_get("/api/v1/modules/early").json()["state"] == "failed"
    });
    std::fs::copy(
        artifacts().join("fixture").join(lib_file("fixture")),
        folder.join(".lib.tmp"),
    )
    .expect("lib");
    std::fs::rename(folder.join(".lib.tmp"), folder.join(lib_file("early"))).expect("into place");
    hub.eventually("the module serving", || {
        hub.get("/api/v1/early/build").status == 200
    });
}

#[test]
fn with_auto_reload_off_file_changes_do_nothing_until_asked() {
    let hub = Setup::new()
        .fixture("fx", json!({}))
        .env("MODULES_AUTO_RELOAD", "false")
        .start();
    // No watcher runs (the hub says so at start), so nothing but the API applies a change; the
    // negative rests on that line, not on a wait.
    assert!(
        hub.logs()
            .contains("MODULES_AUTO_RELOAD=false: file changes apply only through POST"),
        "{}",
        hub.logs()
    );
    assert!(!hub.logs().contains("watching "), "{}", hub.logs());
    swap(&hub, "fx", "fixture-b");
    assert_eq!(build(&hub), "a");
    assert_eq!(hub.module("fx")["reloads"], 0);
    assert_eq!(hub.admin_post("/api/v1/modules/fx/reload").status, 200);
    assert_eq!(build(&hub), "b");
}

#[test]
fn the_hubs_own_writes_of_module_json_cause_no_reload() {
    let mut hub = Setup::new()
        .fixture("fx", json!({}))
        .env("RUST_LOG", "info,host::lifecycle=debug")
        .start();
    assert_eq!(hub.admin_post("/api/v1/modules/fx/disable").status, 200);
    assert_eq!(hub.admin_post("/api/v1/modules/fx/enable").status, 200);
    // Waits for the watcher to have looked at fx's files after the hub's own writes and found
    // them as applied; a reload would have been decided right there.
    let looked = hub.wait_for_log("fx: its files are as last applied", Duration::from_secs(5));
    assert!(looked.is_some(), "{}", hub.logs());
    assert!(
        hub.wait_for_log("file change fx", Duration::from_millis(10))
            .is_none(),
        "{}",
        hub.logs()
    );
    assert_eq!(hub.module("fx")["reloads"], 0);
}

#[test]
fn ten_reloads_under_concurrent_load_fail_no_request_and_serve_both_versions() {
    let hub = Setup::new()
        .fixture("fx", json!({}))
        .env("HUB_WORKERS", "2")
        .start();
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, seen, failures) = (stop.clone(), seen.clone(), failures.clone());
            let url = format!("{}/api/v1/fx/build", hub.base);
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                while !stop.load(Ordering::Relaxed) {
                    match agent
                        .get(&url)
                        .header("Authorization", format!("Bearer {TOKEN}"))
                        .call()
                    {
                        Ok(mut r) if r.status() == 200 => {
                            let body = r.body_mut().read_to_string().unwrap_or_default();
                            seen.lock().expect("seen").push(body);
                        }
                        Ok(mut r) => failures.lock().expect("failures").push(format!(
                            "{}: {}",
                            r.status(),
                            r.body_mut().read_to_string().unwrap_or_default()
                        )),
                        Err(e) => failures.lock().expect("failures").push(e.to_string()),
                    }
                }
            })
        })
        .collect();
    for n in 0..10 {
        let (artifact, expected) = if n % 2 == 0 {
            ("fixture-b", "b")
        } else {
            ("fixture", "a")
        };
        swap(&hub, "fx", artifact);
        hub.eventually("the swap", || build(&hub) == expected);
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client");
    }
    let failures = failures.lock().expect("failures");
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let seen = seen.lock().expect("seen");
    let (a, b) = (
        seen.iter().filter(|s| s.contains("\"a\"")).count(),
        seen.iter().filter(|s| s.contains("\"b\"")).count(),
    );
    assert!(a > 0 && b > 0, "both versions answered: a {a}, b {b}");
    assert_eq!(a + b, seen.len());
    assert_eq!(hub.module("fx")["reloads"], 10);
}

#[test]
fn a_request_in_flight_finishes_on_its_version_whose_shutdown_hook_runs_after_it() {
    let mut hub = Setup::new().fixture("fx", json!({})).start();
    let slow = hub.get_in_background("/api/v1/fx/slow/1500");
    assert!(
        hub.wait_for_log("slow request started", Duration::from_secs(5))
            .is_some()
    );
    swap(&hub, "fx", "fixture-b");
    hub.eventually("the new build serving", || build(&hub) == "b");
    assert!(
        !hub.logs().contains("fixture shut down cleanly"),
        "the old version is still answering a request: its shutdown hook must wait"
    );
    let answer = slow.join().expect("slow request");
    assert_eq!(answer, Ok((200, r#"{"slept_ms":1500}"#.to_owned())));
    assert!(
        hub.wait_for_log("fixture shut down cleanly", Duration::from_secs(5))
            .is_some(),
        "the old version's shutdown hook ran after its last request"
    );
}
