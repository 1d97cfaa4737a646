//! Starting a module: open its library (version checks), initialise it, build its instance, apply
//! its migrations, check its health. Every step that fails says which one, as a `StartError`; the
//! lifecycle then keeps the old version serving or marks the module failed.

use std::path::Path;
use std::sync::Arc;

use plugin_api::LogLevel;
use tracing::level_filters::LevelFilter;

use crate::config::Config;
use crate::config::module::{Safety, resolve_config};
use crate::db::migrate::MigrationSpec;
use crate::db::roles::{self, Declaration};
use crate::db::{Database, MigrationRun};
use crate::deps;
use crate::instance::{Instance, Reaper, Started};
use crate::loader::{InstanceArgs, LibraryFile, Loader};
use crate::manifest::{Manifest, UseMode};
use crate::registry::StartError;

/// What starting a module needs: the loader, the database, the reaper of shutdown hooks.
pub struct Starter {
    pub loader: Arc<Loader>,
    pub database: Arc<Database>,
    pub reaper: Reaper,
    max_log_level: LogLevel,
}

impl Starter {
    pub fn new(loader: Arc<Loader>, database: Arc<Database>, reaper: Reaper) -> Starter {
        Starter {
            loader,
            database,
            reaper,
            max_log_level: max_log_level(),
        }
    }

    /// Open, init, migrate and health-check a new instance of module `name` from `folder`.
    /// `library` is the library file as the fingerprint read it.
    pub async fn start(
        &self,
        config: &Config,
        name: &str,
        folder: &Path,
        manifest: &Manifest,
        safety: Safety,
        library: Arc<LibraryFile>,
    ) -> Result<Arc<Instance>, StartError> {
        if let Some(range) = &manifest.hub_api
            && !deps::satisfies(plugin_api::API_VERSION, range)
        {
            return Err(StartError::HubApi {
                range: range.clone(),
                have: plugin_api::API_VERSION,
            });
        }
        // What the module's roles grant, from now on (set up before its first use of the
        // database).
        self.database.declare(name, declaration(manifest));
        let path = folder.join(manifest.library_file());
        let args = InstanceArgs {
            module: name.to_owned(),
            config: resolve_config(manifest, &config.module_env),
            read_only: safety.read_only,
            dry_run: safety.dry_run,
            max_log_level: self.max_log_level,
            database: self.database.clone(),
        };
        let loader = self.loader.clone();
        let manifest_version = manifest.version.clone();
        let module = name.to_owned();
        // Reading, mapping and `init` block; keep them off the async threads.
        let opened = tokio::task::spawn_blocking(move || {
            // Read with the fingerprint, unless module.json changed its library since.
            let library = if library.path == path {
                library
            } else {
                Arc::new(LibraryFile::read(&path))
            };
            let opened = loader.open(&module, &library)?;
            let info = opened.info();
            if info.version != manifest_version {
                return Err(StartError::Version {
                    manifest: manifest_version,
                    library_path: path.display().to_string(),
                    library: info.version,
                });
            }
            let migrations = opened.migrations().map_err(StartError::Declarations)?;
            let assets = opened.assets().map_err(StartError::Declarations)?;
            let object = opened.instantiate(args).map_err(StartError::Init)?;
            Ok(Started {
                info,
                object,
                migrations,
                assets,
            })
        })
        .await
        .map_err(|e| StartError::Interrupted(e.to_string()))??;
        let instance =
            Instance::new(name, opened, self.reaper.clone()).map_err(StartError::Routes)?;
        let instance = Arc::new(instance);
        if !instance.migrations().is_empty() {
            self.migrate(name, &manifest.table_prefix(), instance.migrations())
                .await?;
        }
        let health = instance.check_health(config.health_timeout).await;
        if health.is_unhealthy() {
            return Err(StartError::Unhealthy(health.detail));
        }
        Ok(instance)
    }

    /// Apply the module's pending migrations, as its own role.
    async fn migrate(
        &self,
        name: &str,
        prefix: &str,
        migrations: &[MigrationSpec],
    ) -> Result<(), StartError> {
        if !self.database.is_configured() {
            return Err(StartError::NoDatabase {
                module: name.to_owned(),
            });
        }
        if !self.database.is_ready() {
            self.database
                .prepare()
                .await
                .map_err(|e| StartError::DatabaseUnavailable(e.to_string()))?;
        }
        let applied = self
            .database
            .migrate(name, prefix, migrations)
            .await
            .map_err(|e| match e {
                MigrationRun::Migration(e) => StartError::from(e),
                MigrationRun::Unavailable(e) => StartError::DatabaseUnavailable(e.to_string()),
                MigrationRun::Roles(e) => StartError::Roles(e.to_string()),
            })?;
        if !applied.versions.is_empty() {
            tracing::info!(module = %name, "applied migrations {:?}", applied.versions);
        }
        Ok(())
    }
}

/// What a module declares about its data, for its PostgreSQL roles.
fn declaration(manifest: &Manifest) -> Declaration {
    Declaration {
        prefix: manifest.table_prefix(),
        uses: manifest
            .uses
            .iter()
            .map(|(module, mode)| {
                let mode = match mode {
                    UseMode::Read => roles::UseMode::Read,
                    UseMode::Write => roles::UseMode::Write,
                };
                (module.clone(), mode)
            })
            .collect(),
    }
}

/// The most verbose level the hub prints, told to modules so they skip the rest.
fn max_log_level() -> LogLevel {
    match LevelFilter::current() {
        LevelFilter::TRACE => LogLevel::Trace,
        LevelFilter::DEBUG => LogLevel::Debug,
        LevelFilter::INFO => LogLevel::Info,
        LevelFilter::WARN => LogLevel::Warn,
        _ => LogLevel::Error,
    }
}
