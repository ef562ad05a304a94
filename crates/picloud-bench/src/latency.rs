//! Latency histograms (microseconds) and the message payload that carries the send time.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// 1 µs .. 1 h, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// `{"samples","p50_ms","p90_ms","p99_ms","max_ms","mean_ms"}` (null figures when empty).
pub fn summary(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"samples": 0, "p50_ms": null, "p90_ms": null, "p99_ms": null, "max_ms": null, "mean_ms": null});
    }
    json!({
        "samples": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p90_ms": ms(h.value_at_quantile(0.90)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "max_ms": ms(h.max()),
        "mean_ms": (h.mean()).round() / 1000.0,
    })
}

/// Send times carry the publishing node in their low bits when a run publishes through
/// several nodes (C1): `t % ORIGIN_MODULUS` is the node's index. Rounding a nanosecond
/// timestamp down by at most 7 ns costs nothing at µs resolution, and the payload's shape
/// (and so its size) stays that of every other scenario.
pub const ORIGIN_MODULUS: u64 = 8;

/// `t_ns` with its low bits replaced by `origin` (< [`ORIGIN_MODULUS`]).
pub fn tag_origin(t_ns: u64, origin: u64) -> u64 {
    t_ns - t_ns % ORIGIN_MODULUS + origin % ORIGIN_MODULUS
}

/// The publishing node's index of a tagged send time.
pub fn origin_of(t_ns: u64) -> u64 {
    t_ns % ORIGIN_MODULUS
}

/// The published message: `{"pad":"xx…","t":<ns since the run's epoch>}`. `t` comes last so a
/// subscriber finds it near the end of the frame.
pub struct Payload {
    pad: String,
}

impl Payload {
    /// About `bytes` bytes of JSON in all (never less than the bare `{"pad":"","t":…}`).
    pub fn new(bytes: usize) -> Self {
        const OVERHEAD: usize = r#"{"pad":"","t":1000000000000}"#.len();
        Self {
            pad: "x".repeat(bytes.saturating_sub(OVERHEAD)),
        }
    }

    pub fn write(&self, out: &mut Vec<u8>, t_ns: u64) {
        use std::io::Write;
        out.clear();
        let _ = write!(out, r#"{{"pad":"{}","t":{}}}"#, self.pad, t_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_json_with_t_last() {
        let p = Payload::new(64);
        let mut b = Vec::new();
        p.write(&mut b, 1_234_567_890_123);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["t"], 1_234_567_890_123u64);
        assert_eq!(b.len(), 64);
    }

    #[test]
    fn origin_tag_round_trips_within_8_ns() {
        for t in [0u64, 7, 8, 1_234_567_890_123] {
            for o in 0..3 {
                let tagged = tag_origin(t, o);
                assert_eq!(origin_of(tagged), o);
                assert!(tagged.abs_diff(t) < ORIGIN_MODULUS);
            }
        }
    }
}
