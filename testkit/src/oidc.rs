//! A real OpenID provider for single sign-on tests, and a browser without a screen to sign in
//! through it.
//!
//! [`OidcProvider`] runs `host/tests/oidc/provider.mjs` (the npm package `oidc-provider`) with
//! node on 127.0.0.1: development login and consent pages (any login, any password), users
//! `alice` (groups `hub-admins`, `staff`), `bob` (`staff`), `carol` (none) and anyone else (none),
//! scopes `openid profile email groups`, PKCE required. Its packages come from
//! `npm ci --prefix host/tests/oidc` (`cargo xtask test` runs it); without them a test fails
//! saying so, it never skips.
//!
//! [`Browser`] keeps cookies and follows redirects by hand, so a test sees every hop:
//! [`sign_in`] goes from a start URL (the hub's sign-in route or a provider authorization URL)
//! through the provider's forms and requests the redirect URL (the hub's callback) without
//! following where that sends it; [`to_callback`] stops before requesting it.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A client registered at the provider.
#[derive(Clone, Debug)]
pub struct OidcClient {
    /// The client id.
    pub client_id: String,
    /// The client secret (HTTP Basic at the token endpoint).
    pub client_secret: String,
    /// The redirect URLs the provider accepts for this client.
    pub redirect_uris: Vec<String>,
}

impl OidcClient {
    /// A client with one redirect URL.
    pub fn new(client_id: &str, client_secret: &str, redirect_uri: &str) -> OidcClient {
        OidcClient {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uris: vec![redirect_uri.to_owned()],
        }
    }
}

/// The folder of `provider.mjs` and its `package.json`.
pub fn provider_dir() -> PathBuf {
    // testkit/ is a folder of the workspace root.
    let testkit = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    testkit
        .parent()
        .unwrap_or(&testkit)
        .join("host")
        .join("tests")
        .join("oidc")
}

