//! Who is calling, and what they may do: the bootstrap administrator (`HUB_ADMIN_TOKEN`), API
//! tokens, browser sessions and single sign-on (`oidc.rs`), roles and permissions
//! (`permissions.rs`), the in-memory directory the hot path reads (`directory.rs`), the audit
//! log's writer (`audit.rs`), failed attempts by address (`limiter.rs`) and secrets
//! (`secret.rs`). The tables are `db/identity.rs`'s.
//!
//! Resolving a caller reads memory only: a secret verified before is found in a cache of verified
//! secrets (only valid ones are ever inserted, so a flood of made-up tokens cannot grow it); a
//! secret not seen before is hashed with SHA-256 and looked up in the directory, which is read
//! again from PostgreSQL when the identity tables change (checked every second, and at once after
//! a change made through this hub). The database keeps only SHA-256 digests.

pub mod audit;
mod directory;
pub mod limiter;
pub mod oidc;
pub mod permissions;
mod secret;

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, TimeZone as _, Utc};
use subtle::ConstantTimeEq as _;
use thiserror::Error;

pub use self::audit::{Actor, Auditor, Event};
use self::directory::{Directory, Session};
pub use self::directory::{Kind, MODULE_SUBJECT, Principal};
use self::limiter::Limiter;
pub use self::permissions::{HUB_PERMISSIONS, Permissions};
pub use self::secret::{TOKEN_PREFIX, csrf_token};
use crate::config::Config;
use crate::db::identity::{self as store, LoginRow, SessionRow, StoreError};
use crate::db::{Database, DbUnavailable};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hub_session";

/// Why the credentials of a request were refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error(
        "the Authorization header must be `Bearer <token>`, with the admin token or an API token (hub_…)"
    )]
    Malformed,
    #[error(
        "the token is not valid (unknown, expired or revoked): create a new one with POST /api/v1/tokens"
    )]
    InvalidToken,
    #[error("your session has ended (signed out, expired or revoked): sign in again at /login")]
    SessionEnded,
    #[error(
        "too many failed sign-ins or unknown tokens from {address}: try again in {} s",
        retry_after.as_secs().max(1)
    )]
    TooMany {
        address: IpAddr,
        retry_after: Duration,
    },
}

/// The credentials of a request, as the HTTP room found them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// The `Authorization` header's value.
    pub authorization: Option<&'a [u8]>,
    /// The session cookie's value.
    pub session: Option<&'a str>,
}

/// A verified credential, by the keyed hash of its secret.
#[derive(Clone)]
enum Verified {
    Admin,
    Token(Arc<Principal>),
    Session(Arc<Session>),
}

/// Verified secrets, each with the whole secret, by its last 8 bytes (random in every secret the
/// hub makes: 48 bits) mixed with a seed of the process's. Only secrets that were verified are
/// inserted, so a flood of made-up ones cannot grow it.
type VerifiedMap = HashMap<u64, (Box<[u8]>, Verified), BuildHasherDefault<Prehashed>>;

/// The last 8 bytes of `secret` (fewer, zero-padded, for a shorter one) as a number.
fn tail(secret: &[u8]) -> u64 {
    if let Some((_, last)) = secret.split_last_chunk::<8>() {
        return u64::from_le_bytes(*last);
    }
    let mut last = [0u8; 8];
    last[..secret.len()].copy_from_slice(secret);
    u64::from_le_bytes(last)
}

/// Whether `a` and `b` are the same bytes, compared 8 at a time in line (a secret is ~50 bytes;
/// this is on every signed-in request).
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a == b;
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().unwrap_or([0; 8]));
    // Whole words, then the last 8 bytes (overlapping the last word when n is not a multiple of 8).
    (0..n / 8).all(|i| word(a, i * 8) == word(b, i * 8)) && word(a, n - 8) == word(b, n - 8)
}

/// The map's keys are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// At most this many verified secrets are remembered (then the cache starts again).
const MAX_VERIFIED: usize = 65_536;

/// How a secret was presented.
const BEARER: u8 = 1;
const COOKIE: u8 = 2;

/// A session the hub just opened: the cookie's value and when it ends.
#[derive(Debug)]
pub struct NewSession {
    pub id: String,
    pub max_age: Duration,
}

