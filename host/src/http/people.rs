//! People and what they may do, through the API: API tokens (`/api/v1/tokens`: a user's own, or
//! a service user's by an admin), users (`/api/v1/users`: list, roles, service users, offboard),
//! roles (`/api/v1/roles`) and the audit log (`/api/v1/audit`). Every change is audited.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use crate::db::DbUnavailable;
use crate::db::identity::{
    self as store, AuditFilter, AuditRow, RoleRow, StoreError, TokenRow, UserRow,
};
use crate::identity::{self, Event, Identity, Kind, permissions};
use crate::lifecycle::Hub;

/// A token as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenObject {
    id: i64,
    name: String,
    /// Whose token it is.
    user_id: i64,
    permissions: Vec<String>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    /// Written every 30 s or so, not per request.
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<TokenRow> for TokenObject {
    fn from(row: TokenRow) -> TokenObject {
        TokenObject {
            id: row.id,
            name: row.name,
            user_id: row.user_id,
            permissions: row.permissions,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// A new token: its secret is in this answer and nowhere else.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    token: TokenObject,
    /// Send it as `Authorization: Bearer <token>`. Shown once: the hub keeps only its hash.
    token_secret: String,
}

/// What `POST /api/v1/tokens` takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for (1 to 100 characters).
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub(crate) name: String,
    /// What it may do: hub permissions, `<module>:<permission>`, `<module>:*` or `*`; never more
    /// than its creator has. Default: everything its creator may do.
    #[serde(default)]
    pub(crate) permissions: Option<Vec<String>>,
    /// Days until it expires, 1 to 3650; default 90.
    #[serde(default, deserialize_with = "crate::manifest::whole_number")]
    #[schema(minimum = 1, maximum = 3650)]
    pub(crate) expires_in_days: Option<u32>,
    /// A service user's id: an admin (`users.manage`) makes a token for another system.
    #[serde(default, deserialize_with = "crate::manifest::whole_number")]
    #[schema(minimum = 1)]
    pub(crate) user_id: Option<i64>,
}

/// `GET /api/v1/tokens`'s query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TokensQuery {
    /// Every user's tokens (needs `users.manage`).
    #[serde(default)]
    all: bool,
}

/// A user as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserObject {
    id: i64,
    /// `person`, `service`, `admin`, or `module` for a module's service identity
    /// (`module:<name>`, who its jobs act as: give it roles, it has no tokens).
    kind: String,
    name: String,
    email: Option<String>,
    /// The identity provider's groups at the last sign-in.
    groups: Vec<String>,
    /// Roles given directly.
    roles: Vec<String>,
    /// Roles in effect: given directly, and through groups (`HUB_GROUP_ROLES`).
    effective_roles: Vec<String>,
    disabled: bool,
    created_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
}

/// What `POST /api/v1/users` takes: a service user, for another system.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewServiceUser {
    /// Lowercase letters, digits, `-`, `_` and `.`, 1 to 64 characters.
    #[schema(pattern = "^[a-z0-9._-]{1,64}$")]
    name: String,
    #[serde(default)]
    roles: Vec<String>,
}

/// Roles to give a user (replacing those given directly).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRoles {
    roles: Vec<String>,
}

/// What an offboarding did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Offboarded {
    user: UserObject,
    sessions_ended: u64,
    tokens_revoked: u64,
}

/// A role.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleObject {
    /// Lowercase letters, digits, `-` and `_`, 1 to 40 characters, starting with a letter.
    #[schema(pattern = "^[a-z][a-z0-9_-]{0,39}$")]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: String,
    /// Hub permissions, `<module>:<permission>`, `<module>:*` or `*`.
    pub(crate) permissions: Vec<String>,
    /// `admin`, `operator` and `viewer` are built in and cannot change.
    #[serde(default)]
    pub(crate) builtin: bool,
}

/// A role's new description and permissions.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    #[serde(default)]
    pub(crate) description: String,
    pub(crate) permissions: Vec<String>,
}

