//! Single sign-on with an OpenID provider: the authorization code flow with PKCE, `state` and
//! `nonce` (RFC 6749, RFC 7636, OpenID Connect Core 1.0), through the `openidconnect` crate.
//!
//! [`Oidc::discover`] reads the provider's discovery document and signing keys (JWKS) once;
//! [`Oidc::begin`] gives the URL to send the browser to and the [`Pending`] secrets the hub keeps
//! until the browser comes back; [`Oidc::finish`] exchanges the code at the token endpoint and
//! verifies the ID token (signature against the JWKS, issuer, audience, expiry, nonce).
//!
//! Talks to the provider over HTTP(S) with a blocking `ureq` agent run on tokio's blocking pool:
//! rustls with the Mozilla roots, no redirects followed (the crate requires it, against SSRF),
//! [`HTTP_TIMEOUT`] per request. Knows nothing of the hub's sessions, routes or database.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AsyncHttpClient, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest,
    HttpResponse, IdToken, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, StandardErrorResponse, TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest any one request to the provider may take, connection included.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// How far the provider's clock may be ahead of the hub's: an ID token is accepted until this
/// long after its `exp`. The crate itself allows none.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The largest response body read from the provider (discovery, JWKS, token).
const BODY_LIMIT: u64 = 1024 * 1024;

/// How the hub signs in with one OpenID provider.
#[derive(Clone)]
pub struct OidcSettings {
    /// The provider's issuer URL, exactly as its discovery document states it.
    pub issuer: String,
    /// The hub's client id at the provider.
    pub client_id: String,
    /// The hub's client secret, sent with HTTP Basic authentication to the token endpoint.
    pub client_secret: String,
    /// The hub's `/auth/callback` URL, registered at the provider.
    pub redirect_url: String,
    /// The ID token claim listing the user's groups; also requested as a scope when the provider
    /// lists a scope of that name.
    pub groups_claim: String,
}

impl std::fmt::Debug for OidcSettings {
    /// The settings without the client secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_url", &self.redirect_url)
            .field("groups_claim", &self.groups_claim)
            .finish()
    }
}

/// The client `CoreClient::from_provider_metadata` builds, with the token endpoint known.
type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointMaybeSet,
>;

/// An ID token whose claims beyond the standard ones are kept as JSON (the groups claim's name
/// is a setting).
type HubIdToken = IdToken<
    OtherClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// The ID token's claims that are not standard OpenID claims.
#[derive(Debug, Deserialize, Serialize)]
struct OtherClaims {
    /// Claim name → value.
    #[serde(flatten)]
    claims: serde_json::Map<String, Value>,
}

impl AdditionalClaims for OtherClaims {}

/// One OpenID provider, discovered: its endpoints and signing keys, and the hub's client there.
pub struct Oidc {
    client: Client,
    http: Http,
    scopes: Vec<Scope>,
    groups_claim: String,
    clock_skew: Duration,
}

/// What the hub keeps between `/login` and `/auth/callback`, keyed by `state`, used once.
#[derive(Clone)]
pub struct Pending {
    /// The `state` sent to the provider; the callback must bring back the same.
    pub state: String,
    /// The `nonce` sent to the provider; the ID token must carry the same.
    pub nonce: String,
    /// The PKCE code verifier whose S256 challenge was sent; proves the code is the hub's.
    pub pkce_verifier: String,
}

/// Who signed in, as the provider's ID token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct External {
    /// The `sub` claim: the user's id at the provider, stable across sign-ins.
    pub subject: String,
    /// The `name` claim (default language), when the provider sent one.
    pub name: Option<String>,
    /// The `email` claim, when the provider sent one.
    pub email: Option<String>,
    /// The groups claim's strings; empty when the claim is absent.
    pub groups: Vec<String>,
}

