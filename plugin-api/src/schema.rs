//! The JSON Schema of a type, as routes document their inputs and answers: draft 2020-12 (as
//! OpenAPI 3.1 has it), subschemas inlined, sized integers bounded.

use schemars::JsonSchema;
use serde_json::{Value, json};

/// The JSON Schema of `T`, subschemas inlined (draft 2020-12, as OpenAPI 3.1 has it).
pub fn schema_of<T: JsonSchema>() -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| {
        s.inline_subschemas = true;
        s.meta_schema = None;
    });
    let mut schema = settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    if let Some(object) = schema.as_object_mut() {
        object.remove("title");
    }
    bound_integers(&mut schema);
    schema
}

/// Give every sized integer (`"format": "int32"`, …) its range, unless the type says one: a
/// value outside it could not be read as the field's type, so the document says so and the hub
/// refuses it before the module does.
fn bound_integers(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            let range = match object.get("format").and_then(Value::as_str) {
                Some("int8") => Some((json!(i8::MIN), json!(i8::MAX))),
                Some("int16") => Some((json!(i16::MIN), json!(i16::MAX))),
                Some("int32") => Some((json!(i32::MIN), json!(i32::MAX))),
                Some("int64") => Some((json!(i64::MIN), json!(i64::MAX))),
                Some("uint8") => Some((json!(0), json!(u8::MAX))),
                Some("uint16") => Some((json!(0), json!(u16::MAX))),
                Some("uint32") => Some((json!(0), json!(u32::MAX))),
                Some("uint64" | "uint") => Some((json!(0), json!(u64::MAX))),
                _ => None,
            };
            if let Some((min, max)) = range {
                object.entry("minimum").or_insert(min);
                object.entry("maximum").or_insert(max);
            }
            for value in object.values_mut() {
                bound_integers(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_inlined_2020_12() {
        #[derive(serde::Deserialize, JsonSchema)]
        #[allow(dead_code)]
        struct Inner {
            #[schemars(range(min = 1))]
            n: u32,
        }
        #[derive(serde::Deserialize, JsonSchema)]
        #[allow(dead_code)]
        struct Outer {
            inner: Inner,
            tag: Option<String>,
        }
        let schema = schema_of::<Outer>();
        assert_eq!(
            schema["properties"]["inner"]["properties"]["n"]["minimum"],
            1
        );
        assert_eq!(
            schema["properties"]["inner"]["properties"]["n"]["maximum"],
            u32::MAX
        );
        assert_eq!(schema_of::<i32>()["minimum"], i32::MIN);
        assert_eq!(schema["required"], json!(["inner"]));
        assert!(schema.get("$defs").is_none(), "{schema}");
        assert!(schema.get("$schema").is_none(), "{schema}");
    }
}
