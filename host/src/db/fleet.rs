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
