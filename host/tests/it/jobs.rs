//! Background jobs (issue 17): runs in PostgreSQL taken once across hubs, retried after a panic
//! with backoff, cancelled at their timeout, surviving a hub's restart, a recurring job run once
//! per period by two hubs on one database; the jobs API with its retry and cancel actions.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Hub, Setup, plugins};

fn enqueue(hub: &Hub, name: &str, payload: Value, delay_ms: u64) -> i64 {
    let reply = hub.request_with(
        "POST",
        "/api/v1/fx/enqueue",
        &[("Content-Type", "application/json".to_owned())],
        Some(&json!({"name": name, "payload": payload, "delay_ms": delay_ms}).to_string()),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["id"].as_i64().expect("id")
}

/// Run `id` of fx as the jobs API shows it, once `done` says so (within 15 s).
fn run_when(hub: &Hub, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let page = hub.get("/api/v1/modules/fx/jobs");
        assert_eq!(page.status, 200, "{}", page.body);
        let page = page.json();
        if let Some(run) = page["runs"]
            .as_array()
            .and_then(|runs| runs.iter().find(|r| r["id"] == id))
            && done(run)
        {
            return run.clone();
        }
        assert!(
            Instant::now() < deadline,
            "run {id} never got there: {page}\n{}",
            hub.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn settled(run: &Value) -> bool {
    matches!(run["state"].as_str(), Some("done" | "failed"))
}

#[test]
fn a_run_that_panics_is_tried_again_and_one_past_its_timeout_is_cancelled() {
    let hub = Setup::new().fixture("fx", json!({})).start();
    let page = hub.get("/api/v1/modules/fx/jobs").json();
    let declared: Vec<Value> = page["declared"]
        .as_array()
        .expect("declared")
        .iter()
        .map(|j| {
            json!([
                j["name"],
                j["every_ms"],
                j["cron"],
                j["timeout_ms"],
                j["attempts"],
                j["backoff_ms"]
            ])
        })
        .collect();
    assert_eq!(
        declared,
        [
            json!(["tick", 1000, null, 60000, 1, 10000]),
            json!(["flaky", null, null, 60000, 3, 100]),
            json!(["sleepy", null, null, 300, 1, 10000]),
            json!(["caller", null, null, 60000, 1, 10000]),
            json!(["even", null, "*/2 * * * * *", 60000, 1, 10000])
        ]
    );
    // Fails twice (panics), then succeeds on its third attempt.
    let id = enqueue(&hub, "flaky", json!({"fail": 2}), 0);
    let run = run_when(&hub, id, settled);
    assert_eq!(run["state"], "done", "{run}");
    assert_eq!(run["attempts"], 3);
    assert_eq!(
        run["last_error"],
        "panicked: flaky attempt 2 failed on purpose"
    );
    // More failures than attempts: failed for good.
    let id = enqueue(&hub, "flaky", json!({"fail": 5}), 0);
    let run = run_when(&hub, id, settled);
    assert_eq!(
        (run["state"].clone(), run["attempts"].clone()),
        (json!("failed"), json!(3))
    );
    // Past its timeout of 300 ms.
    let id = enqueue(&hub, "sleepy", json!({"ms": 5000}), 0);
    let run = run_when(&hub, id, settled);
    assert_eq!(run["state"], "failed");
    assert_eq!(run["last_error"], "cancelled at its timeout of 300 ms");
    // Tried again by hand: queued with its attempts from zero, and it runs (and times out) again.
    let reply = hub.request(
        "POST",
        &format!("/api/v1/modules/fx/jobs/{id}/retry"),
        None,
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        (
            reply.json()["state"].clone(),
            reply.json()["attempts"].clone()
        ),
        (json!("queued"), json!(0))
    );
    let run = run_when(&hub, id, |r| settled(r) && r["attempts"] == 1);
    assert_eq!(run["state"], "failed");
    // Cancel: only a queued or running run; a finished one is 409.
    let later = enqueue(&hub, "flaky", json!({}), 60_000);
    let reply = hub.request(
        "POST",
        &format!("/api/v1/modules/fx/jobs/{later}/cancel"),
        None,
        None,
    );
    assert_eq!(reply.json()["state"], "cancelled");
    let reply = hub.request(
        "POST",
        &format!("/api/v1/modules/fx/jobs/{later}/cancel"),
        None,
        None,
    );
    assert_eq!(reply.status, 409);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "job_state", "message": format!("run {later} is cancelled: only queued or running runs can be cancelled")}})
    );
    // The console's module page offers the same actions, one button a run.
    let later = enqueue(&hub, "flaky", json!({}), 60_000);
    let page = hub.get("/admin/modules/fx");
    let cancel = format!(
        "<input type=\"hidden\" name=\"run\" value=\"{later}\"><button type=\"submit\">Cancel run {later}</button>"
    );
    assert!(page.body.contains(&cancel), "{cancel} in {}", page.body);
    let reply = hub.post_form("/admin/modules/fx/cancel", &format!("run={later}"));
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(
        reply.location.as_deref(),
        Some("/admin/modules/fx?done=cancel")
    );
    run_when(&hub, later, |r| r["state"] == "cancelled");
    let page = hub.get("/admin/modules/fx");
    assert!(
        page.body.contains(&format!(
            "<button type=\"submit\">Retry run {later}</button>"
        )),
        "{}",
        page.body
    );
    let reply = hub.post_form("/admin/modules/fx/retry", &format!("run={later}"));
    assert_eq!(reply.status, 303, "{}", reply.body);
    run_when(&hub, later, |r| r["state"] == "queued");
    let reply = hub.post_form("/admin/modules/fx/retry", "run=abc");
    assert_eq!(reply.status, 422);
    assert!(
        reply
            .body
            .contains("run &quot;abc&quot; is not a run&#x27;s number"),
        "{}",
        reply.body
    );
    let reply = hub.request("POST", "/api/v1/modules/fx/jobs/999999/retry", None, None);
    assert_eq!(
        (reply.status, reply.json()),
        (
            404,
            json!({"error": {"code": "job_not_found", "message": "module 'fx' has no job run 999999"}})
        )
    );
    // The console's module page shows the jobs and their runs.
    let page = hub.get("/admin/modules/fx");
    assert_eq!(page.status, 200);
    for needle in [
        "<h2 id=\"jobs\">Jobs</h2>",
        "<tr><td><code>tick</code></td><td>every 1000 ms</td><td>60000 ms</td><td>1</td><td>",
        "<tr><td><code>sleepy</code></td><td>when enqueued</td><td>300 ms</td><td>1</td><td>—</td></tr>",
        &format!(
            "<tr><td>{id}</td><td><code>sleepy</code></td><td><span class=\"badge failed\">failed</span></td><td>1</td>"
        ),
        "cancelled at its timeout of 300 ms",
        "<tr><td><code>even</code></td><td><code>*&#x2f;2 * * * * *</code> (UTC)</td>",
    ] {
        assert!(page.body.contains(needle), "{needle} in {}", page.body);
    }
    // Enqueueing a job the module does not declare is refused.
    let reply = hub.request_with(
        "POST",
        "/api/v1/fx/enqueue",
        &[("Content-Type", "application/json".to_owned())],
        Some(r#"{"name": "nothing", "payload": null}"#),
    );
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.json()["error"]["message"],
        "module 'fx' has no job 'nothing': declare it with r.job(\"nothing\", …)"
    );
}

