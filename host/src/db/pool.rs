//! The hub's connections to PostgreSQL: one pool (deadpool) for the hub and every module, whose
//! connections remember their session (the role they act as, read-only or not) and their
//! prepared statements. `HUB_DB_POOL_SIZE` is the whole pool: the hub never holds more
//! connections than it says.
//!
//! A connection's session changes only when a call needs another one (`SET ROLE …;
//! SET default_transaction_read_only …`, sent in the same round trip as the call), so a module's
//! calls run as its own role without a transaction of their own. Prepared statements are cached
//! per connection, at most [`STATEMENTS`] of them (the least recently used goes), and dropped
//! when a migration changed the schema (a prepared `SELECT *` must not outlive its table's
//! shape). A connection a call gave up on, or one a migration used, is never handed out again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use tokio_postgres::{CancelToken, Client, NoTls, Statement};

/// The most prepared statements one connection keeps.
pub const STATEMENTS: usize = 256;

/// Who a connection acts as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// `None`: the hub's own user.
    pub role: Option<String>,
    /// `default_transaction_read_only`.
    pub read_only: bool,
}

impl Session {
    /// The hub itself: its own user, read-write.
    pub fn hub() -> Session {
        Session::default()
    }

    /// The commands that turn `from` into this session, if it differs.
    fn commands_from(&self, from: &Session) -> Option<String> {
        if self == from {
            return None;
        }
        let role = match &self.role {
            Some(role) => format!("SET ROLE {}", super::quote_ident(role)),
            None => "RESET ROLE".to_owned(),
        };
        let read_only = if self.read_only { "on" } else { "off" };
        Some(format!(
            "{role}; SET default_transaction_read_only = {read_only}"
        ))
    }
}

/// One connection and what it remembers.
pub struct Conn {
    client: Client,
    cancel: CancelToken,
    session: Session,
    statements: HashMap<String, (Statement, u64)>,
    /// A counter of uses, for the least recently used statement.
    uses: u64,
    /// The schema generation the cached statements were prepared in.
    generation: u64,
    /// Never hand this connection out again.
    discard: bool,
}

impl Conn {
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn client_mut(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The token that cancels what this connection's server process runs.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// The commands (to send before a call, in the same round trip) that put this connection in
    /// `session`; call [`Conn::entered`] when they worked.
    pub fn switch_to(&self, session: &Session) -> Option<String> {
        session.commands_from(&self.session)
    }

    /// The commands of [`Conn::switch_to`] ran: the connection is in `session`.
    pub fn entered(&mut self, session: Session) {
        self.session = session;
    }

    /// Never hand this connection out again (its session is unknown, or a migration changed it).
    pub fn discard(&mut self) {
        self.discard = true;
    }

    /// `sql` prepared on this connection, from the cache when it was prepared before.
    pub async fn prepare(&mut self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        self.uses += 1;
        if let Some((statement, used)) = self.statements.get_mut(sql) {
            *used = self.uses;
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        if self.statements.len() >= STATEMENTS
            && let Some(oldest) = self
                .statements
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(sql, _)| sql.clone())
        {
            // Dropping the statement closes it on the server.
            self.statements.remove(&oldest);
        }
        self.statements
            .insert(sql.to_owned(), (statement.clone(), self.uses));
        Ok(statement)
    }

    /// Drop `sql`'s cached statement (PostgreSQL said its plan no longer fits).
    pub fn forget(&mut self, sql: &str) {
        self.statements.remove(sql);
    }

    /// How many statements this connection keeps prepared.
    pub fn prepared(&self) -> usize {
        self.statements.len()
    }
}

/// Makes and checks the pool's connections.
pub struct Manager {
    config: tokio_postgres::Config,
    /// Bumped when a migration changed the schema.
    generation: Arc<AtomicU64>,
}

impl Manager {
    pub fn new(config: tokio_postgres::Config, generation: Arc<AtomicU64>) -> Manager {
        Manager { config, generation }
    }
}

impl managed::Manager for Manager {
    type Type = Conn;
    type Error = tokio_postgres::Error;

    async fn create(&self) -> Result<Conn, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("a database connection ended: {e}");
            }
        });
        let cancel = client.cancel_token();
        Ok(Conn {
            client,
            cancel,
            session: Session::hub(),
            statements: HashMap::new(),
            uses: 0,
            generation: self.generation.load(Ordering::Acquire),
            discard: false,
        })
    }

    async fn recycle(&self, conn: &mut Conn, _: &Metrics) -> RecycleResult<tokio_postgres::Error> {
        if conn.discard || conn.client.is_closed() {
            return Err(RecycleError::message(
                "the connection is closed or was discarded",
            ));
        }
        let now = self.generation.load(Ordering::Acquire);
        if conn.generation != now {
            // A migration changed the schema: plans prepared before may not fit it.
            conn.statements.clear();
            conn.generation = now;
        }
        Ok(())
    }
}

pub type Pool = managed::Pool<Manager>;
pub type Object = managed::Object<Manager>;
