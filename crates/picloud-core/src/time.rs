//! UTC timestamps as text, without a formatting library: on the publish path every message
//! and every answer carries one (chrono's general formatting was ~3k instructions each,
//! callgrind).

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) (Howard Hinnant's
/// `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix epoch milliseconds as RFC 3339 in UTC, `2026-11-24T06:10:00.123Z`, written into
/// `buf`. `always_millis: false` leaves a zero fraction out (`…T06:10:00Z`), as chrono's
/// serde form does; `true` always writes it, as chrono's `SecondsFormat::Millis`. `None`
/// for a year outside 0000–9999 (the caller's formatter's business).
///
/// Each thread keeps the text of the last whole second it wrote: publishes come many to a
/// second, and the calendar arithmetic was most of the cost (callgrind).
pub fn write_utc_millis(ms: i64, always_millis: bool, buf: &mut [u8; 24]) -> Option<&str> {
    let second = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let cached = LAST_SECOND.with(|last| {
        let (at, text) = last.get();
        (at == second).then_some(text)
    });
    match cached {
        Some(text) => buf[..19].copy_from_slice(&text),
        None => {
            write_second(second, buf)?;
            let mut text = [0u8; 19];
            text.copy_from_slice(&buf[..19]);
            LAST_SECOND.with(|last| last.set((second, text)));
        }
    }
    let end = if millis == 0 && !always_millis {
        19
    } else {
        buf[19] = b'.';
        put(&mut buf[20..23], millis);
        23
    };
    buf[end] = b'Z';
    debug_assert!(buf[..=end].is_ascii());
    // SAFETY: every byte of `buf[..=end]` was written above or by `write_second`, all of
    // them ASCII digits and the literal separators (`-`, `T`, `:`, `.`, `Z`); the cached
    // text is such bytes too. ASCII is UTF-8. (Validating was a quarter of the cost.)
    Some(unsafe { std::str::from_utf8_unchecked(&buf[..=end]) })
}

thread_local! {
    /// The last whole second (Unix seconds) written on this thread and its
    /// `YYYY-MM-DDTHH:MM:SS` text. `i64::MIN` matches no second `write_second` accepts.
    static LAST_SECOND: std::cell::Cell<(i64, [u8; 19])> =
        const { std::cell::Cell::new((i64::MIN, [0; 19])) };
}

/// `YYYY-MM-DDTHH:MM:SS` of Unix second `second` into `buf[..19]`; `None` for a year
/// outside 0000–9999.
fn write_second(second: i64, buf: &mut [u8; 24]) -> Option<()> {
    let days = second.div_euclid(86_400);
    let secs = second.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    put(&mut buf[0..4], year);
    buf[4] = b'-';
    put(&mut buf[5..7], month.into());
    buf[7] = b'-';
    put(&mut buf[8..10], day.into());
    buf[10] = b'T';
    put(&mut buf[11..13], secs / 3600);
    buf[13] = b':';
    put(&mut buf[14..16], secs / 60 % 60);
    buf[16] = b':';
    put(&mut buf[17..19], secs % 60);
    Some(())
}

/// `n` (which fits) as zero-padded decimal digits filling `out`.
fn put(out: &mut [u8], mut n: i64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, SecondsFormat};

    const MS_PER_DAY: i64 = 86_400_000;

    /// Edges of the calendar and the day, then a deterministic spread over 1970..2300.
    fn instants() -> Vec<i64> {
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
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let ms = (x >> 20) as i64 % 10_413_792_000_000;
            edges.push(ms);
            edges.push(ms - ms % 1000);
        }
        edges
    }

    /// Both forms, against chrono's: `Millis` (SSE frames) and `AutoSi`, which is chrono's
    /// serde form and leaves a zero fraction out (publish answers).
    #[test]
    fn matches_chrono_over_the_calendar() {
        // Consecutive instants share a second (the cached text) or do not; the same list
        // backwards reaches each second from the other side.
        let forward = instants();
        for ms in forward.iter().chain(forward.iter().rev()).copied() {
            let at = DateTime::from_timestamp_millis(ms).unwrap();
            for (always_millis, form) in [
                (true, SecondsFormat::Millis),
                (false, SecondsFormat::AutoSi),
            ] {
                let mut buf = [0u8; 24];
                let want = at.to_rfc3339_opts(form, true);
                assert_eq!(
                    write_utc_millis(ms, always_millis, &mut buf),
                    Some(&*want),
                    "{ms}"
                );
            }
        }
    }

    #[test]
    fn years_past_9999_are_left_to_the_caller() {
        let mut buf = [0u8; 24];
        assert_eq!(write_utc_millis(253_402_300_800_000, true, &mut buf), None);
        assert_eq!(write_utc_millis(-62_167_219_200_001, false, &mut buf), None);
    }
}
