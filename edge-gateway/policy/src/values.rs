//! Value types of the policy file: each parses from its text form and knows how to match.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Longest hostname: 253 characters in text form (RFC 1035 §2.3.4, RFC 2181 §11).
pub(crate) const MAX_HOSTNAME_LEN: usize = 253;
/// Longest label of a hostname (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;
const MINUTES_PER_DAY: u16 = 24 * 60;

/// Wall-clock time in seconds since 1970-01-01T00:00:00Z (leap seconds not counted, as in POSIX).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixTime(pub i64);

/// A hostname destination: exact, or `*.suffix` (any name below the suffix, not the suffix itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Lowercase, without a trailing dot.
    Exact(String),
    /// The suffix after `*.`, lowercase.
    Wildcard(String),
}

/// A path prefix: `/docs` covers `/docs` and `/docs/…` but not `/docs2`; `/` covers everything.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathPrefix(String);

/// A network; a bare address is a host route (`/32`, `/128`). Host bits must be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(pub ipnet::IpNet);

/// An inclusive port range; written `443` or `"8000-8100"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// The transport protocol of an IP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

/// A dotted numeric version (`6.1.0`); missing components count as 0, so `6.1` equals `6.1.0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(Vec<u32>);

/// A weekly window: days of the week and an hour range `[start, end)` in a fixed UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeWindow {
    /// Bit 0 is Monday, bit 6 Sunday.
    days: u8,
    /// Minutes after local midnight, `start < end <= 1440`.
    start: u16,
    end: u16,
    /// Local time = UTC + this many minutes.
    utc_offset_minutes: i16,
}

/// An RFC 3339 time in a test (`at = "2026-01-05T09:30:00Z"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339Time(pub UnixTime);

impl HostPattern {
    /// Whether `host` (lowercase, no trailing dot) is covered.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(name) => name == host,
            Self::Wildcard(suffix) => {
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix.as_str())
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            }
        }
    }
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let lower = text.to_ascii_lowercase();
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        let (wildcard, rest) = match name.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        if rest.is_empty() || rest.len() > MAX_HOSTNAME_LEN {
            return Err(format!("invalid hostname `{text}`"));
        }
        for label in rest.split('.') {
            let valid = !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                return Err(format!(
                    "invalid hostname `{text}`: labels are letters, digits, - and _, and only a \
                     leading `*.` may be a wildcard"
                ));
            }
        }
        Ok(if wildcard {
            Self::Wildcard(rest.to_owned())
        } else {
            Self::Exact(rest.to_owned())
        })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Wildcard(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

impl PathPrefix {
    /// The prefix, without a trailing `/` unless it is `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `path` is under this prefix, at a segment boundary.
    pub fn matches(&self, path: &str) -> bool {
        path_under(&self.0, path)
    }
}

/// Whether `path` is `prefix` or below it at a `/` boundary.
pub(crate) fn path_under(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || (path.starts_with(prefix)
            && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/'))
}

impl FromStr for PathPrefix {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') || text.contains(['?', '#']) || text.contains("//") {
            return Err(format!(
                "invalid path prefix `{text}`: starts with /, no ? or #, no empty segments"
            ));
        }
        let trimmed = text.trim_end_matches('/');
        Ok(Self(if trimmed.is_empty() {
            "/".into()
        } else {
            trimmed.into()
        }))
    }
}

impl fmt::Display for PathPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Cidr {
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.contains(&addr)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let net = if text.contains('/') {
            text.parse::<ipnet::IpNet>()
                .map_err(|_| format!("invalid CIDR `{text}`"))?
        } else {
            let addr = text
                .parse::<IpAddr>()
                .map_err(|_| format!("invalid CIDR `{text}`"))?;
            ipnet::IpNet::from(addr)
        };
        if net.trunc() != net {
            return Err(format!(
                "invalid CIDR `{text}`: host bits are set (the network is {})",
                net.trunc()
            ));
        }
        Ok(Self(net))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parse = |part: &str| {
            part.trim()
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("invalid port `{part}`: 1 to 65535"))
        };
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => {
                let port = parse(text)?;
                (port, port)
            }
        };
        if first > last {
            return Err(format!("invalid port range `{text}`: first > last"));
        }
        Ok(Self { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Icmp => "icmp",
        })
    }
}

impl Version {
    /// Whether `actual` is at least this version. `actual` is read up to its first character that
    /// is neither a digit nor a dot (`6.1.0-27-amd64` reads as 6.1.0); one without a leading
    /// number is never at least anything.
    pub fn is_satisfied_by(&self, actual: &str) -> bool {
        let numeric_len = actual
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(actual.len());
        let numeric = &actual[..numeric_len];
        if !numeric.starts_with(|c: char| c.is_ascii_digit()) {
            return false;
        }
        let mut parts = numeric.split('.');
        let mut wanted = self.0.iter();
        loop {
            // An empty part (`6.`) reads as 0, an overlong one as the largest number.
            let have = parts.next().map(|p| {
                p.parse::<u32>()
                    .unwrap_or(if p.is_empty() { 0 } else { u32::MAX })
            });
            let want = wanted.next();
            match (have, want) {
                (None, None) => return true,
                (Some(h), Some(&w)) if h != w => return h > w,
                (Some(_), Some(_)) => {}
                (Some(h), None) if h > 0 => return true,
                (Some(_), None) => {}
                (None, Some(&w)) if w > 0 => return false,
                (None, Some(_)) => {}
            }
        }
    }
}