/// Why a sign-in did not work.
#[derive(Debug, Error)]
pub enum LoginError {
    #[error(
        "signing in needs PostgreSQL (sessions are kept there): set DATABASE_URL; tokens still work without it"
    )]
    NoDatabase,
    #[error(
        "single sign-on is not set up: set HUB_OIDC_ISSUER, HUB_OIDC_CLIENT_ID and HUB_OIDC_CLIENT_SECRET"
    )]
    NoProvider,
    #[error("the identity provider at {issuer} cannot be used: {reason}")]
    Provider { issuer: String, reason: String },
    #[error(
        "this sign-in is unknown, was already used or took longer than ten minutes: start again at /login"
    )]
    UnknownState,
    #[error("the identity provider's answer was refused: {0}")]
    Refused(String),
    #[error("user '{0}' is disabled: ask an administrator")]
    Disabled(String),
    #[error(transparent)]
    Credentials(#[from] AuthError),
    #[error("the database failed: {0}")]
    Store(String),
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> LoginError {
        match e {
            StoreError::Unavailable(DbUnavailable::NotConfigured) => LoginError::NoDatabase,
            other => LoginError::Store(other.to_string()),
        }
    }
}

/// Who is calling and what they may do; one per hub.
pub struct Identity {
    db: Arc<Database>,
    group_roles: Vec<(String, String)>,
    session_idle: i64,
    session_max: Duration,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Whether the public URL is https (cookies are then `Secure`).
    pub https: bool,
    oidc_config: Option<crate::config::OidcConfig>,
    redirect_url: String,
    oidc: tokio::sync::Mutex<Option<Arc<oidc::Oidc>>>,
    admin_digest: [u8; 32],
    directory: ArcSwap<Directory>,
    /// Verified bearer tokens and session ids.
    verified: [Mutex<VerifiedMap>; 2],
    /// Random per process: mixed into the verified-secrets cache's keys.
    seed: u64,
    bootstrap: ArcSwap<Principal>,
    /// Unix seconds, moved by the ticker: the hot path reads the clock from here.
    now: AtomicI64,
    /// Tokens and sessions used after this were not written yet.
    flushed_until: AtomicI64,
    pub auditor: Auditor,
    limiter: Limiter,
    refreshing: tokio::sync::Mutex<()>,
}