/// `GET /api/v1/audit`'s filters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// `user:<id>`, `token:<id>`, `admin`, `watcher`, `hub`, `anonymous`.
    pub(crate) actor: Option<String>,
    pub(crate) module: Option<String>,
    /// An action (`module.enable`) or a family of them (`module`).
    pub(crate) action: Option<String>,
    /// From this time on (RFC 3339).
    pub(crate) since: Option<DateTime<Utc>>,
    /// Before this time (RFC 3339).
    pub(crate) until: Option<DateTime<Utc>>,
    /// Rows older than this id (the `next` of the previous page).
    #[param(minimum = 1)]
    pub(crate) before: Option<i64>,
    /// 1 to 500; default 100.
    #[param(minimum = 1, maximum = 500)]
    pub(crate) limit: Option<i64>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    entries: Vec<AuditRow>,
    /// `before` for the next page; `null` on the last.
    next: Option<i64>,
}

fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Unavailable(DbUnavailable::NotConfigured) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "users, roles, tokens and the audit log live in PostgreSQL: set DATABASE_URL",
        ),
        StoreError::Unavailable(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            e.to_string(),
        ),
        StoreError::Exists(e) => ApiError::new(StatusCode::CONFLICT, "exists", e),
        StoreError::Missing(e) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", e)
        }
        StoreError::Query(e) => ApiError::internal(e),
    }
}

/// Take what a change did into the in-memory directory at once (not within the second).
async fn refreshed(identity: &Identity) -> Result<(), ApiError> {
    identity.refresh(true).await.map_err(store_error)
}

fn audit(caller: &Caller, action: &str, target: &str, details: Option<serde_json::Value>) {
    caller.identity().auditor.record(
        &caller.actor,
        Event {
            action,
            module: None,
            target: Some(target),
            outcome: "ok",
            details,
        },
    );
}

/// Make an API token; its secret is in the answer, once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "identity",
    security(("bearer" = []), ("session" = [])),
    request_body = NewToken,
    responses(
        (status = 201, description = "The token, with its secret (shown once)", body = CreatedToken),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "More permissions than the creator has, or another user's token without `users.manage` (`permission_denied`)", body = ErrorBody),
        (status = 404, description = "No such service user (`user_id`)", body = ErrorBody),
        (status = 422, description = "A bad name, permission or expiry (`validation_failed`)", body = ErrorBody),
    ))]
pub(crate) async fn create_token(
    caller: Caller,
    hub: web::Data<Hub>,
    body: web::Json<NewToken>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Created().json(new_token(&caller, &hub, body.into_inner()).await?))
}

/// Make an API token for the caller (or, with `users.manage`, a service user), audited.
pub(crate) async fn new_token(
    caller: &Caller,
    hub: &Hub,
    body: NewToken,
) -> Result<CreatedToken, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid(
            "a token's name must be 1 to 100 characters",
            "name",
        ));
    }
    let days = body.expires_in_days.unwrap_or(90);
    if !(1..=3650).contains(&days) {
        return Err(ApiError::invalid(
            "expires_in_days must be 1 to 3650",
            "expires_in_days",
        ));
    }
    let creator = &caller.principal;
    let grants = match body.permissions {
        Some(grants) => {
            for grant in &grants {
                permissions::validate_grant(grant)
                    .map_err(|e| ApiError::invalid(e, "permissions"))?;
            }
            identity::within(&creator.permissions, &grants).map_err(|message| {
                ApiError::new(StatusCode::FORBIDDEN, "permission_denied", message)
            })?;
            grants
        }
        None => creator.permissions.grants(),
    };
    let identity = hub.identity();
    let directory = identity.directory();
    let owner = match body.user_id {
        Some(id) if Some(id) != creator.user_id => {
            caller.require("users.manage")?;
            let user = directory
                .users
                .get(&id)
                .ok_or_else(|| ApiError::not_found(format!("no user {id}")))?;
            if user.kind != Kind::Service {
                return Err(ApiError::invalid(
                    format!("user {id} is not a service user: people make their own tokens"),
                    "user_id",
                ));
            }
            id
        }
        _ => match creator.user_id.or(directory.admin_user) {
            Some(id) => id,
            None => {
                return Err(store_error(StoreError::Unavailable(
                    DbUnavailable::NotConfigured,
                )));
            }
        },
    };
    drop(directory);
    let (secret, digest) =
        Identity::new_token_secret().map_err(|e| ApiError::internal(e.to_string()))?;
    let expires = Utc::now() + chrono::Duration::days(i64::from(days));
    let row = store::insert_token(
        identity.database(),
        owner,
        name,
        &digest,
        &grants,
        creator.user_id,
        Some(expires),
    )
    .await
    .map_err(store_error)?;
    refreshed(identity).await?;
    audit(
        caller,
        "token.create",
        &format!("token:{}", row.id),
        Some(json!({"name": row.name, "user_id": owner, "permissions": row.permissions})),
    );
    Ok(CreatedToken {
        token: row.into(),
        token_secret: secret,
    })
}

