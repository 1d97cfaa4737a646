//! Build script of the hub: export the hub's allocator from the `hub` binary's dynamic symbol
//! table, where modules find it by name (see `host/src/loader/mod.rs`).

fn main() {
    let target = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target == "linux" {
        println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol=bmc_hub_allocator_v1");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
