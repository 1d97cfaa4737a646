//! The test harness of the hub and of every module: a real `hub` process on loopback, over a
//! temporary `MODULES_DIR` filled with real module libraries, a database of the test's own in
//! the cluster `cargo xtask test` started, and an HTTP client; [`browser`], a real headless
//! chromium for tests of the pages; [`nginx`], Debian's nginx in front of several hubs.
//!
//! `cargo xtask test` builds the hub, the modules and the fixtures first and exports where they
//! are: `HUB_TEST_BIN` (the hub binary), `HUB_TEST_PLUGINS` (`plugins/`, libraries installed),
//! `HUB_TEST_ARTIFACTS` (the test fixtures) and `DATABASE_URL`. Without them a test fails with
//! "run cargo xtask test"; it never skips.
//!
//! A module tests itself like this (see `plugins/_template/tests/`):
//!
//! ```text
//! let hub = hub_testkit::Setup::new().module_folder(env!("CARGO_MANIFEST_DIR")).start();
//! assert_eq!(hub.get("/api/v1/tmplmod/health").status, 200);
//! ```

pub mod browser;
pub mod nginx;
pub mod oidc;
pub mod packages;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const TOKEN: &str = "test-admin-token";

/// The hub binary `cargo xtask test` built.
pub fn hub_binary() -> PathBuf {
    match std::env::var_os("HUB_TEST_BIN") {
        Some(path) => PathBuf::from(path),
        None => panic!("HUB_TEST_BIN is not set: run the tests with `cargo xtask test`"),
    }
}

/// Where `cargo xtask test` put the fixture libraries.
pub fn artifacts() -> PathBuf {
    match std::env::var_os("HUB_TEST_ARTIFACTS") {
        Some(dir) => PathBuf::from(dir),
        None => panic!("HUB_TEST_ARTIFACTS is not set: run the tests with `cargo xtask test`"),
    }
}

/// The workspace's `plugins/`, with libraries built by `cargo xtask test`.
pub fn plugins() -> PathBuf {
    match std::env::var_os("HUB_TEST_PLUGINS") {
        Some(dir) => PathBuf::from(dir),
        None => panic!("HUB_TEST_PLUGINS is not set: run the tests with `cargo xtask test`"),
    }
}

pub fn lib_file(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// The cluster `cargo xtask test` started (or the one `DATABASE_URL` names).
pub fn cluster_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!("DATABASE_URL is not set: run the tests with `cargo xtask test`"),
    }
}

/// A database of one test's own, dropped (`WITH (FORCE)`) when the test ends, with the roles
/// the hub created in it. The hub connects as the database's owner, a role of the test's own that
/// is not a superuser (PostgreSQL enforces privileges on it, as on a real deployment's hub) but
/// may create roles (the modules' roles).
pub struct TestDb {
    pub name: String,
    /// The hub's `DATABASE_URL`: the owner role.
    pub url: String,
    /// The owner role.
    pub owner: String,
    /// The cluster's superuser on this database, for the test's own checks.
    admin_url: String,
}

impl TestDb {
    pub fn create() -> TestDb {
        let name = format!("hub_test_{}", uuid_like());
        let owner = format!("{name}_owner");
        let mut admin = admin_client();
        admin
            .batch_execute(&format!("CREATE ROLE {owner} LOGIN CREATEROLE"))
            .expect("create the test database's owner");
        admin
            .batch_execute(&format!("CREATE DATABASE {name} OWNER {owner}"))
            .expect("create the test database");
        let url = with_user(&replace_database(&cluster_url(), &name), &owner);
        let admin_url = replace_database(&cluster_url(), &name);
        TestDb {
            name,
            url,
            owner,
            admin_url,
        }
    }

    /// A client of this database, as the cluster's superuser.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.admin_url, postgres::NoTls)
            .expect("connect to the test database")
    }
}

fn admin_client() -> postgres::Client {
    postgres::Client::connect(&cluster_url(), postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot reach the test cluster ({e}): run `cargo xtask test`"))
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // The roles the hub created for modules in this database (never another's).
        let roles: Vec<String> = postgres::Client::connect(&self.admin_url, postgres::NoTls)
            .ok()
            .and_then(|mut c| {
                c.query(
                    "SELECT writer, reader FROM hub_module_roles \
                     WHERE to_regclass('hub_module_roles') IS NOT NULL",
                    &[],
                )
                .ok()
            })
            .map(|rows| {
                rows.iter()
                    .flat_map(|r| [r.get::<_, String>(0), r.get::<_, String>(1)])
                    .collect()
            })
            .unwrap_or_default();
        if let Ok(mut admin) = postgres::Client::connect(&cluster_url(), postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
            for role in roles.iter().chain([&self.owner]) {
                let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS \"{role}\""));
            }
        }
    }
}

