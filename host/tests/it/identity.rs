//! Identity: routes that say who may call them, API tokens, service users and offboarding, roles
//! granting module permissions, sessions, the audit log, audiences, failed attempts slowed down,
//! trusted proxies (issue 13).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Hub, Reply, Setup, TOKEN, TestDb, free_port, plugins, urlencode};

const SIGN_IN_FIRST: &str = "sign in first: send Authorization: Bearer <token> (the admin token or an API token), or sign in at /login";
const INVALID_TOKEN: &str = "the token is not valid (unknown, expired or revoked): create a new one with POST /api/v1/tokens";
const SESSION_ENDED: &str =
    "your session has ended (signed out, expired or revoked): sign in again at /login";

fn unauthenticated(message: &str) -> Value {
    json!({"error": {"code": "unauthenticated", "message": message}})
}

fn denied(permission: &str) -> Value {
    json!({"error": {
        "code": "permission_denied",
        "message": format!("this needs permission '{permission}': ask an administrator for a role that grants it"),
        "details": {"permission": permission},
    }})
}

/// The template module (`tmplmod`), writes allowed and kept.
fn tmplmod() -> Setup {
    Setup::new()
        .module_folder(&plugins().join("_template").to_string_lossy())
        .env("MODULES__TMPLMOD__READ_ONLY", "false")
        .env("MODULES__TMPLMOD__DRY_RUN", "false")
}

fn post_json(hub: &Hub, path: &str, token: Option<&str>, body: Value) -> Reply {
    let headers = [
        ("Content-Type", "application/json".to_owned()),
        (
            "Authorization",
            format!("Bearer {}", token.unwrap_or(TOKEN)),
        ),
    ];
    hub.send("POST", path, &headers, Some(&body.to_string()))
}

fn put_json(hub: &Hub, path: &str, body: Value) -> Reply {
    let headers = [
        ("Content-Type", "application/json".to_owned()),
        ("Authorization", format!("Bearer {TOKEN}")),
    ];
    hub.send("PUT", path, &headers, Some(&body.to_string()))
}

/// A new token of the admin's (or of `user_id`) with `permissions`: (id, secret).
fn token(hub: &Hub, permissions: Value, user_id: Option<i64>) -> (i64, String) {
    let mut body = json!({"name": "test", "permissions": permissions});
    if let Some(id) = user_id {
        body["user_id"] = json!(id);
    }
    let reply = post_json(hub, "/api/v1/tokens", None, body);
    assert_eq!(reply.status, 201, "{}", reply.body);
    let token = reply.json();
    (
        token["id"].as_i64().expect("id"),
        token["token_secret"].as_str().expect("secret").to_owned(),
    )
}

