//! Numbers with their units, as the dashboard shows them.

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
        format!("{v:.0} {}", UNITS[0])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Bytes per second.
pub fn bytes_per_sec(value: f64) -> String {
    format!("{}/s", bytes(value))
}

/// A percentage, no decimals.
pub fn percent(value: f64) -> String {
    format!("{value:.0} %")
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
        format!("{:.1}k/s", value / 1_000.0)
    } else {
        format!("{value:.0}/s")
    }
}

/// A plain count.
pub fn count(value: f64) -> String {
    format!("{value:.0}")
}
