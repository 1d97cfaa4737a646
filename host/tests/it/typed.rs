//! Typed routes: a handler's extractors (`Path`, `Query`, `Json`) become schemas that the hub
//! checks before the module runs — 400 for a value that is not of its type, 422
//! `validation_failed` for one that breaks a rule, each failing field in `details` — and that the
//! OpenAPI document states. Every constraint the document states is tried just outside it.

use serde_json::{Value, json};

use crate::support::{Hub, Setup};

fn hub() -> Hub {
    Setup::new()
        .hello()
        .example("customers")
        .example("tickets")
        .module_folder(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/_template"))
        .fixture("fx", json!({}))
        .env("MODULES__TMPLMOD__READ_ONLY", "false")
        .env("MODULES__TMPLMOD__DRY_RUN", "false")
        .start()
}

fn error(status: u16, code: &str, message: &str, details: Value) -> (u16, Value) {
    (
        status,
        json!({"error": {"code": code, "message": message, "details": details}}),
    )
}

#[test]
fn bad_input_is_refused_before_the_handler_naming_each_field() {
    let hub = hub();
    let answer = |method: &str, path: &str, body: Option<&str>| {
        let reply = hub.request(method, path, None, body);
        (reply.status, reply.json())
    };
    // A wrong type in a path parameter.
    assert_eq!(
        answer("GET", "/api/v1/fx/typed/seven", None),
        error(
            400,
            "bad_parameter",
            "path parameter 'n' = 'seven' is not an integer",
            json!([{"location": "path", "field": "n", "message": "= 'seven' is not an integer"}])
        )
    );
    // A missing required query parameter, and a number out of its range.
    assert_eq!(
        answer("GET", "/api/v1/fx/search?limit=21", None),
        error(
            422,
            "validation_failed",
            "the request is invalid: query 'limit' 21 is greater than the maximum of 20; query 'q' is required",
            json!([
                {"location": "query", "field": "limit", "message": "21 is greater than the maximum of 20"},
                {"location": "query", "field": "q", "message": "is required"},
            ])
        )
    );
    // A query value that is not of its type; an enum.
    assert_eq!(
        answer("GET", "/api/v1/fx/search?q=a&limit=many", None).0,
        400
    );
    assert_eq!(
        answer("GET", "/api/v1/fx/search?q=a&kind=ajar", None),
        error(
            422,
            "validation_failed",
            r#"the request is invalid: query 'kind' "ajar" is not one of "open", "closed" or null"#,
            json!([{"location": "query", "field": "kind", "message": r#""ajar" is not one of "open", "closed" or null"#}])
        )
    );
    assert_eq!(
        answer("GET", "/api/v1/fx/search?q=lamp&limit=3&kind=open", None),
        (200, json!({"q": "lamp", "limit": 3, "kind": "open"}))
    );
    // Bodies: a wrong field type, a missing field, an unknown field, a string over its length.
    let shape = |body: Value| answer("POST", "/api/v1/fx/shape", Some(&body.to_string()));
    assert_eq!(
        shape(json!({"name": "box", "size": "big", "kind": "open"})),
        error(
            422,
            "validation_failed",
            r#"the request is invalid: body 'size' "big" is not of type "integer""#,
            json!([{"location": "body", "field": "size", "message": r#""big" is not of type "integer""#}])
        )
    );
    assert_eq!(
        shape(json!({"name": "box", "size": 2})),
        error(
            422,
            "validation_failed",
            "the request is invalid: body 'kind' is required",
            json!([{"location": "body", "field": "kind", "message": "is required"}])
        )
    );
    assert_eq!(
        shape(json!({"name": "box", "size": 2, "kind": "open", "colour": "red"})),
        error(
            422,
            "validation_failed",
            "the request is invalid: body 'colour' is not a known field",
            json!([{"location": "body", "field": "colour", "message": "is not a known field"}])
        )
    );
    assert_eq!(
        shape(json!({"name": "crates", "size": 11, "kind": "open", "tags": ["a", "b", "c", "d"]})),
        error(
            422,
            "validation_failed",
            r#"the request is invalid: body 'name' "crates" is longer than 5 characters; body 'size' 11 is greater than the maximum of 10; body 'tags' ["a","b","c","d"] has more than 3 items"#,
            json!([
                {"location": "body", "field": "name", "message": r#""crates" is longer than 5 characters"#},
                {"location": "body", "field": "size", "message": "11 is greater than the maximum of 10"},
                {"location": "body", "field": "tags", "message": r#"["a","b","c","d"] has more than 3 items"#},
            ])
        )
    );
    // A body that is not JSON; an empty body where one is required.
    assert_eq!(
        answer("POST", "/api/v1/fx/shape", Some("{\"name\": ")),
        error(
            400,
            "invalid_json",
            "request body is not JSON: EOF while parsing a value at line 1 column 9",
            json!([{"location": "body", "field": "", "message": "EOF while parsing a value at line 1 column 9"}])
        )
    );
    assert_eq!(
        answer("POST", "/api/v1/fx/shape", None),
        error(
            400,
            "invalid_json",
            "the request needs a JSON body, and it is empty",
            json!([{"location": "body", "field": "", "message": "a JSON body is required"}])
        )
    );
    assert_eq!(
        shape(json!({"name": "box", "size": 2, "kind": "open"})),
        (
            201,
            json!({"name": "box", "size": 2, "kind": "open", "tags": []})
        )
    );
    // A text PostgreSQL cannot store (NUL) is the request's fault: 400, not a server error.
    let reply = hub.request(
        "POST",
        "/api/v1/tmplmod/items",
        None,
        Some(r#"{"title": "a\u0000b"}"#),
    );
    assert_eq!(
        (reply.status, reply.json()["error"]["code"].clone()),
        (400, json!("bad_parameter")),
        "{}",
        reply.body
    );
    // The hub's own tables too: 422 naming the character, not a server error.
    let reply = hub.get("/api/v1/audit?actor=%00x");
    assert_eq!(
        (reply.status, reply.json()["error"]["code"].clone()),
        (422, json!("validation_failed")),
        "{}",
        reply.body
    );
    // The examples' path parameters are typed too: no 400 from a handler parsing by hand.
    assert_eq!(answer("GET", "/api/v1/customers/n%C3%83", None).0, 400);
    assert_eq!(answer("GET", "/api/v1/customers/2147483648", None).0, 422);
}

/// Every constraint of every module operation's parameters and body fields, tried with a value
/// just outside it (the other fields valid): 422.
#[test]
fn every_constraint_the_document_states_is_enforced() {
    let hub = hub();
    let doc = hub.get("/api/v1/openapi.json").json();
    let mut tried = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/v1/") || path.starts_with("/api/v1/{module}") {
            continue;
        }
        for (method, operation) in item.as_object().expect("path item") {
            let Some(tag) = operation["tags"][0].as_str() else {
                continue;
            };
            if ["hub", "modules", "identity", "packages"].contains(&tag) {
                continue;
            }
            let params: Vec<&Value> = operation["parameters"]
                .as_array()
                .map(|p| p.iter().collect())
                .unwrap_or_default();
            let body = &operation["requestBody"]["content"]["application/json"]["schema"];
            let fields: Vec<(String, &Value)> = body["properties"]
                .as_object()
                .map(|p| p.iter().map(|(k, v)| (k.clone(), v)).collect())
                .unwrap_or_default();
            // Each constrained parameter or field in turn.
            let targets = params
                .iter()
                .map(|p| {
                    (
                        p["in"].as_str().unwrap_or("").to_owned(),
                        p["name"].as_str().unwrap_or("").to_owned(),
                        &p["schema"],
                    )
                })
                .chain(
                    fields
                        .iter()
                        .map(|(name, schema)| ("body".to_owned(), name.clone(), *schema)),
                );
            for (location, name, schema) in targets {
                for bad in outside(schema) {
                    if location == "path" && bad == json!("") {
                        continue; // an empty segment is another path, not this route
                    }
                    let mut url = path.clone();
                    let mut query = Vec::new();
                    for param in &params {
                        let pname = param["name"].as_str().unwrap_or("");
                        let value = if location != "body" && pname == name {
                            bad.clone()
                        } else if param["required"] == true || param["in"] == "path" {
                            valid(&param["schema"])
                        } else {
                            continue;
                        };
                        let text = match &value {
                            Value::String(s) => s.clone(),
                            Value::Number(n) if n.is_f64() => {
                                format!("{:.0}", n.as_f64().unwrap_or_default())
                            }
                            other => other.to_string(),
                        };
                        if param["in"] == "path" {
                            url = url.replace(&format!("{{{pname}}}"), &percent(&text));
                        } else {
                            query.push(format!("{pname}={}", percent(&text)));
                        }
                    }
                    if !query.is_empty() {
                        url = format!("{url}?{}", query.join("&"));
                    }
                    let payload = body.is_object().then(|| {
                        let required: Vec<&str> = body["required"]
                            .as_array()
                            .map(|r| r.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        let mut object = serde_json::Map::new();
                        for (field, schema) in &fields {
                            if location == "body" && *field == name {
                                object.insert(field.clone(), bad.clone());
                            } else if required.contains(&field.as_str()) {
                                object.insert(field.clone(), valid(schema));
                            }
                        }
                        Value::Object(object).to_string()
                    });
                    let reply =
                        hub.request(&method.to_ascii_uppercase(), &url, None, payload.as_deref());
                    assert_eq!(
                        (reply.status, reply.json()["error"]["code"].clone()),
                        (422, json!("validation_failed")),
                        "{method} {url} with {location} '{name}' = {bad}: {}",
                        reply.body
                    );
                    tried.push(format!("{method} {path} {location} {name}={bad}"));
                }
            }
        }
    }
    // Not a vacuous walk: the examples' and the template's rules are among those tried.
    for expected in [
        format!(
            "get /api/v1/hello/greet/{{name}} path name=\"{}\"",
            "a".repeat(65)
        ),
        "post /api/v1/customers/ body name=\" \"".to_owned(),
        "get /api/v1/tmplmod/items query limit=501".to_owned(),
        "post /api/v1/tickets/ body customer_id=0".to_owned(),
        "get /api/v1/fx/search query limit=21".to_owned(),
    ] {
        assert!(
            tried.contains(&expected),
            "{expected} was not tried: {tried:#?}"
        );
    }
}

/// Values just outside `schema`'s constraints.
fn outside(schema: &Value) -> Vec<Value> {
    let mut values = Vec::new();
    if let Some(min) = schema["minimum"].as_i64() {
        values.push(match min.checked_sub(1) {
            Some(below) => json!(below),
            None => json!(-9_223_372_036_854_775_808.0_f64 * 2.0),
        });
    }
    if let Some(max) = schema["maximum"].as_u64() {
        values.push(match max.checked_add(1) {
            Some(above) => json!(above),
            None => json!(18_446_744_073_709_551_616.0_f64 * 2.0),
        });
    }
    if let Some(min) = schema["minLength"].as_u64().filter(|m| *m > 0) {
        values.push(json!("a".repeat(min as usize - 1)));
    }
    if let Some(max) = schema["maxLength"].as_u64() {
        values.push(json!("a".repeat(max as usize + 1)));
    }
    if schema["pattern"] == r"\S" {
        values.push(json!(" "));
    }
    if schema["enum"].is_array() {
        values.push(json!("none_of_them"));
    }
    if let Some(max) = schema["maxItems"].as_u64() {
        values.push(json!(vec!["a"; max as usize + 1]));
    }
    values
}

/// A value `schema` accepts.
fn valid(schema: &Value) -> Value {
    if let Some(first) = schema["enum"].get(0) {
        return first.clone();
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(t) => t.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    match types.first().copied() {
        Some("integer") | Some("number") => {
            json!(
                schema["minimum"]
                    .as_i64()
                    .unwrap_or(0)
                    .max(1)
                    .min(schema["maximum"].as_i64().unwrap_or(i64::MAX))
            )
        }
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        _ => json!("a".repeat(schema["minLength"].as_u64().unwrap_or(1).max(1) as usize)),
    }
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
