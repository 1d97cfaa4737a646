//! The console in a real browser (issue 15): Debian's headless `chromium` through
//! `chromedriver`, signed in through the real OpenID provider of the identity tests. One session
//! walks what an operator does: sees the modules, watches one fail on reload without touching
//! the page, disables one (its route answers 404), meets the 409 of a needed module and takes the
//! cascade, opens a module from the graph, makes and revokes a token, finds it all in the audit
//! log; then the pages at 360 px wide. With `HUB_SCREENSHOTS=<folder>` (what `cargo xtask
//! screenshots` sets) it saves a PNG of each main page there.

use std::path::PathBuf;
use std::time::Duration;

use hub_testkit::browser::Browser;
use hub_testkit::oidc::{OidcClient, OidcProvider};

use crate::support::{Hub, Setup, free_port, lib_file};

const WAIT: Duration = Duration::from_secs(15);

/// Save a screenshot named `name` when `HUB_SCREENSHOTS` names a folder.
fn shot(browser: &Browser, name: &str) {
    if let Some(folder) = std::env::var_os("HUB_SCREENSHOTS") {
        browser.screenshot(&PathBuf::from(folder).join(format!("{name}.png")));
    }
}

/// An anonymous `GET` of `path`: its status.
fn status(hub: &Hub, path: &str) -> u16 {
    hub.anonymous_get(path).status
}

