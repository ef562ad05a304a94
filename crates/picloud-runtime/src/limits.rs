//! Per-invocation resource limits and the validation of per-app overrides.

use serde::{Deserialize, Serialize};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Resource limits applied to one script invocation.
///
/// Every limit is enforced by the engine while the script runs; none of them
/// can be lifted from inside a script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Rhai operations (roughly: evaluated expressions and statements).
    pub max_operations: u64,
    /// Nesting of script function calls.
    pub max_call_depth: usize,
    /// Nesting of expressions, checked when the script is compiled.
    pub max_expr_depth: usize,
    /// Bytes in one string, and in all strings and map keys inside one
    /// array or map together.
    pub max_string_bytes: usize,
    /// Elements in one array (nested arrays included) or bytes in one blob.
    pub max_array_len: usize,
    /// Entries in one object map (nested maps included).
    pub max_map_len: usize,
    /// Wall-clock budget of the whole run.
    pub timeout_ms: u64,
    /// Log lines kept per run.
    pub max_log_lines: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 1_000_000,
            max_call_depth: 64,
            max_expr_depth: 64,
            max_string_bytes: MIB,
            max_array_len: 10_000,
            max_map_len: 10_000,
            timeout_ms: 5_000,
            max_log_lines: 100,
        }
    }
}

/// Upper bound an operator allows an app to raise each limit to.
struct Cap {
    field: &'static str,
    max: u64,
}

const CAPS: [Cap; 8] = [
    Cap {
        field: "max_operations",
        max: 100_000_000,
    },
    Cap {
        field: "max_call_depth",
        max: 256,
    },
    Cap {
        field: "max_expr_depth",
        max: 256,
    },
    Cap {
        field: "max_string_bytes",
        max: 16 * MIB as u64,
    },
    Cap {
        field: "max_array_len",
        max: 1_000_000,
    },
    Cap {
        field: "max_map_len",
        max: 1_000_000,
    },
    Cap {
        field: "timeout_ms",
        max: 60_000,
    },
    Cap {
        field: "max_log_lines",
        max: 1_000,
    },
];

impl Limits {
    /// Validates a (partial) per-app override JSON object against the hard
    /// caps and returns the defaults with the overrides applied.
    ///
    /// Every value must be an integer between 1 and the field's cap; unknown
    /// fields are rejected so a typo cannot silently leave a default in place.
    pub fn from_overrides(overrides: &serde_json::Value) -> Result<Limits, String> {
        let object = match overrides {
            serde_json::Value::Object(object) => object,
            other => {
                return Err(format!(
                    "limits must be a JSON object, got {}",
                    json_kind(other)
                ))
            }
        };
        let mut limits = Limits::default();
        for (field, value) in object {
            let cap = CAPS.iter().find(|cap| cap.field == field).ok_or_else(|| {
                let known: Vec<&str> = CAPS.iter().map(|cap| cap.field).collect();
                format!(
                    "unknown limit '{field}' (known limits: {})",
                    known.join(", ")
                )
            })?;
            let n = value
                .as_u64()
                .filter(|n| (1..=cap.max).contains(n))
                .ok_or_else(|| out_of_range(cap, value))?;
            limits.set(field, n);
        }
        Ok(limits)
    }

    /// Checks every field against the hard caps, for limits that did not come
    /// through [`Limits::from_overrides`] (e.g. deserialized from storage).
    pub fn validate(&self) -> Result<(), String> {
        for cap in &CAPS {
            let n = self.get(cap.field);
            if !(1..=cap.max).contains(&n) {
                return Err(out_of_range(cap, &serde_json::Value::from(n)));
            }
        }
        Ok(())
    }

    fn get(&self, field: &str) -> u64 {
        match field {
            "max_operations" => self.max_operations,
            "max_call_depth" => self.max_call_depth as u64,
            "max_expr_depth" => self.max_expr_depth as u64,
            "max_string_bytes" => self.max_string_bytes as u64,
            "max_array_len" => self.max_array_len as u64,
            "max_map_len" => self.max_map_len as u64,
            "timeout_ms" => self.timeout_ms,
            "max_log_lines" => self.max_log_lines as u64,
            _ => unreachable!("CAPS lists only Limits fields"),
        }
    }

