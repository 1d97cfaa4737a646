//! Outbound HTTP for modules (`ctx.http()`): one `reqwest` client per module instance, with
//! the module's allow-list held at every step: the URL's host and port before anything is sent,
//! every redirect's target (followed here, not by the client), and every address a name
//! resolves to (a name that resolves to a loopback, private or link-local address is refused
//! unless an entry names it exactly: no request forgery through DNS or a redirect). While
//! `DRY_RUN` is on, a request that may change something is not sent. Every call is counted in
//! the metrics. This room is the only one that names `reqwest`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Method, Url};
use serde_json::json;

use crate::manifest::HostPattern;

/// The default and largest timeout of one call (redirects and the body included).
const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// The default and largest answer body.
const MAX_BYTES: u64 = 1 << 20;
const MAX_MAX_BYTES: u64 = 16 << 20;
/// The `host` label of a call no entry allowed (the host itself would be unbounded).
const NOT_ALLOWED: &str = "(not allowed)";
/// At most this many redirects, whatever a module asks.
const MAX_REDIRECTS: u32 = 10;

/// A request as a module sends it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// 0: the default.
    pub timeout_ms: u64,
    /// 0: the default.
    pub max_bytes: u64,
    pub redirects: u32,
}

/// The other system's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub dry_run: bool,
}

/// Why a call did not give an answer: the status the module's handler answers with if it
/// passes the error on, a stable code, and a message that names the host and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(status: u16, code: &'static str, message: String) -> Refusal {
        Refusal {
            status,
            code,
            message,
        }
    }

    /// As the module receives it: `{"status", "code", "message"}`.
    pub fn to_json(&self) -> String {
        json!({"status": self.status, "code": self.code, "message": self.message}).to_string()
    }
}

/// A module's outbound client: its allow-list, its `DRY_RUN` switch, and the client (made at
/// the first call).
pub struct Client {
    module: String,
    allow: Arc<Vec<HostPattern>>,
    dry_run: bool,
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
}

impl Client {
    pub fn new(module: &str, allow: Vec<HostPattern>, dry_run: bool) -> Client {
        Client {
            module: module.to_owned(),
            allow: Arc::new(allow),
            dry_run,
            client: std::sync::OnceLock::new(),
        }
    }

