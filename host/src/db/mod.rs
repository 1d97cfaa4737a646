//! The hub's PostgreSQL: one pool of connections for the hub and its modules (`pool.rs`: each
//! connection remembers its session and its prepared statements; timeouts on waiting for,
//! creating and recycling a connection, so a hung or absent database gives an error, not a hang),
//! the modules' roles (`roles.rs`), the hub's own migrations, whether the database is reachable,
//! and the loop that tries it again while it is not. Modules reach it only through the gateway.
//! This room is the only one that names tokio-postgres or deadpool.

pub mod convert;
pub mod fleet;
pub mod gateway;
pub mod identity;
pub mod jobs;
pub mod ledger;
pub mod migrate;
pub mod packages;
pub mod pool;
pub mod roles;
pub mod statement;
pub mod usage;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool::Runtime;
use thiserror::Error;

use self::pool::{Manager, Pool};
pub use self::pool::{Object, Session};
use self::roles::Roles;
use crate::config::Config;

/// The database could not be used; says why and, when it is missing, which variable to set.
#[derive(Debug, Clone, Error)]
pub enum DbUnavailable {
    #[error("the hub has no database: set DATABASE_URL")]
    NotConfigured,
    #[error("the database is unreachable: {0}")]
    Unreachable(String),
}

