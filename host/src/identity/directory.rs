//! Who is who, in memory: the principals of every user, live token and live session, built from
//! one snapshot of the identity tables, so that resolving a caller needs no database round trip.
//! A new directory replaces the old one whole when the tables change.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::db::identity::{RoleRow, Snapshot, UserRow};

use super::permissions::Permissions;

/// The subject prefix of a module's service identity in `hub_users`.
pub const MODULE_SUBJECT: &str = "module:";

/// What kind of caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The bootstrap administrator (`HUB_ADMIN_TOKEN`).
    Admin,
    /// A person signed in through the identity provider.
    Person,
    /// A service user (another system), calling with a token.
    Service,
    /// A module's own service identity (`module:<name>`): who its jobs act as. It has no
    /// tokens and no sessions; nobody signs in as it.
    Module,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Admin => "admin",
            Kind::Person => "person",
            Kind::Service => "service",
            Kind::Module => "module",
        }
    }

    fn of(row: &UserRow) -> Kind {
        match row.kind.as_str() {
            "admin" => Kind::Admin,
            "service" if row.subject.starts_with(MODULE_SUBJECT) => Kind::Module,
            "service" => Kind::Service,
            _ => Kind::Person,
        }
    }
}

/// A caller: a user, or a user's token, with what they may do.
#[derive(Debug)]
pub struct Principal {
    pub kind: Kind,
    /// `None` only for the bootstrap administrator of a hub without a database.
    pub user_id: Option<i64>,
    /// Set when the caller presented an API token (or a session opened with one).
    pub token_id: Option<i64>,
    pub name: String,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    pub permissions: Permissions,
    /// Unix seconds after which the token is no longer good.
    pub expires_at: Option<i64>,
    /// Unix seconds of the last use (of a token), written to the database in batches.
    pub(super) last_used: AtomicI64,
}

impl Principal {
    /// Who this caller is as usage analytics count distinct callers: the user behind a session
    /// or a token, else the token, else the bootstrap administrator.
    pub fn caller_key(&self) -> crate::metrics::CallerKey {
        match (self.user_id, self.token_id) {
            (Some(user), _) => crate::metrics::CallerKey::User(user),
            (None, Some(token)) => crate::metrics::CallerKey::Token(token),
            (None, None) => crate::metrics::CallerKey::Admin,
        }
    }

    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        match (self.token_id, self.kind, self.user_id) {
            (Some(token), _, _) => format!("token:{token}"),
            (None, Kind::Admin, _) => "admin".to_owned(),
            (None, Kind::Module, _) => self.name.clone(),
            (None, _, Some(user)) => format!("user:{user}"),
            (None, _, None) => "anonymous".to_owned(),
        }
    }

    /// The id a module sees: the user's number, `admin` for the bootstrap administrator,
    /// `module:<name>` for a module's service identity.
    pub fn public_id(&self) -> String {
        match (self.kind, self.user_id) {
            (Kind::Module, _) => self.name.clone(),
            (Kind::Admin, _) | (_, None) => "admin".to_owned(),
            (_, Some(id)) => id.to_string(),
        }
    }

    /// The service identity of `module` (`module:<name>`): what its roles give (`roles`,
    /// `permissions`, from the user row when there is one) and, always, the module's own
    /// permissions (`<name>:*`).
    pub fn module(module: &str, user: Option<&Principal>) -> Principal {
        let own = format!("{module}:*");
        let grants = user.map(|u| u.permissions.grants()).unwrap_or_default();
        Principal {
            kind: Kind::Module,
            user_id: user.and_then(|u| u.user_id),
            token_id: None,
            name: format!("{MODULE_SUBJECT}{module}"),
            email: None,
            roles: user.map(|u| u.roles.clone()).unwrap_or_default(),
            groups: Vec::new(),
            permissions: Permissions::from_grants(
                grants.iter().map(String::as_str).chain([own.as_str()]),
            ),
            expires_at: None,
            last_used: AtomicI64::new(0),
        }
    }

    /// The bootstrap administrator: every permission.
    pub fn bootstrap(user_id: Option<i64>) -> Principal {
        Principal {
            kind: Kind::Admin,
            user_id,
            token_id: None,
            name: "admin".to_owned(),
            email: None,
            roles: vec!["admin".to_owned()],
            groups: Vec::new(),
            permissions: Permissions::everything(),
            expires_at: None,
            last_used: AtomicI64::new(0),
        }
    }
}

/// A browser session.
#[derive(Debug)]
pub struct Session {
    pub hash: [u8; 32],
    pub principal: Arc<Principal>,
    /// Unix seconds: the absolute end.
    pub expires_at: i64,
    /// Unix seconds of the last request (the idle expiry counts from it).
    pub last_seen: AtomicI64,
}

/// Tokens (id, unix seconds) and sessions (hash, unix seconds) used lately.
pub type Uses = (Vec<(i64, i64)>, Vec<([u8; 32], i64)>);

