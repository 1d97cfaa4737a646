//! This hub among the hubs on its database: every `HUB_FLEET_HEARTBEAT_SECS` it records itself
//! (address, versions, start) and each of its modules' version and state in `hub_instances`;
//! at a clean stop it marks itself stopped. `GET /api/v1/fleet` reads them back: the hubs, up,
//! gone (not heard from for `HUB_FLEET_GONE_SECS`) or stopped, and per module what each hub
//! that is up runs, marked as drift where they differ.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::db::fleet::{self as store, InstanceRow};
use crate::db::identity::StoreError;
use crate::lifecycle::Hub;

/// This process as the fleet names it.
struct Me {
    id: String,
    started_at: DateTime<Utc>,
}

fn me() -> &'static Me {
    static ME: OnceLock<Me> = OnceLock::new();
    ME.get_or_init(|| {
        let started_at = Utc::now();
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        Me {
            id: format!(
                "{host}:{}:{}",
                std::process::id(),
                started_at.timestamp_millis()
            ),
            started_at,
        }
    })
}

/// The address the hub serves at, when it is not `HUB_PUBLIC_URL`'s (a bind to port 0).
static LISTENING: OnceLock<String> = OnceLock::new();

/// The hub listens at `address` (set when `HUB_BIND` let the system choose the port).
pub fn listening_on(address: &str) {
    let _ = LISTENING.set(address.to_owned());
}

/// This hub's record now.
fn record(hub: &Hub) -> InstanceRow {
    let modules: serde_json::Map<String, Value> = hub
        .registry()
        .all()
        .values()
        .map(|entry| {
            let version = entry
                .instance()
                .map(|i| i.info().version.clone())
                .or_else(|| entry.manifest.as_ref().map(|m| m.version.clone()));
            (
                entry.name.clone(),
                json!({"version": version, "state": entry.kind().as_str()}),
            )
        })
        .collect();
    InstanceRow {
        id: me().id.clone(),
        address: LISTENING
            .get()
            .cloned()
            .unwrap_or_else(|| hub.config().public_url.clone()),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        plugin_api: plugin_api::API_VERSION.to_owned(),
        started_at: me().started_at,
        last_seen: Utc::now(),
        stopped_at: None,
        modules: Value::Object(modules),
    }
}

/// Beat until the hub stops (nothing without a database).
pub async fn run(hub: Arc<Hub>) {
    let db = hub.database_handle();
    if !db.is_configured() {
        return;
    }
    let mut tick = tokio::time::interval(hub.config().fleet_heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        match store::beat(&db, &record(&hub)).await {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!("fleet: cannot record this hub's heartbeat: {e}");
            }
            Err(_) => {}
        }
    }
}

/// Mark this hub stopped (a clean stop).
pub async fn stopped(hub: &Hub) {
    if hub.database().is_configured()
        && let Err(e) = store::stop(hub.database(), &me().id).await
    {
        tracing::warn!("fleet: cannot record this hub's stop: {e}");
    }
}

/// A hub of the fleet.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HubView {
    pub id: String,
    pub address: String,
    pub version: String,
    pub plugin_api: String,
    pub started_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// `up`, `gone` (not heard from for HUB_FLEET_GONE_SECS) or `stopped`.
    pub state: &'static str,
    /// Whether this is the hub that answered.
    pub this: bool,
}

/// What one hub runs of a module.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ModuleOnHub {
    pub version: Option<String>,
    pub state: String,
}

/// A module across the hubs that are up.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModuleView {
    pub name: String,
    /// By hub id; a hub that is up but does not know the module is missing here.
    pub hubs: BTreeMap<String, ModuleOnHub>,
    /// The hubs that are up do not all run the same version in the same state.
    pub drift: bool,
}

/// The fleet.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FleetView {
    pub hubs: Vec<HubView>,
    pub modules: Vec<ModuleView>,
}

/// The fleet as the database knows it (this hub alone without one).
pub async fn view(hub: &Hub) -> Result<FleetView, StoreError> {
    let (rows, now) = if hub.database().is_configured() {
        store::list(hub.database()).await?
    } else {
        (vec![record(hub)], Utc::now())
    };
    let gone =
        chrono::TimeDelta::from_std(hub.config().fleet_gone).unwrap_or(chrono::TimeDelta::MAX);
    let hubs: Vec<HubView> = rows
        .iter()
        .map(|row| HubView {
            id: row.id.clone(),
            address: row.address.clone(),
            version: row.version.clone(),
            plugin_api: row.plugin_api.clone(),
            started_at: row.started_at,
            last_seen: row.last_seen,
            state: if row.stopped_at.is_some() {
                "stopped"
            } else if now - row.last_seen > gone {
                "gone"
            } else {
                "up"
            },
            this: row.id == me().id,
        })
        .collect();
    let up: Vec<&InstanceRow> = rows
        .iter()
        .zip(&hubs)
        .filter(|(_, h)| h.state == "up")
        .map(|(r, _)| r)
        .collect();
    let names: BTreeSet<String> = up
        .iter()
        .filter_map(|r| r.modules.as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    let modules = names
        .into_iter()
        .map(|name| {
            let hubs: BTreeMap<String, ModuleOnHub> = up
                .iter()
                .filter_map(|r| {
                    let m = r.modules.get(&name)?;
                    Some((
                        r.id.clone(),
                        ModuleOnHub {
                            version: m["version"].as_str().map(str::to_owned),
                            state: m["state"].as_str().unwrap_or_default().to_owned(),
                        },
                    ))
                })
                .collect();
            let first = hubs.values().next().cloned();
            let drift = hubs.len() < up.len() || hubs.values().any(|h| Some(h) != first.as_ref());
            ModuleView { name, hubs, drift }
        })
        .collect();
    Ok(FleetView { hubs, modules })
}
