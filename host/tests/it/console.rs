//! The web console over HTTP (issue 15): sign-in first, pages by permission, every form's CSRF
//! token, the 409 and safety confirmations, refusals as the 403 page, tokens shown once; and the
//! management API's routes the console's actions stand on (`/safety`, `/settings`). The browser
//! tests (`browser.rs`) drive the same pages in chromium.

use serde_json::{Value, json};

use crate::support::{Hub, Reply, Setup, TOKEN, urlencode};

/// customers and tickets (which needs customers), with a database.
fn pair() -> Hub {
    Setup::new().example("customers").example("tickets").start()
}

/// A browser's session on `hub`, opened with `token` through the sign-in form.
struct Session<'a> {
    hub: &'a Hub,
    cookie: String,
}

impl<'a> Session<'a> {
    fn open(hub: &'a Hub, token: &str) -> Session<'a> {
        let reply = hub.send(
            "POST",
            "/login",
            &[(
                "Content-Type",
                "application/x-www-form-urlencoded".to_owned(),
            )],
            Some(&format!("token={token}&next=%2Fadmin")),
        );
        assert_eq!(reply.status, 303, "{}", reply.body);
        assert_eq!(reply.location.as_deref(), Some("/admin"));
        let cookie = reply
            .set_cookie
            .as_deref()
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_owned();
        Session { hub, cookie }
    }

    fn get(&self, path: &str) -> Reply {
        self.hub
            .send("GET", path, &[("Cookie", self.cookie.clone())], None)
    }

    /// POST a form as the browser would (same origin).
    fn post(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.hub.send(
            "POST",
            path,
            &[
                ("Cookie", self.cookie.clone()),
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded".to_owned(),
                ),
                ("Sec-Fetch-Site", "same-origin".to_owned()),
            ],
            Some(&body),
        )
    }

    /// The CSRF token the console's pages carry for this session.
    fn csrf(&self) -> String {
        let page = self.get("/admin/tokens");
        assert_eq!(page.status, 200, "{}", page.body);
        csrf_of(&page.body)
    }
}

fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a form with a CSRF token") + marker.len();
    page[start..]
        .split('"')
        .next()
        .expect("the token")
        .to_owned()
}

/// A token of the admin's with `permissions`.
fn token(hub: &Hub, permissions: Value) -> String {
    let reply = hub.request_with(
        "POST",
        "/api/v1/tokens",
        &[("Content-Type", "application/json".to_owned())],
        Some(&json!({"name": "console test", "permissions": permissions}).to_string()),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["token_secret"]
        .as_str()
        .expect("secret")
        .to_owned()
}

fn state(hub: &Hub, name: &str) -> String {
    hub.module(name)["state"]
        .as_str()
        .expect("state")
        .to_owned()
}

fn put_json(hub: &Hub, path: &str, body: &str) -> Reply {
    hub.request_with(
        "PUT",
        path,
        &[("Content-Type", "application/json".to_owned())],
        Some(body),
    )
}

#[test]
fn the_console_is_behind_sign_in_and_shows_every_module() {
    let hub = pair();
    // Not signed in: to the sign-in page, and back here afterwards.
    let reply = hub.anonymous_get("/admin/modules/customers");
    assert_eq!(reply.status, 303);
    assert_eq!(
        reply.location.as_deref(),
        Some("/login?next=%2Fadmin%2Fmodules%2Fcustomers")
    );
    let session = Session::open(&hub, TOKEN);
    let page = session.get("/admin");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    for needle in [
        "<tr id=\"module-customers\" data-state=\"running\">",
        "<tr id=\"module-tickets\" data-state=\"running\">",
        "customers ^0.1",
        "aria-label=\"Disable tickets\"",
        "data-live=\"&#x2f;admin&#x2f;modules&#x2f;rows\"",
    ] {
        assert!(page.body.contains(needle), "{needle} in {}", page.body);
    }
    // Filters: by state, by name.
    let page = session.get("/admin?state=disabled");
    assert!(page.body.contains("No module matches."), "{}", page.body);
    let page = session.get("/admin/modules/rows?q=tick");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("module-tickets") && !page.body.contains("module-customers"));
    // The detail page: manifest, settings, routes with who may call them, migrations, tables.
    let page = session.get("/admin/modules/customers");
    assert_eq!(page.status, 200, "{}", page.body);
    for needle in [
        "<dt>Table prefix</dt><dd><code>customers_</code></dd>",
        "<code>page_size</code></td><td><code>50</code>",
        "<td>1</td><td>init</td>",
        "<code>customers_customers</code>",
        "<a href=\"/admin/modules/tickets\">tickets</a>",
    ] {
        assert!(page.body.contains(needle), "{needle} in {}", page.body);
    }
    // The graph, nodes linking to the modules.
    let page = session.get("/admin/graph");
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("<a href=\"/admin/modules/customers\" aria-label=\"customers (running)\">"),
        "{}",
        page.body
    );
    // The home page links to the console for this user.
    let home = session.get("/");
    assert!(
        home.body
            .contains("<a href=\"/admin\" class=\"console-link\">Console</a>")
    );
    // An unknown console page: 404, as a page.
    let page = session.get("/admin/nothing");
    assert_eq!(page.status, 404);
    assert!(
        page.body
            .contains("the console has no page &#x2f;admin&#x2f;nothing")
    );
}

