//! Several hubs on one database (issue 19, membership): each records itself and its modules
//! with a heartbeat; `GET /api/v1/fleet` lists them, marks modules that differ between hubs
//! as drift, and a hub that stops beating as gone.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Hub, Setup};

/// The fleet as `hub` sees it, once `done` says so (within 15 s).
fn fleet_when(hub: &Hub, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = hub.get("/api/v1/fleet");
        assert_eq!(reply.status, 200, "{}", reply.body);
        let fleet = reply.json();
        if done(&fleet) {
            return fleet;
        }
        assert!(
            Instant::now() < deadline,
            "the fleet never got there: {fleet}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn states(fleet: &Value) -> Vec<String> {
    fleet["hubs"]
        .as_array()
        .expect("hubs")
        .iter()
        .map(|h| h["state"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn hubs_on_one_database_see_each_other_their_drift_and_who_is_gone() {
    let quick = |setup: Setup| {
        setup
            .hello()
            .env("HUB_FLEET_HEARTBEAT_SECS", "1")
            .env("HUB_FLEET_GONE_SECS", "2")
    };
    let a = quick(Setup::new()).start();
    let db = a.database();
    let b = quick(Setup::with_database(db.clone())).start();
    let fleet = fleet_when(&a, |f| states(f) == ["up", "up"]);
    let this: Vec<bool> = fleet["hubs"]
        .as_array()
        .expect("hubs")
        .iter()
        .map(|h| h["this"].as_bool().unwrap_or_default())
        .collect();
    assert_eq!(
        this,
        [false, true],
        "the last started first: b, then a (this one)"
    );
    assert_eq!(fleet["hubs"][1]["address"], json!(a.base));
    let hello = &fleet["modules"][0];
    assert_eq!(
        (hello["name"].clone(), hello["drift"].clone()),
        (json!("hello"), json!(false))
    );
    // Disabled on b only: drift, with what each hub runs.
    let reply = b.request("POST", "/api/v1/modules/hello/disable", None, None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let fleet = fleet_when(&a, |f| f["modules"][0]["drift"] == true);
    let on: Vec<String> = fleet["modules"][0]["hubs"]
        .as_object()
        .expect("hubs")
        .values()
        .map(|h| h["state"].as_str().unwrap_or_default().to_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(on, ["disabled", "running"]);
    // b dies without a word: gone after HUB_FLEET_GONE_SECS; its modules no longer count.
    b.signal("KILL");
    let fleet = fleet_when(&a, |f| states(f) == ["gone", "up"]);
    assert_eq!(fleet["modules"][0]["drift"], false, "{fleet}");
    drop(b);
    // A hub that stops cleanly says so.
    let mut c = quick(Setup::with_database(db)).start();
    fleet_when(&a, |f| states(f).len() == 3 && states(f)[0] == "up");
    c.signal("TERM");
    assert_eq!(c.wait_exit(Duration::from_secs(10)), Some(0));
    fleet_when(&a, |f| states(f) == ["stopped", "gone", "up"]);
}

// Fleet mode (HUB_FLEET=true): one desired state in PostgreSQL, applied by every hub.

use crate::support::packages::{Contents, Keys};

/// A hub in fleet mode on `db` (a new database for `None`) trusting `keys`; quick heartbeats
/// and a 1.5 s soak in rolling upgrades.
fn fleet_hub(db: Option<std::sync::Arc<crate::support::TestDb>>, keys: &Keys) -> Setup {
    let setup = match db {
        Some(db) => Setup::with_database(Some(db)),
        None => Setup::new(),
    };
    fleet_hub_on(setup, keys)
}

/// `setup` in fleet mode, as [`fleet_hub`].
fn fleet_hub_on(setup: Setup, keys: &Keys) -> Setup {
    setup
        .env("HUB_FLEET", "true")
        .env("HUB_TRUSTED_KEYS", &keys.public)
        .env("HUB_FLEET_HEARTBEAT_SECS", "1")
        .env("HUB_FLEET_GONE_SECS", "3")
        .env("HUB_FLEET_ROLL_SOAK_MS", "1500")
}

/// (version, state) of module `name` on `hub`; `None` when the hub does not know it.
fn on(hub: &Hub, name: &str) -> Option<(String, String)> {
    let reply = hub.admin_get(&format!("/api/v1/modules/{name}"));
    if reply.status == 404 {
        return None;
    }
    assert_eq!(reply.status, 200, "{}", reply.body);
    let m = reply.json();
    Some((
        m["version"].as_str().unwrap_or_default().to_owned(),
        m["state"].as_str().unwrap_or_default().to_owned(),
    ))
}

/// Wait (30 s at most: a rolling upgrade soaks on each hub) until every hub has `name` as
/// `want`; how long it took.
fn converge(hubs: &[&Hub], name: &str, want: Option<(&str, &str)>) -> Duration {
    let started = Instant::now();
    let want = want.map(|(v, s)| (v.to_owned(), s.to_owned()));
    loop {
        let now: Vec<Option<(String, String)>> = hubs.iter().map(|h| on(h, name)).collect();
        if now.iter().all(|n| *n == want) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the fleet did not converge on {name} = {want:?}: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn package(build: &str, version: &str, keys: &Keys) -> Vec<u8> {
    Contents::fixture(build, "pk", version, json!({})).write(Some(keys))
}

fn applied_migrations(hub: &Hub) -> Vec<i32> {
    let db = hub.database().expect("a database");
    let mut client = db.client();
    client
        .query(
            "SELECT version FROM module_migrations WHERE module = 'pk' ORDER BY version",
            &[],
        )
        .expect("ledger")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn a_fleet_applies_one_state_on_every_hub() {
    let keys = Keys::new();
    let a = fleet_hub(None, &keys).start();
    let db = a.database();
    let mut b = fleet_hub(db.clone(), &keys).start();
    let mut c = fleet_hub(db.clone(), &keys).start();

    // Installed through one hub: every hub materializes it from hub_packages.
    let reply = a.install(&package("fixture", "0.1.0", &keys), None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        reply.json()["rollout"],
        json!({"mode": "all", "contract_pending": []})
    );
    converge(&[&a, &b, &c], "pk", Some(("0.1.0", "running")));
    assert!(
        b.modules_dir().join("pk/.package.json").is_file(),
        "b installed the fleet's package"
    );

    // Disabled through b, enabled through c: the others follow, module.json and all.
    let reply = b.admin_post("/api/v1/modules/pk/disable");
    assert_eq!(reply.status, 200, "{}", reply.body);
    converge(&[&a, &b, &c], "pk", Some(("0.1.0", "disabled")));
    let on_disk: Value = serde_json::from_str(
        &std::fs::read_to_string(a.modules_dir().join("pk/module.json")).expect("module.json"),
    )
    .expect("json");
    assert_eq!(on_disk["enabled"], false);
    let reply = c.admin_post("/api/v1/modules/pk/enable");
    assert_eq!(reply.status, 200, "{}", reply.body);
    converge(&[&a, &b, &c], "pk", Some(("0.1.0", "running")));

    // A reload through a restarts the module on every hub.
    let reloads = || -> Vec<u64> {
        [&a, &b, &c]
            .iter()
            .map(|h| h.module("pk")["reloads"].as_u64().unwrap_or_default())
            .collect()
    };
    let before = reloads();
    let reply = a.admin_post("/api/v1/modules/pk/reload");
    assert_eq!(reply.status, 200, "{}", reply.body);
    a.eventually("every hub reloaded pk once", || {
        reloads() == before.iter().map(|n| n + 1).collect::<Vec<_>>()
    });

    // An edit of module.json on one machine is undone, with a line naming the API.
    let file = b.modules_dir().join("pk/module.json");
    let edited = std::fs::read_to_string(&file)
        .expect("module.json")
        .replace("\"enabled\": true", "\"enabled\": false");
    std::fs::write(&file, edited).expect("edit");
    let line = b
        .wait_for_log("the change is undone", Duration::from_secs(10))
        .expect("the watcher refuses the edit");
    assert!(
        line.contains("POST /api/v1/modules/pk/enable or /disable"),
        "{line}"
    );
    b.eventually("module.json is the fleet's again", || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains("\"enabled\": true"))
    });
    assert_eq!(
        on(&b, "pk"),
        Some(("0.1.0".to_owned(), "running".to_owned()))
    );

    // c's listener connection ends (found by its application_name); it reconnects, reads the
    // whole state again, and a change made meanwhile reaches it.
    let fleet = fleet_when(&c, |f| f["hubs"].as_array().is_some_and(|h| h.len() == 3));
    let c_id = fleet["hubs"]
        .as_array()
        .expect("hubs")
        .iter()
        .find(|h| h["this"] == true)
        .expect("this hub")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let db = db.expect("a database");
    let mut client = db.client();
    let ended: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1) t",
            &[&format!("hub-fleet {c_id}")],
        )
        .expect("terminate")
        .get(0);
    assert_eq!(ended, 1, "exactly c's listener");
    let reply = a.admin_post("/api/v1/modules/pk/disable");
    assert_eq!(reply.status, 200, "{}", reply.body);
    c.wait_for_log("listening again", Duration::from_secs(10))
        .expect("c reconnects");
    converge(&[&a, &b, &c], "pk", Some(("0.1.0", "disabled")));
    let reply = a.admin_post("/api/v1/modules/pk/enable");
    assert_eq!(reply.status, 200, "{}", reply.body);
    converge(&[&a, &b, &c], "pk", Some(("0.1.0", "running")));

    // A rolling upgrade (expand migrations only): one hub at a time, old and new side by side.
    let reply = b.install_with(
        "?rollout=rolling",
        &package("fixture-v2", "0.2.0", &keys),
        None,
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        reply.json()["rollout"],
        json!({"mode": "rolling", "contract_pending": []})
    );
    let versions: std::collections::BTreeSet<String> = [&a, &b, &c]
        .iter()
        .filter_map(|h| on(h, "pk").map(|(v, _)| v))
        .collect();
    assert_eq!(
        versions.into_iter().collect::<Vec<_>>(),
        ["0.1.0", "0.2.0"],
        "b holds the turn for the soak time: the others still serve 0.1.0"
    );
    converge(&[&a, &b, &c], "pk", Some(("0.2.0", "running")));
    assert_eq!(applied_migrations(&a), [1]);

    // A version with a migration not marked expand cannot roll: all at once, and its contract
    // migration runs once every hub serves it.
    let reply = c.install_with(
        "?rollout=rolling",
        &package("fixture-v3", "0.3.0", &keys),
        None,
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        reply.json()["rollout"],
        json!({"mode": "all", "contract_pending": ["002_narrow"],
            "reason": "migration 002_narrow is not marked expand, so pk 0.3.0 cannot roll: every hub starts it at once, and it runs when every live hub serves it"})
    );
    converge(&[&a, &b, &c], "pk", Some(("0.3.0", "running")));
    a.eventually("the contract migration ran", || {
        applied_migrations(&a) == [1, 2]
    });
    let fleet = fleet_when(&a, |f| f["modules"][0]["desired"]["contract"] == "done");
    assert_eq!(fleet["modules"][0]["drift"], false, "{fleet}");
    assert_eq!(fleet["modules"][0]["desired"]["version"], "0.3.0");

    // A hub that starts later catches up.
    let d = fleet_hub(Some(db.clone()), &keys).start();
    converge(&[&d], "pk", Some(("0.3.0", "running")));

    // Uninstalled through one hub: gone from every hub.
    let reply = d.request(
        "DELETE",
        "/api/v1/modules/pk",
        Some(crate::support::TOKEN),
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    converge(&[&a, &b, &c, &d], "pk", None);
    assert!(!c.modules_dir().join("pk").exists());
    drop(d);
    c.signal("TERM");
    assert_eq!(c.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn a_version_that_fails_on_one_hub_is_drift_and_stops_a_rolling_upgrade() {
    let keys = Keys::new();
    let a = fleet_hub(None, &keys).start();
    let db = a.database();
    // On b alone, pk's health check fails (a setting of b's environment).
    let b = fleet_hub(db.clone(), &keys)
        .env("MODULES__PK__HEALTH", "unhealthy")
        .start();
    let reply = a.install(&package("fixture", "0.1.0", &keys), None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    converge(&[&a], "pk", Some(("0.1.0", "running")));
    b.eventually("b tried and failed", || {
        b.logs().contains("fleet: module 'pk' 0.1.0 did not start")
    });
    assert_eq!(on(&b, "pk"), None, "nothing installed on b");
    let fleet = fleet_when(&a, |f| {
        f["hubs"].as_array().is_some_and(|h| h.len() == 2) && f["modules"][0]["drift"] == true
    });
    assert_eq!(fleet["modules"][0]["name"], "pk");
    assert_eq!(
        fleet["modules"][0]["hubs"].as_object().map(|h| h.len()),
        Some(1),
        "only a runs it: {fleet}"
    );
    // The console's fleet page shows the same.
    let page = b.get("/admin/fleet");
    assert_eq!(page.status, 200, "{}", page.body);
    for hub in fleet["hubs"].as_array().expect("hubs") {
        let id = hub["id"].as_str().expect("id");
        assert!(page.body.contains(id), "{id} is listed: {}", page.body);
    }
    assert!(
        page.body.contains("0.1.0, enabled") && page.body.contains("<strong>drift</strong>"),
        "{}",
        page.body
    );

    // A rolling upgrade whose new version fails on one hub (its health check takes 300 ms,
    // c allows 100): c keeps 0.1.0 serving and stops the roll for the fleet.
    let mut c = fleet_hub(db, &keys)
        .env("HUB_HEALTH_TIMEOUT_MS", "100")
        .start();
    let slow = |version: &str, build: &str| {
        Contents::fixture(build, "pk", version, json!({"config": {"health_ms": 300}}))
            .write(Some(&keys))
    };
    converge(&[&c], "pk", Some(("0.1.0", "running")));
    let reply = a.install_with("?rollout=rolling", &slow("0.2.0", "fixture-v2"), None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.json()["rollout"]["mode"], "rolling");
    let fleet = fleet_when(&a, |f| f["modules"][0]["desired"]["halted"].is_string());
    let halted = fleet["modules"][0]["desired"]["halted"]
        .as_str()
        .unwrap_or_default();
    assert!(
        halted.starts_with("a hub could not start it: module 'pk' 0.2.0 did not start:"),
        "{halted}"
    );
    assert!(halted.ends_with("version 0.1.0 keeps serving"), "{halted}");
    c.wait_for_log(
        "the rolling upgrade of pk to 0.2.0 is stopped",
        Duration::from_secs(10),
    )
    .expect("c says why it keeps its version");
    assert_eq!(
        on(&c, "pk"),
        Some(("0.1.0".to_owned(), "running".to_owned()))
    );
    assert_eq!(
        on(&a, "pk"),
        Some(("0.2.0".to_owned(), "running".to_owned()))
    );
    let fleet = fleet_when(&a, |f| {
        f["hubs"].as_array().is_some_and(|h| h.len() == 3) && f["modules"][0]["drift"] == true
    });
    assert_eq!(fleet["modules"][0]["desired"]["version"], "0.2.0");
}

#[test]
fn two_hubs_racing_end_in_one_state_everywhere_with_both_actions_audited() {
    let keys = Keys::new();
    let a = fleet_hub(None, &keys).start();
    let db = a.database();
    let b = fleet_hub(db.clone(), &keys).start();
    let reply = a.install(&package("fixture", "0.1.0", &keys), None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    converge(&[&a, &b], "pk", Some(("0.1.0", "running")));
    let desired = |hub: &Hub| -> Option<bool> {
        let db = hub.database().expect("db");
        let mut client = db.client();
        client
            .query_opt(
                "SELECT (manifest->>'enabled')::bool FROM hub_module_state WHERE name = 'pk'",
                &[],
            )
            .expect("state")
            .map(|r| r.get(0))
    };
    for round in 0..5 {
        std::thread::scope(|s| {
            let one = s.spawn(|| a.admin_post("/api/v1/modules/pk/enable").status);
            let two = s.spawn(|| b.admin_post("/api/v1/modules/pk/disable").status);
            assert_eq!((one.join().unwrap(), two.join().unwrap()), (200, 200));
        });
        let want = match desired(&a) {
            Some(true) => "running",
            Some(false) => "disabled",
            None => panic!("pk left the fleet"),
        };
        converge(&[&a, &b], "pk", Some(("0.1.0", want)));
        let _ = round;
    }
    let audited = |action: &str| {
        a.get(&format!("/api/v1/audit?action={action}&module=pk"))
            .json()["entries"]
            .as_array()
            .map(Vec::len)
    };
    // Each hub writes its audit rows in the background: both hubs' rows arrive.
    a.eventually("both hubs' ten actions are in the audit log", || {
        (audited("module.enable"), audited("module.disable")) == (Some(5), Some(5))
    });
    // READ_ONLY turned off on one hub while the other turns it on: one of the two, everywhere.
    let json = [("Content-Type", "application/json".to_owned())];
    std::thread::scope(|s| {
        let one = s.spawn(|| {
            a.request_with(
                "PUT",
                "/api/v1/modules/pk/safety",
                &json,
                Some(r#"{"read_only": false}"#),
            )
            .status
        });
        let two = s.spawn(|| {
            b.request_with(
                "PUT",
                "/api/v1/modules/pk/safety",
                &json,
                Some(r#"{"read_only": true}"#),
            )
            .status
        });
        assert_eq!((one.join().unwrap(), two.join().unwrap()), (200, 200));
    });
    let read_only: bool = db
        .as_ref()
        .expect("db")
        .client()
        .query_one(
            "SELECT (manifest->'safety'->>'read_only')::bool FROM hub_module_state WHERE name = 'pk'",
            &[],
        )
        .expect("state")
        .get(0);
    a.eventually("both hubs have the database's READ_ONLY", || {
        [&a, &b]
            .iter()
            .all(|h| h.module("pk")["safety"]["read_only"] == read_only)
    });
    a.eventually("both safety changes are in the audit log", || {
        audited("module.safety") == Some(2)
    });

    // A setting and the audience, each set to one value through a and another through b at
    // once: every hub ends with the database's.
    for (path, one, two, key) in [
        (
            "settings",
            r#"{"page_size": 10}"#,
            r#"{"page_size": 20}"#,
            "config",
        ),
        (
            "audience",
            r#"{"roles": ["viewer"]}"#,
            r#"{"roles": ["operator"]}"#,
            "audience",
        ),
    ] {
        let path = format!("/api/v1/modules/pk/{path}");
        std::thread::scope(|s| {
            let first = s.spawn(|| a.request_with("PUT", &path, &json, Some(one)).status);
            let second = s.spawn(|| b.request_with("PUT", &path, &json, Some(two)).status);
            assert_eq!((first.join().unwrap(), second.join().unwrap()), (200, 200));
        });
        let held: Option<String> = db
            .as_ref()
            .expect("db")
            .client()
            .query_one(
                "SELECT (manifest->($1::text))::text FROM hub_module_state WHERE name = 'pk'",
                &[&key],
            )
            .expect("state")
            .get(0);
        let held: Value = serde_json::from_str(&held.expect("a value")).expect("json");
        a.eventually("both hubs' module.json hold the database's value", || {
            [&a, &b].iter().all(|h| {
                std::fs::read_to_string(h.modules_dir().join("pk/module.json"))
                    .ok()
                    .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                    .is_some_and(|m| m[key] == held)
            })
        });
    }
    a.eventually(
        "both settings and both audiences are in the audit log",
        || audited("module.settings") == Some(2) && audited("module.audience") == Some(2),
    );

    // Install of a new version through one hub while the other uninstalls.
    let v2 = package("fixture-v2", "0.2.0", &keys);
    let (installed, uninstalled) = std::thread::scope(|s| {
        let one = s.spawn(|| a.install(&v2, None).status);
        let two = s.spawn(|| {
            b.request(
                "DELETE",
                "/api/v1/modules/pk",
                Some(crate::support::TOKEN),
                None,
            )
            .status
        });
        (one.join().unwrap(), two.join().unwrap())
    });
    let db = db.expect("db");
    let mut client = db.client();
    let row: Option<String> = client
        .query_opt(
            "SELECT version FROM hub_module_state WHERE name = 'pk'",
            &[],
        )
        .expect("state")
        .map(|r| r.get(0));
    let want = row.as_deref().map(|v| (v, "running"));
    converge(&[&a, &b], "pk", want);
    assert!(
        [201, 422, 404, 409].contains(&installed) && [200, 404, 409].contains(&uninstalled),
        "install {installed}, uninstall {uninstalled}"
    );
    // A refused install names no module in the log: counted by action.
    let count = |path: &str| a.get(path).json()["entries"].as_array().map(Vec::len);
    a.eventually("the install and the uninstall are in the audit log", || {
        count("/api/v1/audit?action=package.install") == Some(2)
            && count("/api/v1/audit?action=module.uninstall&module=pk") == Some(1)
    });
}

/// Constant load through nginx: two clients asking `GET /api/v1/modules/pk`, each answer's
/// version noted, anything but a 200 counted as failed (with the time it happened).
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ok: std::sync::Arc<std::sync::atomic::AtomicU64>,
    failures: std::sync::Arc<std::sync::Mutex<Vec<(Instant, String)>>>,
    versions: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(url: &str) -> Load {
        use std::sync::atomic::Ordering;
        let load = Load {
            stop: Default::default(),
            ok: Default::default(),
            failures: Default::default(),
            versions: Default::default(),
            threads: Vec::new(),
        };
        let threads = (0..2)
            .map(|_| {
                let (stop, ok, failures, versions) = (
                    load.stop.clone(),
                    load.ok.clone(),
                    load.failures.clone(),
                    load.versions.clone(),
                );
                let url = format!("{url}/api/v1/modules/pk");
                std::thread::spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(10)))
                        .build()
                        .into();
                    while !stop.load(Ordering::Relaxed) {
                        let answer = agent
                            .get(&url)
                            .header("Authorization", format!("Bearer {}", crate::support::TOKEN))
                            .call();
                        match answer {
                            Ok(mut r) if r.status() == 200 => {
                                let body: Value = r
                                    .body_mut()
                                    .read_to_string()
                                    .ok()
                                    .and_then(|t| serde_json::from_str(&t).ok())
                                    .unwrap_or_default();
                                if let Some(v) = body["version"].as_str() {
                                    versions
                                        .lock()
                                        .expect("the load's record")
                                        .insert(v.to_owned());
                                }
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => failures
                                .lock()
                                .expect("the load's record")
                                .push((Instant::now(), format!("status {}", r.status()))),
                            Err(e) => failures
                                .lock()
                                .expect("the load's record")
                                .push((Instant::now(), e.to_string())),
                        }
                    }
                })
            })
            .collect();
        Load { threads, ..load }
    }

    fn ok(&self) -> u64 {
        self.ok.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Failures since `since`.
    fn failed_since(&self, since: Instant) -> Vec<String> {
        self.failures
            .lock()
            .expect("the load's record")
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(_, why)| why.clone())
            .collect()
    }

    /// Forget the versions seen so far.
    fn versions_now(&self) -> Vec<String> {
        std::mem::take(&mut *self.versions.lock().expect("the load's record"))
            .into_iter()
            .collect()
    }

    fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("a load thread");
        }
    }
}

fn addr(hub: &Hub) -> String {
    hub.base.trim_start_matches("http://").to_owned()
}

#[test]
fn behind_nginx_three_hubs_converge_roll_and_survive_a_lost_hub() {
    let keys = Keys::new();
    let a = fleet_hub(None, &keys).start();
    let db = a.database();
    let mut b = fleet_hub(db.clone(), &keys).start();
    let c = fleet_hub(db.clone(), &keys).start();
    let reply = a.install(&package("fixture", "0.1.0", &keys), None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    converge(&[&a, &b, &c], "pk", Some(("0.1.0", "running")));
    let c_addr = addr(&c);
    let nginx = hub_testkit::nginx::Nginx::start(&[addr(&a), addr(&b), c_addr.clone()])
        .expect("nginx in front of the three hubs");
    let load = Load::start(&nginx.url());
    let began = Instant::now();
    a.eventually("requests go through nginx", || load.ok() > 20);

    // 1. Changes through one hub reach all three.
    let mut times = Vec::new();
    for (action, state) in [
        ("disable", "disabled"),
        ("enable", "running"),
        ("reload", "running"),
        ("disable", "disabled"),
        ("enable", "running"),
    ] {
        let reply = a.admin_post(&format!("/api/v1/modules/pk/{action}"));
        assert_eq!(reply.status, 200, "{action}: {}", reply.body);
        times.push(converge(&[&a, &b, &c], "pk", Some(("0.1.0", state))));
    }
    println!("converged on three hubs after each change in {times:?}");

    // 2. A rolling upgrade under load: old and new side by side, no request fails.
    load.versions_now();
    let rolled = Instant::now();
    let reply = b.install_with(
        "?rollout=rolling",
        &package("fixture-v2", "0.2.0", &keys),
        None,
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    converge(&[&a, &b, &c], "pk", Some(("0.2.0", "running")));
    assert_eq!(
        load.versions_now(),
        ["0.1.0", "0.2.0"],
        "both versions answered through nginx during the roll"
    );
    assert_eq!(load.failed_since(began), Vec::<String>::new());
    println!(
        "rolling upgrade over three hubs took {:?}, 0 failed requests",
        rolled.elapsed()
    );

    // 3. One hub killed: nginx routes around it.
    c.signal("KILL");
    let killed = Instant::now();
    drop(c);
    std::thread::sleep(Duration::from_secs(2));
    let after_kill = load.ok();
    a.eventually("requests keep being answered", || {
        load.ok() > after_kill + 50
    });
    let failed = load.failed_since(killed);
    println!("after SIGKILL of one hub: {} requests failed", failed.len());
    assert_eq!(
        failed,
        Vec::<String>::new(),
        "idempotent requests go to the next hub"
    );
    // Restarted on its address, it catches up with a change made while it was down.
    let reply = a.admin_post("/api/v1/modules/pk/disable");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let c = fleet_hub(db.clone(), &keys)
        .env("HUB_BIND", &c_addr)
        .start();
    converge(&[&a, &b, &c], "pk", Some(("0.2.0", "disabled")));

    // 4. b's listener connection ended from PostgreSQL: b notices, reconnects, resyncs, and a
    // change made meanwhile reaches it.
    let fleet = fleet_when(&b, |f| f["hubs"].as_array().is_some_and(|h| h.len() >= 3));
    let b_id = fleet["hubs"]
        .as_array()
        .expect("hubs")
        .iter()
        .find(|h| h["this"] == true)
        .expect("this hub")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let db = db.expect("a database");
    let mut client = db.client();
    let ended: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1) t",
            &[&format!("hub-fleet {b_id}")],
        )
        .expect("terminate")
        .get(0);
    assert_eq!(ended, 1, "exactly b's listener");
    let reply = c.admin_post("/api/v1/modules/pk/enable");
    assert_eq!(reply.status, 200, "{}", reply.body);
    b.wait_for_log("listening again", Duration::from_secs(10))
        .expect("b reconnects");
    converge(&[&a, &b, &c], "pk", Some(("0.2.0", "running")));
    assert_eq!(load.failed_since(killed), Vec::<String>::new());
    let answered = load.ok();
    load.stop();
    println!("{answered} requests through nginx, every one answered");
    assert!(
        nginx.access_log().lines().count() as u64 >= answered,
        "every request went through nginx"
    );
}

#[test]
fn contract_migrations_wait_for_every_hub_and_finish_migrations_runs_them_once() {
    let keys = Keys::new();
    let manual = |setup: Setup| fleet_hub_on(setup, &keys).env("HUB_FLEET_AUTO_FINISH", "false");
    let a = manual(Setup::new()).start();
    let db = a.database();
    // b allows a health check 100 ms; the versions below take 300 ms on every hub that has
    // 0.3.0's setting: b never serves 0.3.0.
    let mut b = manual(Setup::with_database(db.clone()))
        .env("HUB_HEALTH_TIMEOUT_MS", "100")
        .start();
    let reply = a.install(&package("fixture-v2", "0.2.0", &keys), None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    converge(&[&a, &b], "pk", Some(("0.2.0", "running")));
    assert_eq!(applied_migrations(&a), [1]);
    let v3 = Contents::fixture(
        "fixture-v3",
        "pk",
        "0.3.0",
        json!({"config": {"health_ms": 300}}),
    )
    .write(Some(&keys));
    let reply = a.install(&v3, None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        reply.json()["rollout"]["contract_pending"],
        json!(["002_narrow"])
    );
    b.eventually("b tried 0.3.0 and kept 0.2.0", || {
        b.logs().contains("fleet: module 'pk' 0.3.0 did not start")
    });
    assert_eq!(
        on(&b, "pk"),
        Some(("0.2.0".to_owned(), "running".to_owned()))
    );
    // b is up and serves 0.2.0: the contract migration waits, and the API says for whom.
    let fleet = fleet_when(&a, |f| {
        f["hubs"].as_array().is_some_and(|h| h.len() == 2)
            && f["modules"][0]["hubs"]
                .as_object()
                .is_some_and(|h| h.len() == 2)
    });
    let b_id = fleet["hubs"]
        .as_array()
        .expect("hubs")
        .iter()
        .find(|h| h["this"] == false)
        .expect("b")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let reply = a.admin_post("/api/v1/modules/pk/finish-migrations");
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert_eq!(
        reply.json()["error"],
        json!({"code": "hubs_behind",
            "message": format!("pk 0.3.0 does not serve on every hub yet ({b_id} not): its contract migrations would break the older version there; wait, or see GET /api/v1/fleet"),
            "details": {"hubs": [b_id]}})
    );
    assert_eq!(applied_migrations(&a), [1]);
    // b leaves the fleet (a clean stop): every hub that is up serves 0.3.0.
    b.signal("TERM");
    assert_eq!(b.wait_exit(Duration::from_secs(10)), Some(0));
    let reply = a.admin_post("/api/v1/modules/pk/finish-migrations");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        json!({"module": "pk", "version": "0.3.0", "applied": ["002_narrow"]})
    );
    assert_eq!(applied_migrations(&a), [1, 2]);
    let reply = a.admin_post("/api/v1/modules/pk/finish-migrations");
    assert_eq!(
        reply.json(),
        json!({"module": "pk", "version": "0.3.0", "applied": []})
    );
    let fleet = fleet_when(&a, |f| f["modules"][0]["desired"]["contract"] == "done");
    assert_eq!(fleet["modules"][0]["desired"]["version"], "0.3.0");
    a.eventually("finish-migrations is audited", || {
        a.get("/api/v1/audit?action=module.finish_migrations&module=pk")
            .json()["entries"]
            .as_array()
            .map(Vec::len)
            == Some(3)
    });
}
