//! Durations as cloudflared writes them: Go's `time.ParseDuration` syntax (`30s`, `1m30s`, `1.5h`,
//! `300ms`), or a bare integer meaning seconds (cloudflared's remotely managed configs send those).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration read from the file; converts into [`Duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoDuration(pub(crate) Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(GoDurationVisitor)
    }
}

struct GoDurationVisitor;

impl Visitor<'_> for GoDurationVisitor {
    type Value = GoDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration like \"30s\" or \"1m30s\", or a number of seconds")
    }

    fn visit_u64<E: de::Error>(self, secs: u64) -> Result<GoDuration, E> {
        Ok(GoDuration(Duration::from_secs(secs)))
    }

    fn visit_i64<E: de::Error>(self, secs: i64) -> Result<GoDuration, E> {
        u64::try_from(secs)
            .map(|secs| GoDuration(Duration::from_secs(secs)))
            .map_err(|_| E::custom("a duration cannot be negative"))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<GoDuration, E> {
        parse_go_duration(text).map(GoDuration).map_err(E::custom)
    }
}

/// Parses Go's duration syntax: one or more `<decimal><unit>` terms, units `ns`, `us` (`µs`,
/// `μs`), `ms`, `s`, `m`, `h`; `0` alone needs no unit. Negative durations are rejected because no
/// option here has a meaning for them.
///
/// # Errors
/// A message naming the offending input.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let invalid =
        || format!("invalid duration {text:?}: expected e.g. \"30s\", \"1m30s\", \"500ms\"");
    let body = text.strip_prefix('+').unwrap_or(text);
    if body.starts_with('-') {
        return Err(format!(
            "invalid duration {text:?}: a duration cannot be negative"
        ));
    }
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() {
        return Err(invalid());
    }
    let mut total_nanos: u128 = 0;
    let mut rest = body;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(invalid()),
        };
        total_nanos = total_nanos
            .checked_add(term_nanos(number, unit_nanos).ok_or_else(invalid)?)
            .ok_or_else(invalid)?;
        rest = after;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| invalid())?;
    // The remainder of a division by 10^9 fits in u32.
    let nanos = u32::try_from(total_nanos % 1_000_000_000).map_err(|_| invalid())?;
    Ok(Duration::new(secs, nanos))
}

/// `number` (digits with at most one `.`) times `unit_nanos`, truncated to whole nanoseconds.
fn term_nanos(number: &str, unit_nanos: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if fraction.contains('.') {
        return None;
    }
    let whole_value: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos = whole_value.checked_mul(unit_nanos)?;
    let mut scale = unit_nanos;
    for digit in fraction.bytes() {
        scale /= 10;
        nanos = nanos.checked_add(u128::from(digit - b'0') * scale)?;
    }
    Some(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_cloudflared_documents() {
        assert_eq!(parse_go_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("2us"), Ok(Duration::from_micros(2)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration(".5s"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in ["", "30", "s", "1x", "1..5s", ".s", "1m30", "-1s", "1 s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} parsed");
        }
    }
}
