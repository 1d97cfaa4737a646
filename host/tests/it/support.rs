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
