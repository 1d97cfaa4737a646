//! The checks a typed route's inputs pass before the module is called: its path parameters,
//! query and body against the schemas its handler's types declared (`RouteDoc`), compiled once
//! when the module starts. A value that cannot be read as its type is refused with 400
//! (`bad_parameter`, `bad_query`, `invalid_json`); one that breaks a rule of its schema (a range,
//! a length, a pattern, an enum, a required or unknown field) with 422 `validation_failed`. Both
//! list each failing field as `{location, field, message}` in `details`.

use jsonschema::error::ValidationErrorKind;
use plugin_api::ffi::RouteDoc;
use serde_json::{Map, Value, json};

/// Why a request's inputs were refused, for the HTTP room to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// `[{location, field, message}]`.
    pub details: Value,
}

/// The compiled checks of one route.
pub struct Checks {
    path: Option<Fields>,
    query: Option<Fields>,
    body: Option<Body>,
}

enum Body {
    Json(Compiled),
    Form(Fields),
}

/// A schema and its validator (the schema names a pattern as the route wrote it).
struct Compiled {
    schema: Value,
    validator: jsonschema::Validator,
}

/// Text fields (path parameters, a query, a form) checked as an object.
struct Fields {
    compiled: Compiled,
    /// How each known field's text becomes JSON.
    kinds: Vec<(String, Kind)>,
}

/// What a text value is read as.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Text,
    Integer,
    Number,
    Boolean,
    List(Box<Kind>),
}

impl Checks {
    /// The checks `doc` asks for; `None` when it declares no typed input. `Err` says which
    /// schema is unusable.
    pub fn new(doc: &RouteDoc) -> Result<Option<Checks>, String> {
        let path = doc
            .path
            .as_ref()
            .map(|s| Fields::new(s, "path"))
            .transpose()?;
        let query = doc
            .query
            .as_ref()
            .map(|s| Fields::new(s, "query"))
            .transpose()?;
        let body = match &doc.body {
            None => None,
            Some(body) if body.media_type == "application/x-www-form-urlencoded" => {
                Some(Body::Form(Fields::new(&body.schema, "form")?))
            }
            Some(body) => Some(Body::Json(compile(&body.schema, "body")?)),
        };
        if path.is_none() && query.is_none() && body.is_none() {
            return Ok(None);
        }
        Ok(Some(Checks { path, query, body }))
    }

    /// Check a request: its decoded path parameters, raw query string and body.
    pub fn check(
        &self,
        params: &[(String, String)],
        query: &str,
        body: &[u8],
    ) -> Result<(), Refusal> {
        if let Some(path) = &self.path {
            path.check_path(params)?;
        }
        if let Some(fields) = &self.query {
            let values = urlencoded(query.as_bytes()).map_err(|e| Refusal {
                status: 400,
                code: "bad_query",
                message: format!("invalid query string: {e}"),
                details: json!([]),
            })?;
            fields.check(values, "query", "bad_query")?;
        }
        match &self.body {
            None => Ok(()),
            Some(Body::Json(validator)) => check_json(validator, body),
            Some(Body::Form(fields)) => {
                let values = urlencoded(body).map_err(|e| Refusal {
                    status: 400,
                    code: "bad_form",
                    message: format!("the form is invalid: {e}"),
                    details: json!([]),
                })?;
                fields.check(values, "body", "bad_form")
            }
        }
    }
}

fn compile(schema: &Value, what: &str) -> Result<Compiled, String> {
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(schema)
        .map_err(|e| format!("the {what} schema is not valid JSON Schema: {e}"))?;
    Ok(Compiled {
        schema: schema.clone(),
        validator,
    })
}