impl FromStr for Version {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parts = text
            .split('.')
            .map(|part| {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                part.parse::<u32>().ok()
            })
            .collect::<Option<Vec<u32>>>();
        match parts {
            Some(parts) if !parts.is_empty() => Ok(Self(parts)),
            _ => Err(format!(
                "invalid version `{text}`: dotted numbers such as 6.1.0"
            )),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{part}")?;
        }
        Ok(())
    }
}

impl TimeWindow {
    /// Whether `now` falls in the window.
    pub fn contains(&self, now: UnixTime) -> bool {
        let local = now
            .0
            .saturating_add(i64::from(self.utc_offset_minutes) * 60);
        let days = local.div_euclid(86_400);
        // 1970-01-01 was a Thursday: Monday-based weekday 3.
        let weekday = (days + 3).rem_euclid(7);
        let minute = local.rem_euclid(86_400) / 60;
        self.days & (1 << weekday) != 0
            && i64::from(self.start) <= minute
            && minute < i64::from(self.end)
    }
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeWindow {
    days: Option<Vec<Weekday>>,
    hours: Option<String>,
    utc_offset: Option<String>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Weekday {
    #[serde(alias = "monday")]
    Mon,
    #[serde(alias = "tuesday")]
    Tue,
    #[serde(alias = "wednesday")]
    Wed,
    #[serde(alias = "thursday")]
    Thu,
    #[serde(alias = "friday")]
    Fri,
    #[serde(alias = "saturday")]
    Sat,
    #[serde(alias = "sunday")]
    Sun,
}

impl TryFrom<RawTimeWindow> for TimeWindow {
    type Error = String;

    fn try_from(raw: RawTimeWindow) -> Result<Self, String> {
        if raw.days.is_none() && raw.hours.is_none() {
            return Err("a time window needs `days`, `hours` or both".into());
        }
        let days = match raw.days {
            None => 0x7f,
            Some(days) if days.is_empty() => return Err("`days` must not be empty".into()),
            Some(days) => days.iter().fold(0u8, |mask, &d| mask | 1 << d as u8),
        };
        let (start, end) = match raw.hours {
            None => (0, MINUTES_PER_DAY),
            Some(hours) => parse_hours(&hours)?,
        };
        let utc_offset_minutes = match raw.utc_offset {
            None => 0,
            Some(offset) => parse_offset(&offset)?,
        };
        Ok(Self {
            days,
            start,
            end,
            utc_offset_minutes,
        })
    }
}

fn parse_hours(text: &str) -> Result<(u16, u16), String> {
    let bad =
        || format!("invalid hours `{text}`: HH:MM-HH:MM with start before end, end at most 24:00");
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let start = parse_clock(a.trim()).ok_or_else(bad)?;
    let end = parse_clock(b.trim()).ok_or_else(bad)?;
    if start >= end {
        return Err(bad());
    }
    Ok((start, end))
}

/// `HH:MM` (or `HH`) as minutes after midnight; `24:00` is the end of the day.
fn parse_clock(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':').unwrap_or((text, "00"));
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    let minutes = h.checked_mul(60)?.checked_add(m)?;
    (m < 60 && minutes <= MINUTES_PER_DAY).then_some(minutes)
}

/// `+HH:MM`, `-HH:MM` or `Z`, at most ±18:00 like ISO 8601 offsets in practice.
fn parse_offset(text: &str) -> Result<i16, String> {
    let bad = || format!("invalid utc_offset `{text}`: +HH:MM or -HH:MM, at most 18:00");
    if text == "Z" || text == "z" {
        return Ok(0);
    }
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: i16 = h.parse().map_err(|_| bad())?;
    let m: i16 = m.parse().map_err(|_| bad())?;
    if h > 18 || m >= 60 || (h == 18 && m > 0) {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.days == 0x7f {
            f.write_str("every day")?;
        } else {
            let names = DAY_NAMES
                .iter()
                .enumerate()
                .filter(|(i, _)| self.days & (1 << i) != 0)
                .map(|(_, n)| *n);
            for (i, name) in names.enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
            }
        }
        write!(
            f,
            " {:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )?;
        let offset = self.utc_offset_minutes;
        if offset != 0 {
            let sign = if offset < 0 { '-' } else { '+' };
            let abs = offset.unsigned_abs();
            write!(f, " UTC{sign}{:02}:{:02}", abs / 60, abs % 60)?;
        } else {
            f.write_str(" UTC")?;
        }
        Ok(())
    }
}

impl FromStr for Rfc3339Time {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let parsed =
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map_err(|e| format!("invalid RFC 3339 time `{text}`: {e}"))?;
        Ok(Self(UnixTime(parsed.unix_timestamp())))
    }
}