/// `url` with its user replaced by `user`.
pub fn with_user(url: &str, user: &str) -> String {
    match url.split_once("://").and_then(|(scheme, rest)| {
        let (_, host) = rest.split_once('@')?;
        Some(format!("{scheme}://{user}@{host}"))
    }) {
        Some(url) => url,
        None => url.to_owned(),
    }
}

/// `url` with its database replaced by `database`.
pub fn replace_database(url: &str, database: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a database in the URL");
    format!("{base}/{database}")
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}_{nanos:x}_{n}", std::process::id())
}

/// A temporary `MODULES_DIR` being filled before the hub starts, with a database of its own.
pub struct Setup {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    db: Option<std::sync::Arc<TestDb>>,
}

impl Default for Setup {
    /// A setup with a database of its own.
    fn default() -> Setup {
        Setup::new()
    }
}

impl Setup {
    pub fn new() -> Setup {
        Setup::with_database(Some(std::sync::Arc::new(TestDb::create())))
    }

    /// A setup whose hub has no `DATABASE_URL`.
    pub fn without_database() -> Setup {
        Setup::with_database(None)
    }

    /// A setup whose hub uses `db` (shared with another setup, e.g. two hubs on one database).
    pub fn with_database(db: Option<std::sync::Arc<TestDb>>) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("plugins")).expect("plugins dir");
        std::fs::create_dir_all(dir.path().join("runtime")).expect("runtime dir");
        Setup {
            dir,
            env: Vec::new(),
            db,
        }
    }

    /// The test's database.
    pub fn db(&self) -> std::sync::Arc<TestDb> {
        self.db.clone().expect("this setup has a database")
    }

    /// The database fixture installed as module `dbfix` (enabled), with `extra` manifest keys.
    pub fn dbfix(self, extra: Value) -> Setup {
        let mut manifest =
            serde_json::json!({"name": "dbfix", "version": "0.1.0", "enabled": true});
        if let (Some(m), Value::Object(extra)) = (manifest.as_object_mut(), extra) {
            m.extend(extra);
        }
        let setup = self.file("dbfix/module.json", &manifest.to_string());
        let from = artifacts().join("dbfix").join(lib_file("dbfix"));
        std::fs::copy(
            &from,
            setup.modules_dir().join("dbfix").join(lib_file("dbfix")),
        )
        .unwrap_or_else(|e| panic!("copy {}: {e} (run cargo xtask test)", from.display()));
        setup
    }
    pub fn modules_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// The example module `hello`, as `cargo xtask build` left it in `plugins/`.
    pub fn hello(self) -> Setup {
        self.example("hello")
    }

    /// The module whose crate is `folder` (a module's tests pass `env!("CARGO_MANIFEST_DIR")`),
    /// with the library `cargo xtask build` installed there, enabled.
    pub fn module_folder(self, folder: &str) -> Setup {
        let folder = PathBuf::from(folder);
        let text = std::fs::read_to_string(folder.join("module.json"))
            .unwrap_or_else(|e| panic!("read {}/module.json: {e}", folder.display()));
        let mut manifest: Value = serde_json::from_str(&text).expect("module.json is JSON");
        manifest["enabled"] = Value::Bool(true);
        let name = manifest["name"].as_str().expect("a name").to_owned();
        let lib = lib_file(&name);
        let setup = self.file(&format!("{name}/module.json"), &manifest.to_string());
        std::fs::copy(
            folder.join(&lib),
            setup.modules_dir().join(&name).join(&lib),
        )
        .unwrap_or_else(|e| {
            panic!(
                "copy {}/{lib}: {e} (run cargo xtask test, which builds it)",
                folder.display()
            )
        });
        setup
    }

    /// An example module of `plugins/`, as `cargo xtask build` left it there.
    pub fn example(self, name: &str) -> Setup {
        let folder = self.modules_dir().join(name);
        std::fs::create_dir_all(&folder).expect("module folder");
        for file in ["module.json".to_owned(), lib_file(name)] {
            std::fs::copy(plugins().join(name).join(&file), folder.join(&file))
                .unwrap_or_else(|e| panic!("copy {name}/{file}: {e} (run cargo xtask test)"));
        }
        self
    }

    /// The fixture library installed as module `name` (enabled, version 0.1.0), with `extra`
    /// keys merged into its manifest.
    pub fn fixture(self, name: &str, extra: Value) -> Setup {
        self.fixture_from("fixture", name, extra)
    }

    /// Like [`Setup::fixture`], from the fixture build in `artifacts()/<build>`.
    pub fn fixture_from(self, build: &str, name: &str, extra: Value) -> Setup {
        let mut manifest = serde_json::json!({"name": name, "version": "0.1.0", "enabled": true});
        if let (Some(m), Value::Object(extra)) = (manifest.as_object_mut(), extra) {
            m.extend(extra);
        }
        let setup = self.file(&format!("{name}/module.json"), &manifest.to_string());
        let from = artifacts().join(build).join(lib_file("fixture"));
        std::fs::copy(&from, setup.modules_dir().join(name).join(lib_file(name)))
            .unwrap_or_else(|e| panic!("copy {}: {e} (run cargo xtask test)", from.display()));
        setup
    }

    /// Write `contents` to `path` under `MODULES_DIR`, creating folders.
    pub fn file(self, path: &str, contents: &str) -> Setup {
        let path = self.modules_dir().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("folders");
        std::fs::write(&path, contents).expect("write file");
        self
    }

    pub fn env(mut self, var: &str, value: &str) -> Setup {
        self.env.push((var.to_owned(), value.to_owned()));
        self
    }

    /// Start the hub and wait until it listens.
    pub fn start(self) -> Hub {
        let mut command = Command::new(hub_binary());
        for (var, _) in std::env::vars() {
            if var.starts_with("HUB_")
                || var.starts_with("MODULES")
                || var == "RUST_LOG"
                || var == "DATABASE_URL"
            {
                command.env_remove(var);
            }
        }
        command
            .current_dir(self.dir.path())
            .env("HUB_BIND", "127.0.0.1:0")
            .env("HUB_ADMIN_TOKEN", TOKEN)
            .env("HUB_WORKERS", "1")
            .env("HUB_RUNTIME_DIR", self.dir.path().join("runtime"))
            .env("MODULES_DIR", self.modules_dir())
            .env("RUST_LOG", "info")
            .env("HUB_DB_RETRY_MS", "200")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(db) = self
            .db
            .as_ref()
            .filter(|_| !self.env.iter().any(|(k, _)| k == "DATABASE_URL"))
        {
            command.env("DATABASE_URL", &db.url);
        }

        let mut child = command.spawn().expect("start the hub");
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    logs.lock().expect("logs").push(line);
                }
            });
        }
        let mut hub = Hub {
            child,
            base: String::new(),
            logs,
            _setup: self,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .max_redirects_will_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
        };
        let found = hub.wait_for_log("listening on http://", Duration::from_secs(30));
        let line = found.unwrap_or_else(|| panic!("the hub did not start:\n{}", hub.logs()));
        let addr = line.split("listening on http://").nth(1).expect("address");
        hub.base = format!("http://{}", addr.split(['"', ' ']).next().expect("address"));
        hub
    }
}