/// The hub's own migrations could not be applied.
#[derive(Debug, Error)]
pub enum PrepareError {
    #[error(transparent)]
    Unavailable(#[from] DbUnavailable),
    #[error(transparent)]
    Migration(#[from] migrate::MigrationError),
}

/// The pool and what the hub knows about the database.
pub struct Database {
    /// With the default `statement_timeout` set per connection.
    pool: Option<Pool>,
    /// Whether the last attempt to use the database worked (the hub's migrations included).
    ready: AtomicBool,
    statement_timeout: Duration,
    max_statement_timeout: Duration,
    /// Bumped when a migration changed the schema: connections drop their prepared statements.
    generation: Arc<AtomicU64>,
    /// The modules' roles and declarations.
    pub(crate) roles: Roles,
    /// SQL texts the gateway's checks passed.
    pub(crate) passed: gateway::Passed,
    /// How to open a connection of its own (the fleet's listener, a rollout's turn).
    pub(crate) direct: Option<tokio_postgres::Config>,
}

impl Database {
    /// Set up the pool from `DATABASE_URL`; it connects lazily. `Err` names the variable when
    /// the URL cannot be parsed.
    pub fn new(config: &Config) -> anyhow::Result<Database> {
        let max_statement_timeout = config.db_max_statement_timeout;
        // 0 would mean no limit at all: the cap stands instead.
        let statement_timeout = match config.db_statement_timeout {
            Duration::ZERO => max_statement_timeout,
            t => t.min(max_statement_timeout),
        };
        let generation = Arc::new(AtomicU64::new(0));
        let Some(url) = &config.database_url else {
            return Ok(Database {
                pool: None,
                ready: AtomicBool::new(false),
                statement_timeout,
                max_statement_timeout,
                generation,
                passed: gateway::Passed::default(),
                roles: Roles::default(),
                direct: None,
            });
        };
        let mut pg: tokio_postgres::Config = url.parse().map_err(|e| {
            anyhow::anyhow!(
                "DATABASE_URL is not a PostgreSQL URL ({e}): use postgres://user@host:port/database"
            )
        })?;
        pg.connect_timeout(config.db_pool_timeout);
        pg.application_name("bmc-hub");
        // A database that stops answering at the network level: data it does not acknowledge
        // within the pool timeout, or a peer silent for 5 s and three probes, ends the
        // connection (and the call on it) with an error; the calls carry no timer of their own.
        pg.tcp_user_timeout(config.db_pool_timeout);
        pg.keepalives_idle(Duration::from_secs(5));
        pg.keepalives_interval(Duration::from_secs(1));
        pg.keepalives_retries(3);
        pg.options(format!(
            "-c statement_timeout={}",
            statement_timeout.as_millis()
        ));
        let direct = Some(pg.clone());
        let pool = Pool::builder(Manager::new(pg, generation.clone()))
            .max_size(config.db_pool_size)
            .wait_timeout(Some(config.db_pool_timeout))
            .create_timeout(Some(config.db_pool_timeout))
            .recycle_timeout(Some(config.db_pool_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot set up the database pool: {e}"))?;
        Ok(Database {
            pool: Some(pool),
            ready: AtomicBool::new(false),
            statement_timeout,
            max_statement_timeout,
            generation,
            roles: Roles::default(),
            passed: gateway::Passed::default(),
            direct,
        })
    }

    pub fn is_configured(&self) -> bool {
        self.pool.is_some()
    }

    /// The pool's connections: (in use by a call, idle, calls waiting for one); `None` without a
    /// database.
    pub fn pool_status(&self) -> Option<(i64, i64, i64)> {
        let status = self.pool.as_ref()?.status();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        Some((
            count(status.size.saturating_sub(status.available)),
            count(status.available),
            count(status.waiting),
        ))
    }

    /// Whether the database answered last time the hub tried, with the hub's migrations applied.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The default `statement_timeout` of a module's statement.
    pub fn statement_timeout(&self) -> Duration {
        self.statement_timeout
    }

    /// The longest a module's statement may run, whatever it asks for.
    pub fn max_statement_timeout(&self) -> Duration {
        self.max_statement_timeout
    }

    /// A pooled connection, in whatever session it was left.
    pub async fn pooled(&self) -> Result<Object, DbUnavailable> {
        let pool = self.pool.as_ref().ok_or(DbUnavailable::NotConfigured)?;
        pool.get().await.map_err(|e| {
            self.ready.store(false, Ordering::Relaxed);
            DbUnavailable::Unreachable(pool_error(&e))
        })
    }

    /// A pooled connection acting as the hub itself (its own user, read-write).
    pub async fn hub_client(&self) -> Result<Object, DbUnavailable> {
        let mut client = self.pooled().await?;
        if let Some(commands) = client.switch_to(&Session::hub()) {
            if let Err(e) = client.client().batch_execute(&commands).await {
                client.discard();
                return Err(DbUnavailable::Unreachable(explain(&e)));
            }
            client.entered(Session::hub());
        }
        Ok(client)
    }

    /// A migration changed the schema: every connection drops its prepared statements before its
    /// next use.
    pub fn schema_changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Apply the hub's own migrations and mark the database ready; `Err` says why not.
    pub async fn prepare(&self) -> Result<(), PrepareError> {
        let mut client = self.hub_client().await?;
        let migrations = migrate::host_migrations();
        let scope = migrate::Scope {
            prefix: None,
            role: None,
        };
        let applied = migrate::apply_pending(
            client.client_mut(),
            "hub",
            scope,
            &migrations,
            &mut migrate::Applied::default(),
        )
        .await;
        // A migration may have set anything in the session: the connection is not reused.
        client.discard();
        applied?;
        self.ready.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Apply `module`'s pending migrations, as its writer role, on a connection used for nothing
    /// else afterwards (a migration may leave session settings behind: `SET statement_timeout`
    /// pasted from a dump). `report` lists what was applied, also when a later one failed.
    pub async fn migrate(
        &self,
        module: &str,
        prefix: &str,
        migrations: &[migrate::MigrationSpec],
        report: &mut migrate::Applied,
    ) -> Result<(), MigrationRun> {
        let roles = self.module_roles(module).await?;
        let mut client = self.hub_client().await?;
        let scope = migrate::Scope {
            prefix: Some(prefix),
            role: Some(&roles.writer),
        };
        let result =
            migrate::apply_pending(client.client_mut(), module, scope, migrations, report).await;
        client.discard();
        if !report.is_empty() {
            self.schema_changed();
        }
        Ok(result?)
    }

    /// While the database is configured but not ready, try it every `retry`; each time it answers
    /// again, run `on_ready` (the lifecycle starts the modules that waited for it). Never returns
    /// when a database is configured.
    pub async fn watch<F, Fut>(self: Arc<Self>, retry: Duration, mut on_ready: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        if !self.is_configured() {
            return;
        }
        loop {
            tokio::time::sleep(retry).await;
            if self.is_ready() || self.prepare().await.is_err() {
                continue;
            }
            tracing::info!("database reachable again");
            on_ready().await;
        }
    }

    /// `cargo xtask bench db`'s baseline: `sql` with one `int4` parameter, run by the hub itself on
    /// the same pool; the first row as JSON, if any.
    #[cfg(feature = "bench-routes")]
    pub async fn bench_row(
        &self,
        sql: &str,
        id: i32,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, String> {
        let mut client = self.hub_client().await.map_err(|e| e.to_string())?;
        let statement = client.prepare(sql).await.map_err(|e| explain(&e))?;
        let rows = client
            .client()
            .query(&statement, &[&id])
            .await
            .map_err(|e| explain(&e))?;
        rows.first().map(convert::row).transpose()
    }
}

/// Why a module's migrations did not run: its roles, the database, or a migration.
#[derive(Debug, Error)]
pub enum MigrationRun {
    #[error(transparent)]
    Roles(#[from] roles::RoleError),
    #[error(transparent)]
    Unavailable(#[from] DbUnavailable),
    #[error(transparent)]
    Migration(#[from] migrate::MigrationError),
}

/// `name` as a quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn pool_error(error: &deadpool::managed::PoolError<tokio_postgres::Error>) -> String {
    use deadpool::managed::PoolError;
    match error {
        PoolError::Timeout(kind) => {
            format!("no connection within HUB_DB_POOL_TIMEOUT_MS ({kind:?})")
        }
        PoolError::Backend(e) => explain(e),
        other => other.to_string(),
    }
}

/// A PostgreSQL error in one line: the server's message and SQLSTATE, or the connection's error.
pub fn explain(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => crate::causes::with_causes(error),
    }
}