#[test]
fn an_operator_runs_the_hub_from_the_console() {
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let provider = OidcProvider::start(&[OidcClient::new(
        "hub",
        "hub-secret",
        &format!("{public}/auth/callback"),
    )]);
    let hub = Setup::new()
        .hello()
        .example("customers")
        .example("tickets")
        .env("HUB_BIND", &format!("127.0.0.1:{port}"))
        .env("HUB_PUBLIC_URL", &public)
        .env("HUB_OIDC_ISSUER", &provider.issuer())
        .env("HUB_OIDC_CLIENT_ID", "hub")
        .env("HUB_OIDC_CLIENT_SECRET", "hub-secret")
        .env("HUB_GROUP_ROLES", "hub-admins=admin")
        .start();
    let browser = Browser::start();

    // Signing in: the console sends to /login, /login to the provider, the provider back.
    browser.goto(&format!("{public}/admin"));
    browser.wait_for("input[name=login]", WAIT);
    browser.fill("input[name=login]", "alice");
    browser.fill("input[name=password]", "any password");
    browser.click("button[type=submit]");
    // The provider's consent page, then back to the console.
    browser.wait_for_text("button[type=submit]", "Continue", WAIT);
    browser.click("button[type=submit]");
    browser.wait_for_text("h1", "Modules", WAIT);
    assert_eq!(browser.current_url(), format!("{public}/admin"));
    assert_eq!(browser.text("header .who a"), "Alice");
    assert_eq!(
        browser.texts("#modules tbody tr td:first-child a"),
        vec!["customers", "hello", "tickets"]
    );
    assert_eq!(
        browser.attr("#module-tickets", "data-state").as_deref(),
        Some("running")
    );
    shot(&browser, "modules");

    // A reload that fails shows up in the open page, which does not reload: the watcher finds
    // a broken library in hello's folder, and the old version keeps serving.
    browser.execute("window.stillTheSamePage = true;", vec![]);
    let library = hub.modules_dir().join("hello").join(lib_file("hello"));
    std::fs::write(&library, b"not a library").expect("break hello's library");
    let row = browser.wait_for_text("#module-hello", "failed", WAIT);
    assert!(row.contains("running"), "the old version serves: {row}");
    assert_eq!(
        browser.execute("return window.stillTheSamePage === true;", vec![]),
        serde_json::Value::Bool(true)
    );
    assert_eq!(status(&hub, "/api/v1/hello/ping"), 200);
    shot(&browser, "modules-failed-reload");

    // Disable hello from its row: its route answers 404 afterwards.
    browser.click("button[aria-label='Disable hello']");
    browser.wait_for("#module-hello[data-state=disabled]", WAIT);
    assert_eq!(status(&hub, "/api/v1/hello/ping"), 404);

    // customers is needed by tickets: the console says who and what a cascade does.
    browser.click("button[aria-label='Disable customers']");
    browser.wait_for_text("h1", "Disable customers?", WAIT);
    assert_eq!(
        browser.texts("#steps li"),
        vec!["disable tickets", "disable customers"]
    );
    shot(&browser, "confirm-cascade");
    browser.click("#confirm");
    browser.wait_for("#module-customers[data-state=disabled]", WAIT);
    assert_eq!(
        browser.attr("#module-tickets", "data-state").as_deref(),
        Some("disabled")
    );
    assert_eq!(status(&hub, "/api/v1/tickets/"), 404);

    // Filtering by state.
    browser.select("#state", "disabled");
    browser.click(".filters button[type=submit]");
    browser.wait_for_text("p.muted", "3 of 3 modules", WAIT);

    // The graph: a node opens the module's page.
    browser.goto(&format!("{public}/admin/graph"));
    browser.wait_for(".graph svg", WAIT);
    shot(&browser, "graph");
    browser.click(".graph a[href='/admin/modules/tickets']");
    browser.wait_for_text("h1", "tickets", WAIT);
    assert_eq!(browser.text("h1 .badge"), "disabled");
    shot(&browser, "module");

    // A token: made, its secret shown once and working, revoked.
    browser.goto(&format!("{public}/admin/tokens"));
    browser.fill("#token-name", "report script");
    browser.fill("#token-permissions", "modules.read");
    browser.click("form[action='/admin/tokens'] button[type=submit]");
    let secret = browser.wait_for_text("#secret-text", "hub_", WAIT);
    shot(&browser, "token-created");
    let with_secret = |path: &str| hub.request("GET", path, Some(&secret), None).status;
    assert_eq!(with_secret("/api/v1/modules"), 200);
    browser.goto(&format!("{public}/admin/tokens"));
    assert!(
        !browser.source().contains(&secret),
        "the secret is shown once"
    );
    browser.click("button[aria-label='Revoke report script']");
    browser.wait_for_text("#tokens", "revoked", WAIT);
    assert_eq!(with_secret("/api/v1/modules"), 401);

    // The audit log has every action, under Alice's name.
    browser.goto(&format!("{public}/admin/audit?action=module"));
    browser.wait_for("table.audit", WAIT);
    let actions = browser.texts("table.audit tbody tr td:nth-child(3)");
    let modules = browser.texts("table.audit tbody tr td:nth-child(4)");
    let rows: Vec<(String, String)> = actions.into_iter().zip(modules).collect();
    let outcomes = browser.texts("table.audit tbody tr td:nth-child(6)");
    let disables: Vec<(&str, &str)> = rows
        .iter()
        .zip(&outcomes)
        .filter(|((action, _), _)| action == "module.disable")
        .map(|((_, module), outcome)| (module.as_str(), outcome.as_str()))
        .collect();
    // Newest first: the cascade, the 409 that asked for it, hello.
    assert_eq!(
        disables,
        vec![
            ("customers", "disabled"),
            ("customers", "failed"),
            ("hello", "disabled")
        ]
    );
    let whole = browser.text("table.audit");
    assert!(whole.contains("(Alice)"), "{whole}");
    assert!(
        whole.contains("customers") && whole.contains("tickets"),
        "{whole}"
    );
    shot(&browser, "audit");
    browser.goto(&format!("{public}/admin/audit?action=token"));
    let actions = browser.texts("table.audit tbody tr td:nth-child(3)");
    assert_eq!(actions, vec!["token.revoke", "token.create"]);

    // At 360 px wide: nothing wider than the screen but the tables' own scrolling boxes.
    browser.set_size(360, 780);
    browser.goto(&format!("{public}/admin"));
    browser.wait_for("#modules", WAIT);
    let overflow = browser.execute(
        "return document.documentElement.scrollWidth <= window.innerWidth;",
        vec![],
    );
    assert_eq!(overflow, serde_json::Value::Bool(true));
    shot(&browser, "modules-360");
}
