//! The hub's side of a module request: `RequestObj` over the parts of actix's request that a
//! module may read. Nothing is copied into it that actix already holds (the URI, the header map
//! taken out of the request head, the body's bytes); the module reads through the object.

use std::panic::{AssertUnwindSafe, catch_unwind};

use abi_stable::sabi_trait::prelude::TD_Opaque;
use abi_stable::std_types::{RNone, ROption, RSlice, RStr, RVec, Tuple2};
use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, Uri};
use bytes::Bytes;
use plugin_api::ffi::{RequestBox, RequestObj, RequestObj_TO};

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
}

impl ModuleRequest {
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
            self.headers
                .get(name.as_str())
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
                .map(RStr::from)
                .into()
        }))
        .unwrap_or(RNone)
    }

    fn headers(&self) -> RVec<Tuple2<RStr<'_>, RStr<'_>>> {
        catch_unwind(AssertUnwindSafe(|| {
            self.headers
                .iter()
                .filter_map(|(k, v)| {
                    let v = std::str::from_utf8(v.as_bytes()).ok()?;
                    Some(Tuple2(RStr::from(k.as_str()), RStr::from(v)))
                })
                .collect()
        }))
        .unwrap_or_default()
    }

    fn body(&self) -> RSlice<'_, u8> {
        RSlice::from_slice(&self.body)
    }
}
