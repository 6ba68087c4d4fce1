//! Timestamps as nanoseconds since the Unix epoch (UTC), with allocation-free
//! RFC 3339 formatting and parsing for the hot path.
//!
//! Never consults the local time zone: everything logtrain writes is UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time, nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp(d.as_nanos() as i64)
    }

    /// Whole seconds since the epoch.
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    /// Appends `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds, as RFC 5424 allows at most).
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        let secs = self.unix_seconds();
        let micros = (self.0.rem_euclid(1_000_000_000) / 1_000) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        let y = y.clamp(0, 9999) as u32;
        let mut buf = *b"0000-00-00T00:00:00.000000Z";
        put(&mut buf[0..4], y);
        put(&mut buf[5..7], m);
        put(&mut buf[8..10], d);
        put(&mut buf[11..13], sod / 3600);
        put(&mut buf[14..16], sod / 60 % 60);
        put(&mut buf[17..19], sod % 60);
        put(&mut buf[20..26], micros);
        out.extend_from_slice(&buf);
    }

    /// RFC 3339 text (microsecond precision, UTC).
    pub fn to_rfc3339(self) -> String {
        let mut v = Vec::with_capacity(27);
        self.write_rfc3339(&mut v);
        String::from_utf8(v).unwrap_or_default()
    }

    /// `YYYY`, `MM`, `DD` of this instant in UTC (for dated index names).
    pub fn ymd(self) -> (i64, u32, u32) {
        civil_from_days(self.unix_seconds().div_euclid(86_400))
    }

    /// Parses RFC 3339 with any fractional precision and a `Z` or `±HH:MM` offset.
    pub fn parse_rfc3339(s: &[u8]) -> Option<Self> {
        if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || s[13] != b':' || s[16] != b':' {
            return None;
        }
        if !matches!(s[10], b'T' | b't' | b' ') {
            return None;
        }
        let y = num(&s[0..4])? as i64;
        let mo = num(&s[5..7])?;
        let d = num(&s[8..10])?;
        let h = num(&s[11..13])?;
        let mi = num(&s[14..16])?;
        let se = num(&s[17..19])?;
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let mut i = 19;
        let mut nanos: i64 = 0;
        if s.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            let mut scale = 100_000_000i64;
            while i < s.len() && s[i].is_ascii_digit() {
                nanos += (s[i] - b'0') as i64 * scale;
                scale /= 10;
                i += 1;
            }
            if i == start {
                return None;
            }
        }
        let offset_secs: i64 = match s.get(i)? {
            b'Z' | b'z' if i + 1 == s.len() => 0,
            sign @ (b'+' | b'-') if i + 6 == s.len() && s[i + 3] == b':' => {
                let oh = num(&s[i + 1..i + 3])? as i64;
                let om = num(&s[i + 4..i + 6])? as i64;
                let v = oh * 3600 + om * 60;
                if *sign == b'+' { v } else { -v }
            }
            _ => return None,
        };
        let days = days_from_civil(y, mo, d);
        let secs = days * 86_400 + (h * 3600 + mi * 60 + se) as i64 - offset_secs;
        secs.checked_mul(1_000_000_000)?.checked_add(nanos).map(Timestamp)
    }
}

fn put(dst: &mut [u8], mut v: u32) {
    for b in dst.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

fn num(s: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// Days since the epoch to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_and_leap_day() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000000Z");
        let t = Timestamp::parse_rfc3339(b"2024-02-29T23:59:59.123456789Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-02-29T23:59:59.123456Z");
        assert_eq!(t.0 % 1_000_000_000, 123_456_789);
    }

    #[test]
    fn parses_offsets_and_precisions() {
        let a = Timestamp::parse_rfc3339(b"2026-11-22T01:00:00+01:00").unwrap();
        let b = Timestamp::parse_rfc3339(b"2026-11-22T00:00:00Z").unwrap();
        assert_eq!(a, b);
        let c = Timestamp::parse_rfc3339(b"2026-11-22T00:00:00.5Z").unwrap();
        assert_eq!(c.0 - b.0, 500_000_000);
        assert_eq!(Timestamp::parse_rfc3339(b"2026-11-22T00:00:00.Z"), None);
        assert_eq!(Timestamp::parse_rfc3339(b"2026-13-22T00:00:00Z"), None);
        assert_eq!(Timestamp::parse_rfc3339(b"not a time at all!!"), None);
        assert_eq!(Timestamp::parse_rfc3339(b"2026-11-22T00:00:00Zjunk"), None);
    }

    #[test]
    fn round_trips_many_days() {
        for days in (-1000..100_000).step_by(37) {
            let t = Timestamp(days * 86_400 * 1_000_000_000 + 3_723_000_000_000);
            let s = t.to_rfc3339();
            assert_eq!(Timestamp::parse_rfc3339(s.as_bytes()), Some(t), "{s}");
        }
    }
}
