//! `time(fmt)`: the current local time through `strftime`, as bpftrace 0.17 prints it.
//!
//! bpftrace formats into a 64-byte buffer (`STRING_SIZE`). When `strftime` returns 0 (the result is
//! empty, as for `time("")`, or needs 64 bytes or more) it prints nothing on stdout and logs
//! `ERROR: strftime returned 0` on stderr; [`format_time`] returns `None` then and the runtime logs
//! [`STRFTIME_FAILED`]. The checker rejects format strings of 64 bytes or more ("String is too long
//! (over 64 bytes): …").

use runtime::kernel::os;

/// The format `time()` uses without an argument.
pub const DEFAULT_TIME_FORMAT: &str = "%H:%M:%S\n";

/// What bpftrace logs (after `ERROR: `) when `strftime` produces nothing.
pub const STRFTIME_FAILED: &str = "strftime returned 0";

/// bpftrace's `strftime` buffer size, terminating NUL included.
const TIME_BUFFER_SIZE: usize = 64;

/// Formats the current local time; `None` when `strftime` returns 0 (see the module documentation).
pub fn format_time(fmt: impl AsRef<[u8]>) -> Option<Vec<u8>> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format_time_at(fmt, i64::try_from(now).unwrap_or(i64::MAX))
}

/// Formats `unix_seconds` as local time with `strftime`; split out so tests can pin the time.
pub fn format_time_at(fmt: impl AsRef<[u8]>, unix_seconds: i64) -> Option<Vec<u8>> {
    // The format is a C string: bytes after an embedded NUL are ignored, as in C.
    runtime::kernel::os::strftime_local(super::bytes::c_str(fmt.as_ref()), unix_seconds, TIME_BUFFER_SIZE)
}

/// `strftime(fmt, ns)`: `ns` nanoseconds since boot (`nsecs`) as local wall-clock time; `%f`
/// is the microseconds (bpftrace's extension). `None` when `strftime` produces nothing.
pub fn format_boot_time(fmt: &str, boot_ns: u64) -> Option<Vec<u8>> {
    static OFFSET: std::sync::OnceLock<i128> = std::sync::OnceLock::new();
    // Wall clock minus boot clock, once: `nsecs` is CLOCK_MONOTONIC (bpf_ktime_get_ns).
    let offset = *OFFSET.get_or_init(|| os::realtime_ns() - i128::from(os::monotonic_ns()));
    let wall = i128::from(boot_ns) + offset;
    let (seconds, micros) = (wall.div_euclid(1_000_000_000), wall.rem_euclid(1_000_000_000) / 1000);
    let fmt = with_microseconds(fmt, micros as u32);
    format_time_at(fmt, i64::try_from(seconds).unwrap_or(i64::MAX))
}

/// `fmt` with each `%f` (not `%%f`) replaced by six digits of microseconds.
fn with_microseconds(fmt: &str, micros: u32) -> String {
    let mut out = String::with_capacity(fmt.len() + 4);
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('f') => out.push_str(&format!("{micros:06}")),
            Some(next) => {
                out.push('%');
                out.push(next);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microseconds_replace_percent_f_only() {
        assert_eq!(with_microseconds("%H:%M:%S.%f %%f %", 42), "%H:%M:%S.000042 %%f %");
    }

    #[test]
    fn default_format_has_a_newline() {
        let text = format_time(DEFAULT_TIME_FORMAT).unwrap_or_default();
        // "HH:MM:SS\n"
        assert_eq!(text.len(), 9);
        assert_eq!((text[2], text[5], text[8]), (b':', b':', b'\n'));
    }

    #[test]
    fn strftime_conversions_and_limits() {
        assert_eq!(format_time_at("%s|%%Y", 12345), Some(b"12345|%Y".to_vec()));
        assert_eq!(format_time_at("", 0), None);
        let longest = "x".repeat(63);
        assert_eq!(format_time_at(&longest, 0), Some(longest.clone().into_bytes()));
        assert_eq!(format_time_at("x".repeat(64), 0), None);
    }
}
