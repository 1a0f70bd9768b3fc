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
