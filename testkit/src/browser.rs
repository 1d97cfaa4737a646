//! A real browser for the browser tests: Debian's `chromium`, headless, driven through
//! `chromedriver` (WebDriver) on a free loopback port, behind a blocking facade over the
//! `fantoccini` client.
//!
//! [`Browser::start`] spawns `chromedriver` (its output in a log file in a temporary folder that
//! also holds chromium's profile), waits until it answers and opens a session; dropping the
//! [`Browser`] deletes the session (chromedriver quits chromium), stops `chromedriver` and kills
//! any chromium process of that profile still there. `cargo xtask test` installs both programs
//! (`apt-get install chromium chromium-driver`); without them a test fails saying so, it never
//! skips.
//!
//! Every call panics when it cannot do what it says, naming what it looked for and the page it
//! was on. Lookups take CSS selectors and do not wait: after a click that changes the page, wait
//! for what should appear with [`Browser::wait_for`] or [`Browser::wait_for_text`].
//!
//! ```text
//! let browser = hub_testkit::browser::Browser::start();
//! browser.goto(&format!("{}/login", hub.url));
//! browser.fill("input[name=token]", hub_testkit::TOKEN);
//! browser.click("button[type=submit]");
//! browser.wait_for_text("h1", "Modules", Duration::from_secs(5));
//! ```

use std::fmt::Display;
use std::future::Future;
use std::io::Read as _;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long one WebDriver command may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `chromedriver` may take to answer `/status` after it is spawned.
const DRIVER_START: Duration = Duration::from_secs(10);

/// How often [`Browser::wait_for`] and [`Browser::wait_for_text`] look again.
const POLL: Duration = Duration::from_millis(50);

/// How many characters of the page a failed wait shows.
const EXCERPT: usize = 2000;

/// A headless chromium, one WebDriver session, its own `chromedriver` and profile.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    /// `None` once the session is closed (in `drop`).
    client: Option<Client>,
    driver: Child,
    /// The driver's log and chromium's profile; removed after both are gone.
    dir: tempfile::TempDir,
}

impl Browser {
    /// Spawn `chromedriver` on a free loopback port and open a session of headless chromium
    /// (1280×900, no sandbox, a fresh profile). Panics with chromedriver's log if it cannot.
    pub fn start() -> Browser {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the browser");
        let dir = tempfile::tempdir().expect("temp dir for the browser");
        let profile = dir.path().join("profile");
        let log = dir.path().join("chromedriver.log");
        // A port found free may be taken before chromedriver binds it: try a few.
        let mut attempt = 0;
        let (driver, url) = loop {
            attempt += 1;
            let port = free_port();
            let mut driver = spawn_driver(port, &log);
            match wait_until_ready(&mut driver, port) {
                Ok(()) => break (driver, format!("http://127.0.0.1:{port}")),
                Err(why) => {
                    stop(&mut driver);
                    if attempt == 3 {
                        panic!(
                            "browser: chromedriver on port {port} {why}\n{}",
                            log_of(&log)
                        );
                    }
                }
            }
        };
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let connected = runtime.block_on(async {
            tokio::time::timeout(
                COMMAND_TIMEOUT,
                ClientBuilder::new(connector)
                    .capabilities(capabilities)
                    .connect(&url),
            )
            .await
        });
        let mut browser = Browser {
            runtime,
            client: None,
            driver,
            dir,
        };
        match connected {
            Ok(Ok(client)) => browser.client = Some(client),
            Ok(Err(error)) => panic!(
                "browser: chromedriver at {url} cannot start chromium: {error}\n{}",
                log_of(&log)
            ),
            Err(_) => panic!(
                "browser: chromedriver at {url} did not open a session in {COMMAND_TIMEOUT:?}\n{}",
                log_of(&log)
            ),
        }
        browser
    }

    /// Load `url` and wait until the page has loaded.
    pub fn goto(&self, url: &str) {
        self.run(format!("going to {url}"), self.client().goto(url));
    }

    /// The URL of the current page.
    pub fn current_url(&self) -> String {
        self.run("reading the URL", self.client().current_url())
            .to_string()
    }

    /// The current page's HTML as the browser has it now (scripts' changes included).
    pub fn source(&self) -> String {
        self.run("reading the page source", self.client().source())
    }

    /// The current page's `<title>`.
    pub fn title(&self) -> String {
        self.run("reading the title", self.client().title())
    }

    /// Click the first element matching `css`.
    pub fn click(&self, css: &str) {
        let element = self.find(css);
        self.run(format!("clicking `{css}`"), element.click());
    }

    /// Clear the first field matching `css`, then type `text` into it.
    pub fn fill(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.run(format!("clearing `{css}`"), element.clear());
        self.run(format!("typing into `{css}`"), element.send_keys(text));
    }

