//! Numbers with their units, as the dashboard shows them. Written with
//! integer arithmetic ([`fixed`]): float formatting would add its own code
//! to the wasm for no visible difference.

/// `value` rounded to `decimals` (0–3) places, without float formatting.
///
/// ```
/// use heartline_app::format::fixed;
/// assert_eq!(fixed(3.14159, 2), "3.14");
/// assert_eq!(fixed(2.0, 1), "2.0");
/// assert_eq!(fixed(0.05, 1), "0.1");
/// assert_eq!(fixed(-1.25, 1), "-1.3");
/// assert_eq!(fixed(42.4, 0), "42");
/// assert_eq!(fixed(f64::NAN, 1), "0.0");
/// ```
pub fn fixed(value: f64, decimals: u32) -> String {
    let decimals = decimals.min(3);
    let scale = 10i64.pow(decimals);
    let value = if value.is_finite() { value } else { 0.0 };
    let scaled = (value.abs() * scale as f64).round() as i64;
    let sign = if value < 0.0 && scaled != 0 { "-" } else { "" };
    if decimals == 0 {
        return format!("{sign}{scaled}");
    }
    let fraction = (scaled % scale).to_string();
    let pad = "0".repeat(decimals as usize - fraction.len());
    format!("{sign}{}.{pad}{fraction}", scaled / scale)
}

/// Bytes with a binary-free, human unit: `512 B`, `1.5 kB`, `3.2 MB`.
///
/// ```
/// use heartline_app::format::bytes;
/// assert_eq!(bytes(512.0), "512 B");
/// assert_eq!(bytes(1_500.0), "1.5 kB");
/// assert_eq!(bytes(3_200_000.0), "3.2 MB");
/// ```
pub fn bytes(value: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = value.max(0.0);
    let mut unit = 0;
    while v >= 1_000.0 && unit < UNITS.len() - 1 {
        v /= 1_000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{} {}", fixed(v, 0), UNITS[0])
    } else {
        format!("{} {}", fixed(v, 1), UNITS[unit])
    }
}

/// Bytes per second.
pub fn bytes_per_sec(value: f64) -> String {
    format!("{}/s", bytes(value))
}

/// A percentage, no decimals.
pub fn percent(value: f64) -> String {
    format!("{} %", fixed(value, 0))
}

/// A count per second: `12/s`, `1.2k/s`.
///
/// ```
/// use heartline_app::format::per_sec;
/// assert_eq!(per_sec(12.0), "12/s");
/// assert_eq!(per_sec(1_250.0), "1.3k/s");
/// ```
pub fn per_sec(value: f64) -> String {
    if value >= 1_000.0 {
        format!("{}k/s", fixed(value / 1_000.0, 1))
    } else {
        format!("{}/s", fixed(value, 0))
    }
}

/// A plain count.
pub fn count(value: f64) -> String {
    fixed(value, 0)
}

/// The unit a chart's values are in, and how to write them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// 0–100, as `42 %`.
    Percent,
    /// Bytes, as `1.5 MB`.
    Bytes,
    /// Bytes per second, as `1.5 MB/s`.
    BytesPerSec,
    /// Events per second, as `12/s`.
    PerSec,
    /// A plain count.
    Count,
}

impl Unit {
    /// `value` written in this unit.
    ///
    /// ```
    /// use heartline_app::format::Unit;
    /// assert_eq!(Unit::Percent.format(42.4), "42 %");
    /// assert_eq!(Unit::BytesPerSec.format(2_000.0), "2.0 kB/s");
    /// ```
    pub fn format(self, value: f64) -> String {
        match self {
            Unit::Percent => percent(value),
            Unit::Bytes => bytes(value),
            Unit::BytesPerSec => bytes_per_sec(value),
            Unit::PerSec => per_sec(value),
            Unit::Count => count(value),
        }
    }
}
