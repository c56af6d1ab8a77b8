//! Sizes and times in the forms people and file formats read them; a leaf module every
//! layer may use.

use crate::error::{Error, Result};

/// 8.0 GiB, 512.0 MiB, 512 B: binary units, one decimal.
pub fn human_bytes(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

/// RFC 3339 in UTC to the second (`2023-11-14T22:13:20Z`), as the SBOM, the provenance
/// and OCI image configs write times. A time past the year 9999, which RFC 3339 cannot
/// write (a SOURCE_DATE_EPOCH may say anything), is written as the latest time jiff
/// holds, 9999-12-30T22:00:00Z.
pub fn rfc3339(unix_seconds: u64) -> String {
    let last = jiff::Timestamp::MAX.as_second();
    let seconds = i64::try_from(unix_seconds).unwrap_or(last).min(last);
    // jiff writes no fraction for a whole second.
    jiff::Timestamp::from_second(seconds)
        .expect("clamped into jiff's range")
        .to_string()
}

/// `512m`, `6g`, `6GiB`, `1073741824` -> bytes.
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim().to_ascii_lowercase();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let multiplier: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if multiplier > 0 && n > 0 => Ok(n * multiplier),
        _ => Err(Error::usage(format!("\"{text}\" is not a size"))
            .with_hint("write a size like 512m, 6g or 8GiB")),
    }
}

/// `1 binary`, `3 binaries`: a count with its noun in the right number.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sizes() {
        assert_eq!(human_bytes(8 * 1024 * 1024 * 1024), "8.0 GiB");
        assert_eq!(human_bytes(1000 * 1024 * 1024 * 1024), "1000.0 GiB");
        assert_eq!(human_bytes(6 * 1024 * 1024), "6.0 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(512), "512 B");
    }

    #[test]
    fn rfc3339_of_known_epochs() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_825_600), "2000-02-29T12:00:00Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-30T22:00:00Z");
    }
}
