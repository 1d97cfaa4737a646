//! This hub among the hubs on its database: every `HUB_FLEET_HEARTBEAT_SECS` (and after each
//! change it applied) it records itself (address, versions, start) and each of its modules'
//! version, state and applied generation in `hub_instances`; at a clean stop it marks itself
//! stopped. `GET /api/v1/fleet` reads them back: the hubs, up, gone (not heard from for
//! `HUB_FLEET_GONE_SECS`) or stopped, and per module what each hub that is up runs, marked as
//! drift where they differ from each other or from the fleet's desired state.
//!
//! In fleet mode (`HUB_FLEET=true`) it also follows the fleet's state: a connection of its own
//! LISTENs on `hub_fleet` (named `hub-fleet <id>` in `pg_stat_activity`); each notified module
//! is applied (`Hub::apply_desired`, one apply at a time per module, a notification during an
//! apply runs it once more after). When the connection ends, it reconnects and applies the
//! whole state again (`Hub::resync`): notifications sent meanwhile are lost, the rows are not.
//! Contract migrations that wait run once every live hub serves their version
//! (`HUB_FLEET_AUTO_FINISH`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::db::fleet::{self as store, InstanceRow};
use crate::db::identity::StoreError;
use crate::lifecycle::Hub;

/// This process as the fleet names it.
struct Me {
    id: String,
    host: String,
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
            host,
            started_at,
        }
    })
}

/// Where the hub listens: `http://ip:port`, or this machine's name for an address of every
/// interface (`0.0.0.0`).
static LISTENING: OnceLock<String> = OnceLock::new();

/// The hub listens at `address`.
pub fn listening_on(address: std::net::SocketAddr) {
    let shown = match address.ip().is_unspecified() {
        true => format!("http://{}:{}", me().host, address.port()),
        false => format!("http://{address}"),
    };
    let _ = LISTENING.set(shown);
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
                json!({"version": version, "state": entry.kind().as_str(),
                    "generation": hub.applied_generation(&entry.name)}),
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
        let ticked = tokio::select! {
            _ = tick.tick() => true,
            () = beat_now().notified() => false,
        };
        if ticked && hub.in_fleet() && hub.config().fleet_auto_finish {
            finish_where_due(&hub).await;
        }
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

/// Wakes the heartbeat: this hub applied a change.
fn beat_now() -> &'static tokio::sync::Notify {
    static BEAT: OnceLock<tokio::sync::Notify> = OnceLock::new();
    BEAT.get_or_init(tokio::sync::Notify::new)
}

/// The listener's `application_name`, by which an operator finds its connection.
pub fn listener_name() -> String {
    format!("hub-fleet {}", me().id)
}

/// Fleet mode: listen for changes of the fleet's state and apply the whole state once; then
/// keep following it in the background (reconnecting when the connection ends). Without a
/// database at first, the background task waits for it.
pub async fn join(hub: Arc<Hub>) {
    if !hub.in_fleet() {
        return;
    }
    let first = match store::listen(hub.database(), &listener_name()).await {
        Ok(listener) => {
            if let Err(e) = hub.resync().await {
                tracing::warn!("fleet: cannot read the fleet's state: {e}");
            }
            tracing::info!("fleet: following the fleet's state in PostgreSQL (channel hub_fleet)");
            beat_now().notify_one();
            Some(listener)
        }
        Err(e) => {
            tracing::warn!(
                "fleet: cannot listen for the fleet's changes yet: {e}; retrying every {} ms (HUB_DB_RETRY_MS)",
                hub.config().db_retry.as_millis()
            );
            None
        }
    };
    tokio::spawn(follow(hub, first));
}

/// Apply each notified module; reconnect and resync when the connection ends.
async fn follow(hub: Arc<Hub>, mut listener: Option<store::Listener>) {
    loop {
        let mut current = match listener.take() {
            Some(listener) => listener,
            None => {
                let listener = loop {
                    match store::listen(hub.database(), &listener_name()).await {
                        Ok(listener) => break listener,
                        Err(_) => tokio::time::sleep(hub.config().db_retry).await,
                    }
                };
                tracing::info!(
                    "fleet: listening again; applying the whole fleet state (changes may have been missed)"
                );
                if let Err(e) = hub.resync().await {
                    tracing::warn!("fleet: cannot read the fleet's state: {e}");
                }
                beat_now().notify_one();
                listener
            }
        };
        while let Some(name) = current.next().await {
            if name == "*identity" {
                // Users, tokens, sessions or roles changed on some hub.
                let identity = hub.identity().clone();
                tokio::spawn(async move {
                    if let Err(e) = identity.refresh(false).await {
                        tracing::warn!("fleet: cannot read users and tokens again: {e}");
                    }
                });
            } else if crate::names::validate(&name).is_ok() {
                schedule(&hub, name);
            }
        }
        tracing::warn!("fleet: the listener's connection ended: reconnecting");
    }
}