#[test]
fn a_queued_run_survives_a_restart_and_a_recurring_job_runs_once_per_period_across_two_hubs() {
    let mut first = Setup::new().fixture("fx", json!({})).start();
    let db = first.database();
    // Due in 2 s; the hub stops before.
    let id = enqueue(&first, "flaky", json!({}), 2_000);
    first.signal("TERM");
    assert_eq!(first.wait_exit(Duration::from_secs(10)), Some(0));
    drop(first);
    let a = Setup::with_database(db.clone())
        .fixture("fx", json!({}))
        .start();
    let run = run_when(&a, id, settled);
    assert_eq!(
        (run["state"].clone(), run["attempts"].clone()),
        (json!("done"), json!(1))
    );
    // A second hub on the same database: `tick` (every second) runs once a period in all.
    let b = Setup::with_database(db.clone())
        .fixture("fx", json!({}))
        .start();
    std::thread::sleep(Duration::from_millis(4_500));
    let ticks = |hub: &Hub| {
        hub.get("/api/v1/fx/ticks").json()["ticks"]
            .as_u64()
            .expect("ticks")
    };
    let db = db.expect("a database");
    // In one statement: the hubs go on making rows meanwhile.
    let row = db
        .client()
        .query_one(
            "SELECT count(*), count(DISTINCT period) FROM hub_jobs WHERE name = 'tick'",
            &[],
        )
        .expect("rows and periods");
    let (all, periods): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(all, periods, "one row a period");
    assert!(periods >= 4, "{periods} periods");
    let attempts: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM hub_jobs WHERE name = 'tick' AND attempts > 1",
            &[],
        )
        .expect("attempts")
        .get(0);
    assert_eq!(attempts, 0, "no period's run ran twice");
    // The cron job: one row an occurrence, on even seconds only, all run.
    let row = db
        .client()
        .query_one(
            "SELECT count(*), count(DISTINCT period), \
                    count(*) FILTER (WHERE extract(second FROM period)::int % 2 <> 0 \
                                        OR date_trunc('second', period) <> period), \
                    count(*) FILTER (WHERE state = 'done') \
             FROM hub_jobs WHERE name = 'even' AND period < now() - interval '1 second'",
            &[],
        )
        .expect("cron rows");
    let (all, periods, odd, done): (i64, i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((all, odd), (periods, 0), "one row an even second");
    assert!(periods >= 2, "{periods} occurrences");
    assert_eq!(done, all, "every occurrence ran");
    // Each hub ran exactly the runs the database says it ran (one may be under way).
    for hub in [&a, &b] {
        let done: i64 = db
            .client()
            .query_one(
                "SELECT count(*) FROM hub_jobs WHERE name = 'tick' AND state = 'done' AND hub LIKE '%:' || $1",
                &[&hub.pid().to_string()],
            )
            .expect("done")
            .get(0);
        let ran = ticks(hub);
        assert!(
            ran == done as u64 || ran == done as u64 + 1,
            "hub {} ran tick {ran} times, the database says {done}",
            hub.pid()
        );
    }
}

