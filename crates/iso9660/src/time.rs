//! Timestamps in the two ISO 9660 encodings (7-byte directory record dates
//! and 17-byte volume descriptor dates), always in UTC.

/// Latest second a directory record can express (2155-12-31 23:59:59 UTC).
const MAX_SECS: i64 = 5_869_583_999;

/// Broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Seconds since the Unix epoch to a UTC civil time, clamped to
/// 1970..=2155 (the range both encodings can hold).
pub(crate) fn civil(secs: i64) -> Civil {
    let secs = secs.clamp(0, MAX_SECS);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Days since 0000-03-01 in 400-year eras (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem / 60 % 60) as u32,
        second: (rem % 60) as u32,
    }
}

/// The 7-byte directory record date: years since 1900, month, day, hour,
/// minute, second, offset from GMT in 15-minute units (0: UTC).
pub(crate) fn dir_date(secs: i64) -> [u8; 7] {
    let c = civil(secs);
    [
        (c.year - 1900) as u8,
        c.month as u8,
        c.day as u8,
        c.hour as u8,
        c.minute as u8,
        c.second as u8,
        0,
    ]
}

/// The 17-byte volume descriptor date: "YYYYMMDDHHMMSScc" in ASCII digits
/// plus the GMT offset byte.
pub(crate) fn volume_date(secs: i64) -> [u8; 17] {
    let c = civil(secs);
    let s = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}00",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    let mut out = [0u8; 17];
    out[..16].copy_from_slice(s.as_bytes());
    out
}

/// The "not specified" volume descriptor date: sixteen '0' digits, offset 0.
pub(crate) fn volume_date_unset() -> [u8; 17] {
    let mut out = [b'0'; 17];
    out[16] = 0;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(
            civil(0),
            Civil {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0
            }
        );
        // 2000-02-29 12:34:56 UTC (leap day)
        assert_eq!(
            civil(951_827_696),
            Civil {
                year: 2000,
                month: 2,
                day: 29,
                hour: 12,
                minute: 34,
                second: 56
            }
        );
        assert_eq!(&volume_date(1_700_000_000)[..16], b"2023111422132000");
        assert_eq!(dir_date(1_700_000_000), [123, 11, 14, 22, 13, 20, 0]);
        assert_eq!(civil(i64::MAX).year, 2155);
        assert_eq!(civil(-5).year, 1970);
    }
}
