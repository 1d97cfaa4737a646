//! Signing in and out: `GET /login` (to the identity provider, or the token form), `POST /login`
//! (a token turned into a session), `GET /auth/callback` (back from the provider), `POST
//! /logout`, and `GET /api/v1/me`. Every sign-in, failed sign-in and sign-out is audited.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{self, Caller};
use super::error::{ApiError, ErrorBody};
use super::views;
use crate::identity::{Actor, Event, Identity, LoginError, NewSession, Principal, SESSION_COOKIE};
use crate::lifecycle::Hub;

/// `GET /login`'s query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LoginQuery {
    /// A path of the hub to go to after signing in (anything else means `/`).
    #[serde(default)]
    next: Option<String>,
    /// `token`: show the token form even when single sign-on is set up.
    #[serde(default)]
    with: Option<String>,
}

/// The token form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginForm {
    /// The admin token or an API token.
    token: String,
    /// A path of the hub to go to after signing in.
    #[serde(default)]
    next: Option<String>,
}

/// The identity provider's answer.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// The signed-in caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The user's number; `admin` for the bootstrap administrator.
    id: String,
    /// `person`, `service` or `admin`.
    kind: String,
    name: String,
    email: Option<String>,
    roles: Vec<String>,
    groups: Vec<String>,
    /// Hub permissions and `<module>:<permission>`; `*` is every permission.
    permissions: Vec<String>,
    /// The token the caller presented (or opened their session with).
    token_id: Option<i64>,
}

/// `next` if it is a path of this hub (`/…`, not `//…` or `/\\…`), else `/`: no open redirect.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(|c| c.is_control() || c == '\\') =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// Start signing in: to the identity provider, or the token form.
#[utoipa::path(get, path = "/login", tag = "identity",
    params(LoginQuery),
    responses(
        (status = 303, description = "To the identity provider"),
        (status = 200, description = "The sign-in form (no identity provider, or `with=token`)", content_type = "text/html"),
        (status = 503, description = "No database (sessions live there), or the provider cannot be reached", content_type = "text/html"),
    ))]
pub(crate) async fn login(hub: web::Data<Hub>, query: web::Query<LoginQuery>) -> HttpResponse {
    let next = safe_next(query.next.as_deref());
    let identity = hub.identity();
    if !identity.has_provider() || query.with.as_deref() == Some("token") {
        return views::login_page(&hub, &next, None, StatusCode::OK);
    }
    match identity.begin_sign_in(&next).await {
        Ok(url) => HttpResponse::SeeOther()
            .insert_header(("location", url))
            .insert_header(("cache-control", "no-store"))
            .finish(),
        Err(e) => {
            tracing::warn!("sign-in cannot start: {e}");
            views::login_page(
                &hub,
                &next,
                Some(&e.to_string()),
                StatusCode::SERVICE_UNAVAILABLE,
            )
        }
    }
}

/// Turn the admin token or an API token into a browser session.
#[utoipa::path(post, path = "/login", tag = "identity",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed in: a session cookie, and on to `next`"),
        (status = 400, description = "Not the form (`bad_form`)", body = ErrorBody),
        (status = 401, description = "The token is not valid: the form again, saying why", content_type = "text/html"),
        (status = 403, description = "Sent from another site's page: the form again", content_type = "text/html"),
        (status = 429, description = "Too many failed attempts from this address", content_type = "text/html"),
        (status = 503, description = "No database (sessions live there)", content_type = "text/html"),
    ))]
pub(crate) async fn login_form(
    req: HttpRequest,
    hub: web::Data<Hub>,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let identity = hub.identity();
    let next = safe_next(form.next.as_deref());
    if let Some(from) = super::site::cross_site(req.method(), req.headers()) {
        let error = ApiError::cross_site("POST", "/login", &from);
        return views::login_page(
            &hub,
            &next,
            Some(&error.body().error.message),
            error.status(),
        );
    }
    let address = auth::address(identity, req.peer_addr().map(|a| a.ip()), req.headers());
    match identity.session_from_token(&form.token, address).await {
        Ok((session, principal)) => signed_in(&req, identity, session, &principal, "token", &next),
        Err(e) => {
            failed(&req, identity, "token", &e);
            let status = status_of(&e);
            views::login_page(&hub, &next, Some(&e.to_string()), status)
        }
    }
}

/// Back from the identity provider: check its answer, open a session, go on to `next`.
#[utoipa::path(get, path = "/auth/callback", tag = "identity",
    params(CallbackQuery),
    responses(
        (status = 303, description = "Signed in: on to the page the sign-in started from"),
        (status = 401, description = "The answer was refused (unknown or used state, bad ID token)", content_type = "text/html"),
    ))]