fn post(hub: &Hub, method: &str, path: &str, body: Value) -> Value {
    let reply = hub.request_with(
        method,
        path,
        &[("Content-Type", "application/json".to_owned())],
        Some(&body.to_string()),
    );
    assert!(reply.status < 300, "{method} {path}: {}", reply.body);
    reply.json()
}

#[test]
fn a_job_calls_another_module_as_the_modules_service_identity_and_audits_in_its_name() {
    let hub = Setup::new()
        .module_folder(&plugins().join("_template").to_string_lossy())
        .env("MODULES__TMPLMOD__READ_ONLY", "false")
        .env("MODULES__TMPLMOD__DRY_RUN", "false")
        .fixture("fx", json!({"dependencies": {"tmplmod": "^0.1"}}))
        .start();
    // The module with jobs has its service identity as soon as it started, with no roles.
    let users = hub.get("/api/v1/users").json();
    let me = users
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["name"] == "module:fx")
        .unwrap_or_else(|| panic!("no module:fx in {users}"))
        .clone();
    assert_eq!(
        (me["kind"].clone(), me["roles"].clone()),
        (json!("module"), json!([]))
    );
    let id = me["id"].as_i64().expect("id");
    // Nobody makes a token for it: nobody calls as a module but its jobs.
    let reply = hub.request_with(
        "POST",
        "/api/v1/tokens",
        &[("Content-Type", "application/json".to_owned())],
        Some(&json!({"name": "as fx", "permissions": [], "user_id": id}).to_string()),
    );
    assert_eq!(reply.status, 422, "{}", reply.body);
    // Creating an item needs tmplmod:items.write, which module:fx does not have yet.
    let order = json!({"module": "tmplmod", "method": "POST", "path": "/items", "body": {"title": "from a job"}});
    let run = enqueue(&hub, "caller", order.clone(), 0);
    let done = run_when(&hub, run, settled);
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(
        done["last_error"],
        "this needs permission 'tmplmod:items.write': ask an administrator for a role that grants it"
    );
    // The operator gives it a role that grants it; the next run creates the item.
    post(
        &hub,
        "POST",
        "/api/v1/roles",
        json!({"name": "fx-jobs", "permissions": ["tmplmod:items.write"]}),
    );
    post(
        &hub,
        "PUT",
        &format!("/api/v1/users/{id}/roles"),
        json!({"roles": ["fx-jobs"]}),
    );
    let run = enqueue(&hub, "caller", order, 0);
    let done = run_when(&hub, run, settled);
    assert_eq!(done["state"], "done", "{done}");
    let items = hub.get("/api/v1/tmplmod/items").json();
    assert_eq!(items["items"][0]["title"], "from a job", "{items}");
    let item = items["items"][0]["id"].clone();
    // Both audit entries name the service identity: the job's own (with its run) and the one
    // tmplmod wrote for the call it answered.
    let entries = hub.get("/api/v1/audit?actor=module:fx").json()["entries"].clone();
    let pick = |action: &str| {
        entries
            .as_array()
            .expect("entries")
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {entries}"))
            .clone()
    };
    let called = pick("job.called");
    assert_eq!(
        (
            called["module"].clone(),
            called["actor_name"].clone(),
            called["target"].clone(),
            called["details"]["status"].clone(),
            called["details"]["job"].clone()
        ),
        (
            json!("fx"),
            json!("module:fx"),
            json!("/items"),
            json!(201),
            json!({"name": "caller", "run": run, "attempt": 1})
        )
    );
    let created = pick("item.create");
    assert_eq!(
        (created["module"].clone(), created["target"].clone()),
        (json!("tmplmod"), json!(item.to_string()))
    );
    // Offboarded, it keeps only the module's own permissions: the call is refused again.
    post(
        &hub,
        "POST",
        &format!("/api/v1/users/{id}/offboard"),
        json!({}),
    );
    let run = enqueue(
        &hub,
        "caller",
        json!({"module": "tmplmod", "method": "DELETE", "path": format!("/items/{item}")}),
        0,
    );
    let done = run_when(&hub, run, settled);
    assert_eq!(done["state"], "failed", "{done}");
}
