//! Metrics (issue 16): the hub's `/metrics` listener, scraped by Debian's `prometheus` every
//! second, asked through Prometheus' HTTP API: a module's request counter rises by exactly what
//! was sent, a route that sleeps a known time lands in that time's bucket, and only registered
//! modules appear as `module` label values; the alert rules of `docs/prometheus/alerts.yml` load,
//! and every query of the Grafana dashboard `docs/grafana/hub.json` runs.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Hub, Setup, free_port};

/// A Prometheus server scraping one target every second; killed on drop.
struct Prometheus {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("a folder for prometheus");
        let config = dir.path().join("prometheus.yml");
        std::fs::copy(docs("prometheus/alerts.yml"), dir.path().join("alerts.yml"))
            .expect("copy the alert rules");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: hub\n    static_configs:\n      - targets: ['{target}']\nrule_files:\n  - alerts.yml\n"
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian's package prometheus; cargo xtask test installs it)");
        let prometheus = Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        prometheus.until("prometheus is ready", || {
            ureq::get(&format!("{}/-/ready", prometheus.base))
                .call()
                .is_ok_and(|r| r.status() == 200)
        });
        prometheus
    }

    /// The result of the instant query `query` (`data.result`).
    fn query(&self, query: &str) -> Vec<Value> {
        let mut response = ureq::get(&format!("{}/api/v1/query", self.base))
            .query("query", query)
            .call()
            .unwrap_or_else(|e| panic!("query {query}: {e}"));
        let text = response.body_mut().read_to_string().expect("the answer");
        let body: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(body["status"], "success", "{body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The single value of `query`, once it has one.
    fn value(&self, query: &str) -> Option<f64> {
        let result = self.query(query);
        let value = result.first()?["value"][1].as_str()?.parse().ok()?;
        Some(value)
    }

    /// Wait until `check` holds (Prometheus scrapes every second).
    fn until(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A file under `docs/`.
fn docs(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(path)
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hub_with_metrics() -> (Hub, String) {
    let metrics = format!("127.0.0.1:{}", free_port());
    let hub = Setup::new()
        .hello()
        .fixture("slow", json!({}))
        .env("HUB_METRICS_BIND", &metrics)
        .start();
    (hub, metrics)
}

#[test]
fn prometheus_sees_exactly_the_requests_sent_and_the_time_they_took() {
    let (hub, metrics) = hub_with_metrics();
    let prometheus = Prometheus::start(&metrics);
    let sent = r#"sum(hub_module_requests_total{module="hello",route="/ping"})"#;
    prometheus.until("the first scrape", || prometheus.value(sent).is_some());
    let before = prometheus.value(sent).expect("a value");
    for _ in 0..25 {
        assert_eq!(hub.anonymous_get("/api/v1/hello/ping").status, 200);
    }
    prometheus.until("the 25 requests are scraped", || {
        prometheus.value(sent) == Some(before + 25.0)
    });
    // Let two more scrapes pass: it stays at exactly 25 more.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(prometheus.value(sent), Some(before + 25.0));
    let ok = r#"sum(hub_module_requests_total{module="hello",route="/ping",status="2xx"})"#;
    assert_eq!(prometheus.value(ok), Some(before + 25.0));

    // A route that sleeps 300 ms: its median lands in the bucket from 0.25 s to 0.5 s.
    for _ in 0..4 {
        assert_eq!(hub.get("/api/v1/slow/slow/300").status, 200);
    }
    let median = r#"histogram_quantile(0.5, sum by (le) (hub_module_request_duration_seconds_bucket{module="slow",route="/slow/{ms}"}))"#;
    prometheus.until("the slow requests are scraped", || {
        prometheus.value(r#"sum(hub_module_request_duration_seconds_count{module="slow"})"#)
            == Some(4.0)
    });
    let median = prometheus.value(median).expect("a median");
    assert!(
        median > 0.25 && median <= 0.5,
        "the median of 300 ms requests is {median} s"
    );

    // Unknown modules and routes: counted under the hub or the module's `unmatched`, never as
    // a new `module` label value.
    assert_eq!(hub.anonymous_get("/api/v1/nosuchmodule/x").status, 404);
    assert_eq!(hub.anonymous_get("/api/v1/hello/nosuchroute").status, 404);
    let unmatched =
        r#"sum(hub_module_requests_total{module="hub",route="unmatched",status="4xx"})"#;
    prometheus.until("the unknown module's request is scraped", || {
        prometheus.value(unmatched) == Some(1.0)
    });
    let modules: Vec<String> = prometheus
        .query("count by (module) (hub_module_requests_total)")
        .iter()
        .map(|r| r["metric"]["module"].as_str().expect("module").to_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(modules, vec!["hello", "hub", "slow"]);
    assert_eq!(
        prometheus.value(
            r#"sum(hub_module_requests_total{module="hello",route="unmatched",status="4xx"})"#
        ),
        Some(1.0)
    );

    // The alert rules loaded; every query of the dashboard runs, and those over requests have
    // an answer.
    let mut response = ureq::get(&format!("{}/api/v1/rules", prometheus.base))
        .call()
        .expect("rules");
    let rules: Value =
        serde_json::from_str(&response.body_mut().read_to_string().expect("rules")).expect("JSON");
    let names: Vec<&str> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["HubModuleFailed", "HubModuleErrorRate", "HubModuleSlow"]
    );
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(docs("grafana/hub.json")).expect("the dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let result = prometheus.query(expr);
            queries += 1;
            if expr.contains("hub_module_requests_total[") || expr.contains("hub_modules") {
                assert!(!result.is_empty(), "{expr} has no answer");
            }
        }
    }
    assert_eq!(queries, 12);

    // The rest of the families: modules by state, build info, the database pool.
    assert_eq!(
        prometheus.value(r#"hub_modules{state="running"}"#),
        Some(2.0)
    );
    let build = prometheus.query("hub_build_info");
    assert_eq!(
        build[0]["metric"]["plugin_api"].as_str(),
        Some(plugin_api::API_VERSION)
    );
    assert!(
        prometheus
            .value(r#"hub_db_pool_connections{state="idle"}"#)
            .is_some()
    );
}

#[test]
fn without_its_setting_there_is_no_metrics_listener_and_the_listener_serves_only_metrics() {
    let (hub, metrics) = hub_with_metrics();
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let mut reply = agent
        .get(&format!("http://{metrics}/metrics"))
        .call()
        .expect("GET /metrics");
    assert_eq!(reply.status(), 200);
    assert_eq!(
        reply.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = reply.body_mut().read_to_string().expect("text");
    assert!(text.ends_with("# EOF\n"), "{text}");
    let reply = agent
        .get(&format!("http://{metrics}/api/v1/hello/ping"))
        .call()
        .expect("GET");
    assert_eq!(reply.status(), 404);
    drop(hub);
    // Off by default: the hub's own listener has no /metrics either.
    let hub = Setup::new().hello().start();
    assert_eq!(hub.anonymous_get("/metrics").status, 404);
}

#[test]
fn a_request_id_follows_the_request_into_its_answer_logs_audit_rows_and_the_module() {
    let mut hub = Setup::new().fixture("fx", json!({})).start();
    let send = |hub: &Hub, method: &str, path: &str, header: Option<(&str, &str)>| {
        let mut headers = vec![("Authorization", format!("Bearer {}", crate::support::TOKEN))];
        if let Some((name, value)) = header {
            headers.push((name, value.to_owned()));
        }
        hub.send(method, path, &headers, None)
    };
    // An incoming X-Request-Id is kept, and the module sees it.
    let reply = send(
        &hub,
        "GET",
        "/api/v1/fx/echo",
        Some(("X-Request-Id", "order-7")),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.request_id.as_deref(), Some("order-7"));
    assert_eq!(reply.json()["x_request_id"], "order-7");
    // A traceparent's trace id; else one of the hub's, different each time.
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let reply = send(
        &hub,
        "GET",
        "/api/v1/fx/echo",
        Some(("traceparent", traceparent)),
    );
    assert_eq!(
        reply.request_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    let (first, second) = (
        send(&hub, "GET", "/ping", None),
        send(&hub, "GET", "/ping", None),
    );
    assert_eq!(first.request_id.as_ref().map(String::len), Some(32));
    assert_ne!(first.request_id, second.request_id);
    // Every log line of the request, the module's own included.
    send(
        &hub,
        "GET",
        "/api/v1/fx/log",
        Some(("X-Request-Id", "log-1")),
    );
    let line = hub
        .wait_for_log("fixture says hello from /log", Duration::from_secs(5))
        .expect("the module's line");
    assert!(line.ends_with(" request_id=log-1"), "{line}");
    // The audit row of an action made in it, and its log line.
    let reply = send(
        &hub,
        "POST",
        "/api/v1/modules/fx/reload",
        Some(("X-Request-Id", "reload-42")),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let line = hub
        .wait_for_log("module.reload ", Duration::from_secs(5))
        .expect("the audit line");
    assert!(line.ends_with(" request_id=reload-42"), "{line}");
    let entries = hub.get("/api/v1/audit?action=module.reload").json();
    assert_eq!(entries["entries"][0]["request_id"], "reload-42");
}

/// The listener's text: every line, `# EOF` last.
fn scrape(metrics: &str) -> String {
    let mut reply = ureq::get(&format!("http://{metrics}/metrics"))
        .call()
        .expect("GET /metrics");
    reply.body_mut().read_to_string().expect("text")
}

#[test]
fn modules_export_their_own_metrics_under_their_name_and_nobody_elses() {
    let metrics = format!("127.0.0.1:{}", free_port());
    let hub = Setup::new()
        .fixture("fx", json!({}))
        .fixture("fy", json!({}))
        .env("HUB_METRICS_BIND", &metrics)
        .start();
    for _ in 0..3 {
        assert_eq!(hub.get("/api/v1/fx/echo").status, 200);
    }
    assert_eq!(hub.get("/api/v1/fy/echo").status, 200);
    assert_eq!(hub.get("/api/v1/fx/slow/30").status, 200);
    let text = scrape(&metrics);
    // Two modules with the same code: two families, each with its module label.
    for line in [
        "# TYPE module_fx__echoes counter",
        "# HELP module_fx__echoes Calls of /echo",
        "module_fx__echoes_total{module=\"fx\",method=\"any\"} 3",
        "module_fy__echoes_total{module=\"fy\",method=\"any\"} 1",
        "# TYPE module_fx__slow_seconds histogram",
        "module_fx__slow_seconds_count{module=\"fx\"} 1",
        "module_fx__slow_seconds_bucket{le=\"0.025\",module=\"fx\"} 0",
        "module_fx__slow_seconds_bucket{le=\"0.05\",module=\"fx\"} 1",
        "module_fx__sleeping{module=\"fx\"} 0.0",
        "module_fy__slow_seconds_count{module=\"fy\"} 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} is not a line of:\n{text}"
        );
    }
    // A reload keeps counting the same series.
    assert_eq!(hub.admin_post("/api/v1/modules/fx/reload").status, 200);
    assert_eq!(hub.get("/api/v1/fx/echo").status, 200);
    let text = scrape(&metrics);
    assert!(
        text.lines()
            .any(|l| l == "module_fx__echoes_total{module=\"fx\",method=\"any\"} 4"),
        "{text}"
    );
    // Names are checked; a metric of another kind under a name in use is refused.
    let made = |name: &str| hub.get(&format!("/api/v1/fx/metric/{name}")).json();
    assert_eq!(made("made_here"), json!({"made": "made_here"}));
    assert_eq!(
        made("Bad-Name"),
        json!({"error": "module 'fx': metric name 'Bad-Name' is invalid: use lowercase letters, digits and single underscores, starting with a letter (^[a-z][a-z0-9_]{0,62}$, no \"__\", no trailing \"_\")"})
    );
    assert_eq!(
        made("a__b"),
        json!({"error": "module 'fx': metric name 'a__b' is invalid: use lowercase letters, digits and single underscores, starting with a letter (^[a-z][a-z0-9_]{0,62}$, no \"__\", no trailing \"_\")"})
    );
    assert_eq!(
        made("requests_total"),
        json!({"error": "module 'fx': metric name 'requests_total' ends in '_total', which the exposition format adds itself: leave it out"})
    );
    assert_eq!(
        made("sleeping"),
        json!({"error": "module 'fx': metric 'sleeping' of module 'fx' is a gauge already: give the counter another name"})
    );
    let text = scrape(&metrics);
    assert!(
        text.lines()
            .any(|l| l == "module_fx__made_here_total{module=\"fx\"} 1"),
        "{text}"
    );
    // No module family outside its own prefix: the hub's families are all hub_…
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let family = line.split(' ').nth(2).expect("a name");
        assert!(
            family.starts_with("hub_")
                || family.starts_with("module_fx__")
                || family.starts_with("module_fy__"),
            "{line}"
        );
    }
}

#[test]
fn without_metrics_a_module_metric_is_still_checked_and_counts_nowhere() {
    let hub = Setup::without_database().fixture("fx", json!({})).start();
    assert_eq!(hub.get("/api/v1/fx/echo").status, 200);
    let made = |name: &str| hub.get(&format!("/api/v1/fx/metric/{name}")).json();
    assert_eq!(made("fine"), json!({"made": "fine"}));
    assert_eq!(
        made("x_count"),
        json!({"error": "module 'fx': metric name 'x_count' ends in '_count', which the exposition format adds itself: leave it out"})
    );
}