pub(crate) async fn callback(
    req: HttpRequest,
    hub: web::Data<Hub>,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    let identity = hub.identity();
    let result = match (&query.error, &query.state, &query.code) {
        (Some(error), _, _) => Err(LoginError::Refused(format!(
            "the identity provider said {error}: {}",
            query
                .error_description
                .as_deref()
                .unwrap_or("no description")
        ))),
        (None, Some(state), Some(code)) => identity.finish_sign_in(state, code).await,
        _ => Err(LoginError::UnknownState),
    };
    match result {
        Ok((session, principal, next)) => signed_in(
            &req,
            identity,
            session,
            &principal,
            "oidc",
            &safe_next(Some(&next)),
        ),
        Err(e) => {
            failed(&req, identity, "oidc", &e);
            views::login_page(&hub, "/", Some(&e.to_string()), status_of(&e))
        }
    }
}

/// End the session of the cookie the request carries, and forget the cookie.
#[utoipa::path(post, path = "/logout", tag = "identity",
    responses((status = 303, description = "Signed out; to the sign-in page")))]
pub(crate) async fn logout(req: HttpRequest, hub: web::Data<Hub>) -> HttpResponse {
    let identity = hub.identity();
    if let Some(from) = super::site::cross_site(req.method(), req.headers()) {
        let error = ApiError::cross_site("POST", "/logout", &from);
        return actix_web::ResponseError::error_response(&error);
    }
    let presented = auth::presented(req.headers());
    if let Some(id) = presented.session {
        let principal = identity
            .resolve(
                crate::identity::Presented {
                    authorization: None,
                    session: Some(id),
                },
                || None,
            )
            .ok()
            .flatten();
        match identity.close_session(id).await {
            Ok(true) => identity.auditor.record(
                &auth::actor(identity, &req, principal.as_deref()),
                Event {
                    action: "logout",
                    module: None,
                    target: None,
                    outcome: "ok",
                    details: None,
                },
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!("cannot end a session: {e}"),
        }
    }
    HttpResponse::SeeOther()
        .insert_header(("location", "/login"))
        .insert_header(("set-cookie", cookie(identity, &req, "", 0)))
        .finish()
}

/// Who is calling.
#[utoipa::path(get, path = "/api/v1/me", tag = "identity",
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The signed-in caller", body = Me),
        (status = 401, description = "Not signed in (`unauthenticated`)", body = ErrorBody),
    ))]
pub(crate) async fn me(caller: Caller) -> HttpResponse {
    let p = &caller.principal;
    HttpResponse::Ok().json(Me {
        id: p.public_id(),
        kind: p.kind.as_str().to_owned(),
        name: p.name.clone(),
        email: p.email.clone(),
        roles: p.roles.clone(),
        groups: p.groups.clone(),
        permissions: p.permissions.grants(),
        token_id: p.token_id,
    })
}

/// Set the session cookie, audit the sign-in, go on to `next`.
fn signed_in(
    req: &HttpRequest,
    identity: &Identity,
    session: NewSession,
    principal: &Principal,
    via: &str,
    next: &str,
) -> HttpResponse {
    identity.auditor.record(
        &auth::actor(identity, req, Some(principal)),
        Event {
            action: "login",
            module: None,
            target: None,
            outcome: "ok",
            details: Some(serde_json::json!({"via": via})),
        },
    );
    let max_age = session.max_age.as_secs();
    HttpResponse::SeeOther()
        .insert_header(("location", next.to_owned()))
        .insert_header(("cache-control", "no-store"))
        .insert_header(("set-cookie", cookie(identity, req, &session.id, max_age)))
        .finish()
}

fn failed(req: &HttpRequest, identity: &Identity, via: &str, error: &LoginError) {
    let address = auth::address(identity, req.peer_addr().map(|a| a.ip()), req.headers());
    identity.auditor.record(
        &Actor {
            id: "anonymous".to_owned(),
            name: None,
            address: address.map(|ip| ip.to_string()),
        },
        Event {
            action: "login",
            module: None,
            target: None,
            outcome: "failed",
            details: Some(serde_json::json!({"via": via, "reason": error.to_string()})),
        },
    );
}

fn status_of(error: &LoginError) -> StatusCode {
    match error {
        LoginError::NoDatabase | LoginError::NoProvider | LoginError::Provider { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        LoginError::Credentials(crate::identity::AuthError::TooMany { .. }) => {
            StatusCode::TOO_MANY_REQUESTS
        }
        LoginError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNAUTHORIZED,
    }
}

/// The session cookie: `HttpOnly`, `SameSite=Lax`, `Secure` over https; `max_age` 0 forgets it.
fn cookie(identity: &Identity, req: &HttpRequest, value: &str, max_age: u64) -> String {
    let secure = if auth::is_https(identity, req) {
        "; Secure"
    } else {
        ""
    };
    format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_hub() {
        assert_eq!(
            safe_next(Some("/modules/tickets/?a=1")),
            "/modules/tickets/?a=1"
        );
        for away in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "evil",
            "/x\\y",
            "/x\ny",
        ] {
            assert_eq!(safe_next(Some(away)), "/", "{away}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
