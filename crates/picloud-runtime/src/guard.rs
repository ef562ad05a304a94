//! Container size checks that Rhai leaves out.
//!
//! Rhai checks a whole value after assigning it or calling a method on it,
//! but after `x[i] = v` (or `x[i] op= v`, or `x[i].push(v)`) it checks only
//! the element. So a map can grow past `max_map_len` through `m[key] = v`,
//! and strings stored element by element can exceed `max_string_bytes`
//! in total. Rhai also never counts map keys, and never limits nesting,
//! although cloning, measuring and dropping a value all recurse through it:
//! `a = [a]` in a loop would overflow the native stack and abort the whole
//! server. This guard re-measures a container variable, keys included, when
//! the script next reads it, and caps nesting at [`MAX_JSON_DEPTH`] (values
//! cannot leave the engine deeper than that anyway).
//!
//! It relies on every container being reachable only through a variable,
//! which is why `this` (a method's receiver, not a variable) is disabled.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rhai::{Dynamic, EvalAltResult, Position};

use crate::limits::Limits;
use crate::value::MAX_JSON_DEPTH;

/// What the guard reports for values nested too deeply.
pub(crate) const TOO_DEEP: &str = "Nesting of arrays/maps";

/// A check may cost this many visited elements per operation the script ran
/// since the previous check of the same variable, so large containers are
/// not re-measured on every read.
const VISITS_PER_OPERATION: u64 = 4;

/// Memory a script can add between two checks of a variable, used to cap
/// the interval: each operation can store at most one string of
/// `max_string_bytes` (plus a key of that size).
const OVERSHOOT_BUDGET_BYTES: u64 = 64 * 1024 * 1024;

pub(crate) struct SizeGuard {
    max_string_bytes: usize,
    max_array_len: usize,
    max_map_len: usize,
    max_interval: u64,
    operations: Arc<AtomicU64>,
    /// Operation count before which a variable (by name) is not re-measured.
    next_check: Mutex<HashMap<String, u64>>,
    /// The input variable may be as large as it arrived (the server bounds
    /// request bodies separately), so reading a large request is not an error.
    input: Option<(String, Sizes)>,
}

#[derive(Clone, Copy, Default)]
struct Sizes {
    string_bytes: usize,
    array_len: usize,
    map_len: usize,
}

impl SizeGuard {
    pub(crate) fn new(limits: &Limits, operations: Arc<AtomicU64>) -> Self {
        let per_operation = 2 * limits.max_string_bytes.max(1) as u64;
        SizeGuard {
            max_string_bytes: limits.max_string_bytes,
            max_array_len: limits.max_array_len,
            max_map_len: limits.max_map_len,
            max_interval: (OVERSHOOT_BUDGET_BYTES / per_operation).max(1),
            operations,
            next_check: Mutex::new(HashMap::new()),
            input: None,
        }
    }

    /// Raises the limits for the variable `name` to the sizes of `value`.
    pub(crate) fn allow_input(&mut self, name: &str, value: &Dynamic) {
        let mut measure = Measure::default();
        measure.add(value);
        self.input = Some((name.to_string(), measure.sizes));
    }

    /// Called before each variable read; errors with Rhai's own
    /// data-too-large error so it is reported like Rhai's checks.
    pub(crate) fn check(&self, name: &str, value: &Dynamic) -> Result<(), Box<EvalAltResult>> {
        let value = if value.is_shared() {
            // A closure-captured variable; skip it while the engine holds it
            // locked, the next read catches up.
            match value.read_lock::<Dynamic>() {
                Some(inner) => return self.check(name, &inner),
                None => return Ok(()),
            }
        } else {
            value
        };
        if !value.is_array() && !value.is_map() {
            // Strings and blobs are always checked whole by Rhai.
            return Ok(());
        }
        let now = self.operations.load(Ordering::Relaxed);
        let mut next_check = self
            .next_check
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if next_check.get(name).is_some_and(|&next| now < next) {
            return Ok(());
        }
        let mut measure = Measure::default();
        measure.add(value);
        let floor = match &self.input {
            Some((input, sizes)) if input == name => *sizes,
            _ => Sizes::default(),
        };
        let sizes = measure.sizes;
        let exceeded = if measure.too_deep {
            Some(TOO_DEEP)
        } else if sizes.string_bytes > self.max_string_bytes.max(floor.string_bytes) {
            Some("Length of string")
        } else if sizes.array_len > self.max_array_len.max(floor.array_len) {
            Some("Size of array/BLOB")
        } else if sizes.map_len > self.max_map_len.max(floor.map_len) {
            Some("Size of object map")
        } else {
            None
        };
        if let Some(what) = exceeded {
            return Err(EvalAltResult::ErrorDataTooLarge(what.into(), Position::NONE).into());
        }
        let interval = (measure.visits / VISITS_PER_OPERATION).min(self.max_interval);
        if interval > 0 {
            next_check.insert(name.to_string(), now + interval);
        }
        Ok(())
    }
}