impl Identity {
    /// The identity of a hub with `config` and bootstrap token `admin_token`.
    pub fn new(config: &Config, db: Arc<Database>, admin_token: &str) -> anyhow::Result<Identity> {
        Ok(Identity {
            db,
            group_roles: config.group_roles.clone(),
            session_idle: config.session_idle.as_secs() as i64,
            session_max: config.session_max,
            trusted_proxies: config.trusted_proxies.clone(),
            https: config.public_url.starts_with("https://"),
            oidc_config: config.oidc.clone(),
            redirect_url: format!("{}/auth/callback", config.public_url),
            oidc: tokio::sync::Mutex::new(None),
            admin_digest: secret::digest(admin_token),
            directory: ArcSwap::from_pointee(Directory::default()),
            verified: Default::default(),
            seed: {
                let mut seed = [0u8; 8];
                getrandom::fill(&mut seed)
                    .map_err(|e| anyhow::anyhow!("cannot generate a seed: {e}"))?;
                u64::from_le_bytes(seed)
            },
            bootstrap: ArcSwap::from_pointee(Principal::bootstrap(None)),
            now: AtomicI64::new(Utc::now().timestamp()),
            flushed_until: AtomicI64::new(Utc::now().timestamp()),
            auditor: Auditor::default(),
            limiter: Limiter::new(config.auth_failures, config.auth_block),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Whether single sign-on is configured.
    pub fn has_provider(&self) -> bool {
        self.oidc_config.is_some()
    }

    fn now(&self) -> i64 {
        self.now.load(Ordering::Relaxed)
    }

    /// The caller behind `presented`: `Ok(None)` when nothing was presented. `address` gives the
    /// caller's address; it is asked for only when an attempt fails or addresses are being
    /// watched for failures.
    pub fn resolve(
        &self,
        presented: Presented<'_>,
        address: impl Fn() -> Option<IpAddr>,
    ) -> Result<Option<Arc<Principal>>, AuthError> {
        let (kind, secret) = match presented {
            Presented {
                authorization: Some(header),
                ..
            } => (BEARER, bearer(header).ok_or(AuthError::Malformed)),
            Presented {
                session: Some(id), ..
            } => (COOKIE, Ok(id.as_bytes())),
            _ => return Ok(None),
        };
        if self.limiter.watching()
            && let Some(ip) = address()
            && let Some(wait) = self.limiter.blocked(ip)
        {
            return Err(AuthError::TooMany {
                address: ip,
                retry_after: wait,
            });
        }
        let found = secret.and_then(|secret| self.verify(kind, secret));
        found.map(Some).inspect_err(|error| {
            if matches!(error, AuthError::SessionEnded) {
                // A browser's stale cookie is not an attack.
                return;
            }
            let ip = address();
            let actor = Actor {
                id: "anonymous".to_owned(),
                name: None,
                address: ip.map(|ip| ip.to_string()),
            };
            self.auditor
                .count(&actor, "auth.failed", None, "bearer token");
            if let Some(ip) = ip {
                self.limiter.failed(ip);
            }
        })
    }

    /// The principal of `secret` presented as `kind`.
    #[inline]
    fn verify(&self, kind: u8, secret: &[u8]) -> Result<Arc<Principal>, AuthError> {
        let cache = &self.verified[usize::from(kind == COOKIE)];
        // The secret's last 8 bytes are random already: mixed with the process's seed, they are
        // the key (only verified secrets are ever inserted, so there is nothing to flood).
        let key = (tail(secret) ^ self.seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let cached = cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|(verified, _)| same(verified, secret))
            .map(|(_, verified)| verified.clone());
        let verified = match cached {
            Some(verified) => verified,
            None => {
                let verified = self.look_up(kind, secret)?;
                let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() >= MAX_VERIFIED {
                    cache.clear();
                }
                cache.insert(key, (secret.into(), verified.clone()));
                verified
            }
        };
        let now = self.now();
        match verified {
            Verified::Admin => Ok(self.bootstrap.load_full()),
            Verified::Token(principal) => {
                if principal.expires_at.is_some_and(|at| at <= now) {
                    return Err(AuthError::InvalidToken);
                }
                if principal.last_used.load(Ordering::Relaxed) != now {
                    principal.last_used.store(now, Ordering::Relaxed);
                }
                Ok(principal)
            }
            Verified::Session(session) => {
                let last = session.last_seen.load(Ordering::Relaxed);
                if session.expires_at <= now
                    || now - last > self.session_idle
                    || session.principal.expires_at.is_some_and(|at| at <= now)
                {
                    return Err(AuthError::SessionEnded);
                }
                if last != now {
                    session.last_seen.store(now, Ordering::Relaxed);
                }
                Ok(session.principal.clone())
            }
        }
    }

    /// A secret not in the cache: its SHA-256 in the directory.
    fn look_up(&self, kind: u8, secret: &[u8]) -> Result<Verified, AuthError> {
        let invalid = match kind {
            BEARER => AuthError::InvalidToken,
            _ => AuthError::SessionEnded,
        };
        let secret = std::str::from_utf8(secret).map_err(|_| invalid.clone())?;
        let digest = secret::digest(secret);
        let directory = self.directory.load();
        if kind == BEARER {
            if bool::from(digest.ct_eq(&self.admin_digest)) {
                return Ok(Verified::Admin);
            }
            if !secret::well_formed(secret, TOKEN_PREFIX) {
                return Err(AuthError::InvalidToken);
            }
            return directory
                .tokens
                .get(&digest)
                .cloned()
                .map(Verified::Token)
                .ok_or(AuthError::InvalidToken);
        }
        directory
            .sessions
            .get(&digest)
            .cloned()
            .map(Verified::Session)
            .ok_or(AuthError::SessionEnded)
    }

    /// The caller's address, believing `X-Forwarded-For` only from trusted proxies.
    pub fn client_address(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: Option<&str>,
    ) -> Option<IpAddr> {
        limiter::client_address(peer, forwarded_for, &self.trusted_proxies)
    }

    /// Whether `peer` is a trusted proxy (whose `X-Forwarded-Proto` counts).
    pub fn is_trusted_proxy(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| self.trusted_proxies.iter().any(|net| net.contains(&ip)))
    }

    /// The directory as of now.
    pub fn directory(&self) -> arc_swap::Guard<Arc<Directory>> {
        self.directory.load()
    }

    /// The service identity of `module`, who its jobs act as: what the operator gave
    /// `module:<name>` and the module's own permissions (those only, without a database or
    /// before the row is read).
    pub fn module_principal(&self, module: &str) -> Arc<Principal> {
        self.directory
            .load()
            .modules
            .get(module)
            .cloned()
            .unwrap_or_else(|| Arc::new(Principal::module(module, None)))
    }

    /// Make the service identity of `module` a user the operator can give roles to, when it is
    /// not one yet (nothing without a database).
    pub async fn ensure_module(&self, module: &str) -> Result<(), StoreError> {
        if !self.db.is_configured() || self.directory.load().modules.contains_key(module) {
            return Ok(());
        }
        if store::ensure_module_user(&self.db, module).await? {
            tracing::info!(module = %module, "made the module's service identity module:{module} (give it roles with PUT /api/v1/users/{{id}}/roles)");
        }
        self.refresh(false).await
    }

    /// Read the identity tables again if they changed (`force`: whatever the change number).
    pub async fn refresh(&self, force: bool) -> Result<(), StoreError> {
        let _one_at_a_time = self.refreshing.lock().await;
        if !force {
            let change = store::change(&self.db).await?;
            if change == self.directory.load().change {
                return Ok(());
            }
        }
        let snapshot = store::load(&self.db).await?;
        let directory = Directory::build(snapshot, &self.group_roles);
        let old = self.directory.load();
        // Uses not written yet carry over.
        for (hash, principal) in &directory.tokens {
            if let Some(before) = old.tokens.get(hash) {
                let used = before.last_used.load(Ordering::Relaxed);
                principal.last_used.fetch_max(used, Ordering::Relaxed);
            }
        }
        for (hash, session) in &directory.sessions {
            if let Some(before) = old.sessions.get(hash) {
                let seen = before.last_seen.load(Ordering::Relaxed);
                session.last_seen.fetch_max(seen, Ordering::Relaxed);
            }
        }
        if directory.admin_user != self.bootstrap.load().user_id {
            self.bootstrap
                .store(Arc::new(Principal::bootstrap(directory.admin_user)));
        }
        self.directory.store(Arc::new(directory));
        for cache in &self.verified {
            cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
        Ok(())
    }

    /// The hub's identity chores, every 200 ms until the hub stops: the clock the hot path
    /// reads, the directory (every second), the audit log (every 200 ms), when tokens and
    /// sessions were last used (every 30 s), expired rows (every hour).
    pub async fn tick(self: Arc<Self>, audit_days: u32) {
        let mut interval = tokio::time::interval(Duration::from_millis(200));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u64 = 0;
        loop {
            interval.tick().await;
            self.now.store(Utc::now().timestamp(), Ordering::Relaxed);
            if !self.db.is_configured() {
                continue;
            }
            if ticks.is_multiple_of(5)
                && let Err(e) = self.refresh(false).await
            {
                tracing::debug!("cannot read users and tokens: {e}");
            }
            self.auditor.flush(&self.db).await;
            if ticks.is_multiple_of(150) {
                self.write_usage().await;
            }
            if ticks.is_multiple_of(18_000)
                && let Err(e) = store::prune(
                    &self.db,
                    Duration::from_secs(self.session_idle as u64),
                    audit_days,
                )
                .await
            {
                tracing::debug!("cannot delete expired sessions and audit rows: {e}");
            }
            ticks += 1;
        }
    }

    /// Write when tokens and sessions were last used, in one statement each.
    pub async fn write_usage(&self) {
        let since = self.flushed_until.load(Ordering::Relaxed);
        let (tokens, sessions) = self.directory.load().used_since(since);
        if tokens.is_empty() && sessions.is_empty() {
            return;
        }
        let at = |secs: i64| Utc.timestamp_opt(secs, 0).single().unwrap_or_else(Utc::now);
        let tokens: Vec<(i64, DateTime<Utc>)> =
            tokens.into_iter().map(|(id, t)| (id, at(t))).collect();
        let sessions: Vec<(Vec<u8>, DateTime<Utc>)> = sessions
            .into_iter()
            .map(|(hash, t)| (hash.to_vec(), at(t)))
            .collect();
        match store::touch(&self.db, &tokens, &sessions).await {
            Ok(()) => self.flushed_until.store(self.now(), Ordering::Relaxed),
            Err(e) => tracing::debug!("cannot write when tokens were last used: {e}"),
        }
    }

    /// Open a session for `principal` (the admin's, a user's or a token's).
    pub async fn open_session(&self, principal: &Principal) -> Result<NewSession, LoginError> {
        let user_id = match principal.user_id {
            Some(id) => id,
            None => store::admin_user(&self.db).await?.id,
        };
        let id = secret::new_session_id().map_err(|e| LoginError::Store(e.to_string()))?;
        let expires = Utc::now()
            + chrono::Duration::from_std(self.session_max).unwrap_or(chrono::Duration::days(7));
        store::insert_session(
            &self.db,
            &SessionRow {
                hash: secret::digest(&id).to_vec(),
                user_id,
                token_id: principal.token_id,
                created_at: Utc::now(),
                last_seen_at: Utc::now(),
                expires_at: expires,
            },
        )
        .await?;
        self.refresh(true).await?;
        Ok(NewSession {
            id,
            max_age: self.session_max,
        })
    }

    /// The session a token turns into (the `/login` form): the admin token or an API token.
    pub async fn session_from_token(
        &self,
        token: &str,
        address: Option<IpAddr>,
    ) -> Result<(NewSession, Arc<Principal>), LoginError> {
        if !self.db.is_configured() {
            return Err(LoginError::NoDatabase);
        }
        let header = format!("Bearer {}", token.trim());
        let principal = self
            .resolve(
                Presented {
                    authorization: Some(header.as_bytes()),
                    session: None,
                },
                || address,
            )?
            .ok_or(AuthError::Malformed)?;
        let session = self.open_session(&principal).await?;
        Ok((session, principal))
    }

    /// End the session with cookie value `id`.
    pub async fn close_session(&self, id: &str) -> Result<bool, StoreError> {
        let closed = store::delete_session(&self.db, &secret::digest(id)).await?;
        self.refresh(true).await?;
        Ok(closed)
    }

    /// The identity provider, discovered on first use (and again after a failure).
    async fn provider(&self) -> Result<Arc<oidc::Oidc>, LoginError> {
        let config = self.oidc_config.as_ref().ok_or(LoginError::NoProvider)?;
        let mut slot = self.oidc.lock().await;
        if let Some(oidc) = slot.as_ref() {
            return Ok(oidc.clone());
        }
        let settings = oidc::OidcSettings {
            issuer: config.issuer.clone(),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            redirect_url: self.redirect_url.clone(),
            groups_claim: config.groups_claim.clone(),
        };
        let oidc =
            Arc::new(
                oidc::Oidc::discover(settings)
                    .await
                    .map_err(|e| LoginError::Provider {
                        issuer: config.issuer.clone(),
                        reason: e.to_string(),
                    })?,
            );
        *slot = Some(oidc.clone());
        Ok(oidc)
    }

    /// Start a single sign-on: the provider's URL to send the browser to. `next` is a path of
    /// the hub to come back to.
    pub async fn begin_sign_in(&self, next: &str) -> Result<String, LoginError> {
        if !self.db.is_configured() {
            return Err(LoginError::NoDatabase);
        }
        let oidc = self.provider().await?;
        let (url, pending) = oidc.begin();
        store::insert_login(
            &self.db,
            &LoginRow {
                state: pending.state,
                nonce: pending.nonce,
                pkce_verifier: pending.pkce_verifier,
                next: next.to_owned(),
            },
        )
        .await?;
        Ok(url)
    }

    /// Finish a single sign-on: the provider came back with `state` and `code`. The session,
    /// who signed in, and where to go next.
    pub async fn finish_sign_in(
        &self,
        state: &str,
        code: &str,
    ) -> Result<(NewSession, Arc<Principal>, String), LoginError> {
        if !self.db.is_configured() {
            return Err(LoginError::NoDatabase);
        }
        let login = store::take_login(&self.db, state)
            .await?
            .ok_or(LoginError::UnknownState)?;
        let oidc = self.provider().await?;
        let pending = oidc::Pending {
            state: login.state,
            nonce: login.nonce,
            pkce_verifier: login.pkce_verifier,
        };
        let external = oidc
            .finish(&pending, code)
            .await
            .map_err(|e| LoginError::Refused(e.to_string()))?;
        let issuer = self
            .oidc_config
            .as_ref()
            .map(|c| c.issuer.as_str())
            .unwrap_or_default();
        let subject = format!("oidc:{issuer}#{}", external.subject);
        let name = external
            .name
            .clone()
            .or_else(|| external.email.clone())
            .unwrap_or_else(|| external.subject.clone());
        let user = store::sign_in_person(
            &self.db,
            &subject,
            &name,
            external.email.as_deref(),
            &external.groups,
        )
        .await?;
        if user.disabled {
            return Err(LoginError::Disabled(user.name));
        }
        self.refresh(true).await?;
        let principal = self
            .directory
            .load()
            .users
            .get(&user.id)
            .cloned()
            .ok_or_else(|| LoginError::Store(format!("user {} vanished", user.id)))?;
        let session = self.open_session(&principal).await?;
        Ok((session, principal, login.next))
    }

    /// A new API token's secret, shown once.
    pub fn new_token_secret() -> anyhow::Result<(String, [u8; 32])> {
        let token = secret::new_token()?;
        let digest = secret::digest(&token);
        Ok((token, digest))
    }
}

/// A bootstrap admin token for a run without `HUB_ADMIN_TOKEN`: 32 random bytes as hex.
pub fn random_admin_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("cannot generate an admin token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The credentials of `Authorization: Bearer <credentials>`; the scheme's name is
/// case-insensitive (RFC 9110 §11.1). Bytes, not text: the hot path hashes them as they came.
fn bearer(header: &[u8]) -> Option<&[u8]> {
    let (&[b, e, a, r, e2, r2, space], rest) = header.split_first_chunk::<7>()?;
    // `| 0x20` lowercases an ASCII letter, and only `B` and `b` become `b`: one comparison.
    let scheme = u64::from_le_bytes([b, e, a, r, e2, r2, space, 0]) | 0x0000_2020_2020_2020;
    if scheme != u64::from_le_bytes(*b"bearer \0") {
        return None;
    }
    let credentials = rest.trim_ascii();
    (!credentials.is_empty()).then_some(credentials)
}

/// Whether a user with `user` (their permissions) may hand `grants` to a token.
pub fn within(user: &Permissions, grants: &[String]) -> Result<(), String> {
    match grants.iter().find(|g| !user.covers(g)) {
        Some(g) => Err(format!(
            "a token cannot carry permission '{g}': its creator does not have it"
        )),
        None => Ok(()),
    }
}

/// Whether `user` is in `audience` of module `module`: holders of every permission always are;
/// else one of the roles or groups, or the stable hash of the user id below the percentage.
pub fn in_audience(
    principal: Option<&Principal>,
    module: &str,
    audience: &crate::manifest::Audience,
) -> bool {
    let Some(p) = principal else {
        return false;
    };
    if p.permissions.is_everything() {
        return true;
    }
    if audience.roles.iter().any(|r| p.roles.contains(r))
        || audience.groups.iter().any(|g| p.groups.contains(g))
    {
        return true;
    }
    match audience.percent {
        Some(percent) => {
            let id = p.public_id();
            let digest = secret::digest(&format!("{module}:{id}"));
            let bucket = u16::from_be_bytes([digest[0], digest[1]]) % 100;
            u32::from(bucket) < u32::from(percent)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_needs_the_scheme_and_a_value() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"BEARER abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Bearer\tabc"), None);
        assert_eq!(bearer(b"bearee abc"), None);
        assert_eq!(bearer(b"bearer"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"abc"), None);
    }

    #[test]
    fn same_compares_every_byte() {
        let secret = b"hub_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHI".to_vec();
        assert!(same(&secret, &secret.clone()));
        for at in 0..secret.len() {
            let mut other = secret.clone();
            other[at] ^= 1;
            assert!(!same(&secret, &other), "byte {at} differs");
        }
        assert!(!same(&secret, &secret[..secret.len() - 1]));
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(same(b"", b""));
    }
}