/// A service user called `name` with `roles`: its id.
fn service_user(hub: &Hub, name: &str, roles: Value) -> i64 {
    let reply = post_json(
        hub,
        "/api/v1/users",
        None,
        json!({"name": name, "roles": roles}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["id"].as_i64().expect("id")
}

fn with_cookie(hub: &Hub, method: &str, path: &str, cookie: &str) -> Reply {
    hub.send(method, path, &[("Cookie", cookie.to_owned())], None)
}

/// Sign in with `token` through the `/login` form: the `name=value` of the session cookie and
/// the whole `Set-Cookie`.
fn sign_in(hub: &Hub, token: &str, next: &str) -> (String, String, Reply) {
    let body = format!("token={}&next={}", urlencode(token), urlencode(next));
    let reply = hub.send(
        "POST",
        "/login",
        &[(
            "Content-Type",
            "application/x-www-form-urlencoded".to_owned(),
        )],
        Some(&body),
    );
    let set_cookie = reply.set_cookie.clone().unwrap_or_default();
    let pair = set_cookie.split(';').next().unwrap_or_default().to_owned();
    (pair, set_cookie, reply)
}

fn audit(hub: &Hub, query: &str) -> Vec<Value> {
    let reply = hub.get(&format!("/api/v1/audit?{query}"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["entries"].as_array().expect("entries").clone()
}

#[test]
fn module_routes_say_who_may_call_them() {
    let hub = tmplmod().start();
    // Public: anyone; the module sees who asks.
    let reply = hub.anonymous_get("/api/v1/tmplmod/about");
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["user"], Value::Null);
    assert_eq!(reply.json()["can_write"], false);
    let reply = hub.get("/api/v1/tmplmod/about");
    assert_eq!(
        (
            reply.json()["user"].clone(),
            reply.json()["can_write"].clone()
        ),
        (json!("admin"), json!(true))
    );
    // The health check is public.
    assert_eq!(hub.anonymous_get("/api/v1/tmplmod/health").status, 200);
    // The default: any signed-in caller.
    let reply = hub.anonymous_get("/api/v1/tmplmod/items");
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json(), unauthenticated(SIGN_IN_FIRST));
    // A permission of the module's.
    let (_, reader) = token(&hub, json!(["modules.read"]), None);
    assert_eq!(
        hub.request("GET", "/api/v1/tmplmod/items", Some(&reader), None)
            .status,
        200
    );
    let reply = post_json(
        &hub,
        "/api/v1/tmplmod/items",
        Some(&reader),
        json!({"title": "x"}),
    );
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json(), denied("tmplmod:items.write"));
    let (_, writer) = token(&hub, json!(["tmplmod:items.write"]), None);
    let reply = post_json(
        &hub,
        "/api/v1/tmplmod/items",
        Some(&writer),
        json!({"title": "x"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = hub.request("GET", "/api/v1/tmplmod/about", Some(&writer), None);
    assert_eq!(reply.json()["can_write"], true);
    // A view sends a browser that is not signed in to /login, and back.
    let reply = hub.anonymous_get("/modules/tmplmod/items/1?x=1");
    assert_eq!(reply.status, 303);
    assert_eq!(
        reply.location.as_deref(),
        Some("/login?next=%2Fmodules%2Ftmplmod%2Fitems%2F1%3Fx%3D1")
    );
    // The module object and the OpenAPI document say who may call each route.
    let module = hub.module("tmplmod");
    let routes = module["routes"].as_array().expect("routes");
    let access = |method: &str, path: &str| {
        routes
            .iter()
            .find(|r| r["method"] == method && r["path"] == path)
            .map(|r| r["access"].clone())
    };
    assert_eq!(
        access("GET", "/api/v1/tmplmod/about"),
        Some(json!("public"))
    );
    assert_eq!(
        access("GET", "/api/v1/tmplmod/items"),
        Some(json!("signed_in"))
    );
    assert_eq!(
        access("POST", "/api/v1/tmplmod/items"),
        Some(json!("tmplmod:items.write"))
    );
    let doc = hub.anonymous_get("/api/v1/openapi.json").json();
    assert_eq!(
        doc["paths"]["/api/v1/tmplmod/items"]["post"]["security"],
        json!([{"bearer": ["tmplmod:items.write"]}, {"session": ["tmplmod:items.write"]}])
    );
    assert_eq!(
        doc["paths"]["/api/v1/tmplmod/about"]["get"]["security"],
        json!([{}])
    );
    assert_eq!(
        doc["paths"]["/api/v1/tmplmod/items"]["get"]["security"],
        json!([{"bearer": []}, {"session": []}])
    );
}

#[test]
fn a_route_requiring_an_undeclared_permission_fails_the_module_naming_it() {
    let folder = plugins().join("_template");
    let mut manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(folder.join("module.json")).expect("module.json"),
    )
    .expect("json");
    manifest
        .as_object_mut()
        .expect("object")
        .remove("permissions");
    let setup = Setup::new().module_folder(&folder.to_string_lossy());
    let setup = setup.file("tmplmod/module.json", &{
        manifest["enabled"] = json!(true);
        manifest.to_string()
    });
    let hub = setup.start();
    let module = hub.module("tmplmod");
    assert_eq!(module["state"], "failed");
    assert_eq!(
        module["error"],
        "route POST /items requires permission 'items.write', which module.json does not declare: add it to \"permissions\" with a description"
    );
}

#[test]
fn permissions_in_module_json_must_be_named_and_described() {
    let hub = Setup::new()
        .fixture("bad", json!({"permissions": {"Items.Write": "x"}}))
        .fixture("quiet", json!({"permissions": {"items.write": " "}}))
        .start();
    assert_eq!(
        hub.module("bad")["error"],
        format!(
            "{}/bad/module.json: permission \"Items.Write\" must look like area.verb (lowercase letters, digits, _ and -, parts separated by dots, e.g. items.write)",
            hub.modules_dir().display()
        )
    );
    assert_eq!(
        hub.module("quiet")["error"],
        format!(
            "{}/quiet/module.json: permission \"items.write\" needs a description of what it allows",
            hub.modules_dir().display()
        )
    );
}

#[test]
fn tokens_are_shown_once_stored_hashed_bounded_by_their_creator_and_revocable() {
    let hub = Setup::new().hello().env("HUB_AUTH_FAILURES", "100").start();
    let db = hub_db(&hub);
    let (id, secret) = token(&hub, json!(["modules.read"]), None);
    assert!(secret.starts_with("hub_") && secret.len() == 47, "{secret}");
    // Stored as its SHA-256, never as itself.
    let mut client = db.client();
    let row = client
        .query_one(
            "SELECT encode(hash, 'hex') FROM hub_tokens WHERE id = $1",
            &[&id],
        )
        .expect("token row");
    let stored: String = row.get(0);
    assert_eq!(stored, sha256_hex(&secret));
    let listed = hub.get("/api/v1/tokens").json();
    assert!(!listed.to_string().contains(&secret), "{listed}");
    // What it may do, and not more.
    assert_eq!(
        hub.request("GET", "/api/v1/modules", Some(&secret), None)
            .status,
        200
    );
    let reply = hub.request("POST", "/api/v1/modules/hello/disable", Some(&secret), None);
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json(), denied("modules.manage"));
    let reply = post_json(
        &hub,
        "/api/v1/tokens",
        Some(&secret),
        json!({"name": "more", "permissions": ["modules.manage"]}),
    );
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "permission_denied", "message": "a token cannot carry permission 'modules.manage': its creator does not have it"}})
    );
    let me = hub.request("GET", "/api/v1/me", Some(&secret), None).json();
    assert_eq!(
        (me["token_id"].clone(), me["permissions"].clone()),
        (json!(id), json!(["modules.read"]))
    );
    // Unknown, malformed, revoked, expired.
    for bad in [
        "hub_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "hub_short",
        "nonsense",
    ] {
        let reply = hub.request("GET", "/api/v1/me", Some(bad), None);
        assert_eq!(reply.status, 401, "{bad}");
        assert_eq!(reply.json(), unauthenticated(INVALID_TOKEN), "{bad}");
    }
    assert_eq!(
        hub.request("DELETE", &format!("/api/v1/tokens/{id}"), None, None)
            .status,
        204
    );
    let reply = hub.request("GET", "/api/v1/me", Some(&secret), None);
    assert_eq!(reply.json(), unauthenticated(INVALID_TOKEN));
    let (expiring, expiring_secret) = token(&hub, json!(["modules.read"]), None);
    assert_eq!(
        hub.request("GET", "/api/v1/me", Some(&expiring_secret), None)
            .status,
        200
    );
    // Expired behind the hub's back (another hub, or time): noticed within a second or so.
    client
        .execute(
            "UPDATE hub_tokens SET expires_at = now() - interval '1 s' WHERE id = $1",
            &[&expiring],
        )
        .expect("expire");
    hub.eventually("the expired token is refused", || {
        hub.request("GET", "/api/v1/me", Some(&expiring_secret), None)
            .status
            == 401
    });
    // Tokens' last use is written in batches.
    let reply = hub.get("/api/v1/tokens");
    let tokens = reply.json();
    assert_eq!(tokens.as_array().map(Vec::len), Some(2), "{tokens}");
    assert!(tokens[1]["revoked_at"].is_string(), "{tokens}");
    // Someone else's token is not yours to revoke.
    let user = service_user(&hub, "other", json!(["viewer"]));
    let (theirs, _) = token(&hub, json!(["modules.read"]), Some(user));
    let (_, viewer) = token(&hub, json!(["modules.read"]), None);
    let reply = hub.request(
        "DELETE",
        &format!("/api/v1/tokens/{theirs}"),
        Some(&viewer),
        None,
    );
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "token_not_found", "message": format!("you have no token {theirs}: GET /api/v1/tokens lists yours")}})
    );
}

