//! The hub's side of a module request: `RequestObj` over the parts of actix's request that a
//! module may read. Nothing is copied into it that actix already holds (the URI, the header map
//! taken out of the request head, the body's bytes); the module reads through the object.

use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use abi_stable::sabi_trait::prelude::TD_Opaque;
use abi_stable::std_types::{RNone, ROption, RSlice, RStr, RVec, Tuple2};
use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, Uri};
use async_ffi::{FfiFuture, FutureExt as _};
use bytes::Bytes;
use plugin_api::ffi::{FfiResponse, FfiUser, RequestBox, RequestObj, RequestObj_TO};
use serde_json::Value;

use crate::identity::{Actor, Event, Principal};
use crate::instance::Instance;

/// A request as a module reads it.
pub struct ModuleRequest {
    pub method: Method,
    pub uri: Uri,
    /// Where the module's own path starts in the URI's path; `None` for the module's root
    /// (`/api/v1/<name>` reads as `/`).
    pub path_from: Option<usize>,
    /// Path parameters, percent-decoded.
    pub params: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The caller, as far as the dispatcher resolved it.
    pub principal: Caller,
    /// The instance called (its permissions, the hub's audit log).
    pub instance: Arc<Instance>,
    /// The peer's address (the caller's, unless a trusted proxy forwarded the request).
    pub peer: Option<IpAddr>,
    /// The request's id, which the module reads as its `x-request-id` header: taken from the
    /// task's request id the first time it is asked for (most handlers never ask).
    pub request_id: std::sync::OnceLock<Option<crate::logging::RequestId>>,
}

/// Who is calling, as far as the dispatcher looked: a public route of a module without an
/// audience leaves it to the module to ask (most never do).
pub enum Caller {
    /// `None`: anonymous.
    Known(Option<Arc<Principal>>),
    NotAsked,
}

impl ModuleRequest {
    /// The id of the request (the task's), once asked for.
    fn request_id(&self) -> Option<&crate::logging::RequestId> {
        self.request_id
            .get_or_init(crate::logging::request_id)
            .as_ref()
    }

    /// The caller, resolved now if the dispatcher did not (refused credentials: anonymous).
    fn principal(&self) -> Option<Arc<Principal>> {
        match &self.principal {
            Caller::Known(principal) => principal.clone(),
            Caller::NotAsked => {
                let identity = &self.instance.access().identity;
                let forwarded = self
                    .headers
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok());
                identity
                    .resolve(super::auth::presented(&self.headers), || {
                        identity.client_address(self.peer, forwarded)
                    })
                    .unwrap_or(None)
            }
        }
    }

    /// The caller, resolved if it was not (for a call to another module).
    pub(super) fn caller(&self) -> Option<Arc<Principal>> {
        self.principal()
    }

    /// The request's id, for a call to another module.
    pub(super) fn id(&self) -> Option<crate::logging::RequestId> {
        self.request_id().cloned()
    }

    /// The object a module receives.
    pub fn into_object(self) -> RequestBox {
        RequestObj_TO::from_value(self, TD_Opaque)
    }
}

