//! Outbound HTTP and secrets (issue 17): a module calls other systems through the hub's client —
//! a real server on loopback (`host/tests/outbound/server.py`), never a mock of the client:
//! allowed and refused hosts, a redirect to a refused host, a name resolving to 127.0.0.1
//! without an explicit entry, DRY_RUN keeping a POST back, a timeout, an oversized answer, the
//! metrics; the API keys such calls need, from the environment or a file, never shown.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Hub, Setup, free_port};

/// The test server, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/outbound/server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the test server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server's first line");
        assert_eq!(line.trim(), "ready");
        Server { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// How many POSTs reached it.
    fn posts(&self) -> String {
        ureq::get(&self.url("/posts"))
            .call()
            .expect("GET /posts")
            .body_mut()
            .read_to_string()
            .expect("text")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ask module `fx` to make a call: its answer (status and JSON).
fn fetch(hub: &Hub, order: Value) -> (u16, Value) {
    let reply = hub.request_with(
        "POST",
        "/api/v1/fx/fetch",
        &[("Content-Type", "application/json".to_owned())],
        Some(&order.to_string()),
    );
    (reply.status, reply.json())
}

fn refused(code: &str, message: String) -> Value {
    json!({"error": {"code": code, "message": message}})
}

#[test]
fn allowed_hosts_answer_and_every_other_host_is_refused_before_a_connection() {
    let server = Server::start();
    let port = server.port;
    let hub = Setup::new()
        .fixture(
            "fx",
            json!({"outbound": [format!("127.0.0.1:{port}"), format!("localhost:{port}")]}),
        )
        .start();
    let get = |url: String| fetch(&hub, json!({"method": "GET", "url": url}));
    assert_eq!(
        get(server.url("/ok")),
        (
            200,
            json!({"status": 200, "body": "{\"ok\": true, \"from\": \"fixture\"}", "dry_run": false})
        )
    );
    // A host the list does not name: refused, naming the entry to add.
    assert_eq!(
        get(format!("http://127.0.0.2:{port}/ok")),
        (
            403,
            refused(
                "outbound_not_allowed",
                format!(
                    "module 'fx' may not call 127.0.0.2:{port}: add \"127.0.0.2:{port}\" to \"outbound\" in its module.json (or to MODULES__FX__OUTBOUND)"
                )
            )
        )
    );
    // A redirect to it: refused too; to an allowed host: followed.
    let to = |target: String| server.url(&format!("/redirect?to={target}"));
    assert_eq!(
        get(to(format!("http://127.0.0.2:{port}/ok"))).1["error"]["message"],
        format!(
            "module 'fx' may not call 127.0.0.2:{port}: add \"127.0.0.2:{port}\" to \"outbound\" in its module.json (or to MODULES__FX__OUTBOUND)"
        )
    );
    assert_eq!(get(to(server.url("/ok"))).1["status"], 200);
    // With no redirects allowed, the redirect itself is the answer.
    let (status, answer) = fetch(
        &hub,
        json!({"method": "GET", "url": to(server.url("/ok")), "redirects": 0}),
    );
    assert_eq!((status, answer["status"].clone()), (200, json!(302)));
    // A name the list names exactly may resolve to loopback.
    let (status, answer) = get(format!("http://localhost:{port}/ok"));
    assert_eq!(
        (status, answer["status"].clone()),
        (200, json!(200)),
        "{answer}"
    );
    // Not a URL for the web.
    assert_eq!(
        get("file:///etc/passwd".to_owned()),
        (
            403,
            refused(
                "outbound_not_allowed",
                "module 'fx' may call http:// and https:// URLs only, not file:///etc/passwd"
                    .to_owned()
            )
        )
    );
}

#[test]
fn a_name_resolving_to_loopback_or_a_private_address_needs_an_entry_of_its_own() {
    let server = Server::start();
    let port = server.port;
    // Any host on the server's port: a wildcard, so loopback stays out.
    let hub = Setup::new()
        .fixture("fx", json!({"outbound": [format!("*:{port}")]}))
        .start();
    let (status, answer) = fetch(
        &hub,
        json!({"method": "GET", "url": format!("http://localhost:{port}/ok")}),
    );
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"]["code"], "outbound_not_allowed");
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("module 'fx' may not call localhost: it resolves to ")
            && message.ends_with(
                ", a private, loopback or link-local address; name the host in \"outbound\" to allow it"
            ),
        "{message}"
    );
    // The address itself under the wildcard: refused before any connection.
    assert_eq!(
        fetch(&hub, json!({"method": "GET", "url": server.url("/ok")})),
        (
            403,
            refused(
                "outbound_not_allowed",
                format!(
                    "module 'fx' may not call 127.0.0.1, a private, loopback or link-local address, through the entry \"*:{port}\": name it in \"outbound\" (\"127.0.0.1:{port}\")"
                )
            )
        )
    );
}

#[test]
fn dry_run_keeps_back_what_may_change_something_and_the_limits_hold() {
    let server = Server::start();
    let port = server.port;
    let metrics = format!("127.0.0.1:{}", free_port());
    let allow = json!({"outbound": [format!("127.0.0.1:{port}")]});
    // DRY_RUN is on unless switched off: a POST is not sent.
    let mut hub = Setup::new()
        .fixture("fx", allow.clone())
        .env("HUB_METRICS_BIND", &metrics)
        .start();
    let post = json!({"method": "POST", "url": server.url("/echo"), "body": "hello"});
    assert_eq!(
        fetch(&hub, post.clone()),
        (200, json!({"status": 202, "body": "", "dry_run": true}))
    );
    assert_eq!(server.posts(), "0");
    let line = hub
        .wait_for_log("DRY_RUN: not sent:", Duration::from_secs(5))
        .expect("the line that says what was kept back");
    assert!(
        line.contains(&format!(
            "DRY_RUN: not sent: POST http://127.0.0.1:{port}/echo (5 bytes)"
        )),
        "{line}"
    );
    // GET goes out whatever DRY_RUN says.
    assert_eq!(
        fetch(&hub, json!({"method": "GET", "url": server.url("/ok")})).0,
        200
    );
    // A timeout and an answer larger than the module takes.
    let slow = server.url("/slow?ms=3000");
    assert_eq!(
        fetch(
            &hub,
            json!({"method": "GET", "url": slow, "timeout_ms": 300})
        ),
        (
            504,
            refused(
                "outbound_timeout",
                format!(
                    "GET {slow} did not answer within 300 ms: raise the call's timeout (at most 60 s) or ask why the other side is slow"
                )
            )
        )
    );
    let big = server.url("/big?bytes=2000");
    assert_eq!(
        fetch(
            &hub,
            json!({"method": "GET", "url": big, "max_bytes": 1000})
        ),
        (
            502,
            refused(
                "outbound_too_large",
                format!(
                    "the answer of {big} is larger than 1000 bytes: raise the call's max_bytes (at most 16 MiB) or ask for less"
                )
            )
        )
    );
    fetch(
        &hub,
        json!({"method": "GET", "url": format!("http://127.0.0.2:{port}/")}),
    );
    // Every call counted, by the entry that let it through.
    let mut reply = ureq::get(&format!("http://{metrics}/metrics"))
        .call()
        .expect("GET /metrics");
    let text = reply.body_mut().read_to_string().expect("text");
    let entry = format!("127.0.0.1:{port}");
    for line in [
        format!(
            "hub_module_outbound_requests_total{{module=\"fx\",host=\"{entry}\",method=\"POST\",outcome=\"dry_run\"}} 1"
        ),
        format!(
            "hub_module_outbound_requests_total{{module=\"fx\",host=\"{entry}\",method=\"GET\",outcome=\"2xx\"}} 1"
        ),
        format!(
            "hub_module_outbound_requests_total{{module=\"fx\",host=\"{entry}\",method=\"GET\",outcome=\"outbound_timeout\"}} 1"
        ),
        format!(
            "hub_module_outbound_requests_total{{module=\"fx\",host=\"{entry}\",method=\"GET\",outcome=\"outbound_too_large\"}} 1"
        ),
        "hub_module_outbound_requests_total{module=\"fx\",host=\"(not allowed)\",method=\"GET\",outcome=\"outbound_not_allowed\"} 1".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }
    drop(hub);

    // DRY_RUN off (by the operator's setting): the POST is sent.
    let hub = Setup::new()
        .fixture("fx", allow)
        .env("MODULES__FX__DRY_RUN", "false")
        .start();
    assert_eq!(
        fetch(&hub, post),
        (
            200,
            json!({"status": 200, "body": "hello", "dry_run": false})
        )
    );
    assert_eq!(server.posts(), "1");
}

#[test]
fn the_operators_list_replaces_the_modules_and_a_bad_entry_fails_the_module() {
    let server = Server::start();
    let port = server.port;
    let hub = Setup::new()
        .fixture("fx", json!({}))
        .env("MODULES__FX__OUTBOUND", &format!("[\"127.0.0.1:{port}\"]"))
        .start();
    assert_eq!(
        fetch(&hub, json!({"method": "GET", "url": server.url("/ok")})).0,
        200
    );
    drop(hub);
    let hub = Setup::new()
        .fixture("fx", json!({}))
        .fixture("fy", json!({"outbound": ["https://api.example.com"]}))
        .env("MODULES__FX__OUTBOUND", "api.example.com, bad host")
        .start();
    let fx = hub.module("fx");
    assert_eq!(fx["state"], "failed");
    assert_eq!(
        fx["error"],
        "MODULES__FX__OUTBOUND: outbound entry \"bad host\" is not a host name or an IP address: write a host (api.example.com), a host and port (api.example.com:8443), *.example.net, * or *:8080"
    );
    let fy = hub.module("fy");
    assert_eq!(fy["state"], "failed");
    let error = fy["error"].as_str().expect("error");
    assert!(
        error.ends_with("module.json: outbound entry \"https://api.example.com\" has an invalid port: write a host (api.example.com), a host and port (api.example.com:8443), *.example.net, * or *:8080"),
        "{error}"
    );
}

#[test]
fn secrets_come_from_the_environment_or_a_file_and_are_never_shown() {
    let dir = tempfile::tempdir().expect("a folder");
    let file = dir.path().join("licence");
    std::fs::write(&file, "lic-0042\n").expect("the secret's file");
    let hub = Setup::new()
        .fixture(
            "fx",
            json!({"config": {"region": "eu", "pin": 1234, "api_token": "t0k3n"}, "secrets": ["pin"]}),
        )
        .env("MODULES__FX__LICENCE_FILE", &file.to_string_lossy())
        .env("MODULES__FX__SIGNATURE", "sig-77")
        .env("MODULES__FX__SECRETS", "signature")
        .start();
    let module = hub.module("fx");
    assert_eq!(
        module["settings"],
        json!([
            {"key": "api_token", "value": "********", "secret": true, "source": "manifest"},
            {"key": "licence", "value": "********", "secret": true, "source": "environment"},
            {"key": "pin", "value": "********", "secret": true, "source": "manifest"},
            {"key": "region", "value": "eu", "secret": false, "source": "manifest"},
            {"key": "signature", "value": "********", "secret": true, "source": "environment"},
        ])
    );
    // The module reads them.
    let value = |key: &str| hub.get(&format!("/api/v1/fx/config/{key}")).json()["value"].clone();
    assert_eq!(value("licence"), "lic-0042");
    assert_eq!(value("signature"), "sig-77");
    assert_eq!(value("pin"), 1234);
    // Nowhere in the hub's log, the console's page or the module object.
    let session_page = hub.get("/admin/modules/fx");
    for secret in ["lic-0042", "sig-77", "t0k3n"] {
        assert!(!hub.logs().contains(secret), "{secret} in the log");
        assert!(!module.to_string().contains(secret));
        assert!(!session_page.body.contains(secret), "{secret} on the page");
    }
    drop(hub);
    // A file that cannot be read fails the module, naming the variable and the path only.
    let hub = Setup::new()
        .fixture("fx", json!({}))
        .env("MODULES__FX__LICENCE_FILE", "/nonexistent/licence")
        .start();
    let module = hub.module("fx");
    assert_eq!(module["state"], "failed");
    assert_eq!(
        module["error"],
        "MODULES__FX__LICENCE_FILE=\"/nonexistent/licence\" cannot be read (No such file or directory (os error 2)): give the hub's user a readable file"
    );
}
