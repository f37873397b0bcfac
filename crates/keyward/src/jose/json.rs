//! Strict JSON: objects with duplicate member names are rejected at every depth.
//!
//! `serde_json::Value` is silently last-wins on duplicates, the parser differential behind
//! several JWT CVEs (`docs/threat-model.md` A10). Key sets, discovery documents and the full claims map go
//! through the duplicate-rejecting visitor here; the verification hot path uses the scanner in
//! `scan.rs`, which accepts the same documents. serde_json's recursion limit (128) bounds nesting.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses a JSON object, rejecting duplicate member names anywhere inside it.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    match parse_value(bytes)? {
        Value::Object(map) => Ok(map),
        other => Err(format!("expected a JSON object, found {}", kind_of(&other))),
    }
}

/// Parses any JSON value, rejecting duplicate member names anywhere inside it.
pub(crate) fn parse_value(bytes: &[u8]) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// A short name for a JSON value's type, for error messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Builds a `serde_json::Value`, failing on duplicate member names.
struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate member {key:?}")));
            }
            let value = map.next_value_seed(StrictValue)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// A JSON value as far as keyward looks at it: scalars kept, containers checked and dropped.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scalar<'de> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'de, str>),
    /// An array whose elements are all strings (e.g. `aud`, `crit`, `key_ops`).
    StrArray(Vec<Cow<'de, str>>),
    /// Any other array.
    Array,
    Object,
}

impl Scalar<'_> {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Int(_) | Self::UInt(_) | Self::Float(_) => "a number",
            Self::Str(_) => "a string",
            Self::StrArray(_) | Self::Array => "an array",
            Self::Object => "an object",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_rejected_at_any_depth() {
        use crate::jose::scan::{Names, Wanted, scan_object};
        assert!(parse_object(br#"{"a":1,"a":2}"#).is_err());
        assert!(parse_object(br#"{"alg":"ES256","\u0061lg":"none"}"#).is_err());
        assert!(parse_object(br#"{"c":{"x":1,"x":1}}"#).is_err());
        assert!(parse_object(br#"{"c":[{"x":1,"x":1}]}"#).is_err());
        assert!(parse_object(br#"{"a":1,"b":{"a":1}}"#).is_ok());
        let skip_all =
            |input: &[u8]| scan_object(input, &Wanted::new(&[]), &mut Names::default(), |_, _| {}).is_ok();
        assert!(!skip_all(br#"{"a":1,"b":{"x":1,"x":2}}"#));
        assert!(!skip_all(br#"{"a":1,"b":[{"x":1,"x":2}]}"#));
        assert!(!skip_all(br#"{"a":1,"a":1}"#));
        let many: String = (0..40).map(|i| format!("\"m{i}\":{i},")).collect();
        assert!(skip_all(format!("{{{many}\"z\":1}}").as_bytes()));
        assert!(!skip_all(format!("{{{many}\"m3\":1}}").as_bytes()), "duplicate among the inline names");
        assert!(!skip_all(format!("{{{many}\"m39\":1}}").as_bytes()), "duplicate among spilled names");
        assert!(
            scan_object(br#"{"a":1,"a":1}"#, &Wanted::new(&["a"]), &mut Names::default(), |_, _| {}).is_err()
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(10_000);
        assert!(parse_value(deep.as_bytes()).is_err());
        let deep = format!("{{\"a\":{}}}", "[".repeat(10_000));
        assert!(
            crate::jose::scan::scan_object(
                deep.as_bytes(),
                &crate::jose::scan::Wanted::new(&[]),
                &mut crate::jose::scan::Names::default(),
                |_, _| {}
            )
            .is_err()
        );
    }

    #[test]
    fn trailing_data_is_an_error() {
        assert!(parse_object(br#"{"a":1} x"#).is_err());
        assert!(parse_object(br#"[1]"#).is_err());
    }
}