/// A running hub process; killed on drop.
pub struct Hub {
    child: Child,
    pub base: String,
    logs: Arc<Mutex<Vec<String>>>,
    /// Keeps the temporary folders until the hub is gone.
    _setup: Setup,
    agent: ureq::Agent,
}

/// A response: status, headers of interest, body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub allow: Option<String>,
    pub content_type: Option<String>,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub retry_after: Option<String>,
    /// `X-Request-Id`: the request's id as the hub answered it.
    pub request_id: Option<String>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

impl Hub {
    /// The hub process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The hub's `MODULES_DIR`.
    /// The hub's database, if it has one.
    pub fn database(&self) -> Option<std::sync::Arc<TestDb>> {
        self._setup.db.clone()
    }

    pub fn modules_dir(&self) -> PathBuf {
        self._setup.modules_dir()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().expect("logs").join("\n")
    }

    /// Wait for a log line containing `needle`; the line, or `None` after `timeout`.
    /// Wait up to 5 s for `check` to hold (a reload applied, a state reached); panics naming
    /// `what`, with the hub's log, when it does not.
    pub fn eventually(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !check() {
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within 5 s:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .logs
                .lock()
                .expect("logs")
                .iter()
                .find(|l| l.contains(needle))
            {
                return Some(line.clone());
            }
            if Instant::now() > deadline || matches!(self.child.try_wait(), Ok(Some(_))) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A request with `Authorization: Bearer <token>`; `None` sends the admin token ([`TOKEN`]),
    /// as a script of the operator's would. [`Hub::anonymous`] sends none.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let headers = [(
            "Authorization",
            format!("Bearer {}", token.unwrap_or(TOKEN)),
        )];
        self.send(method, path, &headers, body)
    }

    /// A request without credentials.
    pub fn anonymous(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        self.send(method, path, &[], body)
    }

    /// `GET path` on a thread of its own, for a request that must be in flight while the test
    /// acts (a reload, a signal); joining gives its status and body, or why it failed.
    pub fn get_in_background(
        &self,
        path: &str,
    ) -> std::thread::JoinHandle<Result<(u16, String), String>> {
        let (agent, url) = (self.agent.clone(), format!("{}{path}", self.base));
        std::thread::spawn(move || {
            let mut response = agent
                .get(&url)
                .header("Authorization", format!("Bearer {TOKEN}"))
                .call()
                .map_err(|e| e.to_string())?;
            let body = response
                .body_mut()
                .read_to_string()
                .map_err(|e| e.to_string())?;
            Ok((response.status().as_u16(), body))
        })
    }

    /// `POST` an HTML form (`application/x-www-form-urlencoded`) to `path`.
    pub fn post_form(&self, path: &str, body: &str) -> Reply {
        let headers = [(
            "Content-Type",
            "application/x-www-form-urlencoded".to_owned(),
        )];
        self.request_with("POST", path, &headers, Some(body))
    }

    /// A request with `headers` (and the admin token, unless `headers` carry `Authorization` or
    /// `Cookie`); redirects are not followed.
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&str>,
    ) -> Reply {
        let credentials = headers.iter().any(|(name, _)| {
            name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("cookie")
        });
        if credentials {
            return self.send(method, path, headers, body);
        }
        let mut with_token = headers.to_vec();
        with_token.push(("Authorization", format!("Bearer {TOKEN}")));
        self.send(method, path, &with_token, body)
    }

    /// A request with exactly `headers`; redirects are not followed.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<&str>,
    ) -> Reply {
        self.send_bytes(method, path, headers, body.unwrap_or_default().as_bytes())
    }

    /// [`Hub::send`] with any bytes as the body.
    pub fn send_bytes(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut builder = ureq::http::Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let request = builder.body(body.to_vec()).expect("request");
        let mut response = self
            .agent
            .run(request)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (allow, content_type, location) =
            (header("allow"), header("content-type"), header("location"));
        let (set_cookie, retry_after) = (header("set-cookie"), header("retry-after"));
        let request_id = header("x-request-id");
        Reply {
            status: response.status().as_u16(),
            body: response.body_mut().read_to_string().expect("body"),
            allow,
            content_type,
            location,
            set_cookie,
            retry_after,
            request_id,
        }
    }

    /// `POST /api/v1/packages` with `package` as the body, as `token` (the admin token for
    /// `None`).
    pub fn install(&self, package: &[u8], token: Option<&str>) -> Reply {
        self.install_with("", package, token)
    }

    /// [`Hub::install`] with `query` (`?rollout=rolling`, say) after the path.
    pub fn install_with(&self, query: &str, package: &[u8], token: Option<&str>) -> Reply {
        let headers = [
            (
                "Authorization",
                format!("Bearer {}", token.unwrap_or(TOKEN)),
            ),
            ("Content-Type", "application/octet-stream".to_owned()),
        ];
        self.send_bytes(
            "POST",
            &format!("/api/v1/packages{query}"),
            &headers,
            package,
        )
    }

    /// `GET path` with the admin token.
    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None, None)
    }

    /// `GET path` without credentials.
    pub fn anonymous_get(&self, path: &str) -> Reply {
        self.anonymous("GET", path, None)
    }

    pub fn admin_get(&self, path: &str) -> Reply {
        self.request("GET", path, Some(TOKEN), None)
    }

    pub fn admin_post(&self, path: &str) -> Reply {
        self.request("POST", path, Some(TOKEN), None)
    }

    /// The module object of `name`.
    pub fn module(&self, name: &str) -> Value {
        let reply = self.admin_get(&format!("/api/v1/modules/{name}"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    /// Send `request_line` (e.g. `GET /x HTTP/1.1`) byte for byte; the status code. For paths a
    /// client library would normalize.
    pub fn raw_status(&self, method: &str, target: &str) -> u16 {
        let addr = self.base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).expect("connect");
        write!(
            stream,
            "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {response:?}"))
    }
}

impl Hub {
    /// Send `signal` (e.g. `TERM`, `INT`) to the hub process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Wait up to `timeout` for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Whether a new TCP connection to the hub is accepted.
    pub fn accepts_connections(&self) -> bool {
        TcpStream::connect(self.base.trim_start_matches("http://")).is_ok()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy in front of the test cluster, to cut the hub off its database without touching
/// the cluster every test shares. While down it closes every connection it carries and every
/// new one at once.
pub struct Proxy {
    pub port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// A proxy to the cluster's port, up or down.
    pub fn start(up: bool) -> Proxy {
        let url = cluster_url();
        let authority = url
            .split('@')
            .nth(1)
            .and_then(|r| r.split('/').next())
            .expect("host:port in DATABASE_URL");
        let target = authority.to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        let port = listener.local_addr().expect("proxy address").port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(up));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (flag, conns) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if !flag.load(std::sync::atomic::Ordering::SeqCst) {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                for stream in [&client, &server] {
                    if let Ok(clone) = stream.try_clone() {
                        conns.lock().expect("conns").push(clone);
                    }
                }
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, up, open }
    }

    /// `DATABASE_URL` through this proxy, to `database`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
        if !up {
            for stream in self.open.lock().expect("conns").drain(..) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}
