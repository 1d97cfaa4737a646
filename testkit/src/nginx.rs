//! Debian's nginx in front of hubs, for the tests of a fleet behind a load balancer: the
//! upstream and proxying of `deploy/nginx.conf` (the same server options, keep-alive, headers,
//! timeouts and `proxy_next_upstream`; a test holds them to the committed file), over plain HTTP
//! on a free loopback port.
//!
//! [`Nginx::start`] writes `nginx.conf` into a fresh temporary folder that also holds its pid
//! file, logs and temporary files, runs `nginx -c … -p … -e …` in the foreground (`daemon off`),
//! and waits until it accepts connections; dropping the [`Nginx`] stops it (SIGTERM, then a
//! wait) and removes the folder. `cargo xtask test` installs nginx (`apt-get install nginx`).
//!
//! ```text
//! let upstreams: Vec<String> =
//!     hubs.iter().map(|hub| hub.base.trim_start_matches("http://").to_owned()).collect();
//! let nginx = hub_testkit::nginx::Nginx::start(&upstreams)?;
//! let answer = ureq::get(&format!("{}/healthz", nginx.url())).call()?;
//! ```

use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The options of each hub's `server` line in `deploy/nginx.conf`'s upstream.
pub const SERVER_OPTIONS: &str = "max_fails=3 fail_timeout=10s";

/// `deploy/nginx.conf`'s upstream directives after its `server` lines.
pub const UPSTREAM: &[&str] = &[
    "keepalive 32;",
    "keepalive_timeout 4s;",
    "keepalive_requests 1000;",
];

/// `deploy/nginx.conf`'s directives of how a request reaches a hub.
pub const PROXY: &[&str] = &[
    "client_max_body_size 64m;",
    "proxy_http_version 1.1;",
    "proxy_set_header Connection \"\";",
    "proxy_set_header Host $http_host;",
    "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    "proxy_set_header X-Forwarded-Proto $scheme;",
    "proxy_connect_timeout 2s;",
    "proxy_send_timeout 60s;",
    "proxy_read_timeout 60s;",
    "proxy_next_upstream error timeout;",
];

/// How long nginx may take to accept connections after it is spawned.
const START: Duration = Duration::from_secs(10);

/// How long nginx may take to stop after SIGTERM before it is killed.
const STOP: Duration = Duration::from_secs(10);

/// How often the start looks again.
const POLL: Duration = Duration::from_millis(20);