#[test]
fn service_users_get_tokens_and_offboarding_ends_everything_at_once() {
    let hub = Setup::new().hello().start();
    let id = service_user(&hub, "billing", json!(["viewer"]));
    let (_, secret) = token(&hub, json!(["modules.read"]), Some(id));
    assert_eq!(
        hub.request("GET", "/api/v1/modules", Some(&secret), None)
            .status,
        200
    );
    let me = hub.request("GET", "/api/v1/me", Some(&secret), None).json();
    assert_eq!(
        (me["kind"].clone(), me["name"].clone(), me["roles"].clone()),
        (json!("service"), json!("billing"), json!(["viewer"]))
    );
    let (cookie, _, reply) = sign_in(&hub, &secret, "/");
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(with_cookie(&hub, "GET", "/api/v1/me", &cookie).status, 200);
    // Roles that do not exist are refused.
    let reply = put_json(
        &hub,
        &format!("/api/v1/users/{id}/roles"),
        json!({"roles": ["nope"]}),
    );
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.json()["error"]["message"],
        "there is no role 'nope': GET /api/v1/roles lists them"
    );
    let reply = hub.request("POST", &format!("/api/v1/users/{id}/offboard"), None, None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(
        (
            body["sessions_ended"].clone(),
            body["tokens_revoked"].clone(),
            body["user"]["disabled"].clone()
        ),
        (json!(1), json!(1), json!(true))
    );
    assert_eq!(
        hub.request("GET", "/api/v1/me", Some(&secret), None).json(),
        unauthenticated(INVALID_TOKEN)
    );
    assert_eq!(
        with_cookie(&hub, "GET", "/api/v1/me", &cookie).json(),
        unauthenticated(SESSION_ENDED)
    );
    // A new token for a disabled user does not work either.
    let rows = audit(&hub, "action=user");
    let actions: Vec<&str> = rows.iter().filter_map(|r| r["action"].as_str()).collect();
    assert_eq!(actions, ["user.offboard", "user.create"]);
}

