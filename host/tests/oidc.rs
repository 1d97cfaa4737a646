//! Single sign-on (`host::identity::oidc`) against a real OpenID provider: `oidc-provider` under
//! node, started by `hub_testkit::oidc::OidcProvider` (needs `npm ci --prefix host/tests/oidc`,
//! which `cargo xtask test` runs). Discovery, the code flow with PKCE through the provider's own
//! login and consent pages, and each check an ID token must pass.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use host::identity::oidc::{External, IdTokenCheck, Oidc, OidcError, OidcSettings, Pending};
use hub_testkit::oidc::{OidcClient, OidcProvider, query_param, sign_in, to_callback};

/// Where the provider sends the browser back; never requested (the flow stops before it).
const REDIRECT: &str = "http://127.0.0.1:9/auth/callback";

/// The hub's client and another one, at the same provider.
fn clients() -> [OidcClient; 2] {
    [
        OidcClient::new("hub", "hub-secret", REDIRECT),
        OidcClient::new("other", "other-secret", REDIRECT),
    ]
}

/// `client`'s view of `provider`, its secret from [`clients`].
async fn discover(provider: &OidcProvider, client: &str) -> Oidc {
    Oidc::discover(settings(&provider.issuer(), client))
        .await
        .unwrap_or_else(|e| panic!("discovery: {e}\n{}", provider.logs()))
}

fn settings(issuer: &str, client: &str) -> OidcSettings {
    OidcSettings {
        issuer: issuer.to_owned(),
        client_id: client.to_owned(),
        client_secret: format!("{client}-secret"),
        redirect_url: REDIRECT.to_owned(),
        groups_claim: "groups".to_owned(),
    }
}

/// Sign in as `login` through the provider's pages: the pending sign-in and the code the
/// provider sent back with the same `state`.
fn authorize(oidc: &Oidc, login: &str) -> (Pending, String) {
    let (url, pending) = oidc.begin();
    let callback = to_callback(&url, login).unwrap_or_else(|e| panic!("sign-in: {e}"));
    assert!(callback.url.starts_with(REDIRECT), "{}", callback.url);
    assert_eq!(callback.state, pending.state);
    (pending, callback.code)
}

/// A fresh raw ID token for `login`, with the pending sign-in it answers.
async fn id_token(oidc: &Oidc, login: &str) -> (String, Pending) {
    let (pending, code) = authorize(oidc, login);
    let token = oidc.exchange(&pending, &code).await.expect("exchange");
    (token, pending)
}

#[tokio::test]
async fn signing_in_gives_who_the_provider_says() {
    let provider = OidcProvider::start(&clients());
    let oidc = discover(&provider, "hub").await;
    assert_eq!(
        oidc.scopes().collect::<Vec<_>>(),
        ["openid", "profile", "email", "groups"]
    );
    let (url, pending) = oidc.begin();
    assert!(
        url.starts_with(&format!("{}/auth?", provider.issuer())),
        "{url}"
    );
    for part in [
        "response_type=code",
        "client_id=hub",
        "scope=openid+profile+email+groups",
        "code_challenge_method=S256",
        "redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fauth%2Fcallback",
    ] {
        assert!(url.contains(part), "{part} in {url}");
    }
    assert!(url.contains(&format!("state={}", pending.state)), "{url}");
    assert!(url.contains(&format!("nonce={}", pending.nonce)), "{url}");
    assert!(
        !url.contains(&pending.pkce_verifier),
        "the verifier stays secret: {url}"
    );

    let callback = to_callback(&url, "alice").expect("sign-in");
    assert_eq!(callback.state, pending.state);
    let alice = oidc.finish(&pending, &callback.code).await.expect("finish");
    assert_eq!(
        alice,
        External {
            subject: "alice".to_owned(),
            name: Some("Alice".to_owned()),
            email: Some("alice@example.test".to_owned()),
            groups: vec!["hub-admins".to_owned(), "staff".to_owned()],
        }
    );

    let (pending, code) = authorize(&oidc, "carol");
    let carol = oidc.finish(&pending, &code).await.expect("finish");
    assert_eq!(carol.subject, "carol");
    assert!(carol.groups.is_empty(), "{carol:?}");
}