/// A running nginx process in front of the `upstreams` it was started with.
pub struct Nginx {
    child: Child,
    port: u16,
    /// The configuration, logs, pid file and temporary files; removed after nginx is gone.
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Start nginx on a free loopback port in front of `upstreams` (`127.0.0.1:port` each: the
    /// hubs' addresses, in the order of the upstream's `server` lines). The error names the
    /// nginx binary, the configuration file, and has what nginx wrote.
    pub fn start(upstreams: &[String]) -> anyhow::Result<Nginx> {
        if upstreams.is_empty() {
            bail!("nginx needs at least one upstream address");
        }
        let binary = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("hub-nginx-")
            .tempdir()
            .context("cannot make a temporary folder for nginx")?;
        // A port found free may be taken before nginx binds it: try a few.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port().context("cannot find a free loopback port for nginx")?;
            let config = dir.path().join("nginx.conf");
            std::fs::write(&config, render(dir.path(), port, upstreams, is_root()))
                .with_context(|| format!("cannot write {}", config.display()))?;
            let _ = std::fs::remove_file(dir.path().join("error.log"));
            let stderr = dir.path().join("stderr.log");
            let stderr_file = std::fs::File::create(&stderr)
                .with_context(|| format!("cannot create {}", stderr.display()))?;
            let mut child = Command::new(&binary)
                .arg("-c")
                .arg(&config)
                .arg("-p")
                .arg(dir.path())
                // The error log until the configuration is read (the compiled-in one,
                // /var/log/nginx/error.log, is not every user's to write).
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr_file)
                .spawn()
                .with_context(|| format!("cannot run {}", binary.display()))?;
            match wait_until_accepting(&mut child, port) {
                Ok(()) => return Ok(Nginx { child, port, dir }),
                Err(why) => {
                    stop(&mut child);
                    let output = output_of(dir.path());
                    // Only a port taken in the meantime is worth another try.
                    if attempt == 3 || !output.contains("Address already in use") {
                        bail!(
                            "{} -c {} on 127.0.0.1:{port} {why}\n{output}",
                            binary.display(),
                            config.display()
                        );
                    }
                }
            }
        }
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder of `nginx.conf`, `error.log` and `access.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The access log so far: a line per request with the hubs it went to
    /// (`upstream=127.0.0.1:8081, 127.0.0.1:8082` when the first failed) and their statuses.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// The error log so far (a hub nginx could not reach, and why).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Poll until a connection to `port` is accepted; why not, if nginx exits or takes too long.
fn wait_until_accepting(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited ({status})"));
        }
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("did not accept connections within {START:?}"));
        }
        std::thread::sleep(POLL);
    }
}

/// SIGTERM (nginx's fast shutdown: the master stops its workers, then exits), a wait, and
/// SIGKILL if it is still there.
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + STOP;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(POLL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The configuration: `deploy/nginx.conf`'s upstream and proxying, plain HTTP on `port`,
/// every file nginx writes in `dir`. `user root` as root: workers would otherwise run as
/// `nobody`, who cannot read `dir`.
fn render(dir: &Path, port: u16, upstreams: &[String], root: bool) -> String {
    let path = |name: &str| dir.join(name).display().to_string();
    let mut out = String::new();
    if root {
        out.push_str("user root;\n");
    }
    let _ = writeln!(out, "daemon off;");
    let _ = writeln!(out, "worker_processes 1;");
    let _ = writeln!(out, "pid {};", path("nginx.pid"));
    let _ = writeln!(out, "error_log {} notice;", path("error.log"));
    let _ = writeln!(out, "events {{\n    worker_connections 512;\n}}");
    let _ = writeln!(out, "http {{");
    let _ = writeln!(
        out,
        "    log_format hub '$request_method $request_uri $status upstream=$upstream_addr \
         upstream_status=$upstream_status';"
    );
    let _ = writeln!(out, "    access_log {} hub;", path("access.log"));
    for (directive, folder) in [
        ("client_body_temp_path", "client_body"),
        ("proxy_temp_path", "proxy"),
        ("fastcgi_temp_path", "fastcgi"),
        ("uwsgi_temp_path", "uwsgi"),
        ("scgi_temp_path", "scgi"),
    ] {
        let _ = writeln!(out, "    {directive} {};", path(folder));
    }
    let _ = writeln!(out, "    upstream hub {{");
    for upstream in upstreams {
        let _ = writeln!(out, "        server {upstream} {SERVER_OPTIONS};");
    }
    for line in UPSTREAM {
        let _ = writeln!(out, "        {line}");
    }
    let _ = writeln!(out, "    }}");
    let _ = writeln!(out, "    server {{");
    let _ = writeln!(out, "        listen 127.0.0.1:{port};");
    for line in PROXY {
        let _ = writeln!(out, "        {line}");
    }
    let _ = writeln!(
        out,
        "        location / {{\n            proxy_pass http://hub;\n        }}"
    );
    let _ = writeln!(out, "    }}");
    let _ = writeln!(out, "}}");
    out
}

/// nginx: on `PATH`, or in `/usr/sbin` (Debian's place for it, not on an ordinary user's
/// `PATH`).
fn binary() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|folder| folder.join("nginx"))
        .find(|candidate| candidate.is_file())
        .context(
            "nginx is not on PATH nor in /usr/sbin: install Debian's nginx (`sudo apt-get install \
             nginx`), or run the tests with `cargo xtask test`, which installs it as root",
        )
}

/// A loopback port nobody listens on now.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Whether this process runs as root.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// What nginx wrote to stderr and to its error log, and the configuration it was given (the
/// folder goes with the error), for an error message.
fn output_of(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["stderr.log", "error.log", "nginx.conf"] {
        let file = dir.join(name);
        match std::fs::read_to_string(&file) {
            Ok(text) if text.trim().is_empty() => {
                let _ = writeln!(out, "{} is empty", file.display());
            }
            Ok(text) => {
                let _ = writeln!(out, "{}:\n{}", file.display(), text.trim_end());
            }
            Err(e) => {
                let _ = writeln!(out, "cannot read {}: {e}", file.display());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::sync::{Arc, Mutex};

    use super::*;

    /// The committed configuration the essentials come from.
    const DEPLOYED: &str = include_str!("../../deploy/nginx.conf");

    #[test]
    fn the_essentials_are_those_of_deploy_nginx_conf() {
        let lines: Vec<&str> = DEPLOYED
            .lines()
            .map(|line| line.split('#').next().unwrap_or_default().trim())
            .filter(|line| !line.is_empty())
            .collect();
        for directive in UPSTREAM.iter().chain(PROXY) {
            assert!(
                lines.contains(directive),
                "deploy/nginx.conf has no line `{directive}`: change both together"
            );
        }
        let upstream: Vec<&&str> = lines
            .iter()
            .skip_while(|l| **l != "upstream hub {")
            .take_while(|l| **l != "}")
            .collect();
        let servers: Vec<&&str> = upstream
            .iter()
            .copied()
            .filter(|l| l.starts_with("server "))
            .collect();
        assert!(!servers.is_empty(), "deploy/nginx.conf lists no hub");
        for server in servers {
            assert!(
                server.ends_with(&format!("{SERVER_OPTIONS};")),
                "`{server}` in deploy/nginx.conf: each hub's options are `{SERVER_OPTIONS}`"
            );
        }
    }

    /// One request as a stand-in hub saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        headers: BTreeMap<String, String>,
        /// Which of the stand-in's connections it came on (0, 1, …).
        connection: usize,
    }

    /// A stand-in hub on a loopback port answering every request with `status` over keep-alive
    /// connections; what it saw.
    struct Upstream {
        address: String,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl Upstream {
        fn start(status: u16) -> Upstream {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a listener");
            let address = listener.local_addr().expect("its address").to_string();
            let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
            let log = seen.clone();
            std::thread::spawn(move || {
                for (connection, stream) in listener.incoming().enumerate() {
                    let Ok(stream) = stream else { continue };
                    let log = log.clone();
                    std::thread::spawn(move || serve(stream, status, connection, &log));
                }
            });
            Upstream { address, seen }
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().expect("seen").clone()
        }
    }

    /// Answer the requests of one connection until the peer closes it.
    fn serve(stream: TcpStream, status: u16, connection: usize, log: &Mutex<Vec<Seen>>) {
        let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
        let mut writer = stream;
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let mut headers = BTreeMap::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
                }
            }
            let length = headers
                .get("content-length")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let close = headers
                .get("connection")
                .is_some_and(|c| c.eq_ignore_ascii_case("close"));
            let method = request_line
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_owned();
            log.lock().expect("seen").push(Seen {
                method,
                headers,
                connection,
            });
            let body = format!("{{\"status\":{status}}}");
            let answer = format!(
                "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if writer.write_all(answer.as_bytes()).is_err() || close {
                return;
            }
        }
    }

    /// `method /path` to nginx on a connection of its own; the status and the body.
    fn send(nginx: &Nginx, method: &str, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, nginx.port())).expect("connect");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
            nginx.url().trim_start_matches("http://")
        )
        .expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {answer:?}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        (status, body.to_owned())
    }

    #[test]
    fn a_hubs_own_503_is_its_answer_and_a_write_is_never_sent_twice() {
        let failing = Upstream::start(503);
        let serving = Upstream::start(200);
        let nginx = Nginx::start(&[failing.address.clone(), serving.address.clone()])
            .expect("nginx starts");
        // Round robin: one write reaches each; the one the failing hub got is not sent again,
        // and its answer (the hub's own body) reaches the client.
        let mut writes = [send(&nginx, "POST", "/w"), send(&nginx, "POST", "/w")];
        writes.sort();
        assert_eq!(
            writes,
            [
                (200, "{\"status\":200}".to_owned()),
                (503, "{\"status\":503}".to_owned())
            ],
            "{}",
            nginx.access_log()
        );
        let posts = |u: &Upstream| u.seen().iter().filter(|s| s.method == "POST").count();
        assert_eq!((posts(&failing), posts(&serving)), (1, 1));
        // Reads too: a hub's 503 is its answer (a module or the database, not the hub), not
        // passed on, and does not take the hub out: it keeps getting its share.
        let mut reads: Vec<u16> = (0..8).map(|_| send(&nginx, "GET", "/r").0).collect();
        reads.sort();
        assert_eq!(
            reads,
            [200, 200, 200, 200, 503, 503, 503, 503],
            "{}",
            nginx.access_log()
        );
        let gets = |u: &Upstream| u.seen().iter().filter(|s| s.method == "GET").count();
        assert_eq!((gets(&failing), gets(&serving)), (4, 4));
        let seen = serving.seen();
        let host = nginx.url().trim_start_matches("http://").to_owned();
        for request in &seen {
            assert_eq!(request.headers.get("host"), Some(&host), "{request:?}");
            assert_eq!(
                request.headers.get("x-forwarded-for").map(String::as_str),
                Some("127.0.0.1"),
                "{request:?}"
            );
            assert_eq!(
                request.headers.get("x-forwarded-proto").map(String::as_str),
                Some("http"),
                "{request:?}"
            );
            assert_eq!(request.headers.get("connection"), None, "{request:?}");
        }
        // Keep-alive: one connection to the serving hub carried every request nginx sent it.
        assert!(
            seen.iter().all(|s| s.connection == seen[0].connection),
            "{seen:?}"
        );
    }

    #[test]
    fn a_write_no_hub_received_goes_on_to_the_next() {
        // A port nobody listens on: the connection is refused before anything is sent.
        let gone = free_port().expect("a free port");
        let serving = Upstream::start(200);
        let nginx = Nginx::start(&[format!("127.0.0.1:{gone}"), serving.address.clone()])
            .expect("nginx starts");
        for _ in 0..4 {
            assert_eq!(send(&nginx, "POST", "/w").0, 200, "{}", nginx.access_log());
        }
        assert_eq!(serving.seen().len(), 4);
        assert!(
            nginx.error_log().contains("Connection refused"),
            "{}",
            nginx.error_log()
        );
    }

    #[test]
    fn a_configuration_nginx_refuses_is_an_error_naming_it() {
        let error = Nginx::start(&["not an address".to_owned()])
            .err()
            .expect("nginx refuses the configuration");
        let message = format!("{error:#}");
        for needed in [
            "nginx -c ",
            "/nginx.conf ",
            "invalid parameter",
            "server not an address",
        ] {
            assert!(message.contains(needed), "{needed:?} in {message}");
        }
    }
}