#[test]
fn roles_grant_module_permissions_and_the_module_sees_them() {
    let hub = tmplmod().start();
    let reply = post_json(
        &hub,
        "/api/v1/roles",
        None,
        json!({"name": "writers", "description": "Write items", "permissions": ["tmplmod:items.write", "modules.read"]}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = post_json(
        &hub,
        "/api/v1/roles",
        None,
        json!({"name": "bad", "permissions": ["modules.delete"]}),
    );
    assert_eq!(reply.status, 422);
    assert_eq!(reply.json()["error"]["code"], "validation_failed");
    let user = service_user(&hub, "writer", json!(["writers"]));
    let (_, secret) = token(&hub, json!(["*"]), Some(user));
    // The token asked for everything; it gets what its user has.
    let me = hub.request("GET", "/api/v1/me", Some(&secret), None).json();
    assert_eq!(
        me["permissions"],
        json!(["modules.read", "tmplmod:items.write"])
    );
    let reply = post_json(
        &hub,
        "/api/v1/tmplmod/items",
        Some(&secret),
        json!({"title": "x"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    // Taking the role takes the permission, at once.
    let reply = put_json(
        &hub,
        &format!("/api/v1/users/{user}/roles"),
        json!({"roles": ["viewer"]}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = post_json(
        &hub,
        "/api/v1/tmplmod/items",
        Some(&secret),
        json!({"title": "x"}),
    );
    assert_eq!(reply.json(), denied("tmplmod:items.write"));
    // Built-in roles do not change.
    let reply = put_json(&hub, "/api/v1/roles/admin", json!({"permissions": []}));
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["code"], "role_not_found");
}

#[test]
fn sessions_are_cookies_that_expire_and_end_at_logout() {
    let hub = Setup::new()
        .hello()
        .env("HUB_SESSION_IDLE_SECS", "2")
        .start();
    let (cookie, set_cookie, reply) = sign_in(&hub, TOKEN, "/api/v1/me");
    assert_eq!(reply.status, 303);
    assert_eq!(reply.location.as_deref(), Some("/api/v1/me"));
    assert!(
        cookie.starts_with("hub_session=") && cookie.len() == "hub_session=".len() + 43,
        "{set_cookie}"
    );
    assert!(
        set_cookie.ends_with("; Path=/; HttpOnly; SameSite=Lax; Max-Age=604800"),
        "{set_cookie}"
    );
    let me = with_cookie(&hub, "GET", "/api/v1/me", &cookie).json();
    assert_eq!(
        (me["kind"].clone(), me["permissions"].clone()),
        (json!("admin"), json!(["*"]))
    );
    // Stored as a hash.
    let mut client = hub_db(&hub).client();
    let value = cookie.trim_start_matches("hub_session=");
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM hub_sessions WHERE hash = decode($1, 'hex')",
            &[&sha256_hex(value)],
        )
        .expect("count")
        .get(0);
    assert_eq!(n, 1);
    // Logout deletes it.
    let reply = with_cookie(&hub, "POST", "/logout", &cookie);
    assert_eq!(reply.status, 303);
    assert_eq!(
        reply.set_cookie.as_deref(),
        Some("hub_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
    );
    assert_eq!(
        with_cookie(&hub, "GET", "/api/v1/me", &cookie).json(),
        unauthenticated(SESSION_ENDED)
    );
    // Idle expiry.
    let (idle, _, _) = sign_in(&hub, TOKEN, "/");
    assert_eq!(with_cookie(&hub, "GET", "/api/v1/me", &idle).status, 200);
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(
        with_cookie(&hub, "GET", "/api/v1/me", &idle).json(),
        unauthenticated(SESSION_ENDED)
    );
    // A wrong token on the form, and an open redirect through next.
    let (_, _, reply) = sign_in(&hub, "wrong", "/");
    assert_eq!(reply.status, 401);
    assert!(
        reply.body.contains("the token is not valid (unknown, expired or revoked): create a new one with POST &#x2f;api&#x2f;v1&#x2f;tokens"),
        "{}",
        reply.body
    );
    let (_, _, reply) = sign_in(&hub, TOKEN, "//evil.example/x");
    assert_eq!(reply.location.as_deref(), Some("/"));
    let reply = hub.anonymous_get("/login?next=https://evil.example");
    assert_eq!(reply.status, 200);
    assert!(
        reply.body.contains(r#"name="next" value="&#x2f;""#),
        "{}",
        reply.body
    );
    let rows = audit(&hub, "action=login");
    let outcomes: Vec<&str> = rows.iter().filter_map(|r| r["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["ok", "failed", "ok", "ok"]);
}

#[test]
fn an_absolute_expiry_ends_a_session_in_use_and_https_makes_cookies_secure() {
    let hub = Setup::new()
        .env("HUB_SESSION_MAX_SECS", "2")
        .env("HUB_PUBLIC_URL", "https://hub.example.com")
        .start();
    let (cookie, set_cookie, _) = sign_in(&hub, TOKEN, "/");
    assert!(set_cookie.ends_with("; Max-Age=2; Secure"), "{set_cookie}");
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(1000));
        with_cookie(&hub, "GET", "/api/v1/me", &cookie);
    }
    assert_eq!(
        with_cookie(&hub, "GET", "/api/v1/me", &cookie).json(),
        unauthenticated(SESSION_ENDED)
    );
}

#[test]
fn without_a_database_tokens_work_and_login_says_why_not() {
    let hub = Setup::without_database().hello().start();
    assert_eq!(hub.get("/api/v1/modules").status, 200);
    let (_, _, reply) = sign_in(&hub, TOKEN, "/");
    assert_eq!(reply.status, 503);
    assert!(
        reply.body.contains("signing in needs PostgreSQL (sessions are kept there): set DATABASE_URL; tokens still work without it"),
        "{}",
        reply.body
    );
    let reply = post_json(&hub, "/api/v1/tokens", None, json!({"name": "x"}));
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["error"]["code"], "database_unavailable");
}

#[test]
fn failures_from_one_address_are_slowed_down_and_proxies_are_believed_only_when_trusted() {
    let hub = Setup::new()
        .hello()
        .env("HUB_AUTH_FAILURES", "3")
        .env("HUB_AUTH_BLOCK_SECS", "30")
        .start();
    let bad = |forwarded: &str| {
        hub.send(
            "GET",
            "/api/v1/modules",
            &[
                (
                    "Authorization",
                    "Bearer hub_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
                ),
                ("X-Forwarded-For", forwarded.to_owned()),
            ],
            None,
        )
    };
    // Not a trusted proxy: X-Forwarded-For is ignored, every attempt counts for 127.0.0.1.
    for forwarded in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        assert_eq!(bad(forwarded).status, 401);
    }
    let reply = bad("203.0.113.4");
    assert_eq!(reply.status, 429);
    assert_eq!(reply.json()["error"]["code"], "too_many_attempts");
    let wait: u64 = reply
        .retry_after
        .as_deref()
        .and_then(|s| s.parse().ok())
        .expect("Retry-After");
    assert!((1..=30).contains(&wait), "{wait}");
    assert_eq!(
        reply.json()["error"]["message"],
        format!("too many failed sign-ins or unknown tokens from 127.0.0.1: try again in {wait} s")
    );
    // Even the right token waits.
    assert_eq!(hub.get("/api/v1/modules").status, 429);
    let rows = audit_after_block(&hub);
    assert_eq!(rows[0]["address"], "127.0.0.1");

    // Behind a trusted proxy: the client's address counts.
    let hub = Setup::new()
        .hello()
        .env("HUB_AUTH_FAILURES", "2")
        .env("HUB_TRUSTED_PROXIES", "127.0.0.1")
        .start();
    let bad = |forwarded: &str| {
        hub.send(
            "GET",
            "/api/v1/modules",
            &[
                ("Authorization", "Bearer wrong".to_owned()),
                ("X-Forwarded-For", forwarded.to_owned()),
            ],
            None,
        )
        .status
    };
    assert_eq!(bad("203.0.113.9"), 401);
    assert_eq!(bad("6.6.6.6, 203.0.113.9"), 401);
    assert_eq!(bad("203.0.113.9"), 429);
    assert_eq!(bad("203.0.113.10"), 401, "another client behind the proxy");
    let reply = hub.send(
        "GET",
        "/api/v1/modules",
        &[
            ("Authorization", format!("Bearer {TOKEN}")),
            ("X-Forwarded-For", "203.0.113.11".to_owned()),
        ],
        None,
    );
    assert_eq!(reply.status, 200);
    let (_, _, reply) = sign_in(&hub, TOKEN, "/");
    assert_eq!(reply.status, 303);
    let logins = audit(&hub, "action=login");
    assert_eq!(
        logins[0]["address"], "127.0.0.1",
        "a sign-in without the header is the proxy's"
    );
}

/// The audit rows of refused credentials (written when the hub flushes its counts): the bootstrap
/// token is blocked too, so this reads the database directly.
fn audit_after_block(hub: &Hub) -> Vec<Value> {
    let db = hub_db(hub);
    let mut client = db.client();
    let mut rows = Vec::new();
    hub.eventually("the refusals are in the audit log", || {
        rows = client
            .query(
                "SELECT address, details FROM hub_audit WHERE action = 'auth.failed'",
                &[],
            )
            .expect("audit")
            .iter()
            .map(|r| json!({"address": r.get::<_, Option<String>>(0), "details": r.get::<_, Option<Value>>(1)}))
            .collect();
        !rows.is_empty()
    });
    rows
}

#[test]
fn the_audit_log_records_who_did_what_with_filters_and_pages() {
    let hub = tmplmod().env("MODULES__TMPLMOD__DRY_RUN", "true").start();
    assert_eq!(
        hub.admin_post("/api/v1/modules/tmplmod/disable").status,
        200
    );
    assert_eq!(hub.admin_post("/api/v1/modules/tmplmod/enable").status, 200);
    // A module's own entry, kept although DRY_RUN rolled its transaction back.
    let reply = post_json(
        &hub,
        "/api/v1/tmplmod/items",
        None,
        json!({"title": "kept"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let (_, viewer) = token(&hub, json!(["modules.read"]), None);
    let reply = hub.request(
        "POST",
        "/api/v1/modules/tmplmod/reload",
        Some(&viewer),
        None,
    );
    assert_eq!(reply.status, 403);
    let rows = audit(&hub, "module=tmplmod");
    let summary: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap_or_default().to_owned(),
                r["action"].as_str().unwrap_or_default().to_owned(),
                r["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expect = |actor: &str, action: &str, outcome: &str| {
        (actor.to_owned(), action.to_owned(), outcome.to_owned())
    };
    assert!(
        summary.contains(&expect("admin", "module.disable", "disabled")),
        "{summary:?}"
    );
    assert!(
        summary.contains(&expect("admin", "module.enable", "running")),
        "{summary:?}"
    );
    assert!(
        summary.contains(&expect("admin", "item.create", "ok")),
        "{summary:?}"
    );
    assert!(
        summary.contains(&expect("hub", "module.start", "running")),
        "{summary:?}"
    );
    let created = rows
        .iter()
        .find(|r| r["action"] == "item.create")
        .expect("item.create");
    assert_eq!(
        created["details"],
        json!({"title": "kept", "dry_run": true})
    );
    assert_eq!(created["address"], "127.0.0.1");
    // Refusals are counted, one row per actor and permission.
    let denied = audit(&hub, "action=permission.denied");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["target"], "modules.manage");
    assert_eq!(denied[0]["details"], json!({"count": 1}));
    // Filters and pages.
    let first = hub.get("/api/v1/audit?actor=admin&limit=1").json();
    let next = first["next"].as_i64().expect("a next page");
    let second = hub
        .get(&format!("/api/v1/audit?actor=admin&limit=1&before={next}"))
        .json();
    assert!(second["entries"][0]["id"].as_i64() < first["entries"][0]["id"].as_i64());
    let reply = hub.request("GET", "/api/v1/audit", Some(&viewer), None);
    assert_eq!(reply.json(), denied_body("audit.read"));
    // The watcher is an actor too.
    let path = hub.modules_dir().join("tmplmod/module.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    manifest["description"] = json!("Changed by hand");
    std::fs::write(&path, manifest.to_string()).expect("write");
    hub.eventually("the watcher's reload is audited", || {
        audit(&hub, "actor=watcher&module=tmplmod")
            .iter()
            .any(|r| r["action"] == "module.file_change" && r["outcome"] == "running")
    });
}

fn denied_body(permission: &str) -> Value {
    denied(permission)
}

#[test]
fn an_audience_hides_a_module_from_everyone_outside_it() {
    let hub = Setup::new().hello().start();
    let user = service_user(&hub, "tester", json!(["viewer"]));
    let (_, secret) = token(&hub, json!(["*"]), Some(user));
    assert_eq!(
        hub.request("GET", "/api/v1/hello/", Some(&secret), None)
            .status,
        200
    );
    let reply = put_json(
        &hub,
        "/api/v1/modules/hello/audience",
        json!({"roles": ["testers"]}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = hub.request("GET", "/api/v1/hello/", Some(&secret), None);
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        json!({"error": {"code": "module_not_found", "message": "no module 'hello' is installed"}})
    );
    // Anonymous callers are outside every audience, also on public routes; where a route needs a
    // caller they are asked to sign in first, as anywhere.
    assert_eq!(hub.anonymous_get("/api/v1/hello/ping").status, 404);
    let reply = hub.anonymous_get("/api/v1/hello/");
    assert_eq!(
        (reply.status, reply.json()["error"]["code"].clone()),
        (401, json!("unauthenticated"))
    );
    // The administrator is always inside; the file says what the API set.
    assert_eq!(hub.get("/api/v1/hello/").status, 200);
    let text = std::fs::read_to_string(hub.modules_dir().join("hello/module.json")).expect("read");
    let manifest: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        manifest["audience"],
        json!({"roles": ["testers"], "groups": []})
    );
    // In the role: inside.
    let reply = post_json(
        &hub,
        "/api/v1/roles",
        None,
        json!({"name": "testers", "permissions": []}),
    );
    assert_eq!(reply.status, 201);
    put_json(
        &hub,
        &format!("/api/v1/users/{user}/roles"),
        json!({"roles": ["viewer", "testers"]}),
    );
    assert_eq!(
        hub.request("GET", "/api/v1/hello/", Some(&secret), None)
            .status,
        200
    );
    // A share of users, by a stable hash: 0 % nobody, 100 % everybody.
    put_json(
        &hub,
        "/api/v1/modules/hello/audience",
        json!({"percent": 0}),
    );
    assert_eq!(
        hub.request("GET", "/api/v1/hello/", Some(&secret), None)
            .status,
        404
    );
    let home = hub.send(
        "GET",
        "/",
        &[("Authorization", format!("Bearer {secret}"))],
        None,
    );
    assert!(!home.body.contains("/api/v1/hello/health"), "{}", home.body);
    put_json(
        &hub,
        "/api/v1/modules/hello/audience",
        json!({"percent": 100}),
    );
    assert_eq!(
        hub.request("GET", "/api/v1/hello/", Some(&secret), None)
            .status,
        200
    );
    // Names that are not role or group names are refused, and nothing is written.
    let path = hub.modules_dir().join("hello/module.json");
    let before = std::fs::read_to_string(&path).expect("read");
    for (audience, reason) in [
        (
            json!({"roles": [""]}),
            r#"audience role "" is not a role name (lowercase letters, digits, - and _, 1 to 40, starting with a letter)"#,
        ),
        (
            json!({"groups": ["a\u{7}b"]}),
            r#"audience group "a\u{7}b" must be 1 to 200 characters without control characters"#,
        ),
    ] {
        let reply = put_json(&hub, "/api/v1/modules/hello/audience", audience);
        assert_eq!(reply.status, 422, "{}", reply.body);
        assert!(
            reply.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(reason)),
            "{}",
            reply.body
        );
    }
    assert_eq!(std::fs::read_to_string(&path).expect("read"), before);
    // Editing module.json applies it too, without a restart.
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    manifest["audience"] = json!({"groups": ["nobody"]});
    std::fs::write(&path, manifest.to_string()).expect("write");
    hub.eventually("the edited audience applies", || {
        hub.request("GET", "/api/v1/hello/", Some(&secret), None)
            .status
            == 404
    });
    put_json(&hub, "/api/v1/modules/hello/audience", Value::Null);
    assert_eq!(
        hub.request("GET", "/api/v1/hello/", Some(&secret), None)
            .status,
        200
    );
    let reply = put_json(
        &hub,
        "/api/v1/modules/hello/audience",
        json!({"percent": 101}),
    );
    assert_eq!(reply.status, 422);
}

#[test]
fn the_hubs_api_names_are_reserved() {
    let names = ["me", "tokens", "audit", "users", "roles", "login", "auth"];
    let mut setup = Setup::without_database();
    for name in names {
        setup = setup.file(
            &format!("{name}/module.json"),
            &json!({"name": name, "version": "0.1.0", "enabled": true}).to_string(),
        );
    }
    let hub = setup.start();
    let list = hub.get("/api/v1/modules").json();
    for name in names {
        let module = list
            .as_array()
            .and_then(|l| l.iter().find(|m| m["name"] == name))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            module["error"],
            format!(
                "{}: name \"{name}\" is invalid: it is reserved (names match ^[a-z][a-z0-9_]{{0,39}}$)",
                hub.modules_dir().join(name).join("module.json").display()
            )
        );
    }
}

fn hub_db(hub: &Hub) -> std::sync::Arc<TestDb> {
    hub.database().expect("a database")
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn single_sign_on_through_a_real_provider_ends_in_a_session_with_the_groups_roles() {
    use hub_testkit::oidc::{self, OidcClient, OidcProvider};
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let provider = OidcProvider::start(&[OidcClient::new(
        "hub",
        "hub-secret",
        &format!("{public}/auth/callback"),
    )]);
    let hub = Setup::new()
        .hello()
        .env("HUB_BIND", &format!("127.0.0.1:{port}"))
        .env("HUB_PUBLIC_URL", &public)
        .env("HUB_OIDC_ISSUER", &provider.issuer())
        .env("HUB_OIDC_CLIENT_ID", "hub")
        .env("HUB_OIDC_CLIENT_SECRET", "hub-secret")
        .env("HUB_GROUP_ROLES", "hub-admins=operator,staff=viewer")
        .start();
    // Redirects, the provider's login and consent, back to the hub: a session.
    let end = oidc::sign_in(&format!("{public}/login?next=/api/v1/me"), "alice").expect("flow");
    assert_eq!(end.callback.status, 303, "{}", end.callback.body);
    assert_eq!(end.callback.location(), Some("/api/v1/me"));
    let session = end
        .browser
        .cookie(&public, "hub_session")
        .expect("a session cookie");
    let cookie = format!("hub_session={session}");
    let me = with_cookie(&hub, "GET", "/api/v1/me", &cookie).json();
    assert_eq!(me["kind"], "person");
    assert_eq!(me["name"], "Alice");
    assert_eq!(me["email"], "alice@example.test");
    assert_eq!(me["groups"], json!(["hub-admins", "staff"]));
    assert_eq!(me["roles"], json!(["operator", "viewer"]));
    assert_eq!(
        me["permissions"],
        json!(["audit.read", "modules.manage", "modules.read"])
    );
    // An operator: manages modules, not users.
    assert_eq!(
        with_cookie(&hub, "POST", "/api/v1/modules/hello/reload", &cookie).status,
        200
    );
    assert_eq!(
        with_cookie(&hub, "GET", "/api/v1/users", &cookie).json(),
        denied("users.manage")
    );
    // A replayed state is refused: a state is good once.
    let again = end.browser.get(&end.callback.url).expect("replay");
    assert_eq!(again.status, 401);
    assert!(
        again.body.contains("this sign-in is unknown, was already used or took longer than ten minutes: start again at &#x2f;login"),
        "{}",
        again.body
    );
    // A code the provider never gave, with a state the hub did.
    let callback = oidc::to_callback(&format!("{public}/login"), "bob").expect("to the callback");
    let forged = callback.url.replace(&callback.code, "forged-code");
    let reply = callback.browser.get(&forged).expect("forged code");
    assert_eq!(reply.status, 401);
    assert!(
        reply
            .body
            .contains("the identity provider&#x27;s answer was refused"),
        "{}",
        reply.body
    );
    // The provider said no.
    let reply = hub.anonymous_get("/auth/callback?error=access_denied&error_description=nope");
    assert_eq!(reply.status, 401);
    assert!(
        reply
            .body
            .contains("the identity provider said access_denied: nope"),
        "{}",
        reply.body
    );
    // bob is staff: a viewer.
    let end = oidc::sign_in(&format!("{public}/login"), "bob").expect("flow");
    let cookie = format!(
        "hub_session={}",
        end.browser.cookie(&public, "hub_session").expect("cookie")
    );
    assert_eq!(
        with_cookie(&hub, "GET", "/api/v1/modules", &cookie).status,
        200
    );
    assert_eq!(
        with_cookie(&hub, "POST", "/api/v1/modules/hello/disable", &cookie).json(),
        denied("modules.manage")
    );
    let logins = audit(&hub, "action=login");
    let outcomes: Vec<(String, String)> = logins
        .iter()
        .map(|r| {
            (
                r["outcome"].as_str().unwrap_or_default().to_owned(),
                r["details"]["via"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("ok", "oidc"),
            ("failed", "oidc"),
            ("failed", "oidc"),
            ("failed", "oidc"),
            ("ok", "oidc")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
}