#[test]
fn actions_need_the_sessions_csrf_token_and_ask_before_cascading() {
    let hub = pair();
    let session = Session::open(&hub, TOKEN);
    // Without the token (or with another session's), nothing happens.
    let reply = session.post("/admin/modules/tickets/disable", &[]);
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(
        reply.body.contains("<code>csrf_failed</code>"),
        "{}",
        reply.body
    );
    let other = Session::open(&hub, TOKEN).csrf();
    let reply = session.post("/admin/modules/tickets/disable", &[("csrf", &other)]);
    assert_eq!(reply.status, 403);
    assert_eq!(state(&hub, "tickets"), "running");
    // From another site's page, with the right token: refused too.
    let csrf = session.csrf();
    let reply = hub.send(
        "POST",
        "/admin/modules/tickets/disable",
        &[
            ("Cookie", session.cookie.clone()),
            (
                "Content-Type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("Sec-Fetch-Site", "cross-site".to_owned()),
        ],
        Some(&format!("csrf={csrf}")),
    );
    assert_eq!(reply.status, 403);
    assert!(
        reply.body.contains("<code>cross_site</code>"),
        "{}",
        reply.body
    );
    // customers is needed by tickets: the console says what a cascade will do.
    let reply = session.post("/admin/modules/customers/disable", &[("csrf", &csrf)]);
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("<ol id=\"steps\"><li>disable tickets</li><li>disable customers</li></ol>"),
        "{}",
        reply.body
    );
    assert!(
        reply
            .body
            .contains("<input type=\"hidden\" name=\"cascade\" value=\"true\">")
    );
    assert_eq!(state(&hub, "customers"), "running");
    let reply = session.post(
        "/admin/modules/customers/disable",
        &[("csrf", &csrf), ("cascade", "true"), ("back", "/admin")],
    );
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(reply.location.as_deref(), Some("/admin"));
    assert_eq!(
        (state(&hub, "customers"), state(&hub, "tickets")),
        ("disabled".to_owned(), "disabled".to_owned())
    );
    assert_eq!(hub.anonymous_get("/api/v1/tickets/").status, 404);
    // Enabling tickets needs customers: asked, then done with dependencies.
    let reply = session.post("/admin/modules/tickets/enable", &[("csrf", &csrf)]);
    assert_eq!(reply.status, 409);
    assert!(
        reply
            .body
            .contains("<ol id=\"steps\"><li>enable customers</li><li>enable tickets</li></ol>"),
        "{}",
        reply.body
    );
    let reply = session.post(
        "/admin/modules/tickets/enable",
        &[("csrf", &csrf), ("with_dependencies", "true")],
    );
    assert_eq!(reply.status, 303);
    assert_eq!(
        reply.location.as_deref(),
        Some("/admin/modules/tickets?done=enable")
    );
    assert_eq!(state(&hub, "tickets"), "running");
    // The audit log has them, under this session's actor.
    let page = session.get("/admin/audit?action=module.disable");
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("<td><code>module.disable</code></td><td>customers</td>"),
        "{}",
        page.body
    );
}

