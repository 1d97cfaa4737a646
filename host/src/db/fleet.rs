//! The hubs on this database (`hub_instances`): each hub's heartbeat with its modules' versions
//! and states, its clean stop, and the list.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Database;
use super::identity::StoreError;

/// A hub as it last recorded itself.
#[derive(Debug, Clone)]
pub struct InstanceRow {
    pub id: String,
    pub address: String,
    pub version: String,
    pub plugin_api: String,
    pub started_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    /// name → {"version", "state"}.
    pub modules: Value,
}

/// Record `me` as alive now (`last_seen` is the database's clock, which every hub shares).
pub async fn beat(db: &Database, me: &InstanceRow) -> Result<(), StoreError> {
    let conn = db.hub_client().await?;
    conn.client()
        .execute(
            "INSERT INTO hub_instances (id, address, version, plugin_api, started_at, last_seen, modules) \
             VALUES ($1, $2, $3, $4, $5, now(), $6) \
             ON CONFLICT (id) DO UPDATE SET last_seen = now(), modules = EXCLUDED.modules, \
             address = EXCLUDED.address, stopped_at = NULL",
            &[
                &me.id,
                &me.address,
                &me.version,
                &me.plugin_api,
                &me.started_at,
                &me.modules,
            ],
        )
        .await?;
    Ok(())
}

/// Mark hub `id` stopped (a clean stop).
pub async fn stop(db: &Database, id: &str) -> Result<(), StoreError> {
    let conn = db.hub_client().await?;
    conn.client()
        .execute(
            "UPDATE hub_instances SET stopped_at = now(), last_seen = now() WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(())
}

/// Every hub heard from in the last day (older rows are deleted), the last started first, and
/// the database's time now.
pub async fn list(db: &Database) -> Result<(Vec<InstanceRow>, DateTime<Utc>), StoreError> {
    let conn = db.hub_client().await?;
    let client = conn.client();
    client
        .execute(
            "DELETE FROM hub_instances WHERE last_seen < now() - interval '1 day'",
            &[],
        )
        .await?;
    let now: DateTime<Utc> = client.query_one("SELECT now()", &[]).await?.get(0);
    let rows = client
        .query(
            "SELECT id, address, version, plugin_api, started_at, last_seen, stopped_at, modules \
             FROM hub_instances ORDER BY started_at DESC, id",
            &[],
        )
        .await?;
    Ok((
        rows.iter()
            .map(|r| InstanceRow {
                id: r.get(0),
                address: r.get(1),
                version: r.get(2),
                plugin_api: r.get(3),
                started_at: r.get(4),
                last_seen: r.get(5),
                stopped_at: r.get(6),
                modules: r.get(7),
            })
            .collect(),
        now,
    ))
}

/// The channel every change of `hub_module_state` is notified on; the payload is the module's
/// name.
pub const CHANNEL: &str = "hub_fleet";

/// The advisory lock namespace of the fleet (`pg_advisory_[xact_]lock(int4, int4)`'s first
/// key): changes of one module's desired state, and a rolling upgrade's turn.
const LOCK_STATE: i32 = 0x4855_4246; // "HUBF"
const LOCK_TURN: i32 = 0x4855_4254; // "HUBT"

/// A module's desired state in the fleet (`hub_module_state`).
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRow {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// The `module.json` every hub writes.
    pub manifest: Value,
    /// The package's own `module.json`.
    pub shipped: Value,
    /// `all` or `rolling`.
    pub rollout: String,
    /// `pending` or `done`.
    pub contract: String,
    pub halted: Option<String>,
    /// Reloads asked of the fleet so far.
    pub reloads: i64,
    pub generation: i64,
    pub updated_by: String,
}

const COLUMNS: &str = "name, version, sha256, manifest, shipped, rollout, contract, halted, generation, updated_by, reloads";

fn desired_row(r: &tokio_postgres::Row) -> DesiredRow {
    DesiredRow {
        name: r.get(0),
        version: r.get(1),
        sha256: r.get(2),
        manifest: r.get(3),
        shipped: r.get(4),
        rollout: r.get(5),
        contract: r.get(6),
        halted: r.get(7),
        generation: r.get(8),
        updated_by: r.get(9),
        reloads: r.get(10),
    }
}

/// Every module's desired state, by name.
pub async fn desired_all(db: &Database) -> Result<Vec<DesiredRow>, StoreError> {
    let conn = db.hub_client().await?;
    let rows = conn
        .client()
        .query(
            &format!("SELECT {COLUMNS} FROM hub_module_state ORDER BY name"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(desired_row).collect())
}

/// Module `name`'s desired state, if the fleet has it.
pub async fn desired(db: &Database, name: &str) -> Result<Option<DesiredRow>, StoreError> {
    let conn = db.hub_client().await?;
    let row = conn
        .client()
        .query_opt(
            &format!("SELECT {COLUMNS} FROM hub_module_state WHERE name = $1"),
            &[&name],
        )
        .await?;
    Ok(row.as_ref().map(desired_row))
}

/// What a change makes of a module's desired state.
pub enum Change {
    /// Nothing changes (and nothing is notified).
    Keep,
    /// The row becomes this (its generation is set by the store).
    Put(Box<DesiredRow>),
    /// The module leaves the fleet.
    Delete,
}

/// What else a change does in its transaction.
pub enum Also<'a> {
    Nothing,
    /// Keep this package version (an install: the other hubs read its bytes).
    Keep(&'a super::packages::PackageRow, &'a [u8]),
    /// Delete every kept version of the module (an uninstall).
    ForgetPackages,
}

/// Change module `name`'s desired state in one transaction that holds the module's fleet lock
/// (changes of one module, from any hub, run one after the other): `change` sees the row as it
/// is and decides; the new row gets the next generation, and the change is notified on
/// [`CHANNEL`] when it commits. The row as it is afterwards (`None`: not in the fleet).
pub async fn change<E>(
    db: &Database,
    name: &str,
    also: Also<'_>,
    change: impl FnOnce(Option<&DesiredRow>) -> Result<Change, E>,
) -> Result<Result<Option<DesiredRow>, E>, StoreError> {
    let mut conn = db.hub_client().await?;
    let tx = conn.client_mut().transaction().await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&LOCK_STATE, &name],
    )
    .await?;
    let current = tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM hub_module_state WHERE name = $1"),
            &[&name],
        )
        .await?
        .as_ref()
        .map(desired_row);
    let decided = match change(current.as_ref()) {
        Ok(decided) => decided,
        Err(e) => return Ok(Err(e)),
    };
    let after = match decided {
        Change::Keep => return Ok(Ok(current)),
        Change::Delete => {
            tx.execute("DELETE FROM hub_module_state WHERE name = $1", &[&name])
                .await?;
            None
        }
        Change::Put(row) => {
            let row = *row;
            let generation = current.as_ref().map_or(1, |c| c.generation + 1);
            tx.execute(
                "INSERT INTO hub_module_state (name, version, sha256, manifest, shipped, rollout, contract, halted, generation, updated_at, updated_by, reloads) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), $10, $11) \
                 ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, sha256 = EXCLUDED.sha256, \
                 manifest = EXCLUDED.manifest, shipped = EXCLUDED.shipped, rollout = EXCLUDED.rollout, \
                 contract = EXCLUDED.contract, halted = EXCLUDED.halted, generation = EXCLUDED.generation, \
                 updated_at = now(), updated_by = EXCLUDED.updated_by, reloads = EXCLUDED.reloads",
                &[
                    &name,
                    &row.version,
                    &row.sha256,
                    &row.manifest,
                    &row.shipped,
                    &row.rollout,
                    &row.contract,
                    &row.halted,
                    &generation,
                    &row.updated_by,
                    &row.reloads,
                ],
            )
            .await?;
            Some(DesiredRow { generation, ..row })
        }
    };
    match also {
        Also::Nothing => {}
        Also::Keep(row, bytes) => super::packages::keep_with(&tx, name, row, bytes).await?,
        Also::ForgetPackages => {
            tx.execute("DELETE FROM hub_packages WHERE module = $1", &[&name])
                .await?;
        }
    }
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &name])
        .await?;
    tx.commit().await?;
    Ok(Ok(after))
}