/// The ID token check that refused a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdTokenCheck {
    /// Not a signed JWT with the claims an ID token must have.
    Format,
    /// The signature does not verify with the provider's keys, or uses an algorithm it does
    /// not announce.
    Signature,
    /// The `iss` claim is not the configured issuer.
    Issuer,
    /// The `aud` claim does not name this client (the token was issued to another client).
    Audience,
    /// The `exp` claim is past, beyond the allowed clock skew.
    Expired,
    /// The `nonce` claim is not the one this sign-in sent (a replayed or injected token).
    Nonce,
    /// A claim the hub reads has an unusable value, or another check of the crate failed.
    Claims,
}

impl std::fmt::Display for IdTokenCheck {
    /// The check's name, as it appears in [`OidcError::IdToken`]'s message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IdTokenCheck::Format => "format",
            IdTokenCheck::Signature => "signature",
            IdTokenCheck::Issuer => "issuer",
            IdTokenCheck::Audience => "audience",
            IdTokenCheck::Expired => "expiry",
            IdTokenCheck::Nonce => "nonce",
            IdTokenCheck::Claims => "claims",
        })
    }
}

/// Why single sign-on failed. The variant says what to do: fix the settings, retry later (the
/// provider is unreachable), or start the sign-in again (the provider or the token said no).
#[derive(thiserror::Error, Debug)]
pub enum OidcError {
    /// A setting is not usable (not a URL, empty).
    #[error("OpenID Connect settings: {0}")]
    Settings(String),
    /// The discovery document or the JWKS could not be read or is not valid.
    #[error(
        "cannot discover the OpenID provider at {issuer}: {reason}; check the issuer URL and that \
         the provider is reachable from the hub"
    )]
    Discovery {
        /// The configured issuer URL.
        issuer: String,
        /// What failed, with its causes.
        reason: String,
    },
    /// The token endpoint answered with an OAuth error: the code is unknown, expired or already
    /// used, the PKCE verifier or the redirect URL does not match, or the client's credentials
    /// are wrong.
    #[error("the OpenID provider refused the authorization code: {0}")]
    CodeRefused(String),
    /// The token request failed otherwise: the provider is unreachable, or its answer is not a
    /// token response with an ID token.
    #[error("the token request to the OpenID provider failed: {0}")]
    Exchange(String),
    /// The ID token failed one of its checks.
    #[error("ID token refused by the {check} check: {detail}")]
    IdToken {
        /// Which check.
        check: IdTokenCheck,
        /// What it found.
        detail: String,
    },
}

