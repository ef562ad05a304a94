//! `published_at` on the publish path: RFC 3339 in UTC to the millisecond, written into a
//! stack buffer. chrono's serde form of a `DateTime<Utc>` goes through its general
//! formatting machinery, about 3.3k instructions per publish answer (callgrind); this
//! writes the same text in a small fraction of that.

use picloud_runtime::time::civil_from_days;
use serde::{Serialize, Serializer};

/// Unix epoch milliseconds that serialize exactly as chrono's `DateTime<Utc>` does:
/// `2026-11-24T06:10:00.123Z`, with the fraction left out when it is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcMillis(pub i64);

const MS_PER_DAY: i64 = 86_400_000;

impl UtcMillis {
    /// The text, or `None` for a year outside 0000–9999 (chrono's business).
    pub(crate) fn write(self, buf: &mut [u8; 24]) -> Option<&str> {
        let days = self.0.div_euclid(MS_PER_DAY);
        let in_day = self.0.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let secs = in_day / 1000;
        let millis = in_day % 1000;
        put(&mut buf[0..4], year, 4);
        buf[4] = b'-';
        put(&mut buf[5..7], month.into(), 2);
        buf[7] = b'-';
        put(&mut buf[8..10], day.into(), 2);
        buf[10] = b'T';
        put(&mut buf[11..13], secs / 3600, 2);
        buf[13] = b':';
        put(&mut buf[14..16], secs / 60 % 60, 2);
        buf[16] = b':';
        put(&mut buf[17..19], secs % 60, 2);
        let end = if millis == 0 {
            19
        } else {
            buf[19] = b'.';
            put(&mut buf[20..23], millis, 3);
            23
        };
        buf[end] = b'Z';
        std::str::from_utf8(&buf[..=end]).ok()
    }
}

/// `width` decimal digits of `n` (which fits), zero-padded.
fn put(out: &mut [u8], mut n: i64, width: usize) {
    for slot in out[..width].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
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