    /// Choose the `<option>` whose value is `value` in the first `<select>` matching `css`.
    pub fn select(&self, css: &str, value: &str) {
        let select = self.find(css);
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        let option = format!("option[value=\"{escaped}\"]");
        let found = self.run(
            format!("looking for `{option}` in `{css}`"),
            select.find_all(Locator::Css(&option)),
        );
        let Some(option) = found.into_iter().next() else {
            let values = self.execute(
                "return Array.from(arguments[0].querySelectorAll('option'), o => o.value);",
                vec![self.element_arg(&select)],
            );
            panic!(
                "browser: `{css}` has no option with value {value:?} (its values: {values}) at {}",
                self.url_for_message()
            );
        };
        self.run(format!("choosing {value:?} in `{css}`"), option.click());
    }

    /// Submit the first form matching `css` as its submit button would (`requestSubmit()`:
    /// validation and `submit` handlers run, the browser navigates to the form's action).
    pub fn submit_form(&self, css: &str) {
        let form = self.find(css);
        let arg = self.element_arg(&form);
        self.run(
            format!("submitting `{css}`"),
            self.client()
                .execute("arguments[0].requestSubmit();", vec![arg]),
        );
    }

    /// The rendered text of the first element matching `css` (what a reader sees: text hidden
    /// with CSS is left out, whitespace as laid out).
    pub fn text(&self, css: &str) -> String {
        let element = self.find(css);
        self.run(format!("reading the text of `{css}`"), element.text())
    }

    /// The rendered text of every element matching `css`, in document order.
    pub fn texts(&self, css: &str) -> Vec<String> {
        let elements = self.run(
            format!("looking for `{css}`"),
            self.client().find_all(Locator::Css(css)),
        );
        elements
            .iter()
            .map(|element| self.run(format!("reading the text of `{css}`"), element.text()))
            .collect()
    }

    /// Whether any element matches `css` now.
    pub fn exists(&self, css: &str) -> bool {
        !self
            .run(
                format!("looking for `{css}`"),
                self.client().find_all(Locator::Css(css)),
            )
            .is_empty()
    }

