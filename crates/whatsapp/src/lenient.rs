//! Tolerant decoders for Meta's JSON.
//!
//! Meta adds fields without notice, some proxies stringify numbers, and a webhook we
//! fail to parse is a customer message we lose. So optional fields degrade to `None`
//! or a default instead of failing the surrounding object; only fields that make an
//! object meaningless (a media `id`, a location's coordinates) are required.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Strings as they are; numbers in their JSON spelling, because ids and timestamps
/// are sometimes sent as numbers.
pub(crate) fn to_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(crate) fn to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn to_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn to_f64(v: &Value) -> Option<f64> {
    let f = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }?;
    // "NaN" and "inf" parse as f64 but are not coordinates and do not survive JSON.
    f.is_finite().then_some(f)
}

pub(crate) fn to_bool(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Decodes a struct only from a JSON object: serde's derived impls also accept arrays
/// (positionally), which would turn garbage into plausible-looking values.
pub(crate) fn object_as<T: DeserializeOwned>(v: &Value) -> Option<T> {
    if v.is_object() {
        T::deserialize(v).ok()
    } else {
        None
    }
}

pub(crate) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(to_string(&Value::deserialize(d)?).unwrap_or_default())
}

pub(crate) fn required_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    to_string(&Value::deserialize(d)?).ok_or_else(|| D::Error::custom("expected a string"))
}

pub(crate) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(to_string(&Value::deserialize(d)?))
}

pub(crate) fn opt_nonempty_string<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    Ok(to_string(&Value::deserialize(d)?).filter(|s| !s.is_empty()))
}

pub(crate) fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(to_bool(&Value::deserialize(d)?))
}

pub(crate) fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(to_i64(&Value::deserialize(d)?))
}

pub(crate) fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(to_u64(&Value::deserialize(d)?))
}

pub(crate) fn required_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    to_f64(&Value::deserialize(d)?).ok_or_else(|| D::Error::custom("expected a finite number"))
}

/// Any non-null value; `null` counts as absent.
pub(crate) fn opt_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Ok(Some(Value::deserialize(d)?).filter(|v| !v.is_null()))
}

/// Keeps the elements that decode and drops the rest, so one odd element does not
/// cost us its well-formed neighbours.
pub(crate) fn vec_of_objects<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items
            .into_iter()
            .filter(Value::is_object)
            .filter_map(|item| T::deserialize(item).ok())
            .collect(),
        _ => Vec::new(),
    })
}

pub(crate) fn vec_of_values<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items,
        _ => Vec::new(),
    })
}

pub(crate) fn opt_object<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(object_as(&Value::deserialize(d)?))
}
