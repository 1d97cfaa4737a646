//! The admin token: kept as its SHA-256, compared in constant time, required by the management
//! API through the `Admin` extractor (so a handler cannot forget it); generated at start when
//! `HUB_ADMIN_TOKEN` is unset.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use super::error::ApiError;

/// The admin token, kept as its SHA-256 so comparisons take the same time whatever the input.
pub struct AdminToken([u8; 32]);

impl AdminToken {
    pub fn new(token: &str) -> AdminToken {
        AdminToken(Sha256::digest(token.as_bytes()).into())
    }

    fn accepts(&self, header: Option<&str>) -> bool {
        let Some(given) = header.and_then(bearer) else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        given.ct_eq(&self.0).into()
    }
}

/// The credentials of `Authorization: Bearer <credentials>`; the scheme's name is
/// case-insensitive (RFC 9110 §11.1).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, credentials) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(credentials)
}

/// Proof that the request carries the admin token; an extractor, so a handler cannot forget it.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(from) = super::site::cross_site(req.method(), req.headers()) {
            let error = ApiError::cross_site(req.method().as_str(), req.path(), &from);
            return ready(Err(error));
        }
        let header = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let accepted = req
            .app_data::<web::Data<AdminToken>>()
            .is_some_and(|token| token.accepts(header));
        ready(if accepted {
            Ok(Admin)
        } else {
            Err(ApiError::unauthorized())
        })
    }
}

/// 32 random bytes as hex.
pub fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("cannot generate an admin token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_must_match_exactly() {
        let token = AdminToken::new("s3cret");
        assert!(token.accepts(Some("Bearer s3cret")));
        assert!(
            token.accepts(Some("bearer s3cret")),
            "the scheme is case-insensitive"
        );
        assert!(token.accepts(Some("BEARER s3cret")));
        assert!(!token.accepts(Some("Bearer s3cre")));
        assert!(!token.accepts(Some("Bearer s3cret2")));
        assert!(!token.accepts(Some("s3cret")));
        assert!(!token.accepts(Some("Basic s3cret")));
        assert!(!token.accepts(None));
    }
}
