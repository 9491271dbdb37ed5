// Shared by echo-v1 and echo-v2 (included by path), so that both write
// byte-identical rows for the same events.

/// The row key of an event: `event/<partition>/<offset, 20 digits>`, so rows
/// sort in log order.
pub fn row_key(partition: u32, offset: u64) -> String {
    format!("event/{partition}/{offset:020}")
}

/// Every field of an event: timestamp, key (hex, or `none`), value (hex) and
/// headers (`name=hex` each), separated by spaces.
pub fn describe<'a>(
    timestamp: i64,
    key: Option<&[u8]>,
    value: &[u8],
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> String {
    let mut out = format!(
        "ts={timestamp} key={} value={} headers=[",
        key.map_or_else(|| "none".to_owned(), hex),
        hex(value)
    );
    for (i, (name, value)) in headers.enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{}={}", hex(name.as_bytes()), hex(value)));
    }
    out.push(']');
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
