//! Usage analytics (issue 16): counts per module route and hour in PostgreSQL, added to by
//! every hub on the database, flushed on a timer and on SIGTERM, distinct callers counted once
//! across hubs, read back by `GET /api/v1/modules/{name}/usage`; retention.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Hub, Setup, TOKEN};

fn post_json(hub: &Hub, path: &str, body: Value) -> Value {
    let headers = [
        ("Content-Type", "application/json".to_owned()),
        ("Authorization", format!("Bearer {TOKEN}")),
    ];
    let reply = hub.send("POST", path, &headers, Some(&body.to_string()));
    assert_eq!(reply.status, 201, "{path}: {}", reply.body);
    reply.json()
}

/// A service user with `roles` and a token of its own: (user id, token secret).
fn user_with_token(hub: &Hub, name: &str, roles: Value, permissions: Value) -> (i64, String) {
    let user = post_json(hub, "/api/v1/users", json!({"name": name, "roles": roles}));
    let id = user["id"].as_i64().expect("id");
    let token = post_json(
        hub,
        "/api/v1/tokens",
        json!({"name": "usage", "permissions": permissions, "user_id": id}),
    );
    (
        id,
        token["token_secret"].as_str().expect("secret").to_owned(),
    )
}

fn usage(hub: &Hub, query: &str) -> Value {
    let reply = hub.get(&format!("/api/v1/modules/hello/usage{query}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn route<'a>(report: &'a Value, route: &str) -> &'a Value {
    report["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .find(|r| r["route"] == route)
        .unwrap_or_else(|| panic!("no {route} in {report}"))
}

#[test]
fn one_user_calling_two_hubs_counts_once_and_the_hubs_counts_add_up() {
    let first = Setup::new().hello().start();
    let db = first.database();
    let (user, secret) = user_with_token(&first, "reporter", json!([]), json!([]));
    // Started after the token exists: it reads it at start.
    let mut second = Setup::with_database(db.clone()).hello().start();
    let greet = "/api/v1/hello/greet/Ada";

    for _ in 0..3 {
        assert_eq!(first.request("GET", greet, Some(&secret), None).status, 200);
    }
    for _ in 0..2 {
        assert_eq!(first.anonymous_get("/api/v1/hello/ping").status, 200);
    }
    assert_eq!(first.anonymous_get(greet).status, 401);
    for _ in 0..4 {
        assert_eq!(
            second.request("GET", greet, Some(&secret), None).status,
            200
        );
    }
    // A public route with credentials: counted as the user's.
    assert_eq!(
        second
            .request("GET", "/api/v1/hello/ping", Some(&secret), None)
            .status,
        200
    );
    // The second hub writes its counts when it stops.
    second.signal("TERM");
    assert_eq!(
        second.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        second.logs()
    );

    let report = usage(&first, "");
    let total = &report["total"];
    assert_eq!(total["calls"], 3 + 2 + 1 + 4 + 1, "{report}");
    assert_eq!(total["client_errors"], 1, "{report}");
    assert_eq!(total["errors"], 0, "{report}");
    assert_eq!(total["anonymous_calls"], 2, "{report}");
    assert_eq!(
        total["callers"], 1,
        "one user on two hubs is one caller: {report}"
    );
    let greet_route = route(&report, "GET /greet/{name}");
    assert_eq!(greet_route["calls"], 3 + 1 + 4, "{report}");
    assert_eq!(greet_route["client_errors"], 1);
    assert_eq!(greet_route["callers"], 1);
    let ping = route(&report, "GET /ping");
    assert_eq!(ping["calls"], 3);
    assert_eq!(ping["anonymous_calls"], 2);
    assert_eq!(ping["callers"], 1);
    // Busiest first; the series covers 24 hours (25 periods when the span starts mid-hour) and
    // adds up to the total.
    assert_eq!(report["routes"][0]["route"], "GET /greet/{name}");
    assert_eq!(report["by"], "hour");
    let series = report["series"].as_array().expect("series");
    assert!(series.len() == 24 || series.len() == 25, "{}", series.len());
    let summed: u64 = series
        .iter()
        .map(|p| p["calls"].as_u64().expect("calls"))
        .sum();
    assert_eq!(summed, 3 + 2 + 1 + 4 + 1);
    assert!(
        total["p50_seconds"].as_f64().expect("p50") <= 0.25,
        "{report}"
    );

    // What is stored: the caller as the user, once per route and hour, whichever hub saw it.
    let db = db.expect("a database");
    let mut client = db.client();
    let callers: Vec<(String, String)> = client
        .query(
            "SELECT DISTINCT route, caller FROM hub_usage_callers WHERE module = 'hello' ORDER BY 1",
            &[],
        )
        .expect("callers")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let key = format!("user:{user}");
    assert_eq!(
        callers,
        [
            ("GET /greet/{name}".to_owned(), key.clone()),
            ("GET /ping".to_owned(), key)
        ]
    );
    // By day: one or two periods (a span across midnight), the same totals.
    let by_day = usage(&first, "?by=day");
    assert_eq!(by_day["total"], report["total"]);
}

#[test]
fn counts_reach_the_database_on_a_timer_with_the_durations_in_their_buckets() {
    let hub = Setup::new()
        .hello()
        .fixture("slow", json!({}))
        .env("HUB_USAGE_FLUSH_SECS", "1")
        .start();
    let db = hub.database().expect("a database");
    for _ in 0..4 {
        assert_eq!(hub.get("/api/v1/slow/slow/300").status, 200);
    }
    let stored = || -> Option<(i64, Vec<i64>)> {
        let mut client = db.client();
        let row = client
            .query_opt(
                "SELECT (SELECT sum(calls)::bigint FROM hub_usage WHERE module = 'slow'), \
                 (SELECT array_agg(n ORDER BY i) FROM (SELECT i, sum(b)::bigint AS n \
                   FROM hub_usage, unnest(buckets) WITH ORDINALITY AS u(b, i) \
                   WHERE module = 'slow' GROUP BY i) AS by_bucket)",
                &[],
            )
            .ok()??;
        Some((
            row.get::<_, Option<i64>>(0)?,
            row.get::<_, Option<Vec<i64>>>(1)?,
        ))
    };
    hub.eventually("the timer writes the counts", || {
        stored().is_some_and(|(calls, _)| calls == 4)
    });
    let (_, buckets) = stored().expect("stored");
    // 300 ms: the bucket from 250 ms to 500 ms (the ninth), nowhere else.
    assert_eq!(buckets, [0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0]);
    let reply = hub.get("/api/v1/modules/slow/usage");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let report = reply.json();
    let p50 = report["total"]["p50_seconds"].as_f64().expect("p50");
    assert!(p50 > 0.25 && p50 <= 0.5, "{report}");
    assert_eq!(report["routes"][0]["route"], "GET /slow/{ms}");
    // Requests that match no route are not a route of the module's usage.
    assert_eq!(hub.get("/api/v1/slow/nosuchroute").status, 404);
    let report = hub.get("/api/v1/modules/slow/usage").json();
    assert_eq!(
        report["routes"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
}

#[test]
fn the_usage_route_checks_its_parameters_and_who_asks() {
    let hub = Setup::new().hello().start();
    let error = |path: &str, token: Option<&str>| {
        let reply = hub.request("GET", path, token, None);
        (reply.status, reply.json())
    };
    let (status, body) = error("/api/v1/modules/hello/usage?by=week", None);
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "bad_query", "{body}");
    assert_eq!(
        error(
            "/api/v1/modules/hello/usage?from=2026-12-02T10:00:00Z&to=2026-12-02T09:00:00Z",
            None
        ),
        (
            422,
            json!({"error": {"code": "validation_failed", "message": "from must be before to",
                "details": [{"field": "from", "message": "from must be before to"}]}})
        )
    );
    let message = "the span from 2020-01-01 00:00:00 UTC to 2026-01-01 00:00:00 UTC has more than 1000 periods of one hour: ask for a shorter span or by=day";
    assert_eq!(
        error(
            "/api/v1/modules/hello/usage?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            None
        ),
        (
            422,
            json!({"error": {"code": "validation_failed", "message": message,
                "details": [{"field": "from", "message": message}]}})
        )
    );
    let (status, body) = error("/api/v1/modules/nosuch/usage", None);
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "module_not_found");
    let (_, secret) = user_with_token(&hub, "nobody", json!([]), json!([]));
    let (status, body) = error("/api/v1/modules/hello/usage", Some(&secret));
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["details"]["permission"], "modules.read");
    let (_, reader) = user_with_token(&hub, "reader", json!(["viewer"]), json!(["modules.read"]));
    let (status, body) = error("/api/v1/modules/hello/usage?by=day", Some(&reader));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"]["calls"], 0);
    assert_eq!(body["total"]["p99_seconds"], Value::Null);
    drop(hub);

    let hub = Setup::without_database().hello().start();
    let reply = hub.get("/api/v1/modules/hello/usage");
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "database_unavailable",
            "message": "usage analytics live in PostgreSQL: set DATABASE_URL"}})
    );
}