/// The caller's tokens (every user's with `all=true` and `users.manage`), newest first.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "identity",
    security(("bearer" = []), ("session" = [])),
    params(TokensQuery),
    responses(
        (status = 200, description = "Tokens, without their secrets", body = [TokenObject]),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub(crate) async fn list_tokens(
    caller: Caller,
    hub: web::Data<Hub>,
    query: web::Query<TokensQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(tokens(&caller, &hub, query.all).await?))
}

/// The caller's tokens, or with `all` every user's (needs `users.manage`).
pub(crate) async fn tokens(
    caller: &Caller,
    hub: &Hub,
    all: bool,
) -> Result<Vec<TokenObject>, ApiError> {
    let user = if all {
        caller.require("users.manage")?;
        None
    } else {
        Some(own_user(caller, hub.identity())?)
    };
    let rows = store::tokens(hub.identity().database(), user)
        .await
        .map_err(store_error)?;
    Ok(rows.into_iter().map(TokenObject::from).collect())
}

/// Revoke a token: the caller's own, or anyone's with `users.manage`. Sessions opened with it
/// end too.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "identity",
    security(("bearer" = []), ("session" = [])),
    params(("id" = i64, Path, minimum = 1, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such token of the caller's (`token_not_found`)", body = ErrorBody),
    ))]
pub(crate) async fn revoke_token(
    caller: Caller,
    hub: web::Data<Hub>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    revoke(&caller, &hub, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Revoke token `id`: the caller's own, or anyone's with `users.manage`; audited.
pub(crate) async fn revoke(caller: &Caller, hub: &Hub, id: i64) -> Result<(), ApiError> {
    let identity = hub.identity();
    let row = store::token_by_id(identity.database(), id)
        .await
        .map_err(store_error)?;
    let mine = |row: &TokenRow| Some(row.user_id) == own_user(caller, identity).ok();
    let row = row
        .filter(|row| mine(row) || caller.can("users.manage"))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "token_not_found",
                format!("you have no token {id}: GET /api/v1/tokens lists yours"),
            )
        })?;
    store::revoke_token(identity.database(), row.id)
        .await
        .map_err(store_error)?;
    refreshed(identity).await?;
    audit(
        caller,
        "token.revoke",
        &format!("token:{id}"),
        Some(json!({"name": row.name})),
    );
    Ok(())
}

fn own_user(caller: &Caller, identity: &Identity) -> Result<i64, ApiError> {
    caller
        .principal
        .user_id
        .or(identity.directory().admin_user)
        .ok_or_else(|| store_error(StoreError::Unavailable(DbUnavailable::NotConfigured)))
}

fn user_object(row: UserRow, identity: &Identity) -> UserObject {
    let effective_roles = identity
        .directory()
        .users
        .get(&row.id)
        .map(|p| p.roles.clone())
        .unwrap_or_default();
    UserObject {
        id: row.id,
        kind: if row.subject.starts_with(crate::identity::MODULE_SUBJECT) {
            "module".to_owned()
        } else {
            row.kind
        },
        name: row.name,
        email: row.email,
        groups: row.groups,
        roles: row.roles,
        effective_roles,
        disabled: row.disabled,
        created_at: row.created_at,
        last_login_at: row.last_login_at,
    }
}

/// Every user.
#[utoipa::path(get, path = "/api/v1/users", tag = "identity",
    security(("bearer" = ["users.manage"]), ("session" = ["users.manage"])),
    responses(
        (status = 200, description = "Users, by id", body = [UserObject]),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Needs `users.manage`", body = ErrorBody),
    ))]
pub(crate) async fn list_users(
    caller: Caller,
    hub: web::Data<Hub>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(users(&caller, &hub).await?))
}

/// Every user (needs `users.manage`).
pub(crate) async fn users(caller: &Caller, hub: &Hub) -> Result<Vec<UserObject>, ApiError> {
    caller.require("users.manage")?;
    let identity = hub.identity();
    let rows = store::users(identity.database())
        .await
        .map_err(store_error)?;
    Ok(rows.into_iter().map(|r| user_object(r, identity)).collect())
}

