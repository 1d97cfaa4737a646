//! A serde deserializer over text fields (path parameters, a query string, a form): each value is
//! text, read as the type the target asks for (`"42"` as a `u64`, `"true"` as a `bool`), a
//! repeated field as a sequence.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

/// Why a field could not be read.
#[derive(Debug)]
pub struct TextError(String);

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TextError {}

impl de::Error for TextError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        TextError(msg.to_string())
    }
}

type Entries<'a> = Vec<(Cow<'a, str>, Vec<Cow<'a, str>>)>;

/// Named text fields, each with one or more values, in order.
pub struct Fields<'a> {
    entries: Entries<'a>,
}

impl<'a> Fields<'a> {
    /// A route's path parameters, in the path's order.
    pub fn path(entries: Entries<'a>) -> Fields<'a> {
        Fields { entries }
    }

    /// `a=1&b=x&a=2` (percent-decoded; `+` is a space): `a` → [1, 2], `b` → [x].
    pub fn urlencoded(text: &[u8]) -> Result<Fields<'static>, String> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(text).map_err(|e| e.to_string())?;
        let mut entries: Entries<'static> = Vec::new();
        for (key, value) in pairs {
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some((_, values)) => values.push(Cow::Owned(value)),
                None => entries.push((Cow::Owned(key), vec![Cow::Owned(value)])),
            }
        }
        Ok(Fields { entries })
    }

    /// The only field, for a target that is one value (`Path<u64>`).
    fn single(self) -> Result<Values<'a>, TextError> {
        let count = self.entries.len();
        let mut entries = self.entries.into_iter();
        match (entries.next(), count) {
            (Some((key, values)), 1) => Ok(Values { key, values }),
            _ => Err(TextError(format!(
                "expects one value, and the route has {count}: take a struct or a tuple"
            ))),
        }
    }
}

macro_rules! through_single {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
            self.single()?.$method(visitor)
        })*
    };
}

impl<'de, 'a> de::Deserializer<'de> for Fields<'a> {
    type Error = TextError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
        visitor.visit_map(FieldsAccess {
            entries: self.entries.into_iter(),
            value: None,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TextError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
        let values: Vec<Values<'a>> = self
            .entries
            .into_iter()
            .map(|(key, values)| Values { key, values })
            .collect();
        visitor.visit_seq(de::value::SeqDeserializer::new(values.into_iter()))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, TextError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, TextError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, TextError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TextError> {
        self.single()?.deserialize_enum(name, variants, visitor)
    }

    through_single! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_option deserialize_unit
    }

    serde::forward_to_deserialize_any! {
        bytes byte_buf unit_struct identifier ignored_any
    }
}

struct FieldsAccess<'a> {
    entries: std::vec::IntoIter<(Cow<'a, str>, Vec<Cow<'a, str>>)>,
    value: Option<Values<'a>>,
}

impl<'de, 'a> de::MapAccess<'de> for FieldsAccess<'a> {
    type Error = TextError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TextError> {
        let Some((key, values)) = self.entries.next() else {
            return Ok(None);
        };
        let name = seed.deserialize(Text(key.clone()))?;
        self.value = Some(Values { key, values });
        Ok(Some(name))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, TextError> {
        let values = self
            .value
            .take()
            .ok_or_else(|| TextError("a value without its name".to_owned()))?;
        seed.deserialize(values)
    }
}

/// The values of one field.
struct Values<'a> {
    key: Cow<'a, str>,
    values: Vec<Cow<'a, str>>,
}

impl Values<'_> {
    /// The field's (last) value, errors naming the field.
    fn one<R>(
        mut self,
        read: impl FnOnce(Text<'_>) -> Result<R, TextError>,
    ) -> Result<R, TextError> {
        let value = self.values.pop().unwrap_or_default();
        let shown = value.clone();
        read(Text(value)).map_err(|e| TextError(format!("'{}' = '{shown}': {e}", self.key)))
    }
}

impl<'de> IntoDeserializer<'de, TextError> for Values<'_> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! through_one {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
            self.one(|text| text.$method(visitor))
        })*
    };
}