#[test]
fn a_safety_switch_goes_off_only_after_a_confirmation_naming_it() {
    let hub = pair();
    let session = Session::open(&hub, TOKEN);
    let csrf = session.csrf();
    let off = [
        ("csrf", csrf.as_str()),
        ("switch", "read_only"),
        ("value", "off"),
    ];
    let reply = session.post("/admin/modules/customers/safety", &off);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .body
            .contains("<h1>Turn READ_ONLY off for customers?</h1>")
    );
    assert_eq!(hub.module("customers")["safety"]["read_only"], true);
    let mut confirmed = off.to_vec();
    confirmed.push(("confirmed", "yes"));
    let reply = session.post("/admin/modules/customers/safety", &confirmed);
    assert_eq!(reply.status, 303, "{}", reply.body);
    let module = hub.module("customers");
    assert_eq!(
        (
            module["safety"]["read_only"].clone(),
            module["safety"]["source"]["read_only"].clone()
        ),
        (json!(false), json!("manifest"))
    );
    // Back on: no question.
    let reply = session.post(
        "/admin/modules/customers/safety",
        &[("csrf", &csrf), ("switch", "read_only"), ("value", "on")],
    );
    assert_eq!(reply.status, 303);
    assert_eq!(hub.module("customers")["safety"]["read_only"], true);
}

#[test]
fn what_a_user_may_not_do_is_not_shown_and_refused_if_posted() {
    let hub = pair();
    let reader = token(&hub, json!(["modules.read"]));
    let session = Session::open(&hub, &reader);
    let page = session.get("/admin");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("aria-label=\"Disable tickets\""));
    assert!(!page.body.contains("href=\"/admin/audit\""));
    assert!(!page.body.contains("href=\"/admin/people\""));
    let csrf = session.csrf();
    let reply = session.post("/admin/modules/tickets/disable", &[("csrf", &csrf)]);
    assert_eq!(reply.status, 403);
    assert!(
        reply.body.contains(
            "<code>permission_denied</code>: this needs permission &#x27;modules.manage&#x27;"
        ),
        "{}",
        reply.body
    );
    assert_eq!(state(&hub, "tickets"), "running");
    assert_eq!(session.get("/admin/people").status, 403);
    assert_eq!(session.get("/admin/audit").status, 403);
    // Someone with no console permission lands on their tokens.
    let nobody = token(&hub, json!([]));
    let session = Session::open(&hub, &nobody);
    let reply = session.get("/admin");
    assert_eq!(reply.status, 303);
    assert_eq!(reply.location.as_deref(), Some("/admin/tokens"));
    assert!(!session.get("/").body.contains("console-link"));
}

