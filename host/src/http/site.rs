//! Cross-site requests. A page of another site can make a browser send a state-changing request
//! to the hub (bound to 127.0.0.1 by default, it is reachable from any page the operator opens):
//! a form posted to a module's view, a `no-cors` fetch to a module's API. A request with an
//! unsafe method whose `Sec-Fetch-Site` or `Origin` says another site is refused (403
//! `cross_site`); a request without those headers (curl, scripts) is not cross-site.

use actix_web::http::Method;
use actix_web::http::header::{HOST, HeaderMap, ORIGIN};

/// What shows that an unsafe request comes from another site (the header and its value), or
/// `None` when it does not.
pub fn cross_site(method: &Method, headers: &HeaderMap) -> Option<String> {
    if method.is_safe() {
        return None;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("?");
        return (!matches!(site, "same-origin" | "none"))
            .then(|| format!("Sec-Fetch-Site: {site}"));
    }
    let origin = headers.get(ORIGIN)?;
    let origin = origin.to_str().unwrap_or("?");
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match (authority, host) {
        (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => None,
        _ => Some(format!("Origin: {origin}")),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn unsafe_requests_from_another_site_are_cross_site() {
        let post = Method::POST;
        let host = ("host", "127.0.0.1:8000");
        assert_eq!(cross_site(&post, &headers(&[host])), None, "curl");
        assert_eq!(
            cross_site(
                &post,
                &headers(&[host, ("origin", "http://127.0.0.1:8000")])
            ),
            None
        );
        assert_eq!(
            cross_site(&post, &headers(&[host, ("origin", "http://evil.example")])),
            Some("Origin: http://evil.example".to_owned())
        );
        assert_eq!(
            cross_site(&post, &headers(&[host, ("origin", "null")])),
            Some("Origin: null".to_owned())
        );
        assert_eq!(
            cross_site(&post, &headers(&[host, ("sec-fetch-site", "cross-site")])),
            Some("Sec-Fetch-Site: cross-site".to_owned())
        );
        assert_eq!(
            cross_site(&post, &headers(&[host, ("sec-fetch-site", "same-site")])),
            Some("Sec-Fetch-Site: same-site".to_owned())
        );
        assert_eq!(
            cross_site(&post, &headers(&[host, ("sec-fetch-site", "same-origin")])),
            None
        );
        assert_eq!(
            cross_site(
                &Method::GET,
                &headers(&[host, ("origin", "http://evil.example")])
            ),
            None,
            "safe methods change nothing"
        );
    }
}