/// Implements `Deserialize` from the `FromStr` text form.
macro_rules! deserialize_from_str {
    ($($t:ty),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(de::Error::custom)
            }
        }
    )*};
}

deserialize_from_str! {
    HostPattern, PathPrefix, Cidr, Rfc3339Time
}

impl<'de> Deserialize<'de> for TimeWindow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawTimeWindow::deserialize(deserializer)?;
        Self::try_from(raw).map_err(de::Error::custom)
    }
}

/// Accepts an integer or a string; both YAML and TOML read `6.1` as a float, which is refused
/// with a hint to quote it.
struct NumberOrText<T>(std::marker::PhantomData<T>);

impl<T: FromStr<Err = String>> Visitor<'_> for NumberOrText<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        v.to_string().parse().map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        v.to_string().parse().map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        Err(E::custom(format_args!(
            "{v} reads as a number: write it as a string, e.g. \"{v}\""
        )))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NumberOrText(std::marker::PhantomData))
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NumberOrText(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_covers_names_below_the_suffix_only() {
        let pattern: HostPattern = "*.Example.com".parse().unwrap();
        assert!(pattern.matches("a.example.com"));
        assert!(pattern.matches("a.b.example.com"));
        assert!(!pattern.matches("example.com"));
        assert!(!pattern.matches("badexample.com"));
        assert!("a.*.example.com".parse::<HostPattern>().is_err());
        assert!("".parse::<HostPattern>().is_err());
    }

    #[test]
    fn path_prefix_matches_at_segment_boundaries() {
        let prefix: PathPrefix = "/docs/".parse().unwrap();
        assert_eq!(prefix.as_str(), "/docs");
        assert!(prefix.matches("/docs"));
        assert!(prefix.matches("/docs/a"));
        assert!(!prefix.matches("/docs2"));
        assert!("/".parse::<PathPrefix>().unwrap().matches("/anything"));
        assert!("docs".parse::<PathPrefix>().is_err());
    }

    #[test]
    fn cidr_rejects_host_bits_and_accepts_bare_addresses() {
        assert!("10.0.0.1/8".parse::<Cidr>().is_err());
        assert!("10.0.0/8".parse::<Cidr>().is_err());
        let host: Cidr = "10.0.0.1".parse().unwrap();
        assert_eq!(host.to_string(), "10.0.0.1/32");
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
    }

    #[test]
    fn port_ranges_parse_and_reject_zero_and_reversed() {
        assert_eq!(
            "8000-8100".parse::<PortRange>().unwrap(),
            PortRange {
                first: 8000,
                last: 8100
            }
        );
        assert!("0".parse::<PortRange>().is_err());
        assert!("90-80".parse::<PortRange>().is_err());
        assert!("70000".parse::<PortRange>().is_err());
    }

    #[test]
    fn versions_compare_numerically_with_missing_parts_as_zero() {
        let min: Version = "6.1".parse().unwrap();
        assert!(min.is_satisfied_by("6.1"));
        assert!(min.is_satisfied_by("6.1.0"));
        assert!(min.is_satisfied_by("6.10"));
        assert!(min.is_satisfied_by("6.1.0-27-amd64"));
        assert!(min.is_satisfied_by("7"));
        assert!(!min.is_satisfied_by("6.0.99"));
        assert!(!min.is_satisfied_by("5.19"));
        assert!(!min.is_satisfied_by("linux"));
        assert!(!min.is_satisfied_by(""));
        let exact: Version = "1.2.0".parse().unwrap();
        assert!(exact.is_satisfied_by("1.2"));
        assert!(!exact.is_satisfied_by("1.1.9"));
        assert!("1..2".parse::<Version>().is_err());
        assert!("1.x".parse::<Version>().is_err());
    }

    #[test]
    fn time_window_uses_weekday_hours_and_offset() {
        let window = TimeWindow::try_from(RawTimeWindow {
            days: Some(vec![Weekday::Mon]),
            hours: Some("09:00-17:00".into()),
            utc_offset: Some("+02:00".into()),
        })
        .unwrap();
        // 2026-01-05 is a Monday; 07:30Z is 09:30 at +02:00.
        let monday_0730z = UnixTime(1_767_598_200);
        assert!(window.contains(monday_0730z));
        // 06:30Z is 08:30 local: too early.
        assert!(!window.contains(UnixTime(monday_0730z.0 - 3600)));
        // A week day later (Tuesday) is outside.
        assert!(!window.contains(UnixTime(monday_0730z.0 + 86_400)));
        assert_eq!(window.to_string(), "mon 09:00-17:00 UTC+02:00");
        assert!(parse_hours("17:00-09:00").is_err());
        assert!(parse_hours("09:00-24:00").is_ok());
        assert!(parse_hours("09:00-24:01").is_err());
        assert!(parse_offset("+19:00").is_err());
    }

    #[test]
    fn rfc3339_times_become_unix_seconds() {
        let t: Rfc3339Time = "2026-01-05T09:30:00+02:00".parse().unwrap();
        assert_eq!(t.0, UnixTime(1_767_598_200));
        assert!("2026-01-05 09:30".parse::<Rfc3339Time>().is_err());
    }
}