fn check_roles(identity: &Identity, roles: &[String]) -> Result<(), ApiError> {
    let directory = identity.directory();
    match roles.iter().find(|r| !directory.roles.contains_key(*r)) {
        Some(role) => Err(ApiError::invalid(
            format!("there is no role '{role}': GET /api/v1/roles lists them"),
            "roles",
        )),
        None => Ok(()),
    }
}

/// Make a service user, for another system (then a token for it: `POST /api/v1/tokens` with
/// its `user_id`).
#[utoipa::path(post, path = "/api/v1/users", tag = "identity",
    security(("bearer" = ["users.manage"]), ("session" = ["users.manage"])),
    request_body = NewServiceUser,
    responses(
        (status = 201, description = "The service user", body = UserObject),
        (status = 403, description = "Needs `users.manage`", body = ErrorBody),
        (status = 409, description = "A service user of that name exists (`exists`)", body = ErrorBody),
        (status = 422, description = "A bad name or an unknown role (`validation_failed`)", body = ErrorBody),
    ))]
pub(crate) async fn create_user(
    caller: Caller,
    hub: web::Data<Hub>,
    body: web::Json<NewServiceUser>,
) -> Result<HttpResponse, ApiError> {
    caller.require("users.manage")?;
    let body = body.into_inner();
    let ok = !body.name.is_empty()
        && body.name.len() <= 64
        && body
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if !ok {
        return Err(ApiError::invalid(
            "a service user's name is 1 to 64 lowercase letters, digits, -, _ and .",
            "name",
        ));
    }
    let identity = hub.identity();
    check_roles(identity, &body.roles)?;
    let user = store::create_service_user(identity.database(), &body.name)
        .await
        .map_err(store_error)?;
    store::set_user_roles(identity.database(), user.id, &body.roles)
        .await
        .map_err(store_error)?;
    refreshed(identity).await?;
    audit(
        &caller,
        "user.create",
        &format!("user:{}", user.id),
        Some(json!({"name": user.name, "roles": body.roles})),
    );
    let user = UserRow {
        roles: body.roles,
        ..user
    };
    Ok(HttpResponse::Created().json(user_object(user, identity)))
}

async fn user_row(identity: &Identity, id: i64) -> Result<UserRow, ApiError> {
    store::users(identity.database())
        .await
        .map_err(store_error)?
        .into_iter()
        .find(|u| u.id == id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "user_not_found",
                format!("there is no user {id}: GET /api/v1/users lists them"),
            )
        })
}

/// Give a user exactly these roles (besides those their groups give).
#[utoipa::path(put, path = "/api/v1/users/{id}/roles", tag = "identity",
    security(("bearer" = ["users.manage"]), ("session" = ["users.manage"])),
    params(("id" = i64, Path, minimum = 1, description = "The user's id")),
    request_body = UserRoles,
    responses(
        (status = 200, description = "The user", body = UserObject),
        (status = 403, description = "Needs `users.manage`", body = ErrorBody),
        (status = 404, description = "No such user (`user_not_found`)", body = ErrorBody),
        (status = 422, description = "An unknown role (`validation_failed`)", body = ErrorBody),
    ))]
pub(crate) async fn set_roles(
    caller: Caller,
    hub: web::Data<Hub>,
    id: web::Path<i64>,
    body: web::Json<UserRoles>,
) -> Result<HttpResponse, ApiError> {
    let user = give_roles(&caller, &hub, id.into_inner(), body.into_inner().roles).await?;
    Ok(HttpResponse::Ok().json(user))
}

/// Give user `id` exactly `roles` (needs `users.manage`), audited.
pub(crate) async fn give_roles(
    caller: &Caller,
    hub: &Hub,
    id: i64,
    roles: Vec<String>,
) -> Result<UserObject, ApiError> {
    caller.require("users.manage")?;
    let identity = hub.identity();
    check_roles(identity, &roles)?;
    let before = user_row(identity, id).await?;
    store::set_user_roles(identity.database(), id, &roles)
        .await
        .map_err(store_error)?;
    refreshed(identity).await?;
    audit(
        caller,
        "user.roles",
        &format!("user:{id}"),
        Some(json!({"before": before.roles, "after": roles})),
    );
    Ok(user_object(user_row(identity, id).await?, identity))
}