#[test]
fn a_token_made_in_the_console_is_shown_once_and_revoked_there() {
    let hub = pair();
    let session = Session::open(&hub, TOKEN);
    let csrf = session.csrf();
    let reply = session.post(
        "/admin/tokens",
        &[
            ("csrf", &csrf),
            ("name", "nightly export"),
            ("permissions", "modules.read"),
        ],
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let marker = "<code class=\"secret\" id=\"secret-text\">";
    let start = reply.body.find(marker).expect("the secret") + marker.len();
    let secret = reply.body[start..]
        .split('<')
        .next()
        .expect("secret")
        .to_owned();
    assert!(secret.starts_with("hub_"), "{secret}");
    assert_eq!(
        hub.request("GET", "/api/v1/modules", Some(&secret), None)
            .status,
        200
    );
    // Listed without its secret from now on.
    let page = session.get("/admin/tokens");
    assert!(page.body.contains("nightly export") && !page.body.contains(&secret));
    let id = hub
        .request("GET", "/api/v1/tokens", Some(&secret), None)
        .json()[0]["id"]
        .clone();
    let tokens = hub.get("/api/v1/tokens?all=true").json();
    let id = tokens
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["name"] == "nightly export")
        .map_or(id, |t| t["id"].clone());
    let reply = session.post(&format!("/admin/tokens/{id}/revoke"), &[("csrf", &csrf)]);
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(reply.location.as_deref(), Some("/admin/tokens"));
    assert_eq!(
        hub.request("GET", "/api/v1/modules", Some(&secret), None)
            .status,
        401
    );
}

