//! `cargo xtask`: the project's automation, in Rust instead of shell scripts.
//!
//! - `build`: the hub, then each module with its own `cargo build -p` (one invocation with the
//!   host would unify features and change the module's contents), each library copied next to
//!   its `module.json` under a temporary name and renamed into place (atomic for the watcher).
//! - `run`: build, then the hub on `plugins/`.
//! - `test`: build modules and test fixtures, then every test of the workspace.
//! - `new-module`: a new module from `plugins/_template`.
//! - `bench`: performance as ratios against a baseline measured in the same run.
//!
//! Rooms, bottom up: `build` and `pg` (cargo, the workspace, a PostgreSQL cluster) → `fixtures`,
//! `node` (the OpenID provider's npm packages), `python` (schemathesis), `packages` (Debian's
//! chromium, chromedriver, prometheus and nginx for some tests) → `run` (run and test) → `bench`, `new_module` → `main`; `tidy` holds the tidy
//! tests.

mod bench;
mod build;
mod dist;
mod fixtures;
mod new_module;
mod node;
mod packages;
mod pg;
mod python;
mod run;
mod tidy;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, run and test the BMC Hub",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the hub and every module in plugins/, copying each library next to its module.json.
    Build {
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Build, then run the hub on plugins/ (settings from the environment and ./.env).
    Run {
        /// Build and run with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Measure (release builds): dispatch, abi, db, reload, scale, console, calls, fleet; see docs/PERFORMANCE.md.
    Bench {
        /// Which benchmark.
        #[arg(value_enum, default_value = "all")]
        which: bench::Which,
        /// Seconds per wrk run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Also measure another build in the same run: a checkout of another commit built with
        /// `cargo xtask build --release` (dispatch and scale; for db, its hub built with the
        /// `bench-routes` feature, as `cargo xtask bench db` there builds it).
        #[arg(long, value_name = "CHECKOUT")]
        against: Option<std::path::PathBuf>,
        /// Let callgrind simulate the caches (dispatch: misses per request; slower).
        #[arg(long)]
        cache_sim: bool,
        /// Dispatch and db: only the counts (callgrind), not the timed runs.
        #[arg(long)]
        counted_only: bool,
    },
    /// Start a new module from plugins/_template: plugins/<name>, enabled, a workspace member.
    NewModule {
        /// The module's name: lowercase letters, digits and `_`, starting with a letter.
        name: String,
        /// One line on what it does.
        description: Option<String>,
    },
    /// Make a key pair for signing module packages: <out>.key (secret) and <out>.pub.
    Keygen {
        /// Where to write the keys, without extension.
        #[arg(long, default_value = "keys/hub")]
        out: std::path::PathBuf,
    },
    /// Build a module and write dist/<name>-<version>.hubpkg, signed with --key.
    Package {
        /// The module's name (its module.json's "name").
        module: String,
        /// The secret key to sign with (from cargo xtask keygen); unsigned without it.
        #[arg(long)]
        key: Option<std::path::PathBuf>,
        /// Build with the dev profile instead of release (quicker; for tests).
        #[arg(long)]
        debug: bool,
    },
    /// Write a catalog (index.json and the packages) of dist/ into a folder, for HUB_CATALOGS.
    Catalog {
        /// The folder to write.
        dir: std::path::PathBuf,
    },
    /// Run the console's browser test, saving PNGs of its main pages in target/screenshots/.
    Screenshots,
    /// Build modules and test fixtures, then run every test of the workspace.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build { release } => {
            build::build(&build::Profile::from_release(release)).map(drop)
        }
        Command::Run { release } => run::run(&build::Profile::from_release(release)),
        Command::Test { args } => run::test(&args),
        Command::Screenshots => run::screenshots(),
        Command::Keygen { out } => dist::keygen(&out),
        Command::Catalog { dir } => dist::catalog(&dir),
        Command::Package { module, key, debug } => {
            dist::package(&module, key.as_deref(), debug).map(drop)
        }
        Command::NewModule { name, description } => {
            new_module::new_module(&name, description.as_deref())
        }
        Command::Bench {
            which,
            seconds,
            against,
            cache_sim,
            counted_only,
        } => bench::bench(
            which,
            &bench::Options {
                seconds,
                against,
                cache_sim,
                counted_only,
            },
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
