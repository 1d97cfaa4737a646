//! Graceful shutdown: SIGTERM/SIGINT stop new connections, let requests in flight finish within
//! the grace period, run module shutdown hooks (each bounded by the grace period), exit 0; a
//! second signal exits at once.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::Setup;

#[test]
fn a_request_in_flight_at_sigterm_completes_and_the_hub_exits_0() {
    let mut hub = Setup::new()
        .fixture("fx", json!({}))
        .env("HUB_SHUTDOWN_GRACE_MS", "5000")
        .start();
    let slow = hub.get_in_background("/api/v1/fx/slow/800");
    assert!(
        hub.wait_for_log("slow request started", Duration::from_secs(5))
            .is_some()
    );
    hub.signal("TERM");
    assert!(
        hub.wait_for_log("SIGTERM received", Duration::from_secs(5))
            .is_some()
    );
    let refused_by = Instant::now() + Duration::from_secs(2);
    while hub.accepts_connections() && Instant::now() < refused_by {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !hub.accepts_connections(),
        "no new connections after SIGTERM"
    );
    let answer = slow.join().expect("request thread");
    let (status, body) =
        answer.unwrap_or_else(|e| panic!("the slow request failed: {e}\n{}", hub.logs()));
    assert_eq!((status, body.as_str()), (200, r#"{"slept_ms":800}"#));
    assert_eq!(
        hub.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        hub.logs()
    );
    let logs = hub.logs();
    assert!(
        logs.contains("fixture shut down cleanly"),
        "the shutdown hook ran:\n{logs}"
    );
    assert!(logs.contains("stopped"), "{logs}");
}

#[test]
fn sigint_stops_gracefully_too() {
    let mut hub = Setup::new().fixture("fx", json!({})).start();
    hub.signal("INT");
    assert_eq!(
        hub.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        hub.logs()
    );
    assert!(hub.logs().contains("fixture shut down cleanly"));
}

#[test]
fn a_hanging_shutdown_hook_is_abandoned_after_the_grace_period() {
    let mut hub = Setup::new()
        .fixture("fx", json!({"config": {"shutdown": "hang"}}))
        .env("HUB_SHUTDOWN_GRACE_MS", "300")
        .start();
    let signalled = Instant::now();
    hub.signal("TERM");
    assert_eq!(
        hub.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        hub.logs()
    );
    // Requests (none in flight) and the hook are each bounded by the grace period; actix
    // rounds its part up to whole seconds.
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "took {:?}",
        signalled.elapsed()
    );
    assert!(
        hub.logs()
            .contains("shutdown hook still running after 300 ms; abandoned"),
        "{}",
        hub.logs()
    );
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut hub = Setup::new()
        .fixture("fx", json!({"config": {"shutdown": "hang"}}))
        .env("HUB_SHUTDOWN_GRACE_MS", "60000")
        .start();
    let _slow = hub.get_in_background("/api/v1/fx/slow/60000");
    assert!(
        hub.wait_for_log("slow request started", Duration::from_secs(5))
            .is_some()
    );
    hub.signal("TERM");
    assert!(
        hub.wait_for_log("send it again to exit at once", Duration::from_secs(5))
            .is_some()
    );
    let second = Instant::now();
    hub.signal("TERM");
    assert_eq!(
        hub.wait_exit(Duration::from_secs(5)),
        Some(143),
        "{}",
        hub.logs()
    );
    assert!(
        second.elapsed() < Duration::from_secs(2),
        "took {:?}",
        second.elapsed()
    );
}