#[test]
fn safety_switches_and_settings_change_through_the_management_api() {
    let hub = Setup::new()
        .example("customers")
        .env("MODULES__CUSTOMERS__DRY_RUN", "true")
        .env("MODULES__CUSTOMERS__REGION", "eu")
        .start();
    let reply = put_json(
        &hub,
        "/api/v1/modules/customers/safety",
        r#"{"read_only": false}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["safety"]["read_only"], false);
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(hub.modules_dir().join("customers/module.json")).expect("read"),
    )
    .expect("json");
    assert_eq!(manifest["safety"], json!({"read_only": false}));
    // The environment wins: refused, nothing written.
    let reply = put_json(
        &hub,
        "/api/v1/modules/customers/safety",
        r#"{"dry_run": false}"#,
    );
    assert_eq!(reply.status, 409);
    assert_eq!(
        reply.json(),
        json!({"error": {
            "code": "set_by_environment",
            "message": "MODULES__CUSTOMERS__DRY_RUN is set in the hub's environment, which wins over module.json: change or unset it there (and restart the hub)",
            "details": {"variable": "MODULES__CUSTOMERS__DRY_RUN"},
        }})
    );
    let reply = put_json(&hub, "/api/v1/modules/customers/safety", "{}");
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.json()["error"]["message"],
        "name a switch to set: {\"read_only\": true|false} and/or {\"dry_run\": true|false}"
    );
    // Settings: set, secret masked everywhere it is shown, removed.
    let reply = put_json(
        &hub,
        "/api/v1/modules/customers/settings",
        r#"{"page_size": 20, "api_key": "s3cret"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json()["settings"],
        json!([
            {"key": "api_key", "value": "********", "secret": true, "source": "manifest"},
            {"key": "page_size", "value": 20, "secret": false, "source": "manifest"},
            {"key": "region", "value": "eu", "secret": false, "source": "environment"},
        ])
    );
    assert!(
        !hub.get("/api/v1/audit?action=module.settings")
            .body
            .contains("s3cret")
    );
    let reply = put_json(
        &hub,
        "/api/v1/modules/customers/settings",
        r#"{"region": "us"}"#,
    );
    assert_eq!(reply.status, 409);
    assert_eq!(
        reply.json()["error"]["details"],
        json!({"variable": "MODULES__CUSTOMERS__REGION"})
    );
    let reply = put_json(&hub, "/api/v1/modules/customers/settings", r#"{"a b": 1}"#);
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.json(),
        json!({"error": {
            "code": "validation_failed",
            "message": "setting \"a b\" is not a key: use 1 to 100 letters, digits and _",
            "details": [{"field": "a b", "message": "setting \"a b\" is not a key: use 1 to 100 letters, digits and _"}],
        }})
    );
    let reply = put_json(
        &hub,
        "/api/v1/modules/customers/settings",
        r#"{"api_key": null}"#,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["settings"][0]["key"], "page_size");
    // Who may: modules.manage.
    let reader = token(&hub, json!(["modules.read"]));
    let reply = hub.send(
        "PUT",
        "/api/v1/modules/customers/settings",
        &[
            ("Authorization", format!("Bearer {reader}")),
            ("Content-Type", "application/json".to_owned()),
        ],
        Some(r#"{"page_size": 1}"#),
    );
    assert_eq!(reply.status, 403);
}

#[test]
fn the_module_page_charts_its_usage_and_names_its_busiest_routes() {
    let hub = Setup::new().hello().start();
    for _ in 0..3 {
        assert_eq!(hub.get("/api/v1/hello/greet/Ada").status, 200);
    }
    assert_eq!(hub.anonymous_get("/api/v1/hello/greet/Ada").status, 401);
    for _ in 0..2 {
        assert_eq!(hub.anonymous_get("/api/v1/hello/ping").status, 200);
    }
    let session = Session::open(&hub, TOKEN);
    let page = session.get("/admin/modules/hello");
    assert_eq!(page.status, 200, "{}", page.body);
    for needle in [
        "<strong>Last 24 hours</strong>",
        "<dt>Calls</dt><dd>6</dd>",
        "<dt>Error rate (5xx)</dt><dd>0.0 % (0 errors, 1 client errors)</dd>",
        "<dt>Callers</dt><dd>1 signed in, 2 anonymous calls</dd>",
        "aria-label=\"Calls per hour of hello: answered in green, client errors (4xx) in amber, errors (5xx) in red\"",
        "aria-label=\"Latency per hour of hello in milliseconds: the median (p50) in blue, p95 in red\"",
        "<tr><td><code>GET &#x2f;greet&#x2f;{name}</code></td><td>4</td><td>0.0 %</td><td>1</td>",
        "<tr><td><code>GET &#x2f;ping</code></td><td>2</td>",
    ] {
        assert!(page.body.contains(needle), "{needle} in {}", page.body);
    }
    // The hour's bar: 5 answered and 1 client error.
    assert!(page.body.contains(":00: 5</title></rect>"), "{}", page.body);
    assert!(page.body.contains(":00: 1</title></rect>"), "{}", page.body);
    let page = session.get("/admin/modules/hello?usage=day");
    assert!(
        page.body.contains("<strong>Last 30 days</strong>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("aria-label=\"Calls per day of hello"));
}

#[test]
fn the_module_page_lists_kept_versions_rolls_back_and_uninstalls_after_asking() {
    use crate::support::packages::{Contents, Keys};
    let keys = Keys::new();
    let hub = Setup::new().env("HUB_TRUSTED_KEYS", &keys.public).start();
    for (build, version) in [("fixture", "0.1.0"), ("fixture-v2", "0.2.0")] {
        let package = Contents::fixture(build, "pk", version, json!({})).write(Some(&keys));
        let reply = hub.install(&package, None);
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let admin = token(
        &hub,
        json!(["modules.read", "modules.install", "modules.manage"]),
    );
    let session = Session::open(&hub, &admin);
    let page = session.get("/admin/modules/pk");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("0.2.0 <span class=\"badge running\">serving</span>")
            && page.body.contains("Roll back to 0.1.0")
            && !page.body.contains("Roll back to 0.2.0"),
        "{}",
        page.body
    );
    let csrf = csrf_of(&page.body);
    let reply = session.post(
        "/admin/modules/pk/rollback",
        &[("csrf", &csrf), ("to", "0.1.0")],
    );
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(
        reply.location.as_deref(),
        Some("/admin/modules/pk?done=rollback")
    );
    assert_eq!(hub.module("pk")["version"], "0.1.0");
    // The form's version is the one it goes to: back up to 0.2.0, then down again.
    let page = session.get("/admin/modules/pk");
    assert!(page.body.contains("Roll back to 0.2.0"), "{}", page.body);
    for to in ["0.2.0", "0.1.0"] {
        let reply = session.post("/admin/modules/pk/rollback", &[("csrf", &csrf), ("to", to)]);
        assert_eq!(reply.status, 303, "{}", reply.body);
        assert_eq!(hub.module("pk")["version"], to);
    }
    // An uninstall asks first, saying what goes.
    let reply = session.post("/admin/modules/pk/uninstall", &[("csrf", &csrf)]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains("Uninstall pk?")
            && reply.body.contains("delete its kept versions (")
            && reply.body.contains("its tables (none) stay in PostgreSQL"),
        "{}",
        reply.body
    );
    assert_eq!(hub.module("pk")["state"], "running", "nothing happened yet");
    let reply = session.post(
        "/admin/modules/pk/uninstall",
        &[("csrf", &csrf), ("purge", "no"), ("confirmed", "yes")],
    );
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(reply.location.as_deref(), Some("/admin?done=uninstall"));
    assert_eq!(hub.admin_get("/api/v1/modules/pk").status, 404);
    let count = |action: &str| {
        hub.get(&format!("/api/v1/audit?module=pk&action={action}"))
            .json()["entries"]
            .as_array()
            .map(Vec::len)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while (count("module.rollback"), count("module.uninstall")) != (Some(3), Some(1)) {
        assert!(
            std::time::Instant::now() < deadline,
            "rollbacks and uninstalls audited: {:?}",
            (count("module.rollback"), count("module.uninstall"))
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn the_catalog_page_offers_what_runs_here_and_installs_it() {
    use crate::support::packages::{Contents, Keys};
    let keys = Keys::new();
    let dir = tempfile::tempdir().expect("catalog dir");
    let packages: Vec<(String, Vec<u8>)> = [
        Contents::fixture("fixture", "pk", "0.1.0", json!({})),
        Contents::fixture("fixture-v2", "pk", "0.2.0", json!({})),
    ]
    .into_iter()
    .map(|c| {
        (
            format!("packages/{}-{}.hubpkg", c.info.name, c.info.version),
            c.write(Some(&keys)),
        )
    })
    .collect();
    std::fs::create_dir_all(dir.path().join("packages")).expect("packages dir");
    for (path, bytes) in &packages {
        std::fs::write(dir.path().join(path), bytes).expect("write package");
    }
    let index = hub_package::catalog(&packages).expect("catalog");
    std::fs::write(
        dir.path().join("index.json"),
        serde_json::to_vec_pretty(&index).expect("json"),
    )
    .expect("index");
    let hub = Setup::new()
        .env("HUB_TRUSTED_KEYS", &keys.public)
        .env("HUB_CATALOGS", &dir.path().to_string_lossy())
        .start();
    let admin = token(&hub, json!(["modules.read", "modules.install"]));
    let session = Session::open(&hub, &admin);
    let page = session.get("/admin/catalog");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Install pk 0.2.0") && page.body.contains("Install pk 0.1.0"),
        "{}",
        page.body
    );
    let csrf = csrf_of(&page.body);
    let reply = session.post(
        "/admin/catalog/pk/install",
        &[("csrf", &csrf), ("version", "0.1.0")],
    );
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(
        reply.location.as_deref(),
        Some("/admin/modules/pk?done=install")
    );
    assert_eq!(hub.module("pk")["version"], "0.1.0");
    let page = session.get("/admin/catalog");
    assert!(
        page.body.contains("0.2.0 available") && !page.body.contains("Install pk 0.1.0"),
        "{}",
        page.body
    );
    // Without modules.install the page shows no button, and the form is refused.
    let reader = token(&hub, json!(["modules.read"]));
    let reader = Session::open(&hub, &reader);
    let page = reader.get("/admin/catalog");
    assert!(!page.body.contains("Install pk"), "{}", page.body);
    let reply = reader.post(
        "/admin/catalog/pk/install",
        &[
            ("csrf", &csrf_of(&reader.get("/admin/tokens").body)),
            ("version", "0.2.0"),
        ],
    );
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(hub.module("pk")["version"], "0.1.0");
}