impl Fields {
    fn new(schema: &Value, what: &str) -> Result<Fields, String> {
        let kinds = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|properties| {
                properties
                    .iter()
                    .map(|(name, schema)| (name.clone(), kind_of(schema)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Fields {
            compiled: compile(schema, what)?,
            kinds,
        })
    }

    /// Path parameters: one value each, read straight into the object checked.
    fn check_path(&self, params: &[(String, String)]) -> Result<(), Refusal> {
        let mut object = Map::new();
        for (name, text) in params {
            let kind = self
                .kinds
                .iter()
                .find(|(k, _)| k == name)
                .map_or(&Kind::Text, |(_, kind)| kind);
            match read(kind, text) {
                Ok(value) => {
                    object.insert(name.clone(), value);
                }
                Err(message) => {
                    return Err(Refusal {
                        status: 400,
                        code: "bad_parameter",
                        message: format!("path parameter '{name}' {message}"),
                        details: json!([{"location": "path", "field": name, "message": message}]),
                    });
                }
            }
        }
        validate(&self.compiled, &Value::Object(object), "path")
    }

    fn check(
        &self,
        values: Vec<(String, Vec<String>)>,
        location: &str,
        code: &'static str,
    ) -> Result<(), Refusal> {
        let mut object = Map::new();
        let mut unreadable = Vec::new();
        for (name, mut texts) in values {
            let kind = self
                .kinds
                .iter()
                .find(|(k, _)| *k == name)
                .map_or(&Kind::Text, |(_, kind)| kind);
            let value = match kind {
                Kind::List(item) => texts
                    .iter()
                    .map(|text| read(item, text))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array),
                kind => read(kind, &texts.pop().unwrap_or_default()),
            };
            match value {
                Ok(value) => {
                    object.insert(name, value);
                }
                Err(message) => unreadable.push(json!({
                    "location": location, "field": name, "message": message,
                })),
            }
        }
        if let Some(first) = unreadable.first() {
            let what = if location == "path" {
                "path parameter"
            } else {
                "query parameter"
            };
            let what = if code == "bad_form" {
                "form field"
            } else {
                what
            };
            return Err(Refusal {
                status: 400,
                code,
                message: format!(
                    "{what} '{}' {}",
                    first["field"].as_str().unwrap_or(""),
                    first["message"].as_str().unwrap_or("")
                ),
                details: Value::Array(unreadable),
            });
        }
        validate(&self.compiled, &Value::Object(object), location)
    }
}

fn check_json(compiled: &Compiled, body: &[u8]) -> Result<(), Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Refusal {
            status: 400,
            code: "invalid_json",
            message: "the request needs a JSON body, and it is empty".to_owned(),
            details: json!([{"location": "body", "field": "", "message": "a JSON body is required"}]),
        });
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| Refusal {
        status: 400,
        code: "invalid_json",
        message: format!("request body is not JSON: {e}"),
        details: json!([{"location": "body", "field": "", "message": e.to_string()}]),
    })?;
    validate(compiled, &value, "body")
}

/// The value against its schema: every failing field, or `Ok`.
fn validate(compiled: &Compiled, value: &Value, location: &str) -> Result<(), Refusal> {
    if compiled.validator.is_valid(value) {
        return Ok(());
    }
    let mut details = Vec::new();
    for error in compiled.validator.iter_errors(value) {
        let at = pointer_to_field(&error.instance_path.to_string());
        match &error.kind {
            ValidationErrorKind::Required { property } => details.push(json!({
                "location": location,
                "field": join(&at, property.as_str().unwrap_or_default()),
                "message": "is required",
            })),
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                for name in unexpected {
                    details.push(json!({
                        "location": location,
                        "field": join(&at, name),
                        "message": "is not a known field",
                    }));
                }
            }
            ValidationErrorKind::Pattern { .. } => {
                // As the route wrote it (the validator's own text is its translation).
                let pattern = compiled
                    .schema
                    .pointer(&error.schema_path.to_string())
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                details.push(json!({
                    "location": location,
                    "field": at,
                    "message": format!("{} does not match the pattern {pattern}", error.instance),
                }));
            }
            _ => details.push(json!({
                "location": location,
                "field": at,
                "message": error.to_string(),
            })),
        }
    }
    // In a stable order, whatever the order of the schema's keywords.
    details.sort_by(|a, b| {
        let key = |d: &Value| (d["field"].to_string(), d["message"].to_string());
        key(a).cmp(&key(b))
    });
    let listed: Vec<String> = details
        .iter()
        .map(|d| {
            let field = d["field"].as_str().unwrap_or_default();
            let message = d["message"].as_str().unwrap_or_default();
            if field.is_empty() {
                format!("{location}: {message}")
            } else {
                format!("{location} '{field}' {message}")
            }
        })
        .collect();
    Err(Refusal {
        status: 422,
        code: "validation_failed",
        message: format!("the request is invalid: {}", listed.join("; ")),
        details: Value::Array(details),
    })
}

/// `/items/0/name` → `items.0.name`.
fn pointer_to_field(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

fn join(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    }
}

/// How a property with `schema` is read from text: by its `type` (the first that is not
/// `null`), looking through `anyOf`/`oneOf` (an `Option<T>`).
fn kind_of(schema: &Value) -> Kind {
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    match types.into_iter().find(|t| *t != "null") {
        Some("integer") => Kind::Integer,
        Some("number") => Kind::Number,
        Some("boolean") => Kind::Boolean,
        Some("array") => Kind::List(Box::new(schema.get("items").map_or(Kind::Text, kind_of))),
        Some(_) => Kind::Text,
        None => ["anyOf", "oneOf"]
            .iter()
            .filter_map(|k| schema.get(*k).and_then(Value::as_array))
            .flatten()
            .map(kind_of)
            .find(|k| *k != Kind::Text)
            .unwrap_or(Kind::Text),
    }
}

