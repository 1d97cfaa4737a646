//! The audit log's writer: entries are queued (never written by the caller's own transaction, so
//! a rolled-back `DRY_RUN` call keeps its entry) and written in batches of one statement by a task
//! of the hub's. Refused permissions and failed credentials are counted per actor and written as
//! one row per interval, so a flood of refusals does not become a flood of rows. Every entry is
//! also a line of the hub's log (target `audit`): without PostgreSQL, that is where it stays.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::Utc;
use serde_json::{Value, json};

use crate::db::Database;
use crate::db::identity::{self as store, NewAudit};

/// The most entries kept in memory while the database cannot take them.
const MAX_PENDING: usize = 10_000;

/// Who did something, as the audit log names them.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `user:<id>`, `token:<id>`, `admin`, `watcher`, `hub`, `anonymous`.
    pub id: String,
    pub name: Option<String>,
    pub address: Option<String>,
}

impl Actor {
    pub fn system(id: &str) -> Actor {
        Actor {
            id: id.to_owned(),
            name: None,
            address: None,
        }
    }
}

/// One thing that happened.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub action: &'a str,
    pub module: Option<&'a str>,
    pub target: Option<&'a str>,
    /// `ok`, `failed` or `denied`.
    pub outcome: &'a str,
    pub details: Option<Value>,
}

/// Counted refusals, by (actor, address, action, module, what).
type Counts = HashMap<(String, Option<String>, String, Option<String>, String), u64>;

#[derive(Default)]
pub struct Auditor {
    pending: Mutex<Vec<NewAudit>>,
    counted: Mutex<Counts>,
    /// Held while a batch is taken and written: batches reach the table in the order they were
    /// queued, and a flush that returns has seen every entry queued before it began (also one
    /// the ticker was writing).
    writing: tokio::sync::Mutex<()>,
}

impl Auditor {
    /// Queue `event` by `actor`; written with the next batch.
    pub fn record(&self, actor: &Actor, event: Event<'_>) {
        tracing::info!(
            target: "audit",
            actor = %actor.id,
            action = event.action,
            module = event.module.unwrap_or_default(),
            target = event.target.unwrap_or_default(),
            outcome = event.outcome,
            "{} {}",
            event.action,
            event.outcome
        );
        let row = NewAudit {
            at: Utc::now(),
            actor: actor.id.clone(),
            actor_name: actor.name.clone(),
            address: actor.address.clone(),
            action: event.action.to_owned(),
            module: event.module.map(str::to_owned),
            target: event.target.map(str::to_owned),
            outcome: event.outcome.to_owned(),
            details: event.details,
            request_id: crate::logging::request_id().map(|id| id.as_str().to_owned()),
        };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() >= MAX_PENDING {
            tracing::warn!(target: "audit", "the audit queue is full ({MAX_PENDING} entries the database has not taken): this entry is only in the log");
            return;
        }
        pending.push(row);
    }

    /// Count one refusal (`action`, e.g. `permission.denied`, of `what`, e.g. the permission);
    /// written as one row per (actor, action, module, what) with the count.
    pub fn count(&self, actor: &Actor, action: &str, module: Option<&str>, what: &str) {
        let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        *counted
            .entry((
                actor.id.clone(),
                actor.address.clone(),
                action.to_owned(),
                module.map(str::to_owned),
                what.to_owned(),
            ))
            .or_default() += 1;
    }

    /// Write what is queued (and the counts) in one statement; kept for the next time when the
    /// database cannot take it.
    pub async fn flush(&self, db: &Database) {
        let _writing = self.writing.lock().await;
        let counted = std::mem::take(&mut *self.counted.lock().unwrap_or_else(|e| e.into_inner()));
        let mut rows = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        for ((actor, address, action, module, what), count) in counted {
            tracing::info!(target: "audit", actor = %actor, action = %action, what = %what, count, "{action} denied");
            rows.push(NewAudit {
                at: Utc::now(),
                actor,
                actor_name: None,
                address,
                action,
                module,
                target: Some(what),
                outcome: "denied".to_owned(),
                details: Some(json!({"count": count})),
                request_id: None,
            });
        }
        if rows.is_empty() || !db.is_configured() {
            return;
        }
        if let Err(e) = store::insert_audit(db, &rows).await {
            tracing::warn!(target: "audit", "cannot write {} audit entries yet: {e}", rows.len());
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let room = MAX_PENDING.saturating_sub(pending.len());
            rows.truncate(room);
            rows.append(&mut pending);
            *pending = rows;
        }
    }
}
