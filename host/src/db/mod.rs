//! The hub's PostgreSQL: two deadpool pools, read-only and read-write (timeouts on waiting for,
//! creating and recycling a connection, so a hung or absent database gives an error, not a hang),
//! the hub's own migrations, whether the database is reachable, and the loop that tries it again
//! while it is not. Modules reach it only through the gateway. This room is the only one that
//! names tokio-postgres or deadpool.

pub mod convert;
pub mod gateway;
pub mod ledger;
pub mod migrate;
pub mod statement;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use thiserror::Error;
use tokio_postgres::NoTls;

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

/// Which pool a connection comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Connections with `default_transaction_read_only = on`: every transaction on them is read
    /// only, so a single statement needs no explicit `BEGIN READ ONLY`.
    ReadOnly,
    ReadWrite,
}

/// The pools and what the hub knows about the database.
pub struct Database {
    /// (read-only, read-write), both with the default `statement_timeout` set per connection.
    pools: Option<(Pool, Pool)>,
    /// Whether the last attempt to use the database worked (the hub's migrations included).
    ready: AtomicBool,
    statement_timeout: Duration,
}

impl Database {
    /// Set up the pools from `DATABASE_URL`; they connect lazily. `Err` names the variable when
    /// the URL cannot be parsed.
    pub fn new(config: &Config) -> anyhow::Result<Database> {
        let statement_timeout = config.db_statement_timeout;
        let Some(url) = &config.database_url else {
            return Ok(Database {
                pools: None,
                ready: AtomicBool::new(false),
                statement_timeout,
            });
        };
        let base: tokio_postgres::Config = url.parse().map_err(|e| {
            anyhow::anyhow!(
                "DATABASE_URL is not a PostgreSQL URL ({e}): use postgres://user@host:port/database"
            )
        })?;
        let pool = |read_only: bool| -> anyhow::Result<Pool> {
            let mut pg = base.clone();
            pg.connect_timeout(config.db_pool_timeout);
            pg.application_name("bmc-hub");
            pg.keepalives_idle(Duration::from_secs(30));
            pg.options(format!(
                "-c statement_timeout={} -c default_transaction_read_only={}",
                statement_timeout.as_millis(),
                if read_only { "on" } else { "off" }
            ));
            let manager = Manager::from_config(
                pg,
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(config.db_pool_size)
                .wait_timeout(Some(config.db_pool_timeout))
                .create_timeout(Some(config.db_pool_timeout))
                .recycle_timeout(Some(config.db_pool_timeout))
                .runtime(Runtime::Tokio1)
                .build()
                .map_err(|e| anyhow::anyhow!("cannot set up the database pool: {e}"))
        };
        Ok(Database {
            pools: Some((pool(true)?, pool(false)?)),
            ready: AtomicBool::new(false),
            statement_timeout,
        })
    }

    pub fn is_configured(&self) -> bool {
        self.pools.is_some()
    }

    /// Whether the database answered last time the hub tried, with the hub's migrations applied.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The default `statement_timeout` of a module's statement.
    pub fn statement_timeout(&self) -> Duration {
        self.statement_timeout
    }

    /// A pooled connection.
    pub async fn client(&self, access: Access) -> Result<Object, DbUnavailable> {
        let (read_only, read_write) = self.pools.as_ref().ok_or(DbUnavailable::NotConfigured)?;
        let pool = match access {
            Access::ReadOnly => read_only,
            Access::ReadWrite => read_write,
        };
        pool.get().await.map_err(|e| {
            self.ready.store(false, Ordering::Relaxed);
            DbUnavailable::Unreachable(pool_error(&e))
        })
    }

    /// Apply the hub's own migrations and mark the database ready; `Err` says why not.
    pub async fn prepare(&self) -> Result<(), PrepareError> {
        let mut client = self.client(Access::ReadWrite).await?;
        let migrations = migrate::host_migrations();
        migrate::apply_pending(&mut client, "hub", None, &migrations).await?;
        self.ready.store(true, Ordering::Relaxed);
        Ok(())
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
    /// a read-only connection; the first row as JSON, if any.
    #[cfg(feature = "bench-routes")]
    pub async fn bench_row(
        &self,
        sql: &str,
        id: i32,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, String> {
        let client = self
            .client(Access::ReadOnly)
            .await
            .map_err(|e| e.to_string())?;
        let statement = client.prepare_cached(sql).await.map_err(|e| explain(&e))?;
        let rows = client
            .query(&statement, &[&id])
            .await
            .map_err(|e| explain(&e))?;
        rows.first().map(convert::row).transpose()
    }
}

fn pool_error(error: &deadpool_postgres::PoolError) -> String {
    use deadpool_postgres::PoolError;
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