    /// The attribute `name` of the first element matching `css`, `None` when it has none.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        let element = self.find(css);
        self.run(
            format!("reading attribute `{name}` of `{css}`"),
            element.attr(name),
        )
    }

    /// Wait until an element matches `css`; panics after `timeout` with the page it was on.
    pub fn wait_for(&self, css: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.exists(css) {
            if Instant::now() >= deadline {
                panic!(
                    "browser: no element matched `{css}` within {timeout:?} at {}\npage: {}",
                    self.url_for_message(),
                    self.excerpt()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Wait until the first element matching `css` has a text containing `needle`, and return
    /// that text; panics after `timeout` with the last text seen and the page it was on.
    pub fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            // The element may be replaced between the lookup and the read: look again then.
            let seen = match self.within(self.client().find(Locator::Css(css))) {
                Some(Ok(element)) => self.within(element.text()).and_then(Result::ok),
                _ => None,
            };
            if let Some(text) = &seen
                && text.contains(needle)
            {
                return text.clone();
            }
            if Instant::now() >= deadline {
                let seen = match seen {
                    Some(text) => format!("its text was {text:?}"),
                    None => "no element matched, or it went away as it was read".to_owned(),
                };
                panic!(
                    "browser: `{css}` did not contain {needle:?} within {timeout:?} ({seen}) at \
                     {}\npage: {}",
                    self.url_for_message(),
                    self.excerpt()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Save a PNG of the viewport at `path` (parent folders created).
    pub fn screenshot(&self, path: &Path) {
        let png = self.run("taking a screenshot", self.client().screenshot());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("browser: cannot create {}: {e}", parent.display()));
        }
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("browser: cannot write {}: {e}", path.display()));
    }

    /// Resize the window to `width`×`height` pixels.
    pub fn set_size(&self, width: u32, height: u32) {
        self.run(
            format!("resizing the window to {width}x{height}"),
            self.client().set_window_size(width, height),
        );
    }

    /// Run `js` as the body of a function in the page (`arguments[i]` are `args`) and return
    /// what it returns.
    pub fn execute(&self, js: &str, args: Vec<Value>) -> Value {
        self.run(
            format!("running a script ({})", first_line(js)),
            self.client().execute(js, args),
        )
    }

    /// The folder of chromedriver's log (`chromedriver.log`) and chromium's profile (`profile`).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the browser session is open")
    }

    /// The first element matching `css`; panics when none does.
    fn find(&self, css: &str) -> Element {
        match self.within(self.client().find(Locator::Css(css))) {
            Some(Ok(element)) => element,
            Some(Err(error)) if error.is_no_such_element() => panic!(
                "browser: no element matches `{css}` at {}\npage: {}",
                self.url_for_message(),
                self.excerpt()
            ),
            Some(Err(error)) => panic!(
                "browser: looking for `{css}` failed at {}: {error}",
                self.url_for_message()
            ),
            None => panic!(
                "browser: looking for `{css}` took more than {COMMAND_TIMEOUT:?} at {}",
                self.url_for_message()
            ),
        }
    }

    /// An element as a script argument.
    fn element_arg(&self, element: &Element) -> Value {
        serde_json::to_value(element).expect("an element reference is JSON")
    }

    /// Run one WebDriver command; panics, naming `what` and the current URL, when it fails or
    /// takes more than [`COMMAND_TIMEOUT`].
    fn run<T>(&self, what: impl Display, command: impl Future<Output = Result<T, CmdError>>) -> T {
        match self.within(command) {
            Some(Ok(value)) => value,
            Some(Err(error)) => panic!(
                "browser: {what} failed at {}: {error}",
                self.url_for_message()
            ),
            None => panic!(
                "browser: {what} took more than {COMMAND_TIMEOUT:?} at {}",
                self.url_for_message()
            ),
        }
    }

    /// `command`'s outcome, `None` if it took more than [`COMMAND_TIMEOUT`].
    fn within<T>(&self, command: impl Future<Output = T>) -> Option<T> {
        self.runtime
            .block_on(async { tokio::time::timeout(COMMAND_TIMEOUT, command).await })
            .ok()
    }

    /// The current URL for a failure message, never failing itself.
    fn url_for_message(&self) -> String {
        match self.within(self.client().current_url()) {
            Some(Ok(url)) => url.to_string(),
            Some(Err(error)) => format!("(unknown URL: {error})"),
            None => "(unknown URL: no answer)".to_owned(),
        }
    }

    /// The start of the page's `<body>` for a failure message, never failing itself.
    fn excerpt(&self) -> String {
        let script = "return document.body ? document.body.outerHTML \
                      : document.documentElement.outerHTML;";
        match self.within(self.client().execute(script, Vec::new())) {
            Some(Ok(Value::String(html))) => match html.char_indices().nth(EXCERPT) {
                Some((cut, _)) => {
                    format!("{}… ({} characters)", &html[..cut], html.chars().count())
                }
                None => html,
            },
            Some(Ok(other)) => format!("(unexpected page: {other})"),
            Some(Err(error)) => format!("(cannot read the page: {error})"),
            None => "(cannot read the page: no answer)".to_owned(),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Deleting the session makes chromedriver quit chromium.
            let _ = self.within(client.close());
        }
        stop(&mut self.driver);
        kill_profile_processes(&self.dir.path().join("profile"));
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// `chromedriver --port=<port>`, its output appended to `log`.
fn spawn_driver(port: u16, log: &Path) -> Child {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("browser: cannot open {}: {e}", log.display()))
    };
    Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(open())
        .stderr(open())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "browser: cannot run chromedriver: {e} (install it with `sudo apt-get install \
                 chromium chromium-driver`, or run the tests with `cargo xtask test`, which \
                 installs both as root)"
            )
        })
}

/// Poll chromedriver's `/status` until it says it is ready; why not, if it exits or takes too
/// long.
fn wait_until_ready(driver: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + DRIVER_START;
    loop {
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!("exited ({status})"));
        }
        if status_ready(port) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("did not answer /status within {DRIVER_START:?}"));
        }
        std::thread::sleep(POLL);
    }
}

/// Whether `GET /status` on the port answers `"ready": true`.
fn status_ready(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request =
        format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if std::io::Write::write_all(&mut stream, request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let Some((_, body)) = answer.split_once("\r\n\r\n") else {
        return false;
    };
    serde_json::from_str::<Value>(body)
        .is_ok_and(|status| status["value"]["ready"] == Value::Bool(true))
}

/// Kill and reap a child process, ignoring errors (it may have exited).
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Kill every process whose command line names the profile `profile` (a chromium left behind
/// when the session could not be deleted).
fn kill_profile_processes(profile: &Path) {
    let needle = format!("--user-data-dir={}", profile.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let names_profile = cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == needle.as_bytes());
        if names_profile {
            let _ = Command::new("kill")
                .args(["-KILL", pid])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// chromedriver's log for a failure message.
fn log_of(log: &Path) -> String {
    match std::fs::read_to_string(log) {
        Ok(text) if text.trim().is_empty() => "chromedriver's log is empty".to_owned(),
        Ok(text) => format!("chromedriver's log ({}):\n{text}", log.display()),
        Err(e) => format!("cannot read chromedriver's log {}: {e}", log.display()),
    }
}

/// The first line of a script, for messages.
fn first_line(js: &str) -> &str {
    js.trim().lines().next().unwrap_or_default()
}