/// Make the installed package of `name` (`version`, `sha256`) the fleet's, unless the fleet has
/// the module already or the package is not kept in `hub_packages`: how a hub switched to fleet
/// mode brings in what it had installed. Whether a row was made.
pub async fn adopt(
    db: &Database,
    name: &str,
    version: &str,
    sha256: &str,
    manifest: &Value,
    shipped: &Value,
) -> Result<bool, StoreError> {
    let conn = db.hub_client().await?;
    let made = conn
        .client()
        .execute(
            "INSERT INTO hub_module_state (name, version, sha256, manifest, shipped, updated_by) \
             SELECT $1, $2, $3, $4, $5, 'hub' WHERE EXISTS \
             (SELECT 1 FROM hub_packages WHERE module = $1 AND version = $2 AND sha256 = $3) \
             ON CONFLICT (name) DO NOTHING",
            &[&name, &version, &sha256, manifest, shipped],
        )
        .await?;
    if made > 0 {
        conn.client()
            .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &name])
            .await?;
    }
    Ok(made > 0)
}

/// A dedicated connection that listens on [`CHANNEL`].
pub struct Listener {
    _client: tokio_postgres::Client,
    notes: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Listener {
    /// The next notified module name; `None` when the connection ended (the caller reconnects
    /// and reads the whole state again: notifications may have been lost).
    pub async fn next(&mut self) -> Option<String> {
        self.notes.recv().await
    }
}

/// Open a connection of its own, named `application_name` in `pg_stat_activity`, and listen on
/// [`CHANNEL`].
pub async fn listen(db: &Database, application_name: &str) -> Result<Listener, StoreError> {
    use futures_util::StreamExt as _;
    let mut config = db
        .direct
        .clone()
        .ok_or(super::DbUnavailable::NotConfigured)?;
    config.application_name(application_name);
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let (send, notes) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if send.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("fleet: the listener's connection to PostgreSQL ended: {e}");
                    return;
                }
            }
        }
        tracing::warn!("fleet: the listener's connection to PostgreSQL was closed");
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok(Listener {
        _client: client,
        notes,
    })
}

/// A rolling upgrade's turn for one module, held by one hub of the fleet at a time (a session
/// advisory lock on a connection of its own: a hub that dies gives the turn back).
pub struct Turn {
    _client: tokio_postgres::Client,
}

/// Wait for module `name`'s rollout turn.
pub async fn take_turn(db: &Database, name: &str) -> Result<Turn, StoreError> {
    let mut config = db
        .direct
        .clone()
        .ok_or(super::DbUnavailable::NotConfigured)?;
    config.application_name("hub-fleet-turn");
    // Waiting for the turn is no statement to time out.
    config.options("-c statement_timeout=0");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .execute(
            "SELECT pg_advisory_lock($1, hashtext($2))",
            &[&LOCK_TURN, &name],
        )
        .await?;
    Ok(Turn { _client: client })
}