/// A running OpenID provider; killed on drop (it also exits when the test process dies, as its
/// standard input closes).
pub struct OidcProvider {
    child: Child,
    issuer: String,
    /// Closed on drop: the provider exits when it reads end of file.
    _stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl OidcProvider {
    /// A provider for `clients`, its ID tokens valid for an hour.
    pub fn start(clients: &[OidcClient]) -> OidcProvider {
        OidcProvider::start_with_id_token_ttl(clients, Duration::from_secs(3600))
    }

    /// A provider for `clients` whose ID tokens expire `ttl` (whole seconds) after issue.
    pub fn start_with_id_token_ttl(clients: &[OidcClient], ttl: Duration) -> OidcProvider {
        let dir = provider_dir();
        assert!(
            dir.join("node_modules").join("oidc-provider").is_dir(),
            "the OpenID provider's packages are not installed in {}: run \
             `npm ci --prefix host/tests/oidc` in the workspace root (cargo xtask test runs it)",
            dir.display()
        );
        let clients: Vec<serde_json::Value> = clients
            .iter()
            .map(|c| {
                serde_json::json!({
                    "client_id": c.client_id,
                    "client_secret": c.client_secret,
                    "redirect_uris": c.redirect_uris,
                })
            })
            .collect();
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(&dir)
            .env("OIDC_PORT", "0")
            .env("OIDC_CLIENTS", serde_json::Value::from(clients).to_string())
            .env("OIDC_ID_TOKEN_TTL", ttl.as_secs().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run node ({e}): install Node.js 20 or later (Debian: apt-get install \
                     nodejs npm), then `npm ci --prefix host/tests/oidc`"
                )
            });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stderr_reader = child.stderr.take().map(|stream| {
            let lines = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().expect("provider stderr").push(line);
                }
            })
        });
        let (ready, issuer) = mpsc::channel();
        if let Some(stream) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(issuer) = line.strip_prefix("ready ") {
                        let _ = ready.send(issuer.to_owned());
                    }
                }
            });
        }
        // The stdout reader ends (and the channel with it) when the provider exits first.
        let Ok(issuer) = issuer.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            // The provider is gone: its stderr is complete once the reader reaches its end.
            if let Some(reader) = stderr_reader {
                let _ = reader.join();
            }
            panic!(
                "the OpenID provider did not start (it exited, or was not ready within 30 s):\n{}",
                stderr.lock().expect("provider stderr").join("\n")
            );
        };
        OidcProvider {
            _stdin: child.stdin.take(),
            child,
            issuer,
            stderr,
        }
    }

    /// The issuer URL, `http://127.0.0.1:<port>`.
    pub fn issuer(&self) -> String {
        self.issuer.clone()
    }

    /// What the provider wrote on its standard error.
    pub fn logs(&self) -> String {
        self.stderr.lock().expect("provider stderr").join("\n")
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One response: where it came from, its status, headers (names in lower case, in order, each
/// `set-cookie` apart) and body.
#[derive(Clone, Debug)]
pub struct Page {
    /// The URL requested.
    pub url: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The `Location` header.
    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }
}

/// The end of [`sign_in`]: the redirect URL's response (not followed further), and the browser,
/// whose cookies (the hub's session among them) later requests reuse.
pub struct FlowEnd {
    pub callback: Page,
    pub browser: Browser,
}

/// The end of [`to_callback`]: the redirect URL the provider sent the browser to, not requested.
pub struct Callback {
    /// The whole URL, `…/auth/callback?code=…&state=…&iss=…`.
    pub url: String,
    pub code: String,
    pub state: String,
    pub browser: Browser,
}

/// From `start`, sign in as `login` (any password) with a new [`Browser`], and request the
/// redirect URL the provider sends the browser back to.
pub fn sign_in(start: &str, login: &str) -> Result<FlowEnd, String> {
    let browser = Browser::new();
    let callback = browser.sign_in(start, login)?;
    Ok(FlowEnd { callback, browser })
}

/// Like [`sign_in`], stopping before the redirect URL is requested.
pub fn to_callback(start: &str, login: &str) -> Result<Callback, String> {
    let browser = Browser::new();
    let url = browser.follow_to_callback(start, login)?;
    let param = |name: &str| query_param(&url, name);
    if let Some(error) = param("error") {
        return Err(format!(
            "the provider sent the browser back with error `{error}` ({}): {url}",
            param("error_description").unwrap_or_default()
        ));
    }
    match (param("code"), param("state")) {
        (Some(code), Some(state)) => Ok(Callback {
            url,
            code,
            state,
            browser,
        }),
        _ => Err(format!("no code and state in the redirect URL {url}")),
    }
}

/// A cookie the browser keeps.
#[derive(Clone, Debug)]
struct Cookie {
    host: String,
    path: String,
    name: String,
    value: String,
}

/// A browser without a screen: cookies kept per host (as browsers do, whatever the port, so the
/// provider's and the hub's cookies on 127.0.0.1 share the jar), `Path` honoured, a cookie removed
/// when set empty or with `Max-Age` ≤ 0 (`Expires`, `Domain`, `Secure` and `SameSite` are not
/// looked at), redirects never followed by itself.
pub struct Browser {
    agent: ureq::Agent,
    jar: Mutex<Vec<Cookie>>,
}

impl Default for Browser {
    /// A browser with no cookies.
    fn default() -> Browser {
        Browser::new()
    }
}

impl Browser {
    /// The most hops a sign-in may take.
    const MAX_STEPS: usize = 20;

    pub fn new() -> Browser {
        Browser {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .max_redirects_will_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into(),
            jar: Mutex::new(Vec::new()),
        }
    }

    /// `GET url`, with this browser's cookies.
    pub fn get(&self, url: &str) -> Result<Page, String> {
        self.request("GET", url, &[], None)
    }

    /// `POST` an HTML form's `fields` to `url`.
    pub fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Result<Page, String> {
        let body = serde_urlencoded::to_string(fields).map_err(|e| e.to_string())?;
        let headers = [("content-type", "application/x-www-form-urlencoded")];
        self.request("POST", url, &headers, Some(&body))
    }

    /// A request with this browser's cookies (and `headers`); the cookies it sets are kept.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Page, String> {
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        if let Some(cookies) = self.cookie_header(url) {
            builder = builder.header("cookie", cookies);
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(body.unwrap_or_default().to_owned())
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let mut response = self
            .agent
            .run(request)
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
        let page = Page {
            url: url.to_owned(),
            status: response.status().as_u16(),
            headers,
            body,
        };
        for set_cookie in page.set_cookies() {
            self.store(url, set_cookie);
        }
        Ok(page)
    }

    /// The `Cookie` header this browser sends to `url`, if any.
    pub fn cookie_header(&self, url: &str) -> Option<String> {
        let (host, path) = host_and_path(url)?;
        let mut cookies: Vec<Cookie> = self
            .jar
            .lock()
            .expect("cookie jar")
            .iter()
            .filter(|c| c.host == host && path_matches(&path, &c.path))
            .cloned()
            .collect();
        // Longer paths first (RFC 6265 §5.4).
        cookies.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        let header: Vec<String> = cookies
            .iter()
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!header.is_empty()).then(|| header.join("; "))
    }

    /// The value of cookie `name` this browser sends to `url`.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let (host, path) = host_and_path(url)?;
        self.jar
            .lock()
            .expect("cookie jar")
            .iter()
            .filter(|c| c.host == host && c.name == name && path_matches(&path, &c.path))
            .max_by_key(|c| c.path.len())
            .map(|c| c.value.clone())
    }

    /// From `start`, sign in as `login` and request the redirect URL the provider sends the
    /// browser back to; its response, not followed.
    pub fn sign_in(&self, start: &str, login: &str) -> Result<Page, String> {
        let callback = self.follow_to_callback(start, login)?;
        self.get(&callback)
    }

    /// Follow redirects from `start`, filling the provider's login form (`login`, any password)
    /// and confirming its consent form, up to a redirect to a URL carrying the authorization
    /// response (`state` with `code` or `error`); that URL, not requested.
    pub fn follow_to_callback(&self, start: &str, login: &str) -> Result<String, String> {
        let mut page = self.get(start)?;
        for _ in 0..Browser::MAX_STEPS {
            if (300..400).contains(&page.status) {
                let location = page
                    .location()
                    .ok_or_else(|| format!("{} redirected without a Location", page.url))?;
                let next = resolve(&page.url, location);
                if is_authorization_response(&next) {
                    return Ok(next);
                }
                page = self.get(&next)?;
            } else if page.status == 200
                && let Some((action, fields)) = provider_form(&page.body, login)
            {
                let action = resolve(&page.url, &action);
                let fields: Vec<(&str, &str)> = fields
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                page = self.post_form(&action, &fields)?;
            } else {
                return Err(format!(
                    "the sign-in stopped at {} with status {} and no form to fill: {}",
                    page.url,
                    page.status,
                    excerpt(&page.body)
                ));
            }
        }
        Err(format!(
            "no redirect back from the provider after {} steps (last: {} {})",
            Browser::MAX_STEPS,
            page.status,
            page.url
        ))
    }

    /// Keep (or remove) the cookie of one `Set-Cookie` header received from `url`.
    fn store(&self, url: &str, set_cookie: &str) {
        let Some((host, request_path)) = host_and_path(url) else {
            return;
        };
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
        let mut path = default_path(&request_path);
        let mut expired = value.is_empty();
        for attribute in parts {
            let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
            match key.trim().to_ascii_lowercase().as_str() {
                "path" if val.trim().starts_with('/') => path = val.trim().to_owned(),
                "max-age" => expired |= val.trim().parse::<i64>().is_ok_and(|age| age <= 0),
                _ => {}
            }
        }
        let mut jar = self.jar.lock().expect("cookie jar");
        jar.retain(|c| !(c.host == host && c.path == path && c.name == name));
        if !expired {
            jar.push(Cookie {
                host,
                path,
                name,
                value,
            });
        }
    }
}