    fn client(&self) -> Result<&reqwest::Client, Refusal> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .dns_resolver(Arc::new(Guarded {
                        allow: self.allow.clone(),
                    }))
                    .user_agent(concat!("bmc-hub/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| {
                Refusal::new(
                    502,
                    "outbound_failed",
                    format!("the hub cannot make its HTTP client: {e}"),
                )
            })
    }

    /// Send `request`, following redirects to allowed hosts, within its timeout.
    pub async fn send(&self, request: Request) -> Result<Answer, Refusal> {
        let started = Instant::now();
        let method = Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            Refusal::new(
                500,
                "outbound_invalid",
                format!("{:?} is not an HTTP method", request.method),
            )
        })?;
        let url = Url::parse(&request.url).map_err(|e| {
            Refusal::new(
                500,
                "outbound_invalid",
                format!("{:?} is not a URL: {e}", request.url),
            )
        })?;
        let entry = self.allowed(&url).inspect_err(|refusal| {
            count(
                &self.module,
                NOT_ALLOWED,
                &request.method,
                refusal.code,
                started,
            )
        })?;
        let label = entry.text.clone();
        let changes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
        if self.dry_run && changes {
            tracing::info!(
                module = %self.module,
                "DRY_RUN: not sent: {method} {url} ({} bytes); the module got 202 with dry_run: true",
                request.body.len()
            );
            count(&self.module, &label, method.as_str(), "dry_run", started);
            return Ok(Answer {
                status: 202,
                headers: Vec::new(),
                body: Vec::new(),
                dry_run: true,
            });
        }
        let timeout = match request.timeout_ms {
            0 => TIMEOUT,
            ms => Duration::from_millis(ms).min(MAX_TIMEOUT),
        };
        let max_bytes = match request.max_bytes {
            0 => MAX_BYTES,
            n => n.min(MAX_MAX_BYTES),
        };
        let exchange = self.exchange(method.clone(), url.clone(), &request, max_bytes);
        let outcome = match tokio::time::timeout(timeout, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Refusal::new(
                504,
                "outbound_timeout",
                format!(
                    "{method} {url} did not answer within {} ms: raise the call's timeout (at most 60 s) or ask why the other side is slow",
                    timeout.as_millis()
                ),
            )),
        };
        let class = match &outcome {
            Ok(answer) => status_class(answer.status),
            Err(refusal) => refusal.code,
        };
        count(&self.module, &label, method.as_str(), class, started);
        outcome
    }

    /// The request and its redirects; the answer's body read up to `max_bytes`.
    async fn exchange(
        &self,
        mut method: Method,
        mut url: Url,
        request: &Request,
        max_bytes: u64,
    ) -> Result<Answer, Refusal> {
        let client = self.client()?;
        let mut body = Some(request.body.clone());
        let redirects = request.redirects.min(MAX_REDIRECTS);
        let mut followed = 0;
        loop {
            let mut builder = client.request(method.clone(), url.clone());
            for (name, value) in &request.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            if let Some(body) = &body {
                builder = builder.body(body.clone());
            }
            let mut response = builder.send().await.map_err(|e| self.failure(&url, &e))?;
            let status = response.status();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url.join(l).ok());
            if status.is_redirection()
                && let Some(next) = location
                && followed < redirects
            {
                // The next hop must be allowed too.
                self.allowed(&next)?;
                followed += 1;
                if matches!(status.as_u16(), 301..=303) && method != Method::HEAD {
                    method = Method::GET;
                    body = None;
                }
                url = next;
                continue;
            }
            let headers = response
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect();
            let mut read = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| self.failure(&url, &e))? {
                if (read.len() + chunk.len()) as u64 > max_bytes {
                    return Err(Refusal::new(
                        502,
                        "outbound_too_large",
                        format!(
                            "the answer of {url} is larger than {max_bytes} bytes: raise the call's max_bytes (at most 16 MiB) or ask for less"
                        ),
                    ));
                }
                read.extend_from_slice(&chunk);
            }
            return Ok(Answer {
                status: status.as_u16(),
                headers,
                body: read,
                dry_run: false,
            });
        }
    }

    /// The allow-list's entry that lets `url` through, or why it does not.
    fn allowed(&self, url: &Url) -> Result<&HostPattern, Refusal> {
        let var = format!("MODULES__{}__OUTBOUND", self.module.to_ascii_uppercase());
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::new(
                403,
                "outbound_not_allowed",
                format!(
                    "module '{}' may call http:// and https:// URLs only, not {url}",
                    self.module
                ),
            ));
        }
        // An IPv6 address comes in brackets.
        let host = url
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(0);
        let default_port = url.port().is_none();
        let Some(entry) = self
            .allow
            .iter()
            .find(|p| p.matches(&host, port, default_port))
        else {
            let entry = if default_port {
                host.clone()
            } else {
                format!("{host}:{port}")
            };
            return Err(Refusal::new(
                403,
                "outbound_not_allowed",
                format!(
                    "module '{}' may not call {host}:{port}: add \"{entry}\" to \"outbound\" in its module.json (or to {var})",
                    self.module
                ),
            ));
        };
        // An address in the URL itself is not resolved: checked here.
        if let Ok(ip) = host.parse::<IpAddr>()
            && !is_public(ip)
            && !entry.is_explicit()
        {
            return Err(Refusal::new(
                403,
                "outbound_not_allowed",
                format!(
                    "module '{}' may not call {ip}, a private, loopback or link-local address, through the entry \"{}\": name it in \"outbound\" (\"{host}:{port}\")",
                    self.module, entry.text
                ),
            ));
        }
        Ok(entry)
    }

    /// A transport error as the module sees it: a name refused by the resolver is
    /// `outbound_not_allowed`; anything else `outbound_failed`.
    fn failure(&self, url: &Url, error: &reqwest::Error) -> Refusal {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = source {
            if let Some(blocked) = e.downcast_ref::<Blocked>() {
                return Refusal::new(
                    403,
                    "outbound_not_allowed",
                    format!(
                        "module '{}' may not call {}: it resolves to {}, a private, loopback or link-local address; name the host in \"outbound\" to allow it",
                        self.module, blocked.name, blocked.ip
                    ),
                );
            }
            source = e.source();
        }
        Refusal::new(
            502,
            "outbound_failed",
            format!(
                "{url} cannot be reached: {}",
                crate::causes::with_causes(error)
            ),
        )
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

fn count(module: &str, host: &str, method: &str, outcome: &'static str, started: Instant) {
    if let Some(metrics) = crate::metrics::get() {
        metrics.outbound(module, host, method, outcome, started.elapsed());
    }
}

/// Whether `ip` is an address on the internet: not loopback, private, link-local, shared
/// (100.64/10), unspecified, broadcast, multicast or documentation, nor such an IPv4 address
/// inside IPv6.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// A name that resolved to an address the allow-list does not let in.
#[derive(Debug)]
struct Blocked {
    name: String,
    ip: IpAddr,
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves to {}, which is not allowed",
            self.name, self.ip
        )
    }
}

impl std::error::Error for Blocked {}

/// The system's resolver, refusing private addresses for names the allow-list does not name.
struct Guarded {
    allow: Arc<Vec<HostPattern>>,
}

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_ascii_lowercase();
            let explicit = allow.iter().any(|p| p.is_explicit() && p.host == host);
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !explicit && let Some(addr) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(Box::new(Blocked {
                    name: host,
                    ip: addr.ip(),
                })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Fetch `url` for the hub itself (a catalog's index or package, which the operator named in
/// `HUB_CATALOGS`; modules' allow-lists do not apply): its body, at most `max_bytes`, or why
/// not. No redirects are followed.
pub async fn fetch_for_hub(url: &str, max_bytes: usize) -> Result<Vec<u8>, String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot fetch {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("cannot read {url}: {e}"))?
    {
        if body.len() + chunk.len() > max_bytes {
            return Err(format!("{url} is larger than {max_bytes} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "100.128.0.1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn entries_match_their_hosts_and_ports() {
        let p = |t: &str| HostPattern::parse(t).unwrap();
        assert!(p("api.example.com").matches("api.example.com", 443, true));
        assert!(!p("api.example.com").matches("api.example.com", 8443, false));
        assert!(p("api.example.com:8443").matches("api.example.com", 8443, false));
        assert!(p("*.example.net").matches("a.b.example.net", 443, true));
        assert!(!p("*.example.net").matches("example.net", 443, true));
        assert!(!p("*.example.net").matches("badexample.net", 443, true));
        assert!(p("*").matches("anything.org", 80, true));
        assert!(!p("*").matches("anything.org", 8080, false));
        assert!(p("*:8080").matches("anything.org", 8080, false));
        assert!(p("[::1]:9000").matches("::1", 9000, false));
        assert!(p("127.0.0.1:9000").is_explicit() && !p("*.x.org").is_explicit());
        assert_eq!(
            HostPattern::parse("http://x.org").unwrap_err(),
            "outbound entry \"http://x.org\" has an invalid port: write a host (api.example.com), a host and port (api.example.com:8443), *.example.net, * or *:8080"
        );
        assert!(HostPattern::parse("bad host").is_err());
    }
}