#[derive(Default)]
struct Measure {
    sizes: Sizes,
    visits: u64,
    depth: usize,
    too_deep: bool,
}

impl Measure {
    fn add(&mut self, value: &Dynamic) {
        self.visits += 1;
        // The `is_*` tests are plain tag matches; most elements are scalars
        // and should cost no more than that.
        if value.is_string() {
            if let Ok(s) = value.as_immutable_string_ref() {
                self.sizes.string_bytes += s.len();
            }
        } else if value.is_blob() {
            if let Ok(blob) = value.as_blob_ref() {
                self.sizes.array_len += blob.len();
            }
        } else if value.is_array() || value.is_map() {
            if self.depth == MAX_JSON_DEPTH {
                self.too_deep = true;
                return;
            }
            self.depth += 1;
            if let Ok(array) = value.as_array_ref() {
                self.sizes.array_len += array.len();
                for item in array.iter() {
                    self.add(item);
                    if self.too_deep {
                        break;
                    }
                }
            } else if let Ok(map) = value.as_map_ref() {
                self.sizes.map_len += map.len();
                for (key, item) in map.iter() {
                    self.sizes.string_bytes += key.len();
                    self.add(item);
                    if self.too_deep {
                        break;
                    }
                }
            }
            self.depth -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(limits: Limits) -> (SizeGuard, Arc<AtomicU64>) {
        let ops = Arc::new(AtomicU64::new(0));
        (SizeGuard::new(&limits, ops.clone()), ops)
    }

    #[test]
    fn map_keys_count_as_string_bytes() {
        let (guard, _) = guard(Limits {
            max_string_bytes: 10,
            ..Limits::default()
        });
        let mut map = rhai::Map::new();
        map.insert("a-very-long-key".into(), Dynamic::UNIT);
        let err = guard.check("m", &Dynamic::from_map(map)).unwrap_err();
        assert!(
            matches!(*err, EvalAltResult::ErrorDataTooLarge(ref w, _) if w == "Length of string")
        );
    }

    #[test]
    fn large_values_are_rechecked_after_enough_operations() {
        let (guard, ops) = guard(Limits {
            max_array_len: 100,
            // Small strings, so the overshoot cap does not shorten the interval.
            max_string_bytes: 1024,
            ..Limits::default()
        });
        let fits = Dynamic::from_array(vec![Dynamic::UNIT; 100]);
        let too_big = Dynamic::from_array(vec![Dynamic::UNIT; 101]);
        guard.check("a", &fits).unwrap();
        // 101 visits / 4 per operation: skipped for the next 25 operations.
        ops.store(24, Ordering::Relaxed);
        guard.check("a", &too_big).unwrap();
        ops.store(25, Ordering::Relaxed);
        assert!(guard.check("a", &too_big).is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let (guard, _) = guard(Limits::default());
        let nested = |levels: usize| {
            let mut d = Dynamic::UNIT;
            for _ in 0..levels {
                d = Dynamic::from_array(vec![d]);
            }
            d
        };
        assert!(guard.check("a", &nested(MAX_JSON_DEPTH)).is_ok());
        let err = guard.check("b", &nested(MAX_JSON_DEPTH + 1)).unwrap_err();
        assert!(matches!(*err, EvalAltResult::ErrorDataTooLarge(ref w, _) if w == TOO_DEEP));
    }

    #[test]
    fn the_input_may_be_as_large_as_it_arrived_but_not_grow() {
        let (mut guard, ops) = guard(Limits {
            max_array_len: 2,
            ..Limits::default()
        });
        let big = Dynamic::from_array(vec![Dynamic::UNIT; 5]);
        guard.allow_input("request", &big);
        assert!(guard.check("request", &big).is_ok());
        assert!(guard.check("other", &big).is_err());
        let bigger = Dynamic::from_array(vec![Dynamic::UNIT; 6]);
        ops.store(100, Ordering::Relaxed);
        assert!(guard.check("request", &bigger).is_err());
    }

    #[test]
    fn nested_sizes_add_up() {
        let (guard, _) = guard(Limits {
            max_map_len: 3,
            ..Limits::default()
        });
        let mut inner = rhai::Map::new();
        inner.insert("x".into(), Dynamic::UNIT);
        inner.insert("y".into(), Dynamic::UNIT);
        let mut outer = rhai::Map::new();
        outer.insert("a".into(), Dynamic::from_map(inner.clone()));
        outer.insert("b".into(), Dynamic::UNIT);
        assert!(guard.check("m", &Dynamic::from_map(outer.clone())).is_err());
        outer.remove("b");
        assert!(guard.check("m", &Dynamic::from_map(outer)).is_ok());
    }
}
