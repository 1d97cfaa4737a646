//! Secrets: API tokens and session ids (32 random bytes) and their SHA-256 (what the database
//! keeps).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// API tokens start with this, so that they are recognisable (in logs, secret scanners).
pub const TOKEN_PREFIX: &str = "hub_";

/// A new API token: `hub_` and 43 characters.
pub fn new_token() -> anyhow::Result<String> {
    Ok(format!("{TOKEN_PREFIX}{}", random_text()?))
}

/// A new session id: 43 characters.
pub fn new_session_id() -> anyhow::Result<String> {
    random_text()
}

/// 32 random bytes, base64url without padding.
pub fn random_text() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("cannot generate a secret: {e}"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// What the database keeps of a secret.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The console's CSRF token for a session: derived from the session's secret (which only its
/// browser has, in an HttpOnly cookie), so a form from another site cannot carry it, and it
/// ends with the session. Never the secret itself: the token is written into pages.
pub fn csrf_token(session_secret: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"bmc-hub csrf\0");
    hash.update(session_secret.as_bytes());
    URL_SAFE_NO_PAD.encode(hash.finalize())
}

/// Whether `text` could be a secret this hub made: the right length and alphabet.
pub fn well_formed(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_recognisable_and_unique() -> anyhow::Result<()> {
        let (a, b) = (new_token()?, new_token()?);
        assert_ne!(a, b);
        assert!(well_formed(&a, TOKEN_PREFIX), "{a}");
        assert!(!well_formed(&a[..a.len() - 1], TOKEN_PREFIX));
        assert!(!well_formed("hub_../../etc/passwd", TOKEN_PREFIX));
        assert!(well_formed(&new_session_id()?, ""));
        let (one, other) = (new_session_id()?, new_session_id()?);
        assert_eq!(csrf_token(&one), csrf_token(&one));
        assert_ne!(csrf_token(&one), csrf_token(&other));
        assert_ne!(csrf_token(&one), one);
        Ok(())
    }
}