#[test]
fn hours_older_than_the_retention_are_deleted() {
    let hub = Setup::new().hello().start();
    let db = hub.database().expect("a database");
    let mut client = db.client();
    for days in [3, 10] {
        client
            .execute(
                "INSERT INTO hub_usage VALUES ('hello', 'GET /ping', \
                 date_trunc('hour', now()) - make_interval(days => $1), 1, 0, 0, 1, 0.001, \
                 '{1,0,0,0,0,0,0,0,0,0,0,0,0}')",
                &[&days],
            )
            .expect("an old row");
        client
            .execute(
                "INSERT INTO hub_usage_callers VALUES ('hello', 'GET /ping', \
                 date_trunc('hour', now()) - make_interval(days => $1), 'user:1')",
                &[&days],
            )
            .expect("an old caller");
    }
    drop(hub);
    let hub = Setup::with_database(Some(db.clone()))
        .hello()
        .env("HUB_USAGE_RETENTION_DAYS", "5")
        .start();
    let count = |table: &str| -> i64 {
        db.client()
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .expect("count")
            .get(0)
    };
    hub.eventually("the old rows are deleted", || {
        count("hub_usage") == 1 && count("hub_usage_callers") == 1
    });
    let report = hub.get("/api/v1/modules/hello/usage?by=day").json();
    assert_eq!(report["total"]["calls"], 1, "{report}");
    assert_eq!(report["total"]["callers"], 1, "{report}");
}