/// `text` as JSON of `kind`; `Err` says why it is not one.
fn read(kind: &Kind, text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    match kind {
        Kind::Text | Kind::List(_) => Ok(Value::String(text.to_owned())),
        Kind::Integer => trimmed
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| trimmed.parse::<u64>().map(Value::from))
            .or_else(|_| {
                // An integer too large for 64 bits is still an integer: its range says no.
                let digits = trimmed.strip_prefix('-').unwrap_or(trimmed);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(());
                }
                trimmed
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or(())
            })
            .map_err(|_| format!("= '{text}' is not an integer")),
        Kind::Number => trimmed
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
            .ok_or_else(|| format!("= '{text}' is not a number")),
        Kind::Boolean => match trimmed {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("= '{text}' is not true or false")),
        },
    }
}

/// `a=1&a=2&b=x` → `[(a, [1, 2]), (b, [x])]`, in order.
fn urlencoded(text: &[u8]) -> Result<Vec<(String, Vec<String>)>, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(text).map_err(|e| e.to_string())?;
    let mut fields: Vec<(String, Vec<String>)> = Vec::new();
    for (key, value) in pairs {
        match fields.iter_mut().find(|(k, _)| *k == key) {
            Some((_, values)) => values.push(value),
            None => fields.push((key, vec![value])),
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::ffi::BodyDoc;

    fn checks(doc: RouteDoc) -> Checks {
        Checks::new(&doc).ok().flatten().expect("checks")
    }

    #[test]
    fn path_parameters_are_read_as_their_type_then_checked() {
        let checks = checks(RouteDoc {
            path: Some(
                json!({"type": "object", "properties": {"id": {"type": "integer", "minimum": 1}}, "required": ["id"]}),
            ),
            ..RouteDoc::default()
        });
        let id = |v: &str| vec![("id".to_owned(), v.to_owned())];
        assert_eq!(checks.check(&id("7"), "", b""), Ok(()));
        let refused = checks.check(&id("seven"), "", b"").err();
        assert_eq!(
            refused,
            Some(Refusal {
                status: 400,
                code: "bad_parameter",
                message: "path parameter 'id' = 'seven' is not an integer".to_owned(),
                details: json!([{"location": "path", "field": "id", "message": "= 'seven' is not an integer"}]),
            })
        );
        let refused = checks.check(&id("0"), "", b"").err();
        assert_eq!(
            refused,
            Some(Refusal {
                status: 422,
                code: "validation_failed",
                message: "the request is invalid: path 'id' 0 is less than the minimum of 1"
                    .to_owned(),
                details: json!([{"location": "path", "field": "id", "message": "0 is less than the minimum of 1"}]),
            })
        );
    }

    #[test]
    fn queries_and_bodies_list_every_failing_field() {
        let checks = checks(RouteDoc {
            query: Some(json!({"type": "object", "properties": {
                "tag": {"type": "array", "items": {"type": "integer"}},
                "q": {"type": ["string", "null"], "maxLength": 3},
            }, "additionalProperties": false})),
            body: Some(BodyDoc {
                media_type: "application/json".to_owned(),
                schema: json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"], "additionalProperties": false}),
            }),
            ..RouteDoc::default()
        });
        assert_eq!(
            checks.check(&[], "tag=1&tag=2&q=abc", br#"{"name": "x"}"#),
            Ok(())
        );
        let refused = checks.check(&[], "tag=1&tag=x", br#"{"name": "x"}"#).err();
        assert_eq!(
            refused.map(|r| (r.status, r.code)),
            Some((400, "bad_query"))
        );
        let refused = checks.check(&[], "q=abcd&z=1", br#"{"name": "x"}"#).err();
        assert_eq!(
            refused.map(|r| (r.status, r.details)),
            Some((
                422,
                json!([
                    {"location": "query", "field": "q", "message": "\"abcd\" is longer than 3 characters"},
                    {"location": "query", "field": "z", "message": "is not a known field"},
                ])
            ))
        );
        let refused = checks.check(&[], "", br#"{"nom": 1}"#).err();
        assert_eq!(
            refused.map(|r| (r.status, r.details)),
            Some((
                422,
                json!([
                    {"location": "body", "field": "name", "message": "is required"},
                    {"location": "body", "field": "nom", "message": "is not a known field"},
                ])
            ))
        );
        let refused = checks.check(&[], "", b"  ").err();
        assert_eq!(
            refused.map(|r| (r.status, r.code)),
            Some((400, "invalid_json"))
        );
        let refused = checks.check(&[], "", b"{").err();
        assert_eq!(
            refused.map(|r| (r.status, r.code)),
            Some((400, "invalid_json"))
        );
    }

    #[test]
    fn options_are_read_as_what_they_hold() {
        assert_eq!(
            kind_of(&json!({"anyOf": [{"type": "integer"}, {"type": "null"}]})),
            Kind::Integer
        );
        assert_eq!(
            kind_of(&json!({"type": ["boolean", "null"]})),
            Kind::Boolean
        );
        assert_eq!(kind_of(&json!({"enum": ["a", "b"]})), Kind::Text);
    }
}
