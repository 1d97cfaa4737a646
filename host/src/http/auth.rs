//! Who is calling, as the HTTP room reads it: the credentials of a request (`Authorization:
//! Bearer …`, else the session cookie), the caller's address behind trusted proxies, and the
//! `Caller` extractor the hub's own routes take (so a handler cannot forget to check), which
//! answers 401 `unauthenticated`, 403 `permission_denied` or 429.

use std::future::{Ready, ready};
use std::net::IpAddr;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{FromRequest, HttpRequest, web};

use super::error::ApiError;
use crate::identity::{Actor, AuthError, Identity, Presented, Principal, SESSION_COOKIE};
use crate::lifecycle::Hub;

/// The credentials `headers` carry: `Authorization`, else the session cookie (not looked for
/// when there is an `Authorization`, which wins). Two lookups: a pass over the headers instead
/// was measured dearer (+50 instructions) with an API client's two headers.
pub fn presented(headers: &HeaderMap) -> Presented<'_> {
    if let Some(authorization) = headers.get(header::AUTHORIZATION) {
        return Presented {
            authorization: Some(authorization.as_bytes()),
            session: None,
        };
    }
    Presented {
        authorization: None,
        session: headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(session_cookie),
    }
}

/// The session cookie's value in a `Cookie` header.
fn session_cookie(cookies: &str) -> Option<&str> {
    cookies.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == SESSION_COOKIE).then_some(value.trim_matches('"'))
    })
}

/// The caller's address: the peer's, or the client's behind a trusted proxy.
pub fn address(identity: &Identity, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    identity.client_address(peer, forwarded)
}

/// Whether the request reached the hub over https (for `Secure` cookies): the public URL says
/// so, or a trusted proxy does.
pub fn is_https(identity: &Identity, req: &HttpRequest) -> bool {
    identity.https
        || (identity.is_trusted_proxy(req.peer_addr().map(|a| a.ip()))
            && req
                .headers()
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")))
}

/// The caller of `req`: `Ok(None)` when it presented nothing. The error stays small (an
/// `AuthError`) until a client is to see it ([`auth_error`]).
pub fn resolve(
    identity: &Identity,
    req: &HttpRequest,
    headers: &HeaderMap,
) -> Result<Option<Arc<Principal>>, AuthError> {
    identity.resolve(presented(headers), || {
        address(identity, req.peer_addr().map(|a| a.ip()), headers)
    })
}

/// The error a client sees for refused credentials.
#[cold]
pub fn auth_error(error: AuthError) -> ApiError {
    match error {
        AuthError::TooMany { retry_after, .. } => {
            ApiError::too_many(error.to_string(), retry_after)
        }
        other => ApiError::unauthenticated(other.to_string()),
    }
}

/// The audit log's name for the caller of `req`.
pub fn actor(identity: &Identity, req: &HttpRequest, principal: Option<&Principal>) -> Actor {
    Actor {
        id: principal.map_or_else(|| "anonymous".to_owned(), Principal::actor),
        name: principal.map(|p| p.name.clone()),
        address: address(identity, req.peer_addr().map(|a| a.ip()), req.headers())
            .map(|ip| ip.to_string()),
    }
}

/// A signed-in caller of one of the hub's own routes; an extractor, so a handler cannot forget
/// it. Unsafe methods from other sites' pages are refused here too (403 `cross_site`).
pub struct Caller {
    pub principal: Arc<Principal>,
    pub actor: Actor,
    identity: Arc<Identity>,
}

impl Caller {
    /// `Ok` when the caller has the hub permission `permission`; else 403 `permission_denied`
    /// naming it (and the refusal is counted in the audit log).
    pub fn require(&self, permission: &str) -> Result<(), ApiError> {
        if self.principal.permissions.can(permission) {
            return Ok(());
        }
        self.identity
            .auditor
            .count(&self.actor, "permission.denied", None, permission);
        Err(ApiError::permission_denied(permission))
    }

    /// Whether the caller has the hub permission `permission` (nothing counted).
    pub fn can(&self, permission: &str) -> bool {
        self.principal.permissions.can(permission)
    }

    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(caller(req))
    }
}

pub fn caller(req: &HttpRequest) -> Result<Caller, ApiError> {
    if !req.method().is_safe()
        && let Some(from) = super::site::cross_site(req.method(), req.headers())
    {
        return Err(ApiError::cross_site(
            req.method().as_str(),
            req.path(),
            &from,
        ));
    }
    let hub = req
        .app_data::<web::Data<Hub>>()
        .ok_or_else(|| ApiError::internal("the hub is not registered with the server"))?;
    let identity = hub.identity().clone();
    let principal = resolve(&identity, req, req.headers())
        .map_err(auth_error)?
        .ok_or_else(|| {
        ApiError::unauthenticated(
            "sign in first: send Authorization: Bearer <token> (the admin token or an API token), or sign in at /login",
        )
    })?;
    let actor = actor(&identity, req, Some(&principal));
    Ok(Caller {
        principal,
        actor,
        identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        assert_eq!(session_cookie("a=1; hub_session=xyz; b=2"), Some("xyz"));
        assert_eq!(session_cookie("hub_session=\"xyz\""), Some("xyz"));
        assert_eq!(session_cookie("hub_sessionx=1"), None);
        assert_eq!(session_cookie(""), None);
    }
}