impl Oidc {
    /// Read the provider's discovery document and JWKS, and set up the hub's client there.
    pub async fn discover(settings: OidcSettings) -> Result<Oidc, OidcError> {
        let issuer = IssuerUrl::new(settings.issuer.clone()).map_err(|e| {
            OidcError::Settings(format!(
                "the issuer `{}` is not a URL ({e})",
                settings.issuer
            ))
        })?;
        let redirect = RedirectUrl::new(settings.redirect_url.clone()).map_err(|e| {
            OidcError::Settings(format!(
                "the redirect URL `{}` is not a URL ({e})",
                settings.redirect_url
            ))
        })?;
        for (name, value) in [
            ("client id", &settings.client_id),
            ("groups claim", &settings.groups_claim),
        ] {
            if value.is_empty() {
                return Err(OidcError::Settings(format!("the {name} is empty")));
            }
        }
        let http = Http::new();
        let discovery_error = |reason: String| OidcError::Discovery {
            issuer: settings.issuer.clone(),
            reason,
        };
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| discovery_error(error_chain(&e)))?;
        let token_url = metadata.token_endpoint().cloned().ok_or_else(|| {
            discovery_error("its discovery document names no token_endpoint".to_owned())
        })?;
        let scopes = scopes(metadata.scopes_supported(), &settings.groups_claim);
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(settings.client_id),
            Some(ClientSecret::new(settings.client_secret)),
        )
        .set_token_uri(token_url)
        .set_redirect_uri(redirect);
        Ok(Oidc {
            client,
            http,
            scopes,
            groups_claim: settings.groups_claim,
            clock_skew: DEFAULT_CLOCK_SKEW,
        })
    }

    /// The same provider, accepting an ID token until `skew` after its `exp` (default
    /// [`DEFAULT_CLOCK_SKEW`]; zero refuses it from the second it expires).
    pub fn with_clock_skew(mut self, skew: Duration) -> Oidc {
        self.clock_skew = skew;
        self
    }

    /// The scopes [`Oidc::begin`] asks for: `openid`, `profile`, `email`, and the groups claim's
    /// name when the provider lists a scope of that name.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        std::iter::once("openid").chain(self.scopes.iter().map(|s| s.as_str()))
    }

    /// Start a sign-in: the provider's authorization URL to redirect the browser to (code flow,
    /// S256 PKCE challenge, fresh `state` and `nonce`), and what to keep until the callback.
    pub fn begin(&self) -> (String, Pending) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(self.scopes.iter().cloned())
            .set_pkce_challenge(challenge)
            .url();
        let pending = Pending {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        };
        (url.to_string(), pending)
    }

    /// Finish a sign-in: exchange `code` (from the callback whose `state` matched `pending`) and
    /// verify the ID token.
    pub async fn finish(&self, pending: &Pending, code: &str) -> Result<External, OidcError> {
        let id_token = self.exchange(pending, code).await?;
        self.verify(&id_token, &pending.nonce)
    }

    /// Exchange `code` and `pending`'s PKCE verifier at the token endpoint; the raw ID token, not
    /// yet verified.
    pub async fn exchange(&self, pending: &Pending, code: &str) -> Result<String, OidcError> {
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(exchange_error)?;
        let id_token = response.id_token().ok_or_else(|| {
            OidcError::Exchange(
                "the token response has no id_token (is the `openid` scope allowed for this \
                 client at the provider?)"
                    .to_owned(),
            )
        })?;
        Ok(id_token.to_string())
    }

    /// Verify a raw ID token: its signature against the provider's JWKS, then issuer, audience
    /// (this client), expiry (with the clock skew) and `nonce`; who it names.
    pub fn verify(&self, id_token: &str, nonce: &str) -> Result<External, OidcError> {
        let token = parse(id_token)?;
        let verifier = self
            .client
            .id_token_verifier()
            .set_time_fn(clock(self.clock_skew));
        let nonce = Nonce::new(nonce.to_owned());
        let claims = token
            .claims(&verifier, &nonce)
            .map_err(|e| id_token_error(&e, self.clock_skew))?;
        let groups = groups(
            claims.additional_claims().claims.get(&self.groups_claim),
            &self.groups_claim,
        )?;
        Ok(External {
            subject: claims.subject().as_str().to_owned(),
            name: claims
                .name()
                .and_then(|name| name.get(None))
                .map(|name| name.as_str().to_owned()),
            email: claims.email().map(|email| email.as_str().to_owned()),
            groups,
        })
    }
}

/// The time the verifier judges `exp` by: now, set back by `skew`. The crate refuses a token from
/// the second of its `exp`; this accepts it for `skew` longer.
fn clock(skew: Duration) -> impl Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync {
    let skew = chrono::TimeDelta::from_std(skew).unwrap_or(chrono::TimeDelta::MAX);
    move || {
        chrono::Utc::now()
            .checked_sub_signed(skew)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
    }
}

/// The ID token in `text`, parsed but not verified.
fn parse(text: &str) -> Result<HubIdToken, OidcError> {
    text.parse()
        .map_err(|e: serde_json::Error| OidcError::IdToken {
            check: IdTokenCheck::Format,
            detail: e.to_string(),
        })
}

/// The scopes beside `openid`: `profile`, `email`, and `groups_claim` when `supported` lists it.
fn scopes(supported: Option<&Vec<Scope>>, groups_claim: &str) -> Vec<Scope> {
    let mut scopes = vec![
        Scope::new("profile".to_owned()),
        Scope::new("email".to_owned()),
    ];
    if supported.is_some_and(|list| list.iter().any(|s| s.as_str() == groups_claim))
        && !scopes.iter().any(|s| s.as_str() == groups_claim)
    {
        scopes.push(Scope::new(groups_claim.to_owned()));
    }
    scopes
}

