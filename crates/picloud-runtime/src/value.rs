//! Conversion between JSON and Rhai values.

use rhai::{Array, Dynamic, Map};
use serde_json::Value;

/// Arrays and maps nested deeper than this are refused when values leave
/// the engine: `serde_json` refuses to parse nesting beyond 127 levels, so
/// anything deeper could be stored but never read back, and converting it
/// recursively risks the stack.
pub const MAX_JSON_DEPTH: usize = 100;

/// JSON → Rhai. Integers that fit `i64` become `INT`; every other number
/// becomes `FLOAT`.
pub fn json_to_dynamic(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(items) => {
            let array: Array = items.iter().map(json_to_dynamic).collect();
            Dynamic::from_array(array)
        }
        Value::Object(object) => {
            let map: Map = object
                .iter()
                .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
                .collect();
            Dynamic::from_map(map)
        }
    }
}

/// Rhai → JSON. Unit is `null`, non-finite floats are `null`, blobs are
/// arrays of byte values, and values JSON has no form for (timestamps,
/// function pointers, custom types) become their string form. Values nested
/// deeper than [`MAX_JSON_DEPTH`] are cut off as `null`; use
/// [`dynamic_to_json_checked`] to get an error instead.
pub fn dynamic_to_json(d: &Dynamic) -> Value {
    convert(d, 0, &mut |_| Ok(Value::Null)).unwrap_or(Value::Null)
}

/// Like [`dynamic_to_json`], but fails on values nested deeper than
/// [`MAX_JSON_DEPTH`].
pub fn dynamic_to_json_checked(d: &Dynamic) -> Result<Value, String> {
    convert(d, 0, &mut |_| {
        Err(format!(
            "value is nested more than {MAX_JSON_DEPTH} levels deep"
        ))
    })
}

fn convert(
    d: &Dynamic,
    depth: usize,
    too_deep: &mut dyn FnMut(&Dynamic) -> Result<Value, String>,
) -> Result<Value, String> {
    // Closures capture variables as shared cells; read through them.
    if d.is_shared() {
        return convert(&d.flatten_clone(), depth, too_deep);
    }
    if d.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = d.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = d.as_int() {
        return Ok(Value::from(i));
    }
    if let Ok(f) = d.as_float() {
        return Ok(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number));
    }
    if let Ok(c) = d.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if let Some(s) = d.read_lock::<rhai::ImmutableString>() {
        return Ok(Value::String(s.to_string()));
    }
    if let Some(blob) = d.read_lock::<rhai::Blob>() {
        return Ok(Value::Array(blob.iter().map(|b| Value::from(*b)).collect()));
    }
    let is_container = d.is_array() || d.is_map();
    if is_container && depth == MAX_JSON_DEPTH {
        return too_deep(d);
    }
    if let Some(array) = d.read_lock::<Array>() {
        return array
            .iter()
            .map(|item| convert(item, depth + 1, too_deep))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if let Some(map) = d.read_lock::<Map>() {
        let mut object = serde_json::Map::with_capacity(map.len());
        for (k, v) in map.iter() {
            object.insert(k.to_string(), convert(v, depth + 1, too_deep)?);
        }
        return Ok(Value::Object(object));
    }
    Ok(Value::String(d.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips() {
        let v = json!({
            "null": null, "t": true, "f": false, "int": -42, "big": 9_223_372_036_854_775_807i64,
            "float": 1.5, "whole_float": 2.0, "s": "héllo",
            "nested": {"a": [1, [2, {"b": null}], "x"], "empty": {}, "list": []}
        });
        let d = json_to_dynamic(&v);
        assert_eq!(dynamic_to_json(&d), v);
    }

    #[test]
    fn ints_and_floats_stay_distinct() {
        assert!(json_to_dynamic(&json!(3)).is_int());
        assert!(json_to_dynamic(&json!(3.0)).is_float());
        // Beyond i64 there is no INT to hold it.
        assert!(json_to_dynamic(&json!(u64::MAX)).is_float());
    }

    #[test]
    fn rhai_only_values_have_a_json_form() {
        assert_eq!(dynamic_to_json(&Dynamic::UNIT), Value::Null);
        assert_eq!(dynamic_to_json(&Dynamic::from_char('x')), json!("x"));
        assert_eq!(dynamic_to_json(&Dynamic::from_float(f64::NAN)), Value::Null);
        assert_eq!(
            dynamic_to_json(&Dynamic::from_float(f64::INFINITY)),
            Value::Null
        );
        assert_eq!(
            dynamic_to_json(&Dynamic::from_blob(vec![0, 255])),
            json!([0, 255])
        );
        let fn_ptr = Dynamic::from(rhai::FnPtr::new("foo").unwrap());
        assert_eq!(dynamic_to_json(&fn_ptr), json!("Fn(foo)"));
    }

    #[test]
    fn deep_nesting_is_cut_off_or_refused() {
        let nested = |levels: usize| {
            let mut d = Dynamic::from_int(1);
            for _ in 0..levels {
                d = Dynamic::from_array(vec![d]);
            }
            d
        };
        // The deepest value allowed out still parses back with serde_json.
        let deepest = dynamic_to_json_checked(&nested(MAX_JSON_DEPTH)).unwrap();
        let text = serde_json::to_string(&deepest).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), deepest);

        let too_deep = nested(MAX_JSON_DEPTH + 1);
        let err = dynamic_to_json_checked(&too_deep).unwrap_err();
        assert!(err.contains("100 levels"), "{err}");
        let mut v = &dynamic_to_json(&too_deep);
        let mut levels = 0;
        while let Value::Array(items) = v {
            v = &items[0];
            levels += 1;
        }
        assert_eq!(levels, MAX_JSON_DEPTH);
        assert_eq!(*v, Value::Null);
    }
}
