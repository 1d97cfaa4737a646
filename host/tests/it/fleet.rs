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