/// The groups claim's value as strings: a list of strings, one string, or absent (none).
fn groups(value: Option<&Value>, claim: &str) -> Result<Vec<String>, OidcError> {
    let unusable = || OidcError::IdToken {
        check: IdTokenCheck::Claims,
        detail: format!("the `{claim}` claim is not a list of strings"),
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(group)) => Ok(vec![group.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(unusable))
            .collect(),
        Some(_) => Err(unusable()),
    }
}

/// The check behind one of the crate's verification errors.
fn id_token_error(error: &ClaimsVerificationError, skew: Duration) -> OidcError {
    let (check, detail) = match error {
        ClaimsVerificationError::SignatureVerification(cause) => {
            (IdTokenCheck::Signature, cause.to_string())
        }
        ClaimsVerificationError::InvalidIssuer(detail) => (IdTokenCheck::Issuer, detail.clone()),
        ClaimsVerificationError::InvalidAudience(detail) => {
            (IdTokenCheck::Audience, detail.clone())
        }
        ClaimsVerificationError::Expired(detail) => (
            IdTokenCheck::Expired,
            format!("{detail}, allowed clock skew {} s", skew.as_secs()),
        ),
        ClaimsVerificationError::InvalidNonce(detail) => (IdTokenCheck::Nonce, detail.clone()),
        other => (IdTokenCheck::Claims, error_chain(other)),
    };
    OidcError::IdToken { check, detail }
}

/// A failed token request: refused by the provider, or failed on the way.
fn exchange_error(
    error: RequestTokenError<HttpError, StandardErrorResponse<CoreErrorResponseType>>,
) -> OidcError {
    match error {
        RequestTokenError::ServerResponse(response) => OidcError::CodeRefused(response.to_string()),
        other => OidcError::Exchange(error_chain(&other)),
    }
}

/// `error` and its causes, joined with `: `.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The HTTP client `openidconnect` calls: a blocking `ureq` agent on tokio's blocking pool.
#[derive(Clone)]
struct Http {
    agent: ureq::Agent,
}

/// A request to the provider that got no HTTP response.
#[derive(thiserror::Error, Debug)]
#[error("{method} {url}: {reason}")]
struct HttpError {
    /// The request's method.
    method: String,
    /// The request's URL.
    url: String,
    /// What failed.
    reason: String,
}