/// The action and fields of the provider's login form (with `login` and a password filled in) or
/// consent form (its hidden `prompt`), if `html` has one.
fn provider_form(html: &str, login: &str) -> Option<(String, Vec<(String, String)>)> {
    let start = html.find("<form")?;
    let form = &html[start..];
    let form = &form[..form.find("</form>").unwrap_or(form.len())];
    let action = attribute(&form[..form.find('>')?], "action")?;
    let mut fields = Vec::new();
    let mut has_login = false;
    for input in form.split("<input").skip(1) {
        let tag = &input[..input.find('>').unwrap_or(input.len())];
        let Some(name) = attribute(tag, "name") else {
            continue;
        };
        let value = match name.as_str() {
            "login" => {
                has_login = true;
                login.to_owned()
            }
            "password" => "any-password".to_owned(),
            _ => attribute(tag, "value").unwrap_or_default(),
        };
        fields.push((name, value));
    }
    let is_prompt = fields.iter().any(|(n, _)| n == "prompt");
    (has_login || is_prompt).then_some((html_unescape(&action), fields))
}

/// The value of `name="…"` in a tag's text.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')?;
    Some(tag[start..start + end].to_owned())
}

/// The few entities an attribute value of the provider's pages holds.
fn html_unescape(text: &str) -> String {
    text.replace("&#x2F;", "/")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `location` made absolute against `base`.
fn resolve(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_owned();
    }
    let origin_end = base
        .find("://")
        .and_then(|at| base[at + 3..].find('/').map(|slash| at + 3 + slash))
        .unwrap_or(base.len());
    let origin = &base[..origin_end];
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    let path = &base[origin_end..];
    let path = &path[..path.find('?').unwrap_or(path.len())];
    let dir = &path[..path.rfind('/').map_or(0, |slash| slash + 1)];
    format!(
        "{origin}{}{location}",
        if dir.is_empty() { "/" } else { dir }
    )
}