    // Values reaching here are within the caps, which all fit in usize.
    fn set(&mut self, field: &str, n: u64) {
        let as_usize = n as usize;
        match field {
            "max_operations" => self.max_operations = n,
            "max_call_depth" => self.max_call_depth = as_usize,
            "max_expr_depth" => self.max_expr_depth = as_usize,
            "max_string_bytes" => self.max_string_bytes = as_usize,
            "max_array_len" => self.max_array_len = as_usize,
            "max_map_len" => self.max_map_len = as_usize,
            "timeout_ms" => self.timeout_ms = n,
            "max_log_lines" => self.max_log_lines = as_usize,
            _ => unreachable!("CAPS lists only Limits fields"),
        }
    }
}

fn out_of_range(cap: &Cap, got: &serde_json::Value) -> String {
    format!(
        "limit '{}' must be an integer between 1 and {}, got {}",
        cap.field, cap.max, got
    )
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_match_the_documented_values() {
        let l = Limits::default();
        assert_eq!(l.max_operations, 1_000_000);
        assert_eq!(l.max_call_depth, 64);
        assert_eq!(l.max_expr_depth, 64);
        assert_eq!(l.max_string_bytes, 1024 * 1024);
        assert_eq!(l.max_array_len, 10_000);
        assert_eq!(l.max_map_len, 10_000);
        assert_eq!(l.timeout_ms, 5_000);
        assert_eq!(l.max_log_lines, 100);
        assert_eq!(l.validate(), Ok(()));
    }

    #[test]
    fn empty_override_gives_defaults() {
        assert_eq!(Limits::from_overrides(&json!({})), Ok(Limits::default()));
    }

    #[test]
    fn partial_override_is_merged() {
        let l = Limits::from_overrides(&json!({"timeout_ms": 200, "max_log_lines": 1000})).unwrap();
        assert_eq!(l.timeout_ms, 200);
        assert_eq!(l.max_log_lines, 1000);
        assert_eq!(l.max_operations, Limits::default().max_operations);
    }

    #[test]
    fn caps_are_inclusive() {
        let l = Limits::from_overrides(&json!({
            "max_operations": 100_000_000u64,
            "max_call_depth": 256,
            "max_expr_depth": 256,
            "max_string_bytes": 16 * 1024 * 1024,
            "max_array_len": 1_000_000,
            "max_map_len": 1_000_000,
            "timeout_ms": 60_000,
            "max_log_lines": 1000,
        }))
        .unwrap();
        assert_eq!(l.validate(), Ok(()));
    }

    #[test]
    fn out_of_range_values_name_the_field() {
        let cases = [
            (json!({"max_operations": 100_000_001u64}), "max_operations"),
            (json!({"max_call_depth": 257}), "max_call_depth"),
            (json!({"max_expr_depth": 0}), "max_expr_depth"),
            (
                json!({"max_string_bytes": 16 * 1024 * 1024 + 1}),
                "max_string_bytes",
            ),
            (json!({"max_array_len": -1}), "max_array_len"),
            (json!({"max_map_len": 1.5}), "max_map_len"),
            (json!({"timeout_ms": 60_001}), "timeout_ms"),
            (json!({"max_log_lines": "10"}), "max_log_lines"),
            (json!({"timeout_ms": null}), "timeout_ms"),
        ];
        for (overrides, field) in cases {
            let err = Limits::from_overrides(&overrides).unwrap_err();
            assert!(err.contains(&format!("'{field}'")), "{err}");
            assert!(err.contains("must be an integer between 1 and"), "{err}");
        }
    }

    #[test]
    fn unknown_fields_and_non_objects_are_rejected() {
        let err = Limits::from_overrides(&json!({"timeout": 10})).unwrap_err();
        assert!(err.contains("unknown limit 'timeout'"), "{err}");
        assert!(err.contains("timeout_ms"), "{err}");
        let err = Limits::from_overrides(&json!([1])).unwrap_err();
        assert_eq!(err, "limits must be a JSON object, got an array");
    }

    #[test]
    fn validate_rejects_stored_limits_beyond_caps() {
        let l = Limits {
            timeout_ms: 0,
            ..Limits::default()
        };
        assert!(l.validate().unwrap_err().contains("'timeout_ms'"));
    }

    #[test]
    fn serde_round_trip_and_unknown_fields() {
        let l: Limits = serde_json::from_value(json!({"timeout_ms": 7})).unwrap();
        assert_eq!(l.timeout_ms, 7);
        assert!(serde_json::from_value::<Limits>(json!({"nope": 1})).is_err());
    }
}
