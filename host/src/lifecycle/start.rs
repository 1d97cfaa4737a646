//! Starting a module: open its library (version checks), initialise it, build its instance, apply
//! its migrations, check its health. Every step that fails says which one, as a `StartError`; the
//! lifecycle then keeps the old version serving or marks the module failed.

use std::path::Path;
use std::sync::Arc;

use plugin_api::LogLevel;
use tracing::level_filters::LevelFilter;

use crate::config::Config;
use crate::config::module::{Safety, resolve_config, resolve_outbound};
use crate::db::migrate::{Applied, MigrationSpec};
use crate::db::roles::{self, Declaration};
use crate::db::{Database, MigrationRun};
use crate::deps;
use crate::identity::Identity;
use crate::instance::{Access, Instance, Reaper, Started};
use crate::loader::{InstanceArgs, LibraryFile, Loader};
use crate::manifest::{Manifest, UseMode};
use crate::registry::StartError;

/// What starting a module needs: the loader, the database, the reaper of shutdown hooks.
pub struct Starter {
    pub loader: Arc<Loader>,
    pub database: Arc<Database>,
    pub reaper: Reaper,
    pub identity: Arc<Identity>,
    max_log_level: LogLevel,
}

impl Starter {
    pub fn new(
        loader: Arc<Loader>,
        database: Arc<Database>,
        reaper: Reaper,
        identity: Arc<Identity>,
    ) -> Starter {
        Starter {
            loader,
            database,
            reaper,
            identity,
            max_log_level: max_log_level(),
        }
    }

    /// Open, init, migrate and health-check a new instance of module `name` from `folder`.
    /// `library` is the library file as the fingerprint read it; `defer_contract`: run only the
    /// migrations before the first contract one (a fleet rolls a new version).
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        &self,
        config: &Config,
        name: &str,
        folder: &Path,
        manifest: &Manifest,
        safety: Safety,
        library: Arc<LibraryFile>,
        defer_contract: bool,
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
            config: resolve_config(manifest, &config.module_env)?,
            read_only: safety.read_only,
            dry_run: safety.dry_run,
            max_log_level: self.max_log_level,
            database: self.database.clone(),
            outbound: resolve_outbound(manifest, &config.module_env)?,
            blocking_threads: config.module_blocking_threads,
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
        let instance = Instance::new(
            name,
            opened,
            self.reaper.clone(),
            access(manifest, &self.identity),
        )
        .map_err(StartError::Routes)?;
        let instance = Arc::new(instance);
        // From here on, a failure after migrations that are not expand leaves a schema that an
        // older version may not work on: the error says so, and the lifecycle keeps none.
        let mut applied = Applied::default();
        let after = |applied: &Applied, error: StartError| {
            let contracting = applied.contracting();
            if contracting.is_empty() {
                return error;
            }
            StartError::AfterMigrations {
                version: manifest.version.clone(),
                applied: applied.migrations.iter().map(|m| m.label.clone()).collect(),
                contracting,
                error: Box::new(error),
            }
        };
        if !instance.migrations().is_empty() {
            let migrations = match defer_contract {
                true => self.before_contract(name, instance.migrations()).await?,
                false => instance.migrations(),
            };
            let migrated = self
                .migrate(name, &manifest.table_prefix(), migrations, &mut applied)
                .await;
            if let Err(error) = migrated {
                return Err(after(&applied, error));
            }
        }
        let health = instance.check_health(config.health_timeout).await;
        if health.is_unhealthy() {
            return Err(after(&applied, StartError::Unhealthy(health.detail)));
        }
        // A module with jobs gets its service identity now, so the operator can give it roles
        // before its first run (a failure here only delays that: the run makes it too).
        if !instance.jobs().is_empty()
            && let Err(e) = self.identity.ensure_module(name).await
        {
            tracing::warn!(module = %name, "cannot make the module's service identity module:{name}: {e}");
        }
        Ok(instance)
    }

    /// The migrations to run while the contract ones wait (a fleet rolls a new version): those
    /// before the first one that is not marked expand and not applied yet.
    async fn before_contract<'m>(
        &self,
        name: &str,
        migrations: &'m [MigrationSpec],
    ) -> Result<&'m [MigrationSpec], StartError> {
        let applied: Vec<i32> = crate::db::packages::applied_migrations(&self.database, name)
            .await
            .map_err(|e| StartError::DatabaseUnavailable(e.to_string()))?
            .into_iter()
            .map(|(version, _)| version)
            .collect();
        let cut = migrations
            .iter()
            .position(|m| !m.expands() && !applied.contains(&(m.version as i32)))
            .unwrap_or(migrations.len());
        if cut < migrations.len() {
            tracing::info!(module = %name, "migrations from {} on wait until every hub of the fleet serves this version", migrations[cut].label());
        }
        Ok(&migrations[..cut])
    }

    /// Run the pending migrations of the running `instance` (the contract ones a fleet held
    /// back); the labels of those applied now.
    pub async fn finish(
        &self,
        name: &str,
        manifest: &Manifest,
        instance: &Instance,
    ) -> Result<Vec<String>, StartError> {
        let mut applied = Applied::default();
        if !instance.migrations().is_empty() {
            self.migrate(
                name,
                &manifest.table_prefix(),
                instance.migrations(),
                &mut applied,
            )
            .await?;
        }
        Ok(applied.migrations.iter().map(|m| m.label.clone()).collect())
    }

    /// What `name` may use of the database is what `manifest` declares again (a failed reload
    /// keeps the running version, and with it its declaration).
    pub fn declare_again(&self, name: &str, manifest: &Manifest) {
        self.database.declare(name, declaration(manifest));
    }

    /// Apply the module's pending migrations, as its own role; `applied` lists those applied.
    async fn migrate(
        &self,
        name: &str,
        prefix: &str,
        migrations: &[MigrationSpec],
        applied: &mut Applied,
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
        let result = self
            .database
            .migrate(name, prefix, migrations, applied)
            .await
            .map_err(|e| match e {
                MigrationRun::Migration(e) => StartError::from(e),
                MigrationRun::Unavailable(e) => StartError::DatabaseUnavailable(e.to_string()),
                MigrationRun::Roles(e) => StartError::Roles(e.to_string()),
            });
        if !applied.is_empty() {
            tracing::info!(module = %name, "applied migrations {:?}", applied.versions());
        }
        result
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

/// Who may use the module: its declared permissions, its audience, and the hub's identity (for
/// the audit entries its requests write).
fn access(manifest: &Manifest, identity: &Arc<Identity>) -> Access {
    Access {
        permissions: manifest.permissions.clone(),
        audience: manifest.audience.clone(),
        identity: identity.clone(),
        dependencies: manifest.dependencies.keys().cloned().collect(),
    }
}
