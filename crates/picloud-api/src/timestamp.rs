//! `published_at` on the publish path: RFC 3339 in UTC to the millisecond, written into a
//! stack buffer. chrono's serde form of a `DateTime<Utc>` goes through its general
//! formatting machinery, about 3.3k instructions per publish answer (callgrind); this
//! writes the same text in a small fraction of that.

use serde::{Serialize, Serializer};

/// Unix epoch milliseconds that serialize exactly as chrono's `DateTime<Utc>` does:
/// `2026-11-24T06:10:00.123Z`, with the fraction left out when it is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcMillis(pub i64);

impl UtcMillis {
    /// The text, or `None` for a year outside 0000–9999 (chrono's business).
    pub(crate) fn write(self, buf: &mut [u8; 24]) -> Option<&str> {
        picloud_core::time::write_utc_millis(self.0, false, buf)
    }
}

impl Serialize for UtcMillis {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 24];
        match self.write(&mut buf) {
            Some(text) => serializer.serialize_str(text),
            None => chrono::DateTime::from_timestamp_millis(self.0)
                .unwrap_or_default()
                .serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS_PER_DAY: i64 = 86_400_000;

    fn chrono_text(ms: i64) -> String {
        serde_json::to_string(&chrono::DateTime::from_timestamp_millis(ms).unwrap()).unwrap()
    }

    #[test]
    fn matches_chrono_everywhere_it_is_used() {
        let mut edges = vec![
            0,
            1,
            999,
            1000,
            MS_PER_DAY - 1,
            MS_PER_DAY,
            951_782_400_000,     // 2000-02-29
            951_868_799_999,     // 2000-02-29T23:59:59.999
            4_107_542_400_000,   // 2100-03-01
            253_402_300_799_999, // 9999-12-31T23:59:59.999
            -1,
            -MS_PER_DAY,
            -62_167_219_200_000, // 0000-01-01
        ];
        // A deterministic spread over 1970..2300, with and without a fraction.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let ms = (x >> 20) as i64 % 10_413_792_000_000;
            edges.push(ms);
            edges.push(ms - ms % 1000);
        }
        for ms in edges {
            assert_eq!(
                serde_json::to_string(&UtcMillis(ms)).unwrap(),
                chrono_text(ms),
                "{ms}"
            );
        }
    }

    #[test]
    fn years_past_9999_fall_back_to_chrono() {
        let ms = 253_402_300_800_000; // 10000-01-01
        assert_eq!(
            serde_json::to_string(&UtcMillis(ms)).unwrap(),
            chrono_text(ms)
        );
    }
}