/// Offboard a user in one call: disabled, sessions ended, tokens revoked.
#[utoipa::path(post, path = "/api/v1/users/{id}/offboard", tag = "identity",
    security(("bearer" = ["users.manage"]), ("session" = ["users.manage"])),
    params(("id" = i64, Path, minimum = 1, description = "The user's id")),
    responses(
        (status = 200, description = "What went", body = Offboarded),
        (status = 403, description = "Needs `users.manage`", body = ErrorBody),
        (status = 404, description = "No such user, or the bootstrap administrator (`user_not_found`)", body = ErrorBody),
    ))]
pub(crate) async fn offboard(
    caller: Caller,
    hub: web::Data<Hub>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    caller.require("users.manage")?;
    let (id, identity) = (id.into_inner(), hub.identity());
    let (sessions, tokens) = store::offboard(identity.database(), id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "user_not_found",
                format!(
                    "there is no user {id} to offboard (the bootstrap administrator cannot be)"
                ),
            )
        })?;
    refreshed(identity).await?;
    audit(
        &caller,
        "user.offboard",
        &format!("user:{id}"),
        Some(json!({"sessions_ended": sessions, "tokens_revoked": tokens})),
    );
    Ok(HttpResponse::Ok().json(Offboarded {
        user: user_object(user_row(identity, id).await?, identity),
        sessions_ended: sessions,
        tokens_revoked: tokens,
    }))
}

/// Every role.
#[utoipa::path(get, path = "/api/v1/roles", tag = "identity",
    security(("bearer" = ["users.manage"]), ("session" = ["users.manage"])),
    responses(
        (status = 200, description = "Roles, built-in first", body = [RoleObject]),
        (status = 403, description = "Needs `users.manage`", body = ErrorBody),
    ))]
pub(crate) async fn list_roles(
    caller: Caller,
    hub: web::Data<Hub>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(roles(&caller, &hub).await?))
}

/// Every role (needs `users.manage`).
pub(crate) async fn roles(caller: &Caller, hub: &Hub) -> Result<Vec<RoleObject>, ApiError> {
    caller.require("users.manage")?;
    let rows = store::roles(hub.identity().database())
        .await
        .map_err(store_error)?;
    Ok(rows
        .into_iter()
        .map(|r| RoleObject {
            name: r.name,
            description: r.description,
            permissions: r.permissions,
            builtin: r.builtin,
        })
        .collect())
}

fn check_role(name: &str, grants: &[String]) -> Result<(), ApiError> {
    let ok = name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        return Err(ApiError::invalid(
            format!(
                "role name {name:?} must be 1 to 40 lowercase letters, digits, - and _, starting with a letter"
            ),
            "name",
        ));
    }
    for grant in grants {
        permissions::validate_grant(grant).map_err(|e| ApiError::invalid(e, "permissions"))?;
    }
    Ok(())
}

/// Make a role.
#[utoipa::path(post, path = "/api/v1/roles", tag = "identity",
    security(("bearer" = ["users.manage"]), ("session" = ["users.manage"])),
    request_body = RoleObject,
    responses(
        (status = 201, description = "The role", body = RoleObject),
        (status = 403, description = "Needs `users.manage`", body = ErrorBody),
        (status = 409, description = "A role of that name exists (`exists`)", body = ErrorBody),
        (status = 422, description = "A bad name or permission (`validation_failed`)", body = ErrorBody),
    ))]
pub(crate) async fn create_role(
    caller: Caller,
    hub: web::Data<Hub>,
    body: web::Json<RoleObject>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Created().json(add_role(&caller, &hub, body.into_inner()).await?))
}

/// Make role `role` (needs `users.manage`), audited.
pub(crate) async fn add_role(
    caller: &Caller,
    hub: &Hub,
    role: RoleObject,
) -> Result<RoleObject, ApiError> {
    caller.require("users.manage")?;
    check_role(&role.name, &role.permissions)?;
    let identity = hub.identity();
    store::create_role(
        identity.database(),
        &RoleRow {
            name: role.name.clone(),
            description: role.description.clone(),
            permissions: role.permissions.clone(),
            builtin: false,
        },
    )
    .await
    .map_err(store_error)?;
    refreshed(identity).await?;
    audit(
        caller,
        "role.create",
        &role.name,
        Some(json!({"permissions": role.permissions})),
    );
    Ok(RoleObject {
        builtin: false,
        ..role
    })
}