impl RequestObj for ModuleRequest {
    fn method(&self) -> RStr<'_> {
        self.method.as_str().into()
    }

    fn path(&self) -> RStr<'_> {
        let path = self.uri.path();
        self.path_from
            .and_then(|from| path.get(from..))
            .unwrap_or("/")
            .into()
    }

    fn param(&self, name: RStr<'_>) -> ROption<RStr<'_>> {
        let name = name.as_str();
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| RStr::from(v.as_str()))
            .into()
    }

    fn query(&self) -> RStr<'_> {
        self.uri.query().unwrap_or_default().into()
    }

    fn header(&self, name: RStr<'_>) -> ROption<RStr<'_>> {
        // Parsing a header name from the module's text cannot panic; the guard keeps the
        // boundary's rule that no panic crosses it.
        catch_unwind(AssertUnwindSafe(|| {
            let name = name.as_str();
            match self.headers.get(name) {
                Some(value) => std::str::from_utf8(value.as_bytes()).ok().map(RStr::from),
                // The hub's id of a request that came without one.
                None if name.eq_ignore_ascii_case("x-request-id") => {
                    self.request_id().map(|id| RStr::from(id.as_str()))
                }
                None => None,
            }
            .into()
        }))
        .unwrap_or(RNone)
    }

    fn headers(&self) -> RVec<Tuple2<RStr<'_>, RStr<'_>>> {
        catch_unwind(AssertUnwindSafe(|| {
            let mut all: RVec<Tuple2<RStr<'_>, RStr<'_>>> = self
                .headers
                .iter()
                .filter_map(|(k, v)| {
                    let v = std::str::from_utf8(v.as_bytes()).ok()?;
                    Some(Tuple2(RStr::from(k.as_str()), RStr::from(v)))
                })
                .collect();
            if let Some(id) = self.request_id()
                && !self.headers.contains_key("x-request-id")
            {
                all.push(Tuple2(RStr::from("x-request-id"), RStr::from(id.as_str())));
            }
            all
        }))
        .unwrap_or_default()
    }

    fn body(&self) -> RSlice<'_, u8> {
        RSlice::from_slice(&self.body)
    }

    fn user(&self) -> ROption<FfiUser> {
        catch_unwind(AssertUnwindSafe(|| {
            let principal = self.principal()?;
            let module = self.instance.name();
            let permissions = self
                .instance
                .access()
                .permissions
                .keys()
                .filter(|p| principal.permissions.can_in(module, p))
                .map(|p| p.as_str().into())
                .collect();
            Some(FfiUser {
                id: principal.public_id().into(),
                name: principal.name.as_str().into(),
                email: principal.email.as_deref().map(Into::into).into(),
                kind: principal.kind.as_str().into(),
                roles: principal.roles.iter().map(|r| r.as_str().into()).collect(),
                permissions,
            })
        }))
        .ok()
        .flatten()
        .into()
    }

    fn call(
        &self,
        module: RStr<'_>,
        method: RStr<'_>,
        path: RStr<'_>,
        body: RVec<u8>,
    ) -> FfiFuture<FfiResponse> {
        let made = catch_unwind(AssertUnwindSafe(|| {
            super::calls::call(
                self,
                module.as_str(),
                method.as_str(),
                path.as_str(),
                body.into_vec(),
            )
        }));
        made.unwrap_or_else(|_| {
            std::future::ready(FfiResponse {
                status: 500,
                content_type: ROption::RSome(abi_stable::std_types::RCowStr::from(
                    "application/json",
                )),
                headers: RVec::new(),
                body: br#"{"error":{"code":"call_failed","message":"the hub panicked calling the module"}}"#
                    .to_vec()
                    .into(),
                special: RNone,
            })
            .into_ffi()
        })
    }

    fn audit(&self, action: RStr<'_>, target: RStr<'_>, details: RStr<'_>) {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let identity = &self.instance.access().identity;
            let forwarded = self
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok());
            let principal = self.principal();
            let actor = Actor {
                id: principal
                    .as_deref()
                    .map_or_else(|| "anonymous".to_owned(), Principal::actor),
                name: principal.as_ref().map(|p| p.name.clone()),
                address: identity
                    .client_address(self.peer, forwarded)
                    .map(|ip| ip.to_string()),
            };
            let details: Value = serde_json::from_str(details.as_str())
                .unwrap_or_else(|_| Value::String(details.as_str().to_owned()));
            identity.auditor.record(
                &actor,
                Event {
                    action: action.as_str(),
                    module: Some(self.instance.name()),
                    target: Some(target.as_str()).filter(|t| !t.is_empty()),
                    outcome: "ok",
                    details: Some(details).filter(|d| !d.is_null()),
                },
            );
        }));
    }
}
