//! Module packages (issue 18): bad packages refused before anything is written, with the module
//! that runs still serving; signed packages installed, upgraded, kept and rolled back through
//! the start protocol of a reload; migrations ahead of a rollback refused unless expand.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::packages::{Contents, Keys, Kind, archive, compress};
use crate::support::{Hub, Setup, lib_file};

const LIMIT: usize = 16 * 1024 * 1024;

fn hub_with(keys: &Keys) -> Setup {
    Setup::new()
        .env("HUB_TRUSTED_KEYS", &keys.public)
        .env("HUB_PACKAGE_MAX_BYTES", &LIMIT.to_string())
}

/// Every entry of `dir`, recursively, as relative paths.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).expect("read dir").flatten() {
            let path = entry.path();
            out.push(
                path.strip_prefix(dir)
                    .expect("inside")
                    .to_string_lossy()
                    .into_owned(),
            );
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

fn error(reply: &crate::support::Reply) -> (u16, String, String) {
    let body = reply.json();
    (
        reply.status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[test]
fn bad_packages_are_refused_before_anything_is_written_and_the_running_version_keeps_serving() {
    let keys = Keys::new();
    let hub = hub_with(&keys).fixture("pk", json!({})).start();
    let before = tree(&hub.modules_dir());
    let good = Contents::fixture("fixture-v2", "pk", "0.2.0", json!({}));
    let signed = good.write(Some(&keys));
    let lib = lib_file("pk");
    let description = serde_json::to_vec_pretty(&good.info).expect("json");
    let file = |bytes: &[u8]| Kind::File(bytes.to_vec());
    let mut other_platform = good.clone();
    other_platform.info.platform = "riscv64-plan9".to_owned();
    let mut old_api = Contents::fixture("fixture-v2", "pk", "0.2.0", json!({"hub_api": "^0.1"}));
    old_api.info.hub_api = Some("^0.1".to_owned());
    let bad_name = Contents::fixture("fixture-v2", "Bad-Name", "0.2.0", json!({}));
    let needs = Contents::fixture(
        "fixture-v2",
        "pk",
        "0.2.0",
        json!({"dependencies": {"customers": "^1"}}),
    );
    // The library changed after its hash was listed.
    let mut tampered = good.clone();
    let last = tampered.files[1].1.len() - 1;
    tampered.files[1].1[last] ^= 1;
    let tampered = hub_package::write(&tampered.info, &tampered.files, |d| Some(keys.sign(d)))
        .expect("package");
    // A good signature, over another description.
    let mut other = good.info.clone();
    other.description = Some("something else".to_owned());
    let other_signature = keys.sign(&serde_json::to_vec_pretty(&other).expect("json"));
    let signed_over_other = archive(&[
        ("package.json", file(&description)),
        (
            "package.json.minisig",
            Kind::File(other_signature.into_bytes()),
        ),
        ("module/module.json", file(&good.files[0].1)),
        (&format!("module/{lib}"), file(&good.files[1].1)),
        ("module/README.md", file(&good.files[2].1)),
    ]);
    let stranger = Keys::new();
    let zeros = vec![0u8; LIMIT + 1];
    let cases: Vec<(&str, Vec<u8>, u16, &str, String)> = vec![
        (
            "truncated",
            signed[..signed.len() / 2].to_vec(),
            422,
            "bad_package",
            "the package is not a module package: its compressed data is cut or damaged".to_owned(),
        ),
        (
            "not an archive",
            b"PK\x03\x04 a zip file".to_vec(),
            422,
            "bad_package",
            "the package is not a module package: it is not a Zstandard-compressed archive".to_owned(),
        ),
        (
            "path traversal",
            archive(&[("../../etc/x", file(b"x"))]),
            422,
            "unsafe_entry",
            "the package's entry \"../../etc/x\" is refused: its path climbs out of the package (..)".to_owned(),
        ),
        (
            "absolute path",
            archive(&[("/etc/x", file(b"x"))]),
            422,
            "unsafe_entry",
            "the package's entry \"/etc/x\" is refused: its path is absolute".to_owned(),
        ),
        (
            "symlink",
            archive(&[("module/passwd", Kind::Symlink("/etc/passwd"))]),
            422,
            "unsafe_entry",
            "the package's entry \"module/passwd\" is refused: it is a symbolic link".to_owned(),
        ),
        (
            "hard link",
            archive(&[("module/passwd", Kind::HardLink("/etc/passwd"))]),
            422,
            "unsafe_entry",
            "the package's entry \"module/passwd\" is refused: it is a hard link".to_owned(),
        ),
        (
            "device",
            archive(&[("module/null", Kind::Device)]),
            422,
            "unsafe_entry",
            "the package's entry \"module/null\" is refused: it is a device or a pipe".to_owned(),
        ),
        (
            "outside the folder",
            archive(&[("module/sub/x", file(b"x"))]),
            422,
            "unsafe_entry",
            "the package's entry \"module/sub/x\" is refused: it is outside the package's folder".to_owned(),
        ),
        (
            "file list mismatch",
            tampered,
            422,
            "hash_mismatch",
            format!("the package's files do not match its list: {lib} does not have the size and SHA-256 package.json lists"),
        ),
        (
            "unknown key",
            good.write(Some(&stranger)),
            422,
            "untrusted_package",
            format!("the package is signed by key {}, which HUB_TRUSTED_KEYS does not list", stranger.id),
        ),
        (
            "signature over other bytes",
            signed_over_other,
            422,
            "untrusted_package",
            format!("the package's signature by key {} does not match its contents: it was signed over other bytes", keys.id),
        ),
        (
            "unsigned",
            good.write(None),
            422,
            "untrusted_package",
            "the package is not signed: sign it (cargo xtask package <module> --key <secret key>) with a key in HUB_TRUSTED_KEYS".to_owned(),
        ),
        (
            "another platform",
            other_platform.write(Some(&keys)),
            422,
            "wrong_platform",
            format!("the package is built for riscv64-plan9; this hub runs on {}", hub_package::platform()),
        ),
        (
            "incompatible hub_api",
            old_api.write(Some(&keys)),
            422,
            "incompatible_api",
            format!("the package needs plugin-api ^0.1 (hub_api); this hub has {}", plugin_api::API_VERSION),
        ),
        (
            "a name that breaks the rule",
            bad_name.write(Some(&keys)),
            422,
            "bad_package",
            "the package's module name \"Bad-Name\" is invalid".to_owned(),
        ),
        (
            "a dependency not installed",
            needs.write(Some(&keys)),
            409,
            "dependencies_missing",
            "the package's dependencies are not installed here: customers (^1) is not installed".to_owned(),
        ),
        (
            "bigger than the limit",
            zeros.clone(),
            413,
            "package_too_large",
            format!("the package is larger than HUB_PACKAGE_MAX_BYTES ({LIMIT} bytes): the request body is larger"),
        ),
        (
            "a decompression bomb",
            compress(&zeros),
            413,
            "package_too_large",
            format!("the package is larger than HUB_PACKAGE_MAX_BYTES ({LIMIT} bytes): it unpacks to more than {LIMIT} bytes"),
        ),
    ];
    for (case, bytes, status, code, message) in cases {
        let reply = hub.install(&bytes, None);
        let (got_status, got_code, got_message) = error(&reply);
        assert_eq!(
            (got_status, got_code.as_str()),
            (status, code),
            "{case}: {}",
            reply.body
        );
        assert!(
            got_message.starts_with(&message),
            "{case}: {got_message:?} should start with {message:?}"
        );
        assert_eq!(tree(&hub.modules_dir()), before, "{case}: nothing written");
        let build = hub.get("/api/v1/pk/build");
        assert_eq!(build.status, 200, "{case}: pk still serves");
    }
    assert_eq!(hub.get("/api/v1/modules/pk").json()["version"], "0.1.0");
    // The refusals are in the audit log.
    let audit = hub.get("/api/v1/audit?action=package.install").json();
    assert_eq!(
        audit["entries"].as_array().map(Vec::len),
        Some(18),
        "{audit}"
    );
    // Only with modules.install.
    let reply = hub.request_with(
        "POST",
        "/api/v1/tokens",
        &[("Content-Type", "application/json".to_owned())],
        Some(&json!({"name": "reader", "permissions": ["modules.read"]}).to_string()),
    );
    let reader = reply.json()["token_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let reply = hub.install(&signed, Some(&reader));
    assert_eq!(
        error(&reply),
        (
            403,
            "permission_denied".to_owned(),
            "this needs permission 'modules.install': ask an administrator for a role that grants it".to_owned()
        )
    );
}

/// The module object's version and the version its build route reports.
fn serving(hub: &Hub, name: &str) -> (String, Value) {
    let module = hub.get(&format!("/api/v1/modules/{name}")).json();
    (
        module["version"].as_str().unwrap_or_default().to_owned(),
        module["state"].clone(),
    )
}

fn versions(hub: &Hub, name: &str) -> Vec<(String, bool)> {
    let reply = hub.get(&format!("/api/v1/modules/{name}/versions"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap_or_default().to_owned(),
                v["serving"].as_bool().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn a_signed_package_installs_upgrades_and_rolls_back_in_one_call() {
    let keys = Keys::new();
    let hub = hub_with(&keys)
        .env("MODULES_AUTO_RELOAD", "false")
        .env("HUB_PACKAGE_VERSIONS_KEPT", "2")
        .start();
    let v1 = Contents::fixture("fixture", "pk", "0.1.0", json!({})).write(Some(&keys));
    let v2 = Contents::fixture("fixture-v2", "pk", "0.2.0", json!({})).write(Some(&keys));
    let v3 = Contents::fixture("fixture-v3", "pk", "0.3.0", json!({})).write(Some(&keys));
    // A first install: enabled, running, answered with the module object.
    let reply = hub.install(&v1, None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    let module = reply.json();
    assert_eq!(
        (
            module["name"].clone(),
            module["version"].clone(),
            module["state"].clone(),
            module["enabled"].clone()
        ),
        (json!("pk"), json!("0.1.0"), json!("running"), json!(true))
    );
    assert_eq!(hub.get("/api/v1/pk/build").status, 200);
    // The same bytes again: nothing changes.
    let reply = hub.install(&v1, None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The operator turns READ_ONLY off; the upgrade keeps it off.
    let reply = hub.request_with(
        "PUT",
        "/api/v1/modules/pk/safety",
        &[("Content-Type", "application/json".to_owned())],
        Some(r#"{"read_only": false}"#),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = hub.install(&v2, None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    let module = reply.json();
    assert_eq!(module["version"], "0.2.0");
    assert_eq!(module["last_reload"]["outcome"], "ok");
    assert_eq!(module["safety"]["read_only"], false, "{module}");
    assert_eq!(
        versions(&hub, "pk"),
        [("0.2.0".to_owned(), true), ("0.1.0".to_owned(), false)]
    );
    let listed = hub.get("/api/v1/modules/pk/versions").json();
    assert_eq!(listed["serving"], "0.2.0");
    assert_eq!(
        (
            listed["versions"][0]["signer"].clone(),
            listed["versions"][0]["installed_by"].clone(),
            listed["versions"][0]["migrations"].clone()
        ),
        (
            json!(keys.id),
            json!("admin"),
            json!([{"version": 1, "name": "widen", "expand": true}])
        )
    );
    // Another build with the same version is refused.
    let same_version = Contents::fixture("fixture-v3", "pk", "0.2.0", json!({})).write(Some(&keys));
    assert_eq!(
        error(&hub.install(&same_version, None)),
        (
            409,
            "version_conflict".to_owned(),
            "version 0.2.0 of module 'pk' is installed with other contents: give the new build a new version".to_owned()
        )
    );
    // Rollback: 0.2.0's only migration is expand, so 0.1.0 may serve again.
    let reply = hub.request("POST", "/api/v1/modules/pk/rollback", None, None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(serving(&hub, "pk"), ("0.1.0".to_owned(), json!("running")));
    assert_eq!(hub.get("/api/v1/pk/build").status, 200);
    // Nothing before 0.1.0.
    assert_eq!(
        error(&hub.request("POST", "/api/v1/modules/pk/rollback", None, None)),
        (
            409,
            "no_previous_version".to_owned(),
            "module 'pk' has no kept version before 0.1.0: nothing to roll back to".to_owned()
        )
    );
    // 0.3.0 applies a migration that is not expand: no way back to 0.2.0 or 0.1.0.
    let reply = hub.install(&v3, None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    // Two kept (HUB_PACKAGE_VERSIONS_KEPT): the last two installed, 0.1.0 again by the rollback.
    assert_eq!(
        versions(&hub, "pk"),
        [("0.3.0".to_owned(), true), ("0.1.0".to_owned(), false)]
    );
    for query in ["", "?to=0.1.0"] {
        let reply = hub.request(
            "POST",
            &format!("/api/v1/modules/pk/rollback{query}"),
            None,
            None,
        );
        let (status, code, _) = error(&reply);
        assert_eq!(
            (status, code.as_str()),
            (409, "migrations_ahead"),
            "{}",
            reply.body
        );
        assert_eq!(
            reply.json()["error"]["details"]["migrations"],
            json!(["0002 narrow"])
        );
    }
    assert_eq!(serving(&hub, "pk").0, "0.3.0");
    let reply = hub.request("POST", "/api/v1/modules/pk/rollback?to=9.9.9", None, None);
    assert_eq!(error(&reply).1, "version_not_kept");
    // Audited, with who and what.
    let audit = hub.get("/api/v1/audit?action=module.rollback").json();
    let first = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["outcome"] == "ok")
        .cloned()
        .expect("a rollback");
    assert_eq!(
        (
            first["module"].clone(),
            first["target"].clone(),
            first["details"]["from"].clone()
        ),
        (json!("pk"), json!("0.1.0"), json!("0.2.0"))
    );
}

#[test]
fn a_package_that_does_not_start_leaves_the_old_version_serving_and_sources_are_never_replaced() {
    let keys = Keys::new();
    let hub = hub_with(&keys)
        .env("HUB_ALLOW_UNSIGNED_PACKAGES", "true")
        .fixture("src", json!({}))
        .file("src/Cargo.toml", "[package]\nname = \"src\"\n")
        .start();
    let v1 = Contents::fixture("fixture", "pk", "0.1.0", json!({})).write(None);
    let reply = hub.install(&v1, None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    let listed = hub.get("/api/v1/modules/pk/versions").json();
    assert_eq!(
        listed["versions"][0]["signer"],
        Value::Null,
        "unsigned, allowed"
    );
    assert!(hub.logs().contains("HUB_ALLOW_UNSIGNED_PACKAGES=true"));
    let before = std::fs::read_to_string(hub.modules_dir().join("pk/module.json")).expect("read");
    // 0.2.0 fails its init: 0.1.0 keeps serving, its folder as it was.
    let broken = Contents::fixture(
        "fixture-v2",
        "pk",
        "0.2.0",
        json!({"config": {"init": "error"}}),
    )
    .write(Some(&keys));
    let reply = hub.install(&broken, None);
    let (status, code, message) = error(&reply);
    assert_eq!(
        (status, code.as_str()),
        (422, "start_failed"),
        "{}",
        reply.body
    );
    assert!(
        message.starts_with("module 'pk' 0.2.0 did not start: ")
            && message.ends_with("; version 0.1.0 keeps serving"),
        "{message}"
    );
    assert_eq!(serving(&hub, "pk"), ("0.1.0".to_owned(), json!("running")));
    assert_eq!(
        std::fs::read_to_string(hub.modules_dir().join("pk/module.json")).expect("read"),
        before
    );
    assert_eq!(
        tree(&hub.modules_dir().join(".staging")),
        Vec::<String>::new()
    );
    // A module whose folder holds a source crate is not replaced by a package.
    let src = Contents::fixture("fixture-v2", "src", "0.2.0", json!({})).write(Some(&keys));
    let reply = hub.install(&src, None);
    assert_eq!(
        error(&reply),
        (
            409,
            "not_from_package".to_owned(),
            "module 'src' in MODULES_DIR was not installed from a package (its folder holds Cargo.toml): move those files away, or install under another name".to_owned()
        )
    );
    assert!(hub.modules_dir().join("src/Cargo.toml").is_file());
}

#[test]
fn without_a_database_kept_versions_live_in_a_folder_the_hub_owns() {
    let keys = Keys::new();
    let hub = Setup::without_database()
        .env("HUB_TRUSTED_KEYS", &keys.public)
        .env("HUB_PACKAGE_MAX_BYTES", &LIMIT.to_string())
        .start();
    let package = Contents::fixture("fixture", "pk", "0.1.0", json!({})).write(Some(&keys));
    let reply = hub.install(&package, None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        tree(&hub.modules_dir().join(".packages/pk")),
        ["0.1.0.hubpkg", "0.1.0.json"]
    );
    assert_eq!(
        std::fs::read(hub.modules_dir().join(".packages/pk/0.1.0.hubpkg")).expect("kept"),
        package
    );
    assert_eq!(versions(&hub, "pk"), [("0.1.0".to_owned(), true)]);
    assert_eq!(
        error(&hub.request("POST", "/api/v1/modules/pk/rollback", None, None)).1,
        "no_previous_version"
    );
}

#[test]
fn uninstall_previews_what_goes_removes_files_and_versions_and_purges_data_in_one_go() {
    let keys = Keys::new();
    let hub = hub_with(&keys)
        .env("MODULES__DBFIX__READ_ONLY", "false")
        .env("MODULES__DBFIX__DRY_RUN", "false")
        .hello()
        .file("hello/Cargo.toml", "[package]\nname = \"module-hello\"\n")
        .start();
    let db = hub.database().expect("a database");
    let dbfix = Contents::library("dbfix", "dbfix", "dbfix", "0.1.0", json!({})).write(Some(&keys));
    assert_eq!(hub.install(&dbfix, None).status, 201);
    let pk = Contents::fixture(
        "fixture",
        "pk",
        "0.1.0",
        json!({"dependencies": {"dbfix": "^0.1"}}),
    )
    .write(Some(&keys));
    let reply = hub.install(&pk, None);
    assert_eq!(reply.status, 201, "{}", reply.body);
    for title in ["one", "two"] {
        let reply = hub.request_with(
            "POST",
            "/api/v1/dbfix/items",
            &[("Content-Type", "application/json".to_owned())],
            Some(&json!({"title": title, "price": 1}).to_string()),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    // The preview: tables with their rows, other objects, migrations, files, versions, roles,
    // and who needs it.
    let preview = hub.get("/api/v1/modules/dbfix/uninstall");
    assert_eq!(preview.status, 200, "{}", preview.body);
    let preview = preview.json();
    assert_eq!(preview["tables"][0]["name"], "dbfix_items", "{preview}");
    assert_eq!(preview["tables"][0]["rows"], 2);
    assert!(preview["tables"][0]["bytes"].as_i64().unwrap_or(0) > 0);
    assert_eq!(
        (
            preview["other_objects"].clone(),
            preview["migrations"].clone(),
            preview["files"].clone(),
            preview["kept_versions"].clone(),
            preview["dependents"].clone(),
            preview["foreign_files"].clone(),
            preview["roles"].as_array().map(Vec::len),
        ),
        (
            json!(["sequence dbfix_items_id_seq"]),
            json!(["0001 init", "0002 title_index"]),
            json!([".package.json", "README.md", "libdbfix.so", "module.json"]),
            json!(["0.1.0"]),
            json!(["pk"]),
            json!([]),
            Some(2)
        )
    );
    // Needed by pk: it stays.
    let reply = hub.request("DELETE", "/api/v1/modules/dbfix?purge=true", None, None);
    assert_eq!(
        error(&reply),
        (
            409,
            "has_dependents".to_owned(),
            "pk needs module 'dbfix': disable it first, or ask for ?cascade=true".to_owned()
        )
    );
    // pk goes, its data kept (it has none): files and versions.
    let reply = hub.request("DELETE", "/api/v1/modules/pk", None, None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["purged"], false);
    assert!(!hub.modules_dir().join("pk").exists());
    assert_eq!(hub.get("/api/v1/modules/pk").status, 404);
    let kept: i64 = db
        .client()
        .query_one("SELECT count(*) FROM hub_packages WHERE module = 'pk'", &[])
        .expect("count")
        .get(0);
    assert_eq!(kept, 0);
    // dbfix with its data: objects, roles and migration rows, in one transaction.
    let reply = hub.request("DELETE", "/api/v1/modules/dbfix?purge=true", None, None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        (
            reply.json()["purged"].clone(),
            reply.json()["migrations_deleted"].clone()
        ),
        (json!(true), json!(2))
    );
    let mut client = db.client();
    let left: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'dbfix%') \
                  + (SELECT count(*) FROM module_migrations WHERE module = 'dbfix') \
                  + (SELECT count(*) FROM hub_module_roles WHERE module = 'dbfix') \
                  + (SELECT count(*) FROM pg_roles WHERE rolname LIKE '%dbfix%')",
            &[],
        )
        .expect("what is left")
        .get(0);
    assert_eq!(left, 0, "nothing of dbfix is left");
    let audit = hub.get("/api/v1/audit?action=module.uninstall").json();
    let purged = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["module"] == "dbfix" && e["outcome"] == "ok")
        .cloned()
        .expect("the purge is audited");
    assert_eq!(
        purged["details"]["dropped"]["tables"],
        json!(["dbfix_items"])
    );
    // A module from a checkout (its folder holds a source crate) is never removed.
    let reply = hub.request("DELETE", "/api/v1/modules/hello", None, None);
    assert_eq!(error(&reply).1, "not_from_package", "{}", reply.body);
    assert!(hub.modules_dir().join("hello/Cargo.toml").is_file());
    assert_eq!(hub.get("/api/v1/hello/ping").status, 200);
}

/// `python3 -m http.server` serving `dir` on loopback, killed on drop.
struct StaticServer {
    child: std::process::Child,
    port: u16,
}

impl StaticServer {
    fn start(dir: &Path) -> StaticServer {
        let port = crate::support::free_port();
        let child = std::process::Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .arg("--directory")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 serves the catalog");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the catalog server never listened"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        StaticServer { child, port }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_catalog_on_a_web_server_lists_what_runs_here_and_installs_with_dependencies() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().expect("catalog dir");
    let packages: Vec<(String, Vec<u8>)> = [
        Contents::library("dbfix", "dbfix", "dbfix", "0.1.0", json!({})),
        Contents::fixture("fixture", "pk", "0.1.0", json!({})),
        Contents::fixture(
            "fixture-v2",
            "pk",
            "0.2.0",
            json!({"dependencies": {"dbfix": "^0.1"}}),
        ),
        Contents::fixture("fixture", "future", "0.1.0", json!({"hub_api": "^9"})),
        Contents::fixture(
            "fixture",
            "orphan",
            "0.1.0",
            json!({"dependencies": {"nothing": "^1"}}),
        ),
    ]
    .into_iter()
    .map(|mut contents| {
        let manifest: Value = serde_json::from_slice(&contents.files[0].1).expect("json");
        contents.info.hub_api = manifest["hub_api"].as_str().map(str::to_owned);
        contents.info.dependencies =
            serde_json::from_value(manifest["dependencies"].clone()).unwrap_or_default();
        let name = format!(
            "packages/{}-{}.hubpkg",
            contents.info.name, contents.info.version
        );
        (name, contents.write(Some(&keys)))
    })
    .collect();
    std::fs::create_dir_all(dir.path().join("packages")).expect("packages dir");
    for (path, bytes) in &packages {
        std::fs::write(dir.path().join(path), bytes).expect("write package");
    }
    let catalog = hub_package::catalog(&packages).expect("catalog");
    std::fs::write(
        dir.path().join("index.json"),
        serde_json::to_vec_pretty(&catalog).expect("json"),
    )
    .expect("index");
    let server = StaticServer::start(dir.path());
    let hub = hub_with(&keys)
        .env(
            "HUB_CATALOGS",
            &format!(
                "http://127.0.0.1:{}/index.json,/nonexistent/catalog",
                server.port
            ),
        )
        .start();
    let page = hub.get("/api/v1/catalog");
    assert_eq!(page.status, 200, "{}", page.body);
    let page = page.json();
    let summary = |page: &Value| -> Vec<Value> {
        page["modules"]
            .as_array()
            .expect("modules")
            .iter()
            .map(|m| {
                json!([
                    m["name"],
                    m["installed"],
                    m["upgrade"],
                    m["versions"]
                        .as_array()
                        .expect("versions")
                        .iter()
                        .map(|v| json!([v["version"], v["runnable"], v["why_not"], v["needs"]]))
                        .collect::<Vec<_>>()
                ])
            })
            .collect()
    };
    assert_eq!(
        summary(&page),
        [
            json!(["dbfix", null, null, [["0.1.0", true, null, []]]]),
            json!([
                "future",
                null,
                null,
                [[
                    "0.1.0",
                    false,
                    format!(
                        "needs plugin-api ^9, this hub has {}",
                        plugin_api::API_VERSION
                    ),
                    []
                ]]
            ]),
            json!([
                "orphan",
                null,
                null,
                [[
                    "0.1.0",
                    false,
                    "needs nothing ^1, which is not installed and no catalog offers",
                    []
                ]]
            ]),
            json!([
                "pk",
                null,
                null,
                [
                    ["0.2.0", true, null, ["dbfix ^0.1"]],
                    ["0.1.0", true, null, []]
                ]
            ]),
        ]
    );
    assert_eq!(
        page["errors"][0]["catalog"], "/nonexistent/catalog",
        "{page}"
    );
    // Without its dependency: refused; with it: dbfix, then pk.
    let reply = hub.request("POST", "/api/v1/catalog/pk/install", None, None);
    assert_eq!(error(&reply).1, "dependencies_missing", "{}", reply.body);
    let reply = hub.request(
        "POST",
        "/api/v1/catalog/pk/install?with_dependencies=true",
        None,
        None,
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(
        reply.json()["installed"],
        json!([
            {"name": "dbfix", "version": "0.1.0", "changed": true},
            {"name": "pk", "version": "0.2.0", "changed": true}
        ])
    );
    assert_eq!(reply.json()["module"]["state"], "running");
    let page = hub.get("/api/v1/catalog").json();
    assert_eq!(page["modules"][3]["installed"], "0.2.0");
    // What this hub cannot run is not installed; a package that is not what its index lists
    // is refused before its signature is even read.
    let reply = hub.request("POST", "/api/v1/catalog/future/install", None, None);
    assert_eq!(
        error(&reply),
        (
            404,
            "not_in_catalog".to_owned(),
            "no catalog offers module 'future' in a version this hub can run: GET /api/v1/catalog lists what they offer".to_owned()
        )
    );
    // A folder works as a catalog too; an older version installed shows the upgrade.
    let folder = hub_with(&keys)
        .env("HUB_CATALOGS", &dir.path().to_string_lossy())
        .start();
    let page = folder.get("/api/v1/catalog").json();
    assert_eq!(page["modules"].as_array().map(Vec::len), Some(4), "{page}");
    let reply = folder.request(
        "POST",
        "/api/v1/catalog/pk/install?version=0.1.0",
        None,
        None,
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let page = folder.get("/api/v1/catalog").json();
    assert_eq!(
        (
            page["modules"][3]["installed"].clone(),
            page["modules"][3]["upgrade"].clone()
        ),
        (json!("0.1.0"), json!("0.2.0"))
    );
    let mut tampered = std::fs::read(dir.path().join("packages/pk-0.1.0.hubpkg")).expect("read");
    tampered.push(0);
    std::fs::write(dir.path().join("packages/pk-0.1.0.hubpkg"), tampered).expect("write");
    let reply = hub.request(
        "POST",
        "/api/v1/catalog/pk/install?version=0.1.0",
        None,
        None,
    );
    let (status, code, message) = error(&reply);
    assert_eq!((status, code.as_str()), (422, "hash_mismatch"), "{message}");
    assert!(
        message.starts_with("the package at packages/pk-0.1.0.hubpkg has SHA-256 "),
        "{message}"
    );
    assert_eq!(serving(&hub, "pk").0, "0.2.0");
}