impl Http {
    /// An agent that follows no redirect, gives every status to the caller, and times out.
    fn new() -> Http {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_global(Some(HTTP_TIMEOUT))
            .user_agent(concat!("bmc-hub/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Http { agent }
    }

    /// Send `request` and read the whole response (blocking).
    fn send(agent: &ureq::Agent, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let method = request.method().to_string();
        let url = request.uri().to_string();
        let failed = |reason: String| HttpError {
            method: method.clone(),
            url: url.clone(),
            reason,
        };
        let response = agent.run(request).map_err(|e| failed(e.to_string()))?;
        let (parts, mut body) = response.into_parts();
        let bytes = body
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .map_err(|e| failed(format!("reading the response: {e}")))?;
        Ok(HttpResponse::from_parts(parts, bytes))
    }
}

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    /// Run the blocking request on tokio's blocking pool.
    fn call(&'c self, request: HttpRequest) -> Self::Future {
        let agent = self.agent.clone();
        let (method, url) = (request.method().to_string(), request.uri().to_string());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || Http::send(&agent, request))
                .await
                .unwrap_or_else(|e| {
                    Err(HttpError {
                        method,
                        url,
                        reason: format!("the request's task failed: {e}"),
                    })
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(scopes: &[Scope]) -> Vec<&str> {
        scopes.iter().map(|s| s.as_str()).collect()
    }

    #[test]
    fn the_groups_scope_is_asked_for_only_when_the_provider_lists_it() {
        let listed = vec![
            Scope::new("openid".to_owned()),
            Scope::new("groups".to_owned()),
        ];
        assert_eq!(
            names(&scopes(Some(&listed), "groups")),
            ["profile", "email", "groups"]
        );
        assert_eq!(names(&scopes(Some(&listed), "roles")), ["profile", "email"]);
        assert_eq!(names(&scopes(None, "groups")), ["profile", "email"]);
        // A claim named like a standard scope is not asked for twice.
        let email = vec![Scope::new("email".to_owned())];
        assert_eq!(names(&scopes(Some(&email), "email")), ["profile", "email"]);
    }

    #[test]
    fn groups_are_a_list_of_strings_one_string_or_none() {
        let json = |text: &str| serde_json::from_str::<Value>(text).expect("JSON");
        assert_eq!(
            groups(Some(&json(r#"["hub-admins","staff"]"#)), "groups").expect("list"),
            ["hub-admins", "staff"]
        );
        assert_eq!(
            groups(Some(&json(r#""staff""#)), "groups").expect("one"),
            ["staff"]
        );
        assert!(groups(None, "groups").expect("none").is_empty());
        assert!(
            groups(Some(&Value::Null), "groups")
                .expect("null")
                .is_empty()
        );
        for bad in [r#"[1]"#, r#"{"a":1}"#, "true"] {
            let error = groups(Some(&json(bad)), "roles").expect_err(bad);
            assert_eq!(
                error.to_string(),
                "ID token refused by the claims check: the `roles` claim is not a list of strings"
            );
        }
    }

    #[test]
    fn each_refusal_of_the_crate_names_its_check() {
        let skew = Duration::from_secs(60);
        let cases = [
            (
                ClaimsVerificationError::InvalidNonce("nonce mismatch".to_owned()),
                "ID token refused by the nonce check: nonce mismatch",
            ),
            (
                ClaimsVerificationError::InvalidAudience("must contain `hub`".to_owned()),
                "ID token refused by the audience check: must contain `hub`",
            ),
            (
                ClaimsVerificationError::InvalidIssuer("expected `a`".to_owned()),
                "ID token refused by the issuer check: expected `a`",
            ),
            (
                ClaimsVerificationError::Expired("ID token expired at x".to_owned()),
                "ID token refused by the expiry check: ID token expired at x, allowed clock skew \
                 60 s",
            ),
            (
                ClaimsVerificationError::SignatureVerification(
                    openidconnect::SignatureVerificationError::NoMatchingKey,
                ),
                "ID token refused by the signature check: No matching key found",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(id_token_error(&error, skew).to_string(), message);
        }
    }

    #[test]
    fn other_claims_keep_what_the_standard_claims_do_not_name() {
        let claims: openidconnect::IdTokenClaims<OtherClaims, CoreGenderClaim> =
            serde_json::from_str(
                r#"{"iss":"http://op","aud":"hub","exp":2,"iat":1,"sub":"alice",
                    "email":"alice@example.test","groups":["staff"]}"#,
            )
            .expect("claims");
        assert_eq!(
            claims.email().map(|e| e.as_str()),
            Some("alice@example.test")
        );
        assert_eq!(
            claims.additional_claims().claims.get("groups"),
            Some(&serde_json::json!(["staff"]))
        );
    }

    #[test]
    fn a_token_that_is_not_a_jwt_is_refused_by_the_format_check() {
        let error = parse("not-a-jwt").map(drop).expect_err("not a JWT");
        assert_eq!(
            error.to_string(),
            "ID token refused by the format check: Invalid JSON web token: found 1 parts \
             (expected 3)"
        );
    }

    #[test]
    fn the_clock_is_set_back_by_the_skew_and_never_overflows() {
        let before = chrono::Utc::now();
        let judged = clock(Duration::from_secs(60))();
        let back = before - judged;
        assert!(
            back >= chrono::TimeDelta::seconds(59) && back <= chrono::TimeDelta::seconds(60),
            "{back}"
        );
        assert_eq!(
            clock(Duration::MAX)(),
            chrono::DateTime::<chrono::Utc>::MIN_UTC
        );
    }

    #[test]
    fn settings_debug_hides_the_client_secret() {
        let settings = OidcSettings {
            issuer: "https://op.example".to_owned(),
            client_id: "hub".to_owned(),
            client_secret: "s3cret".to_owned(),
            redirect_url: "https://hub.example/auth/callback".to_owned(),
            groups_claim: "groups".to_owned(),
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
