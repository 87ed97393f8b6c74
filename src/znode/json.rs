//! Strict field access over `serde_json` values: every registration payload
//! goes through these, so each kind of wrongness has one error shape.

use serde_json::{Map, Value};

use super::error::{bad_field, Problem};

pub(crate) type Object = Map<String, Value>;

pub(crate) fn parse_object(bytes: &[u8]) -> Result<Object, Problem> {
    let text = std::str::from_utf8(bytes).map_err(|_| Problem::NotUtf8)?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Problem::Json(format!("expected an object, found {}", kind(&other)))),
        Err(e) => Err(Problem::Json(e.to_string())),
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn required<'a>(obj: &'a Object, field: &'static str) -> Result<&'a Value, Problem> {
    obj.get(field).ok_or(Problem::MissingField(field))
}

/// An integer field within `[min, max]`.
pub(crate) fn int_in(v: &Value, field: &'static str, min: i64, max: i64) -> Result<i64, Problem> {
    let n = v.as_i64().ok_or_else(|| bad_field(field, format!("expected an integer, found {}", kind(v))))?;
    if n < min || n > max {
        return Err(bad_field(field, format!("{n} is outside {min}..={max}")));
    }
    Ok(n)
}

pub(crate) fn i32_field(obj: &Object, field: &'static str, min: i32) -> Result<i32, Problem> {
    int_in(required(obj, field)?, field, min.into(), i32::MAX.into()).map(|n| n as i32)
}

pub(crate) fn str_field<'a>(obj: &'a Object, field: &'static str) -> Result<&'a str, Problem> {
    let v = required(obj, field)?;
    v.as_str().ok_or_else(|| bad_field(field, format!("expected a string, found {}", kind(v))))
}

pub(crate) fn array_field<'a>(obj: &'a Object, field: &'static str) -> Result<&'a [Value], Problem> {
    let v = required(obj, field)?;
    match v {
        Value::Array(items) => Ok(items),
        other => Err(bad_field(field, format!("expected an array, found {}", kind(other)))),
    }
}

pub(crate) fn object_field<'a>(obj: &'a Object, field: &'static str) -> Result<&'a Object, Problem> {
    match required(obj, field)? {
        Value::Object(map) => Ok(map),
        other => Err(bad_field(field, format!("expected an object, found {}", kind(other)))),
    }
}

/// A list of non-negative broker ids, as in replica lists and ISRs.
pub(crate) fn broker_list(v: &Value, field: &'static str) -> Result<Vec<crate::BrokerId>, Problem> {
    let items = v.as_array().ok_or_else(|| bad_field(field, format!("expected an array, found {}", kind(v))))?;
    items.iter().map(|item| int_in(item, field, 0, i32::MAX.into()).map(|n| crate::BrokerId(n as i32))).collect()
}

/// A millisecond timestamp that Kafka writes as a decimal string (some tools
/// write a number); both are read, a string is written.
pub(crate) fn timestamp_field(obj: &Object, field: &'static str) -> Result<Option<u64>, Problem> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_decimal_u64(s)
            .map(Some)
            .ok_or_else(|| bad_field(field, format!("{s:?} is not a decimal millisecond timestamp"))),
        Some(v @ Value::Number(_)) => int_in(v, field, 0, i64::MAX).map(|n| Some(n as u64)),
        Some(v) => Err(bad_field(field, format!("expected a string, found {}", kind(v)))),
    }
}

/// Plain ASCII digits only: no sign, no spaces, no leading `+`.
pub(crate) fn parse_decimal_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Canonical decimal for an `i32` id: digits, optional leading `-` only
/// where negatives are allowed, no leading zeros (so names round-trip).
pub(crate) fn parse_canonical_i32(s: &str, allow_negative: bool) -> Option<i32> {
    let digits = match s.strip_prefix('-') {
        Some(rest) if allow_negative => rest,
        Some(_) => return None,
        None => s,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    if s == "-0" {
        return None;
    }
    s.parse().ok()
}
