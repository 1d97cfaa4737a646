//! Outbound HTTP (`ctx.http()`): a module calls another system through the hub's client, so
//! that nothing HTTP-related is linked into modules and the hub can hold the rules: only hosts
//! the module's `outbound` list allows (and no private address unless named there), nothing that
//! may change something while `DRY_RUN` is on, a timeout, a size limit, a redirect policy.

use std::time::Duration;

use abi_stable::std_types::{RString, RVec, Tuple2};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::ffi::{FfiInbound, FfiOutbound, HostBox};

/// The hub's HTTP client, as a module sees it.
pub struct Http<'a> {
    host: &'a HostBox,
}

impl<'a> Http<'a> {
    pub(crate) fn new(host: &'a HostBox) -> Http<'a> {
        Http { host }
    }

    /// A request with `method` (upper case) to `url` (`http://` or `https://`).
    pub fn request(&self, method: &str, url: &str) -> Outbound<'a> {
        Outbound {
            host: self.host,
            request: FfiOutbound {
                method: method.to_ascii_uppercase().into(),
                url: url.into(),
                headers: RVec::new(),
                body: RVec::new(),
                timeout_ms: 0,
                max_bytes: 0,
                redirects: 5,
            },
        }
    }

    pub fn get(&self, url: &str) -> Outbound<'a> {
        self.request("GET", url)
    }

    pub fn post(&self, url: &str) -> Outbound<'a> {
        self.request("POST", url)
    }

    pub fn put(&self, url: &str) -> Outbound<'a> {
        self.request("PUT", url)
    }

    pub fn patch(&self, url: &str) -> Outbound<'a> {
        self.request("PATCH", url)
    }

    pub fn delete(&self, url: &str) -> Outbound<'a> {
        self.request("DELETE", url)
    }
}

/// A request being built; [`Outbound::send`] sends it.
pub struct Outbound<'a> {
    host: &'a HostBox,
    request: FfiOutbound,
}

impl Outbound<'_> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request
            .headers
            .push(Tuple2(RString::from(name), RString::from(value)));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.request.body = RVec::from(body.into());
        self
    }

    /// `value` as a JSON body, with its content type.
    pub fn json<T: Serialize>(self, value: &T) -> Result<Self, Error> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::internal(format!("cannot write the request body as JSON: {e}")))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// At most `timeout` for the whole call (default 10 s, at most 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.request.timeout_ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self
    }

    /// The largest answer body taken (default 1 MiB, at most 16 MiB); a larger one is an error.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.request.max_bytes = bytes.max(1);
        self
    }

    /// How many redirects to follow (default 5; 0: none), each to an allowed host.
    pub fn redirects(mut self, redirects: u32) -> Self {
        self.request.redirects = redirects;
        self
    }

    /// Send it. An error says why in the hub's words: `outbound_not_allowed` (naming the host
    /// and the key to add it to), `outbound_timeout`, `outbound_too_large`, `outbound_failed`.
    pub async fn send(self) -> Result<Inbound, Error> {
        match self.host.http(self.request).await.into_result() {
            Ok(answer) => Ok(Inbound::from(answer)),
            Err(error) => Err(hub_error(&error)),
        }
    }
}

/// The hub's JSON error (`{"status", "code", "message"}`) as an [`Error`].
fn hub_error(text: &str) -> Error {
    #[derive(serde::Deserialize)]
    struct HubError {
        status: u16,
        code: String,
        message: String,
    }
    match serde_json::from_str::<HubError>(text) {
        Ok(e) => Error::new(e.status, e.code, e.message),
        Err(_) => Error::new(502, "outbound_failed", text.to_owned()),
    }
}

/// Another system's answer.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub status: u16,
    /// (lowercase name, value).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// `DRY_RUN` kept the request from being sent (its status is 202, its body empty).
    pub dry_run: bool,
}

impl From<FfiInbound> for Inbound {
    fn from(answer: FfiInbound) -> Inbound {
        Inbound {
            status: answer.status,
            headers: answer
                .headers
                .into_iter()
                .map(|Tuple2(k, v)| (k.into_string(), v.into_string()))
                .collect(),
            body: answer.body.into_vec(),
            dry_run: answer.dry_run,
        }
    }
}

impl Inbound {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (UTF-8).
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body).map_err(|e| {
            Error::new(
                502,
                "outbound_failed",
                format!("the answer is not UTF-8: {e}"),
            )
        })
    }

    /// The body as JSON, read into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::new(
                502,
                "outbound_failed",
                format!("the answer is not the JSON expected: {e}"),
            )
        })
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}