/// Change a role's description and permissions (not a built-in one's).
#[utoipa::path(put, path = "/api/v1/roles/{name}", tag = "identity",
    security(("bearer" = ["users.manage"]), ("session" = ["users.manage"])),
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_-]{0,39}$", description = "The role's name")),
    request_body = RoleChange,
    responses(
        (status = 200, description = "The role", body = RoleObject),
        (status = 403, description = "Needs `users.manage`", body = ErrorBody),
        (status = 404, description = "No such role, or a built-in one (`role_not_found`)", body = ErrorBody),
        (status = 422, description = "A bad permission (`validation_failed`)", body = ErrorBody),
    ))]
pub(crate) async fn update_role(
    caller: Caller,
    hub: web::Data<Hub>,
    name: web::Path<String>,
    body: web::Json<RoleChange>,
) -> Result<HttpResponse, ApiError> {
    let role = change_role(&caller, &hub, name.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(role))
}

/// Change role `name`'s description and permissions (needs `users.manage`), audited.
pub(crate) async fn change_role(
    caller: &Caller,
    hub: &Hub,
    name: String,
    change: RoleChange,
) -> Result<RoleObject, ApiError> {
    caller.require("users.manage")?;
    check_role(&name, &change.permissions)?;
    let identity = hub.identity();
    let role = RoleRow {
        name: name.clone(),
        description: change.description,
        permissions: change.permissions,
        builtin: false,
    };
    if !store::update_role(identity.database(), &role)
        .await
        .map_err(store_error)?
    {
        return Err(role_not_found(&name));
    }
    refreshed(identity).await?;
    audit(
        caller,
        "role.update",
        &name,
        Some(json!({"permissions": role.permissions})),
    );
    Ok(RoleObject {
        name: role.name,
        description: role.description,
        permissions: role.permissions,
        builtin: false,
    })
}

/// Delete a role (not a built-in one); users lose it.
#[utoipa::path(delete, path = "/api/v1/roles/{name}", tag = "identity",
    security(("bearer" = ["users.manage"]), ("session" = ["users.manage"])),
    params(("name" = String, Path, pattern = "^[a-z][a-z0-9_-]{0,39}$", description = "The role's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Needs `users.manage`", body = ErrorBody),
        (status = 404, description = "No such role, or a built-in one (`role_not_found`)", body = ErrorBody),
    ))]
pub(crate) async fn delete_role(
    caller: Caller,
    hub: web::Data<Hub>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require("users.manage")?;
    let identity = hub.identity();
    if !store::delete_role(identity.database(), &name)
        .await
        .map_err(store_error)?
    {
        return Err(role_not_found(&name));
    }
    refreshed(identity).await?;
    audit(&caller, "role.delete", &name, None);
    Ok(HttpResponse::NoContent().finish())
}

fn role_not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "role_not_found",
        format!(
            "there is no role '{name}' that may change (admin, operator and viewer are built in): GET /api/v1/roles lists them"
        ),
    )
}

/// The audit log, newest first, filtered and paged.
#[utoipa::path(get, path = "/api/v1/audit", tag = "identity",
    security(("bearer" = ["audit.read"]), ("session" = ["audit.read"])),
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries", body = AuditPage),
        (status = 403, description = "Needs `audit.read`", body = ErrorBody),
        (status = 422, description = "`limit` or `before` out of range (`validation_failed`)", body = ErrorBody),
        (status = 503, description = "No database (`database_unavailable`)", body = ErrorBody),
    ))]
pub(crate) async fn audit_log(
    caller: Caller,
    hub: web::Data<Hub>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(audit_page(&caller, &hub, query.into_inner()).await?))
}

/// A page of the audit log (needs `audit.read`).
pub(crate) async fn audit_page(
    caller: &Caller,
    hub: &Hub,
    query: AuditQuery,
) -> Result<AuditPage, ApiError> {
    caller.require("audit.read")?;
    let identity = hub.identity();
    // Entries queued a moment ago are part of the answer.
    identity.auditor.flush(identity.database()).await;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit must be 1 to 500", "limit"));
    }
    if query.before.is_some_and(|before| before < 1) {
        return Err(ApiError::invalid(
            "before must be a row id (1 or more)",
            "before",
        ));
    }
    let entries = store::audit(
        identity.database(),
        &AuditFilter {
            actor: query.actor,
            module: query.module,
            action: query.action,
            since: query.since,
            until: query.until,
            before: query.before,
            limit,
        },
    )
    .await
    .map_err(store_error)?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(AuditPage { entries, next })
}
