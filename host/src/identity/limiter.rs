//! Failed credentials by address: after `HUB_AUTH_FAILURES` failures within a minute, an
//! address's credentials are refused (429 with `Retry-After`) for `HUB_AUTH_BLOCK_SECS`. Also the
//! caller's address behind trusted proxies.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The failures of one address.
#[derive(Debug)]
struct Failures {
    /// Start of the current one-minute window.
    since: Instant,
    count: u32,
    /// Refused until then.
    blocked_until: Option<Instant>,
}

pub struct Limiter {
    max: u32,
    block: Duration,
    by_address: Mutex<HashMap<IpAddr, Failures>>,
    /// How many addresses are blocked or counting: 0 keeps the hot path off the lock.
    watched: AtomicUsize,
}

const WINDOW: Duration = Duration::from_secs(60);

impl Limiter {
    pub fn new(max: u32, block: Duration) -> Limiter {
        Limiter {
            max,
            block,
            by_address: Mutex::new(HashMap::new()),
            watched: AtomicUsize::new(0),
        }
    }

    /// Whether any address has failed recently (only then is the caller's address needed).
    pub fn watching(&self) -> bool {
        self.watched.load(Ordering::Relaxed) > 0
    }

    /// How long `address` is still refused, if it is.
    pub fn blocked(&self, address: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let map = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&address)
            .and_then(|f| f.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// Count a failure of `address`; `Some(wait)` when this one blocks it.
    pub fn failed(&self, address: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let mut map = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, f| {
            f.blocked_until.is_some_and(|u| u > now) || now.duration_since(f.since) < WINDOW
        });
        let entry = map.entry(address).or_insert(Failures {
            since: now,
            count: 0,
            blocked_until: None,
        });
        if now.duration_since(entry.since) >= WINDOW {
            entry.since = now;
            entry.count = 0;
        }
        entry.count += 1;
        let blocks = entry.count >= self.max && entry.blocked_until.is_none_or(|u| u <= now);
        if blocks {
            entry.blocked_until = Some(now + self.block);
        }
        self.watched.store(map.len(), Ordering::Relaxed);
        blocks.then_some(self.block)
    }
}

/// The caller's address: the peer's, or, when the peer is a trusted proxy, the last address in
/// `X-Forwarded-For` that is not a trusted proxy.
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let Some(forwarded) = forwarded_for else {
        return Some(peer);
    };
    let mut client = peer;
    for hop in forwarded.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            // A hop that is not an address: stop at what is known.
            Err(_) => break,
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        // From an untrusted peer the header is ignored.
        assert_eq!(
            client_address(Some(ip("192.0.2.1")), Some("203.0.113.9"), &trusted),
            Some(ip("192.0.2.1"))
        );
        // Behind a trusted proxy: the nearest untrusted hop, not a forged leftmost one.
        assert_eq!(
            client_address(
                Some(ip("10.0.0.5")),
                Some("6.6.6.6, 203.0.113.9, 10.0.0.7"),
                &trusted
            ),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.5")), None, &trusted),
            Some(ip("10.0.0.5"))
        );
        assert_eq!(
            client_address(Some(ip("10.0.0.5")), Some("garbage"), &trusted),
            Some(ip("10.0.0.5"))
        );
    }

    #[test]
    fn an_address_is_blocked_after_its_failures() {
        let limiter = Limiter::new(3, Duration::from_secs(60));
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert!(!limiter.watching());
        assert_eq!(limiter.failed(a), None);
        assert!(limiter.watching());
        assert_eq!(limiter.failed(a), None);
        assert_eq!(limiter.failed(a), Some(Duration::from_secs(60)));
        assert!(limiter.blocked(a).is_some());
        assert_eq!(limiter.blocked(b), None);
    }
}
