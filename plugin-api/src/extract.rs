//! Typed handler arguments, as axum and actix have them: [`Path`], [`Query`], [`Json`] (a body),
//! [`Form`] (a view's form), [`User`], and the [`Request`] itself as the last argument. Each one
//! reads its part of the request before the handler runs, and says what it adds to the route's
//! [`RouteDoc`] (its schema, from `schemars`), so the OpenAPI document and the hub's checks come
//! from the handler's types.
//!
//! The hub checks path parameters, query and body against those schemas before the module is
//! called (400 `bad_parameter` / `bad_query` / `invalid_json` when a value cannot be read as its
//! type, 422 `validation_failed` when it breaks a rule), so what reaches an extractor is valid;
//! an extractor still refuses what it cannot read, with the same codes.

use std::borrow::Cow;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::Error;
use crate::ffi::{BodyDoc, RouteDoc};
use crate::http::{Json, Request, User};
use crate::schema::schema_of;

mod text;

/// What a route knows about itself when its handler runs: the names of its path parameters, in
/// order.
#[derive(Debug, Clone, Default)]
pub struct RouteMeta {
    pub(crate) params: Vec<String>,
}

impl RouteMeta {
    /// The `{name}`s of a matchit pattern, in order (`{*rest}` → `rest`).
    pub(crate) fn of(pattern: &str) -> RouteMeta {
        RouteMeta {
            params: pattern
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .map(|s| s.trim_start_matches('*').to_owned())
                .collect(),
        }
    }
}

/// A request as extractors see it: the request and its route.
#[derive(Debug)]
pub struct Parts<'a> {
    request: &'a Request,
    route: &'a RouteMeta,
}

impl<'a> Parts<'a> {
    pub(crate) fn new(request: &'a Request, route: &'a RouteMeta) -> Parts<'a> {
        Parts { request, route }
    }

    pub fn request(&self) -> &'a Request {
        self.request
    }

    /// The names of the route's path parameters, in order.
    pub fn param_names(&self) -> &'a [String] {
        &self.route.params
    }
}

/// A handler argument read from the request. Implement it for your own types to use them as
/// arguments; `document` adds what the argument needs to the route's documentation.
pub trait FromRequest: Sized {
    fn from_request(parts: &Parts<'_>) -> Result<Self, Error>;

    fn document(doc: &mut RouteDoc) {
        let _ = doc;
    }
}

/// A handler's last argument: any [`FromRequest`], or the [`Request`] itself (moved in).
pub trait FromRequestLast<Via>: Sized {
    fn from_request_last(request: Request, route: &RouteMeta) -> Result<Self, Error>;

    fn document(doc: &mut RouteDoc);
}

/// Marks a [`FromRequestLast`] that borrows the request.
#[derive(Debug)]
pub enum ViaParts {}

/// Marks the [`Request`] taken whole.
#[derive(Debug)]
pub enum ViaRequest {}

impl<T: FromRequest> FromRequestLast<ViaParts> for T {
    fn from_request_last(request: Request, route: &RouteMeta) -> Result<Self, Error> {
        T::from_request(&Parts::new(&request, route))
    }

    fn document(doc: &mut RouteDoc) {
        T::document(doc);
    }
}

impl FromRequestLast<ViaRequest> for Request {
    #[inline]
    fn from_request_last(request: Request, _: &RouteMeta) -> Result<Self, Error> {
        Ok(request)
    }

    fn document(_: &mut RouteDoc) {}
}

/// The path parameters, deserialized into `T`: a struct with one field per `{name}`, a tuple in
/// their order, or one value for a route with one parameter. `GET /items/{id}` with
/// `Path(id): Path<u64>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + JsonSchema> FromRequest for Path<T> {
    fn from_request(parts: &Parts<'_>) -> Result<Self, Error> {
        let request = parts.request();
        let values = parts
            .param_names()
            .iter()
            .map(|name| {
                let value = request.param(name).unwrap_or_default();
                (Cow::Borrowed(name.as_str()), vec![Cow::Borrowed(value)])
            })
            .collect();
        T::deserialize(text::Fields::path(values))
            .map(Path)
            .map_err(|e| Error::new(400, "bad_parameter", format!("path parameter {e}")))
    }

