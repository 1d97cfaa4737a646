//! The harness lives in `hub-testkit`, shared with the modules' own tests.

pub use hub_testkit::*;

/// The plugin-api version the incompatible fixture is built against (this hub's minor plus one)
/// and this hub's ABI line (`0.2` for 0.2.x), as the loader's messages name them.
pub fn api_versions() -> (String, String) {
    let mut parts = plugin_api::API_VERSION.split('.');
    let (major, minor) = (parts.next().unwrap_or("0"), parts.next().unwrap_or("0"));
    let minor: u32 = minor.parse().expect("a numeric minor version");
    (
        format!("{major}.{}.0", minor + 1),
        format!("{major}.{minor}"),
    )
}

/// A port nobody listens on now (a hub's redirect URI must be known before it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `text` percent-encoded for a form or a query (all but letters, digits, `-`, `_`, `.`).
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
