//! Times as text: RFC 3339 in UTC, the one form drover writes and reads.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Microseconds since the Unix epoch (negative before it), saturating.
pub fn micros_since_epoch(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// Microseconds since the epoch as RFC 3339 UTC, e.g. `2025-01-02T03:04:05.123456Z`;
/// `@<us>us` for a time beyond the calendar's range.
pub fn rfc3339_micros(us: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{us}us"))
}

/// `t` as RFC 3339 UTC to the microsecond (see [`rfc3339_micros`]).
pub fn rfc3339(t: SystemTime) -> String {
    rfc3339_micros(micros_since_epoch(t))
}

/// `t` as RFC 3339 UTC with exactly three decimals, e.g. `2025-01-02T03:04:05.000Z`: the
/// fixed form of tick times in idempotency keys. `@<ms>ms` for a time beyond the
/// calendar's range.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let ms = match t.duration_since(UNIX_EPOCH) {
        Ok(since) => i128::try_from(since.as_millis()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_millis()).unwrap_or(i128::MAX),
    };
    match OffsetDateTime::from_unix_timestamp_nanos(ms.saturating_mul(1_000_000)) {
        Ok(t) if (0..=9999).contains(&t.year()) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        _ => format!("@{ms}ms"),
    }
}

/// Parses an RFC 3339 time (any offset); `None` if it is not one.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let (secs, nanos) = (t.unix_timestamp(), t.nanosecond());
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(secs.unsigned_abs(), nanos))
    } else {
        // before the epoch: whole seconds back, then the fraction forward
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_read_back() {
        let t = UNIX_EPOCH + Duration::from_micros(1_735_787_045_123_456);
        assert_eq!(rfc3339(t), "2025-01-02T03:04:05.123456Z");
        assert_eq!(rfc3339_millis(t), "2025-01-02T03:04:05.123Z");
        let whole = UNIX_EPOCH + Duration::from_secs(1_735_787_045);
        assert_eq!(rfc3339_millis(whole), "2025-01-02T03:04:05.000Z");
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(parse_rfc3339(&rfc3339_millis(whole)), Some(whole));
        assert_eq!(
            parse_rfc3339("2025-01-02T04:04:05.000+01:00"),
            Some(whole),
            "any offset"
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        let far = UNIX_EPOCH + Duration::from_secs(95_649_040_800);
        assert_eq!(parse_rfc3339(&rfc3339_millis(far)), Some(far), "year 5001");
    }
}