/// Everything the hub knows about its callers, as of one change of the identity tables.
#[derive(Debug, Default)]
pub struct Directory {
    /// The change of the identity tables this was read at (0: never read).
    pub change: i64,
    pub tokens: HashMap<[u8; 32], Arc<Principal>>,
    pub sessions: HashMap<[u8; 32], Arc<Session>>,
    /// Users (enabled or not), by id.
    pub users: HashMap<i64, Arc<Principal>>,
    pub disabled: BTreeSet<i64>,
    pub roles: HashMap<String, RoleRow>,
    /// The bootstrap administrator's user id.
    pub admin_user: Option<i64>,
    /// Modules' service identities (`module:<name>`), by module; disabled ones are left out.
    pub modules: HashMap<String, Arc<Principal>>,
}

impl Directory {
    /// The directory of `snapshot`; `group_roles` maps the identity provider's groups to roles.
    pub fn build(snapshot: Snapshot, group_roles: &[(String, String)]) -> Directory {
        let roles: HashMap<String, RoleRow> = snapshot
            .roles
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let mut users = HashMap::new();
        let mut disabled = BTreeSet::new();
        let mut admin_user = None;
        for row in &snapshot.users {
            let kind = Kind::of(row);
            if kind == Kind::Admin {
                admin_user = Some(row.id);
            }
            if row.disabled {
                disabled.insert(row.id);
            }
            let effective: BTreeSet<String> = row
                .roles
                .iter()
                .cloned()
                .chain(
                    group_roles
                        .iter()
                        .filter(|(group, _)| row.groups.contains(group))
                        .map(|(_, role)| role.clone()),
                )
                .filter(|role| roles.contains_key(role))
                .collect();
            let permissions = if kind == Kind::Admin {
                Permissions::everything()
            } else {
                Permissions::from_grants(
                    effective
                        .iter()
                        .filter_map(|role| roles.get(role))
                        .flat_map(|role| role.permissions.iter().map(String::as_str)),
                )
            };
            users.insert(
                row.id,
                Arc::new(Principal {
                    kind,
                    user_id: Some(row.id),
                    token_id: None,
                    name: row.name.clone(),
                    email: row.email.clone(),
                    roles: effective.into_iter().collect(),
                    groups: row.groups.clone(),
                    permissions,
                    expires_at: None,
                    last_used: AtomicI64::new(0),
                }),
            );
        }
        let modules = snapshot
            .users
            .iter()
            .filter(|row| Kind::of(row) == Kind::Module && !row.disabled)
            .filter_map(|row| {
                let module = row.subject.strip_prefix(MODULE_SUBJECT)?;
                let principal = Principal::module(module, users.get(&row.id).map(|u| &**u));
                Some((module.to_owned(), Arc::new(principal)))
            })
            .collect();
        let mut tokens = HashMap::new();
        let mut by_id = HashMap::new();
        for row in snapshot.tokens {
            let Some(user) = users
                .get(&row.user_id)
                .filter(|u| !disabled.contains(&row.user_id) && u.kind != Kind::Module)
            else {
                continue;
            };
            let Ok(hash) = <[u8; 32]>::try_from(row.hash.as_slice()) else {
                continue;
            };
            let granted = Permissions::from_grants(row.permissions.iter().map(String::as_str));
            let principal = Arc::new(Principal {
                kind: if user.kind == Kind::Admin {
                    Kind::Admin
                } else {
                    user.kind
                },
                user_id: user.user_id,
                token_id: Some(row.id),
                name: user.name.clone(),
                email: user.email.clone(),
                roles: user.roles.clone(),
                groups: user.groups.clone(),
                permissions: user.permissions.intersect(&granted),
                expires_at: row.expires_at.map(|t| t.timestamp()),
                last_used: AtomicI64::new(row.last_used_at.map_or(0, |t| t.timestamp())),
            });
            by_id.insert(row.id, principal.clone());
            tokens.insert(hash, principal);
        }
        let mut sessions = HashMap::new();
        for row in snapshot.sessions {
            if disabled.contains(&row.user_id) {
                continue;
            }
            let principal = match row.token_id {
                Some(token) => by_id.get(&token).cloned(),
                None => users.get(&row.user_id).cloned(),
            };
            let (Some(principal), Ok(hash)) =
                (principal, <[u8; 32]>::try_from(row.hash.as_slice()))
            else {
                continue;
            };
            sessions.insert(
                hash,
                Arc::new(Session {
                    hash,
                    principal,
                    expires_at: row.expires_at.timestamp(),
                    last_seen: AtomicI64::new(row.last_seen_at.timestamp()),
                }),
            );
        }
        Directory {
            change: snapshot.change,
            tokens,
            sessions,
            users,
            disabled,
            roles,
            admin_user,
            modules,
        }
    }

    /// Tokens and sessions used since `since` (unix seconds), with when.
    pub fn used_since(&self, since: i64) -> Uses {
        let tokens = self
            .tokens
            .values()
            .filter_map(|p| {
                let at = p.last_used.load(Ordering::Relaxed);
                Some((p.token_id?, at)).filter(|_| at > since)
            })
            .collect();
        let sessions = self
            .sessions
            .values()
            .filter_map(|s| {
                let at = s.last_seen.load(Ordering::Relaxed);
                Some((s.hash, at)).filter(|_| at > since)
            })
            .collect();
        (tokens, sessions)
    }
}
