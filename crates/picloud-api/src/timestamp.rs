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

    fn chrono_text(ms: i64) -> String {
        serde_json::to_string(&chrono::DateTime::from_timestamp_millis(ms).unwrap()).unwrap()
    }

    /// The writer itself is checked against chrono over the calendar in `picloud_core::time`;
    /// here, that serde sees the same text chrono's own serde form gives.
    #[test]
    fn serializes_as_chrono_does() {
        for ms in [
            0,
            1_764_000_000_000,
            1_764_000_000_123,
            -1,
            253_402_300_799_999,
        ] {
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