/// Apply module `name` in the background: one apply at a time per module; a notification that
/// comes during one runs it once more after.
fn schedule(hub: &Arc<Hub>, name: String) {
    static BUSY: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    let busy = BUSY.get_or_init(Mutex::default);
    {
        let mut busy = busy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(again) = busy.get_mut(&name) {
            *again = true;
            return;
        }
        busy.insert(name.clone(), false);
    }
    let hub = hub.clone();
    tokio::spawn(async move {
        loop {
            hub.apply_desired(&name).await;
            beat_now().notify_one();
            let mut busy = busy.lock().unwrap_or_else(|e| e.into_inner());
            if busy.get(&name) == Some(&true) {
                busy.insert(name.clone(), false);
                continue;
            }
            busy.remove(&name);
            break;
        }
    });
}

/// Run the contract migrations of each module whose version every live hub serves now.
async fn finish_where_due(hub: &Hub) {
    let Ok(rows) = hub.desired_states().await else {
        return;
    };
    let due: Vec<_> = rows.iter().filter(|r| r.contract == "pending").collect();
    if due.is_empty() {
        return;
    }
    let Ok(view) = view(hub).await else {
        return;
    };
    for row in due {
        if behind(&view, &row.name, &row.version).is_empty() {
            match hub.finish_migrations(&row.name).await {
                Ok(applied) => {
                    tracing::info!(module = %row.name, "fleet: every hub serves {} {}: its contract migrations ran ({})", row.name, row.version, if applied.is_empty() { "already applied".to_owned() } else { applied.join(", ") })
                }
                Err(e) => {
                    tracing::warn!(module = %row.name, "fleet: the contract migrations of {} {} did not run: {e}", row.name, row.version)
                }
            }
        }
    }
}

/// The hubs that are up and do not serve `version` of module `name` (by id).
pub fn behind(view: &FleetView, name: &str, version: &str) -> Vec<String> {
    let up: Vec<&HubView> = view.hubs.iter().filter(|h| h.state == "up").collect();
    let module = view.modules.iter().find(|m| m.name == name);
    up.iter()
        .filter(|h| {
            !module
                .and_then(|m| m.hubs.get(&h.id))
                .is_some_and(|on| on.version.as_deref() == Some(version) && on.state == "running")
        })
        .map(|h| h.id.clone())
        .collect()
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
    /// Fleet mode: the generation of the module's desired state the hub applied last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

/// Fleet mode: what the fleet's state says of a module.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DesiredView {
    pub version: String,
    pub enabled: bool,
    /// Grows by one with every change.
    pub generation: i64,
    /// `all` or `rolling`.
    pub rollout: String,
    /// `pending`: its contract migrations wait until every live hub serves the version.
    pub contract: String,
    /// Why a rolling upgrade stopped.
    pub halted: Option<String>,
}

/// A module across the hubs that are up.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModuleView {
    pub name: String,
    /// By hub id; a hub that is up but does not know the module is missing here.
    pub hubs: BTreeMap<String, ModuleOnHub>,
    /// Fleet mode: the state every hub should reach.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired: Option<DesiredView>,
    /// The hubs that are up do not all run the same version in the same state (in fleet mode:
    /// the one the fleet's state says).
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
    let desired: BTreeMap<String, DesiredView> = match hub.in_fleet() {
        true => hub
            .desired_states()
            .await
            .map_err(StoreError::Query)?
            .into_iter()
            .map(|r| {
                (
                    r.name,
                    DesiredView {
                        version: r.version,
                        // As module.json reads it: absent is off.
                        enabled: r.manifest["enabled"].as_bool().unwrap_or(false),
                        generation: r.generation,
                        rollout: r.rollout,
                        contract: r.contract,
                        halted: r.halted,
                    },
                )
            })
            .collect(),
        false => BTreeMap::new(),
    };
    let names: BTreeSet<String> = up
        .iter()
        .filter_map(|r| r.modules.as_object())
        .flat_map(|m| m.keys().cloned())
        .chain(desired.keys().cloned())
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
                            generation: m["generation"].as_i64(),
                        },
                    ))
                })
                .collect();
            let desired = desired.get(&name).cloned();
            let first = hubs.values().next().cloned();
            let differ =
                |a: &ModuleOnHub, b: &ModuleOnHub| a.version != b.version || a.state != b.state;
            let mut drift = hubs.len() < up.len()
                || hubs
                    .values()
                    .any(|h| first.as_ref().is_some_and(|f| differ(h, f)));
            if let Some(want) = &desired {
                let state = if want.enabled { "running" } else { "disabled" };
                drift |= hubs.values().any(|h| {
                    h.version.as_deref() != Some(want.version.as_str()) || h.state != state
                });
            }
            ModuleView {
                name,
                hubs,
                desired,
                drift,
            }
        })
        .collect();
    Ok(FleetView { hubs, modules })
}
