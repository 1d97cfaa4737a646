//! schemathesis against the hub with the example modules and the template module (their safety
//! switches off, so writes reach the handlers), with the admin token (every permission): every
//! check, a fixed seed, a bounded number of examples. No failure, no server error, and every
//! operation it tried answered with success at least once (so 401 or 404 everywhere cannot pass).
//!
//! Two runs: first everything but what would take modules or users away from the rest
//! (`POST /api/v1/modules/{name}/{action}`, `POST /api/v1/users/{id}/offboard`) and the SSO
//! callback, then those (with the service users to offboard). Failed sign-ins are not slowed down
//! here (`HUB_AUTH_FAILURES`): the check of ignored credentials sends wrong ones on purpose.
//! `POST /login` and `GET /auth/callback` are fuzzed but not required to succeed: the one needs a
//! valid secret, which no document may carry, the other an identity provider's round trip
//! (`it::identity` does both).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

use crate::support::{Setup, TOKEN};

/// Left out of the first run: what would take modules or users away from the rest of it, and
/// the SSO callback.
const LEFT_OUT: &str =
    r"^/api/v1/modules/\{name\}/\{action\}$|^/api/v1/users/\{id\}/offboard$|^/auth/callback$";

/// The second run, after the first: enabling, disabling and reloading modules (the document's
/// example names `hello`), and offboarding the service users it makes.
const LAST: &str =
    r"^/api/v1/modules/\{name\}/\{action\}$|^/api/v1/users/\{id\}/offboard$|^/api/v1/users$";

#[test]
fn schemathesis_finds_no_failure_and_every_operation_succeeds_once() {
    let program = std::env::var("HUB_SCHEMATHESIS").expect(
        "HUB_SCHEMATHESIS is unset: run the tests with cargo xtask test (it installs schemathesis)",
    );
    // The template's upstream: a server answering every request with 200.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let upstream_addr = upstream.local_addr().expect("address").to_string();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in upstream.incoming().filter_map(Result::ok) {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    let mut setup = Setup::new()
        .hello()
        .example("customers")
        .example("tickets")
        .module_folder(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/_template"))
        // A file no package holds in each module's folder: DELETE /api/v1/modules/{name} (the
        // uninstall) refuses them all (409), so the run keeps its modules.
        .file("hello/NOTES.md", "not from a package")
        .file("customers/NOTES.md", "not from a package")
        .file("tickets/NOTES.md", "not from a package")
        .file("tmplmod/NOTES.md", "not from a package")
        .env("HUB_AUTH_FAILURES", "1000000")
        .env(
            "MODULES__TMPLMOD__STATUS_URL",
            &format!("http://{upstream_addr}/status"),
        )
        .env("MODULES__TMPLMOD__OUTBOUND", &upstream_addr);
    for module in ["CUSTOMERS", "TICKETS", "TMPLMOD"] {
        setup = setup
            .env(&format!("MODULES__{module}__READ_ONLY"), "false")
            .env(&format!("MODULES__{module}__DRY_RUN"), "false");
    }
    let hub = setup.start();
    let report = tempfile::tempdir().expect("report dir");
    let run = |filter: &str, pattern: &str| {
        let output = Command::new(&program)
            .arg("--config-file")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/schemathesis/schemathesis.toml"
            ))
            .arg("run")
            .arg(format!("{}/api/v1/openapi.json", hub.base))
            .args(["--checks", "all", "--seed", "1", "--max-examples", "10"])
            .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
            .args([filter, pattern])
            .args(["--report", "har", "--report-dir"])
            .arg(report.path())
            .env("NO_COLOR", "1")
            // Its cache of found crashes stays with the report, out of the checkout.
            .current_dir(report.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            output.status.success(),
            "schemathesis found failures ({filter} {pattern}):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run("--exclude-path-regex", LEFT_OUT);
    run("--include-path-regex", LAST);

    // What each operation answered, from the requests schemathesis sent.
    let doc = hub.get("/api/v1/openapi.json").json();
    let operations = operations(&doc);
    let mut answered: BTreeMap<(String, String), BTreeSet<u16>> = BTreeMap::new();
    for file in std::fs::read_dir(report.path())
        .expect("report")
        .filter_map(Result::ok)
    {
        if file.path().extension().is_none_or(|x| x != "json") {
            continue;
        }
        let har: Value =
            serde_json::from_str(&std::fs::read_to_string(file.path()).expect("read the report"))
                .expect("HAR is JSON");
        for entry in har["log"]["entries"].as_array().expect("entries") {
            let method = entry["request"]["method"].as_str().unwrap_or_default();
            let url = entry["request"]["url"].as_str().unwrap_or_default();
            let path = url
                .strip_prefix(&hub.base)
                .unwrap_or(url)
                .split('?')
                .next()
                .unwrap_or_default();
            if let Some(template) = match_operation(&operations, method, path) {
                answered
                    .entry((method.to_owned(), template))
                    .or_default()
                    .insert(entry["response"]["status"].as_u64().unwrap_or(0) as u16);
            }
        }
    }
    let mut never = Vec::new();
    for (method, template) in &operations {
        // The document itself was fetched (200) above; signing in with the token form needs a
        // valid secret, which no document may carry, and the SSO callback a provider's round
        // trip (both fuzzed all the same; their successes are `it::identity`'s); a job run's
        // retry or cancel needs the id of a run, which no document may carry either
        // (`it::jobs` has its successes); an install needs a package signed by a trusted key,
        // a rollback an earlier kept version, an uninstall a module from a package (this run's
        // modules refuse it on purpose), and an install from a catalog a catalog (this run has
        // none) (`it::packages` has their successes).
        if template == "/api/v1/openapi.json"
            || template == "/auth/callback"
            || (method == "POST" && template == "/login")
            || template == "/api/v1/modules/{name}/jobs/{id}/{action}"
            || template == "/api/v1/packages"
            || template == "/api/v1/modules/{name}/rollback"
            || (method == "DELETE" && template == "/api/v1/modules/{name}")
            || template == "/api/v1/catalog/{name}/install"
        {
            continue;
        }
        let statuses = answered
            .get(&(method.clone(), template.clone()))
            .cloned()
            .unwrap_or_default();
        // An operation whose success is a redirect (signing in and out) succeeds with it.
        let redirects = doc["paths"][template][method.to_ascii_lowercase()]["responses"]
            .as_object()
            .is_some_and(|r| !r.keys().any(|s| s.starts_with('2')));
        let succeeded = statuses
            .iter()
            .any(|s| (200..300).contains(s) || (redirects && (300..400).contains(s)));
        if !succeeded {
            never.push(format!("{method} {template}: {statuses:?}"));
        }
    }
    assert_eq!(
        never,
        Vec::<String>::new(),
        "operations that never succeeded"
    );
    // The template's item routes were reached through the links from its create.
    assert!(
        answered
            .get(&("DELETE".to_owned(), "/api/v1/tmplmod/items/{id}".to_owned()))
            .is_some_and(|s| s.contains(&204)),
        "{answered:#?}"
    );
}

/// (METHOD, path template) of every operation in the document.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            all.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    all
}

/// The operation `path` belongs to: a concrete path before a templated one, fewer parameters
/// first.
fn match_operation(operations: &[(String, String)], method: &str, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut candidates: Vec<&String> = operations
        .iter()
        .filter(|(m, _)| m == method)
        .map(|(_, t)| t)
        .filter(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(t, s)| {
                    (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s
                })
        })
        .collect();
    candidates.sort_by_key(|t| t.matches('{').count());
    candidates.first().map(|t| (*t).clone())
}