impl<'de> de::Deserializer<'de> for Values<'_> {
    type Error = TextError;

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
        let key = self.key;
        visitor
            .visit_seq(de::value::SeqDeserializer::new(
                self.values.into_iter().map(Text),
            ))
            .map_err(|e: TextError| TextError(format!("'{key}': {e}")))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, TextError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TextError> {
        self.one(|text| text.deserialize_enum(name, variants, visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, TextError> {
        self.deserialize_seq(visitor)
    }

    through_one! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_unit deserialize_identifier
    }

    serde::forward_to_deserialize_any! {
        bytes byte_buf unit_struct tuple_struct map struct ignored_any
    }
}

/// One text value, read as what the target asks for.
struct Text<'a>(Cow<'a, str>);

impl<'de> IntoDeserializer<'de, TextError> for Text<'_> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! parse {
    ($($method:ident $visit:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
            match self.0.trim().parse() {
                Ok(value) => visitor.$visit(value),
                Err(e) => Err(TextError(format!("{e}"))),
            }
        })*
    };
}

impl<'de> de::Deserializer<'de> for Text<'_> {
    type Error = TextError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
        match self.0 {
            Cow::Borrowed(text) => visitor.visit_str(text),
            Cow::Owned(text) => visitor.visit_string(text),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
        match &*self.0 {
            "true" => visitor.visit_bool(true),
            "false" => visitor.visit_bool(false),
            other => Err(TextError(format!("'{other}' is not true or false"))),
        }
    }

    parse! {
        deserialize_i8 visit_i8 deserialize_i16 visit_i16 deserialize_i32 visit_i32
        deserialize_i64 visit_i64 deserialize_i128 visit_i128 deserialize_u8 visit_u8
        deserialize_u16 visit_u16 deserialize_u32 visit_u32 deserialize_u64 visit_u64
        deserialize_u128 visit_u128 deserialize_f32 visit_f32 deserialize_f64 visit_f64
        deserialize_char visit_char
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, TextError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TextError> {
        visitor.visit_seq(de::value::SeqDeserializer::new(std::iter::once(self)))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TextError> {
        visitor.visit_enum(self.0.into_owned().into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        str string bytes byte_buf unit_struct tuple tuple_struct map struct identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn path<'a>(pairs: &[(&'a str, &'a str)]) -> Fields<'a> {
        Fields::path(
            pairs
                .iter()
                .map(|(k, v)| (Cow::Borrowed(*k), vec![Cow::Borrowed(*v)]))
                .collect(),
        )
    }

    #[test]
    fn one_value_a_tuple_or_a_struct() {
        assert_eq!(u64::deserialize(path(&[("id", "42")])).ok(), Some(42));
        assert_eq!(
            <(String, i32)>::deserialize(path(&[("name", "x"), ("n", "-3")])).ok(),
            Some(("x".to_owned(), -3))
        );
        #[derive(Deserialize, Debug, PartialEq)]
        struct Ids {
            id: u32,
            name: String,
        }
        assert_eq!(
            Ids::deserialize(path(&[("id", "7"), ("name", "a b")])).ok(),
            Some(Ids {
                id: 7,
                name: "a b".to_owned()
            })
        );
        let error = u64::deserialize(path(&[("id", "forty")]))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("'id' = 'forty': invalid digit found in string")
        );
    }

    #[test]
    fn queries_repeat_and_omit() {
        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Q {
            tag: Vec<String>,
            limit: Option<u8>,
            open: bool,
            #[serde(default)]
            kind: Kind,
        }
        #[derive(Deserialize, Debug, PartialEq, Default)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            #[default]
            Open,
            Closed,
        }
        let fields = Fields::urlencoded(b"tag=a&open=true&tag=b+c&kind=closed").ok();
        let q = fields.map(Q::deserialize).and_then(Result::ok);
        assert_eq!(
            q,
            Some(Q {
                tag: vec!["a".to_owned(), "b c".to_owned()],
                limit: None,
                open: true,
                kind: Kind::Closed
            })
        );
        let error = Fields::urlencoded(b"tag=a&open=yes")
            .ok()
            .map(|f| Q::deserialize(f).err().map(|e| e.to_string()));
        assert_eq!(
            error.flatten().as_deref(),
            Some("'open' = 'yes': 'yes' is not true or false")
        );
        let error = Fields::urlencoded(b"tag=a&open=true&x=1")
            .ok()
            .map(|f| Q::deserialize(f).err().map(|e| e.to_string()));
        assert_eq!(
            error.flatten().as_deref(),
            Some("unknown field `x`, expected one of `tag`, `limit`, `open`, `kind`")
        );
    }
}