    fn document(doc: &mut RouteDoc) {
        doc.path = Some(schema_of::<T>());
    }
}

/// The query string deserialized into `T` (a struct; `Option` fields are optional, `Vec`
/// fields take the parameter repeated): `Query(page): Query<Page>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + JsonSchema> FromRequest for Query<T> {
    fn from_request(parts: &Parts<'_>) -> Result<Self, Error> {
        let fields = text::Fields::urlencoded(parts.request().query_string().as_bytes())
            .map_err(|e| Error::new(400, "bad_query", format!("invalid query string: {e}")))?;
        T::deserialize(fields)
            .map(Query)
            .map_err(|e| Error::new(400, "bad_query", format!("query parameter {e}")))
    }

    fn document(doc: &mut RouteDoc) {
        doc.query = Some(schema_of::<T>());
    }
}

/// As an argument, the body deserialized from JSON into `T` (the route documents `T`'s schema);
/// as a return value, `T` answered as JSON.
impl<T: DeserializeOwned + JsonSchema> FromRequest for Json<T> {
    fn from_request(parts: &Parts<'_>) -> Result<Self, Error> {
        let body = parts.request().body();
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::new(
                400,
                "invalid_json",
                "the request needs a JSON body, and it is empty",
            ));
        }
        serde_json::from_slice(body)
            .map(Json)
            .or_else(|e| {
                if !e.is_data() {
                    return Err(e);
                }
                // `7.0` is an integer to JSON Schema (the hub let it through): read it as one.
                let mut value: Value = serde_json::from_slice(body)?;
                whole_numbers(&mut value);
                serde_json::from_value(value).map(Json).map_err(|_| e)
            })
            .map_err(|e| {
                if e.is_data() {
                    Error::validation(format!("the body does not match its schema: {e}"))
                        .with_details(
                            json!([{"location": "body", "field": "", "message": e.to_string()}]),
                        )
                } else {
                    Error::new(
                        400,
                        "invalid_json",
                        format!("request body is not the expected JSON: {e}"),
                    )
                }
            })
    }

    fn document(doc: &mut RouteDoc) {
        doc.body = Some(BodyDoc {
            media_type: "application/json".to_owned(),
            schema: schema_of::<T>(),
        });
    }
}

/// Numbers with no fraction (`7.0`) as integers, everywhere in `value`.
fn whole_numbers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// A submitted HTML form (`application/x-www-form-urlencoded`) deserialized into `T`, for views.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Form<T>(pub T);

impl<T: DeserializeOwned + JsonSchema> FromRequest for Form<T> {
    fn from_request(parts: &Parts<'_>) -> Result<Self, Error> {
        let fields = text::Fields::urlencoded(parts.request().body())
            .map_err(|e| Error::new(400, "bad_form", format!("the form is invalid: {e}")))?;
        T::deserialize(fields)
            .map(Form)
            .map_err(|e| Error::validation(format!("form field {e}")))
    }

    fn document(doc: &mut RouteDoc) {
        doc.body = Some(BodyDoc {
            media_type: "application/x-www-form-urlencoded".to_owned(),
            schema: schema_of::<T>(),
        });
    }
}

/// The caller, as [`Request::user`] gives it.
impl FromRequest for User {
    fn from_request(parts: &Parts<'_>) -> Result<Self, Error> {
        Ok(parts.request().user())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_name_their_parameters_in_order() {
        assert_eq!(
            RouteMeta::of("/items/{id}/files/{*rest}").params,
            vec!["id".to_owned(), "rest".to_owned()]
        );
        assert!(RouteMeta::of("/items").params.is_empty());
    }
}
