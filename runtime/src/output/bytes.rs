//! Bytes shared by printed values and printf: C strings cut at their NUL, and buffers escaped
//! as bpftrace 0.17 escapes them.

/// The bytes of a C string held in a fixed buffer: everything before the first NUL.
pub(crate) fn c_str(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

/// bpftrace's `hex_format_buffer`: printable ASCII kept when `keep_ascii`, other bytes as `\xNN`
/// when `escape_hex`, else as space-separated two-digit hex.
/// A buffer as `%r` and printed values show it: printable ASCII as is, other bytes `\xNN`.
pub(crate) fn escape_buffer(bytes: &[u8]) -> Vec<u8> {
    hex_format_buffer(bytes, true, true)
}

pub(crate) fn hex_format_buffer(bytes: &[u8], keep_ascii: bool, escape_hex: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if keep_ascii && (32..=126).contains(&b) {
            out.push(b);
        } else if escape_hex {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        } else if i == bytes.len() - 1 {
            out.extend_from_slice(format!("{b:02x}").as_bytes());
        } else {
            out.extend_from_slice(format!("{b:02x} ").as_bytes());
        }
    }
    out
}
