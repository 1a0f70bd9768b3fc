//! Allocation units as OVF writes them (`byte * 2^20`, `MegaBytes`...): DSP0243 section 9.1
//! and DSP0004's programmatic units.

/// Bytes in one unit of `units` (`byte`, `byte * 2^20`, `MegaBytes`...), if understood.
pub fn unit_bytes(units: &str) -> Option<u64> {
    let u = units.replace(' ', "").to_ascii_lowercase();
    match u.as_str() {
        "byte" | "bytes" => Some(1),
        "kilobytes" | "kb" => Some(1 << 10),
        "megabytes" | "mb" => Some(1 << 20),
        "gigabytes" | "gb" => Some(1 << 30),
        _ => {
            let exp = u.strip_prefix("byte*2^")?.parse::<u32>().ok()?;
            1u64.checked_shl(exp).filter(|_| exp < 64)
        }
    }
}

/// A size as people write one on a command line: bytes (`1048576`), or a number with a binary
/// unit, any case, with or without `B`/`iB` (`512K`, `1M`, `100mb`, `2GB`, `1GiB`, `1T`), as
/// ovftool takes `--chunkSize 2gb`. `None` when it is not one, or does not fit in 64 bits.
///
/// ```
/// assert_eq!(ovf::units::parse_size("2gb"), Some(2 << 30));
/// assert_eq!(ovf::units::parse_size("1M"), Some(1 << 20));
/// assert_eq!(ovf::units::parse_size("1048576"), Some(1 << 20));
/// assert_eq!(ovf::units::parse_size("1.5G"), None);
/// ```
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let n: u64 = number.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_units() {
        for (text, want) in [
            ("0", Some(0)),
            ("512", Some(512)),
            ("512b", Some(512)),
            ("4k", Some(4096)),
            ("4 KiB", Some(4096)),
            ("100mb", Some(100 << 20)),
            ("100MB", Some(100 << 20)),
            ("2gb", Some(2 << 30)),
            ("1T", Some(1 << 40)),
            ("", None),
            ("mb", None),
            ("-1M", None),
            ("1.5G", None),
            ("1X", None),
            ("99999999999T", None),
        ] {
            assert_eq!(parse_size(text), want, "{text:?}");
        }
    }
}
