//! The `hub` binary: read `.env` and the environment, set up logging, serve until stopped.

use std::process::ExitCode;

use anyhow::Context as _;

/// The hub allocates per request (request conversion, responses, JSON); mimalloc is faster than
/// the system allocator at that. Modules keep their own allocator: values crossing the boundary
/// carry the functions that free them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hub: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_main() -> anyhow::Result<()> {
    // Only ./.env, never a parent's: the hub's settings come from where it is started.
    match dotenvy::from_path(".env") {
        Ok(()) => {}
        Err(e) if e.not_found() => {}
        Err(e) => return Err(e).context("cannot read ./.env"),
    }
    let config = host::config::Config::from_env()?;
    host::logging::init(&config)?;
    host::run(config)
}
