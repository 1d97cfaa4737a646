//! The request id: the incoming `X-Request-Id` when it is a sensible one (1 to 128 letters,
//! digits and `._:-`), else the trace id of an incoming W3C `traceparent`, else one of the
//! hub's own (32 hex digits: a random prefix per process and a counter). It is answered in the
//! `X-Request-Id` header, readable by a module as its request's `x-request-id` header (so its
//! calls on the caller's behalf can carry it), written into every log line of the request
//! (`logging::with_request_id`) and into the audit rows the request makes.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::logging::RequestId;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The request's id, from `headers` or new. One pass over the few headers a request has is
/// cheaper than hashing two names to look them up.
pub fn of(headers: &HeaderMap) -> RequestId {
    let (mut given, mut trace) = (None, None);
    for (name, value) in headers.iter() {
        if *name == HEADER {
            given = Some(value);
        } else if *name == TRACEPARENT {
            trace = Some(value);
        }
    }
    if let Some(id) = given
        .and_then(|v| v.to_str().ok())
        .filter(|id| well_formed(id))
    {
        return RequestId::Given(Arc::from(id));
    }
    if let Some(trace) = trace.and_then(|v| v.to_str().ok()).and_then(trace_id) {
        return RequestId::Given(Arc::from(trace));
    }
    new_id()
}

/// `id` as a header value.
pub fn value(id: &RequestId) -> Option<HeaderValue> {
    match id {
        RequestId::Own(digits) => HeaderValue::from_bytes(digits).ok(),
        RequestId::Given(id) => HeaderValue::from_str(id).ok(),
    }
}

/// 1 to 128 letters, digits and `._:-`: safe in a header, a log line and JSON.
fn well_formed(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The trace id of a `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), unless it is all zeros.
fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0'))
    .then_some(trace)
}

/// A new id: this process's random prefix and the next number, 32 lowercase hex digits.
fn new_id() -> RequestId {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = *PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 8];
        // Without randomness, the time keeps two processes' ids apart.
        if getrandom::fill(&mut bytes).is_err() {
            bytes = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or_default()
                .to_le_bytes();
        }
        u64::from_le_bytes(bytes)
    });
    let number = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut digits = [0u8; 32];
    for (half, value) in [prefix, number].into_iter().enumerate() {
        for i in 0..16 {
            let nibble = (value >> (60 - 4 * i)) & 0xf;
            digits[16 * half + i] = HEX[nibble as usize];
        }
    }
    RequestId::Own(digits)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn an_incoming_id_is_kept_a_traceparent_gives_its_trace_id_else_a_new_one() {
        let h = headers(&[("x-request-id", "abc-123")]);
        assert_eq!(of(&h).as_str(), "abc-123");
        let h = headers(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )]);
        assert_eq!(of(&h).as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        // Malformed ones are replaced: quotes, spaces, too long, an all-zero trace id.
        for bad in [
            headers(&[("x-request-id", "a\"b")]),
            headers(&[("x-request-id", &"x".repeat(129))]),
            headers(&[(
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            )]),
        ] {
            let id = of(&bad);
            let id = id.as_str();
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
        let (a, b) = (HeaderMap::new(), HeaderMap::new());
        assert_ne!(of(&a).as_str(), of(&b).as_str());
    }
}