/// Whether `url`'s query is an authorization response: `state` with `code` or `error`.
fn is_authorization_response(url: &str) -> bool {
    query_param(url, "state").is_some()
        && (query_param(url, "code").is_some() || query_param(url, "error").is_some())
}

/// The decoded value of query parameter `name` of `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

/// The host (without port) and the path (without query) of `url`.
fn host_and_path(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let path = if path.is_empty() { "/" } else { path };
    Some((host.to_ascii_lowercase(), path.to_owned()))
}

/// RFC 6265 §5.1.4: the cookie's path when `Set-Cookie` names none.
fn default_path(request_path: &str) -> String {
    match request_path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(at) => request_path[..at].to_owned(),
    }
}

/// RFC 6265 §5.1.4: whether a cookie of `cookie_path` goes with a request for `path`.
fn path_matches(path: &str, cookie_path: &str) -> bool {
    path == cookie_path
        || (path.starts_with(cookie_path)
            && (cookie_path.ends_with('/') || path[cookie_path.len()..].starts_with('/')))
}

/// The start of a body, for an error message.
fn excerpt(body: &str) -> String {
    body.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_page() {
        let base = "http://127.0.0.1:5/interaction/abc?x=1";
        assert_eq!(resolve(base, "https://o/p"), "https://o/p");
        assert_eq!(resolve(base, "/auth/x"), "http://127.0.0.1:5/auth/x");
        assert_eq!(resolve(base, "def"), "http://127.0.0.1:5/interaction/def");
        assert_eq!(resolve("http://h:1", "a"), "http://h:1/a");
    }

    #[test]
    fn cookies_go_by_host_and_path_and_end_when_emptied() {
        let browser = Browser::new();
        browser.store(
            "http://127.0.0.1:5/interaction/u1",
            "_interaction=u1; path=/interaction/u1; httponly",
        );
        browser.store("http://127.0.0.1:5/auth", "_session=s; path=/; httponly");
        browser.store("http://127.0.0.1:6/auth/callback", "hub=h; Path=/");
        assert_eq!(
            browser
                .cookie_header("http://127.0.0.1:5/interaction/u1")
                .as_deref(),
            Some("_interaction=u1; _session=s; hub=h")
        );
        assert_eq!(
            browser.cookie_header("http://127.0.0.1:9/x").as_deref(),
            Some("_session=s; hub=h")
        );
        assert_eq!(browser.cookie_header("http://localhost:5/x"), None);
        assert_eq!(
            browser.cookie("http://127.0.0.1:6/", "hub").as_deref(),
            Some("h")
        );
        browser.store(
            "http://127.0.0.1:5/",
            "_session=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT",
        );
        browser.store("http://127.0.0.1:6/", "hub=gone; Path=/; Max-Age=0");
        assert_eq!(browser.cookie_header("http://127.0.0.1:9/x"), None);
    }

    #[test]
    fn the_provider_forms_are_filled() {
        let login = r#"<form autocomplete="off" action="http://127.0.0.1:5/interaction/u1" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login" placeholder="Enter any login" autofocus="on">
  <input required type="password" name="password" placeholder="and password" >
  <button type="submit">Sign-in</button></form>"#;
        let (action, fields) = provider_form(login, "alice").expect("login form");
        assert_eq!(action, "http://127.0.0.1:5/interaction/u1");
        assert_eq!(
            fields,
            [
                ("prompt".to_owned(), "login".to_owned()),
                ("login".to_owned(), "alice".to_owned()),
                ("password".to_owned(), "any-password".to_owned()),
            ]
        );
        let consent = r#"<form action="/interaction/u2" method="post"><input type="hidden" name="prompt" value="consent"/></form>"#;
        assert_eq!(
            provider_form(consent, "alice"),
            Some((
                "/interaction/u2".to_owned(),
                vec![("prompt".to_owned(), "consent".to_owned())]
            ))
        );
        let other = r#"<form action="/login" method="post"><input name="token"></form>"#;
        assert_eq!(provider_form(other, "alice"), None);
    }

    #[test]
    fn an_authorization_response_has_state_and_code_or_error() {
        assert!(is_authorization_response(
            "http://h/auth/callback?code=c&state=s&iss=x"
        ));
        assert!(is_authorization_response(
            "http://h/auth/callback?error=access_denied&state=s"
        ));
        // The authorization request itself carries state and response_type=code, not code.
        assert!(!is_authorization_response(
            "http://op/auth?response_type=code&state=s&client_id=hub"
        ));
        assert_eq!(
            query_param("http://h/cb?iss=http%3A%2F%2Fop&code=a+b", "iss").as_deref(),
            Some("http://op")
        );
    }
}