#[tokio::test]
async fn a_code_works_once() {
    let provider = OidcProvider::start(&clients());
    let oidc = discover(&provider, "hub").await;
    let (pending, code) = authorize(&oidc, "alice");
    oidc.finish(&pending, &code).await.expect("first use");
    let error = oidc.finish(&pending, &code).await.expect_err("second use");
    assert!(
        matches!(&error, OidcError::CodeRefused(reason) if reason == "invalid_grant: grant request is invalid"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the OpenID provider refused the authorization code: invalid_grant: grant request is invalid"
    );
}

#[tokio::test]
async fn a_code_needs_its_pkce_verifier() {
    let provider = OidcProvider::start(&clients());
    let oidc = discover(&provider, "hub").await;
    let (pending, code) = authorize(&oidc, "alice");
    let (_, other) = oidc.begin();
    let stolen = Pending {
        pkce_verifier: other.pkce_verifier,
        ..pending
    };
    let error = oidc
        .finish(&stolen, &code)
        .await
        .expect_err("wrong verifier");
    assert!(
        matches!(&error, OidcError::CodeRefused(reason) if reason.starts_with("invalid_grant")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_token_for_another_sign_in_is_refused_by_its_nonce() {
    let provider = OidcProvider::start(&clients());
    let oidc = discover(&provider, "hub").await;
    let (token, pending) = id_token(&oidc, "alice").await;
    assert_eq!(
        oidc.verify(&token, &pending.nonce)
            .expect("own nonce")
            .subject,
        "alice"
    );
    let error = oidc.verify(&token, "other-nonce").expect_err("other nonce");
    assert!(
        matches!(
            &error,
            OidcError::IdToken {
                check: IdTokenCheck::Nonce,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "ID token refused by the nonce check: nonce mismatch"
    );
}

#[tokio::test]
async fn a_token_issued_to_another_client_is_refused_by_its_audience() {
    let provider = OidcProvider::start(&clients());
    let hub = discover(&provider, "hub").await;
    let other = discover(&provider, "other").await;
    let (token, pending) = id_token(&other, "alice").await;
    other
        .verify(&token, &pending.nonce)
        .expect("valid for its own client");
    let error = hub
        .verify(&token, &pending.nonce)
        .expect_err("another client's");
    assert!(
        matches!(
            &error,
            OidcError::IdToken {
                check: IdTokenCheck::Audience,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "ID token refused by the audience check: must contain `hub` (found audiences: `other`)"
    );
}

#[tokio::test]
async fn a_token_changed_by_one_byte_is_refused_by_its_signature() {
    let provider = OidcProvider::start(&clients());
    let oidc = discover(&provider, "hub").await;
    let (token, pending) = id_token(&oidc, "alice").await;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let mut payload = URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url payload");
    // "sub":"alice" becomes "sub":"alicf": still JSON, another user.
    let at = payload
        .windows(13)
        .position(|w| w == br#""sub":"alice""#)
        .expect("the sub claim")
        + 11;
    payload[at] = b'f';
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(&payload),
        parts[2]
    );
    let error = oidc.verify(&forged, &pending.nonce).expect_err("forged");
    assert!(
        matches!(
            &error,
            OidcError::IdToken {
                check: IdTokenCheck::Signature,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "ID token refused by the signature check: Crypto error: bad signature"
    );
    // The token as issued still passes: only the byte changed.
    oidc.verify(&token, &pending.nonce).expect("as issued");
}

#[tokio::test]
async fn an_expired_token_is_refused_beyond_the_clock_skew() {
    let provider = OidcProvider::start_with_id_token_ttl(&clients(), Duration::from_secs(1));
    let lenient = discover(&provider, "hub").await;
    let strict = discover(&provider, "hub")
        .await
        .with_clock_skew(Duration::ZERO);
    let (token, pending) = id_token(&lenient, "alice").await;
    // The token lives one second: wait (bounded) for the strict verifier to see it expire.
    let deadline = Instant::now() + Duration::from_secs(5);
    let error = loop {
        match strict.verify(&token, &pending.nonce) {
            Ok(_) => {
                assert!(Instant::now() < deadline, "still valid after 5 s");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => break error,
        }
    };
    assert!(
        matches!(
            &error,
            OidcError::IdToken {
                check: IdTokenCheck::Expired,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("ID token refused by the expiry check: ID token expired at ")
            && message.ends_with(", allowed clock skew 0 s"),
        "{message}"
    );
    // The default skew (60 s) still accepts it.
    assert_eq!(
        lenient
            .verify(&token, &pending.nonce)
            .expect("within the skew")
            .subject,
        "alice"
    );
}

#[tokio::test]
async fn discovery_of_an_issuer_nobody_listens_on_names_it() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("address").port()
    };
    let issuer = format!("http://127.0.0.1:{port}");
    let error = Oidc::discover(settings(&issuer, "hub"))
        .await
        .map(drop)
        .expect_err("nobody listens");
    assert!(
        matches!(&error, OidcError::Discovery { issuer: named, .. } if *named == issuer),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "cannot discover the OpenID provider at {issuer}: Request failed: GET \
             {issuer}/.well-known/openid-configuration: "
        )) && message
            .ends_with("; check the issuer URL and that the provider is reachable from the hub"),
        "{message}"
    );
}

#[tokio::test]
async fn discovery_refuses_a_provider_that_names_another_issuer() {
    let provider = OidcProvider::start(&clients());
    // One slash more than the provider's own issuer: not the same identifier.
    let issuer = format!("{}/", provider.issuer());
    let error = Oidc::discover(settings(&issuer, "hub"))
        .await
        .map(drop)
        .expect_err("another issuer");
    assert!(
        matches!(&error, OidcError::Discovery { reason, .. } if reason.contains(&provider.issuer())),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_browser_requests_the_redirect_url_and_keeps_its_cookies() {
    // A stand-in for the hub's callback: answers once, like a hub opening a session.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let redirect = format!(
        "http://127.0.0.1:{}/auth/callback",
        listener.local_addr().expect("address").port()
    );
    let server = std::thread::spawn(move || {
        use std::io::{BufRead as _, Write as _};
        let (mut stream, _) = listener.accept().expect("the callback request");
        let mut request_line = String::new();
        std::io::BufReader::new(&stream)
            .read_line(&mut request_line)
            .expect("request line");
        stream
            .write_all(
                b"HTTP/1.1 303 See Other\r\nLocation: /x\r\n\
                  Set-Cookie: hub_session=abc; Path=/; HttpOnly\r\n\
                  Content-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .expect("response");
        request_line
    });
    let provider = OidcProvider::start(&[OidcClient::new("hub", "hub-secret", &redirect)]);
    let mut settings = settings(&provider.issuer(), "hub");
    settings.redirect_url = redirect.clone();
    let oidc = Oidc::discover(settings).await.expect("discovery");
    let (url, pending) = oidc.begin();

    let end = sign_in(&url, "bob").expect("sign-in");
    assert!(
        end.callback.url.starts_with(&redirect),
        "{}",
        end.callback.url
    );
    assert_eq!(end.callback.status, 303);
    assert_eq!(end.callback.location(), Some("/x"));
    assert_eq!(
        end.callback.set_cookies(),
        ["hub_session=abc; Path=/; HttpOnly"]
    );
    assert_eq!(
        end.browser.cookie(&redirect, "hub_session").as_deref(),
        Some("abc")
    );
    let request_line = server.join().expect("server");
    let target = request_line.split(' ').nth(1).expect("request target");
    let requested = format!("http://127.0.0.1{target}");
    assert!(target.starts_with("/auth/callback?"), "{request_line}");
    assert_eq!(query_param(&requested, "state"), Some(pending.state));
    assert!(query_param(&requested, "code").is_some(), "{request_line}");
}

#[test]
#[should_panic(expected = "provider.mjs: OIDC_CLIENTS must be a JSON array")]
fn a_provider_that_cannot_start_says_why() {
    OidcProvider::start(&[]);
}
