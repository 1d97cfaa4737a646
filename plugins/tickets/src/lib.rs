//! `tickets`: support tickets of the company's customers, the example of a module that needs
//! another. Its manifest says `"dependencies": {"customers": "^0.1"}`: the hub starts `customers`
//! first, refuses to disable it while `tickets` runs, and stops `tickets` when `customers` goes.
//! A new ticket must name an existing customer, read from `customers_customers`.

use std::sync::Arc;

use plugin_api::{
    Ctx, Error, Health, InitContext, Json, Migration, Module, Request, Router, Value, json, params,
};
use serde::{Deserialize, Serialize};

pub struct Tickets;

#[derive(Debug, Serialize, Deserialize)]
pub struct Ticket {
    pub id: i32,
    pub customer_id: i32,
    pub subject: String,
    pub status: String,
    pub created_at: String,
}

#[derive(Deserialize)]
struct NewTicket {
    customer_id: i32,
    subject: String,
}

const COLUMNS: &str = "id, customer_id, subject, status, created_at";
const MIGRATIONS: &[Migration] = &[Migration::new(
    1,
    "init",
    include_str!("../migrations/001_init.sql"),
)];

impl Module for Tickets {
    fn init(_: &InitContext) -> Result<Self, Error> {
        Ok(Tickets)
    }

    fn routes(r: &mut Router<Self>) {
        r.get("/", Self::list)
            .post("/", Self::create)
            .get("/{id}", Self::get);
    }

    fn migrations() -> &'static [Migration] {
        MIGRATIONS
    }

    async fn health(self: Arc<Self>, ctx: Ctx) -> Health {
        match ctx
            .db()
            .query("SELECT 1 FROM tickets_tickets LIMIT 1", &[])
            .await
        {
            Ok(_) => Health::healthy(),
            Err(e) => Health::unhealthy(format!("tickets_tickets is not readable: {e}")),
        }
    }
}

impl Tickets {
    /// `GET /api/v1/tickets/`: every ticket, newest first.
    async fn list(self: Arc<Self>, req: Request) -> Result<Json<Value>, Error> {
        let tickets: Vec<Ticket> = req
            .ctx()
            .db()
            .query_as(
                &format!("SELECT {COLUMNS} FROM tickets_tickets ORDER BY id DESC LIMIT 200"),
                &[],
            )
            .await?;
        Ok(Json(json!({"tickets": tickets})))
    }

    /// `GET /api/v1/tickets/{id}`
    async fn get(self: Arc<Self>, req: Request) -> Result<Json<Ticket>, Error> {
        let id: i32 = req.param_as("id")?;
        req.ctx()
            .db()
            .query_opt_as(
                &format!("SELECT {COLUMNS} FROM tickets_tickets WHERE id = $1"),
                params![id],
            )
            .await?
            .map(Json)
            .ok_or_else(|| Error::not_found(format!("no ticket {id}")))
    }

    /// `POST /api/v1/tickets/` with `{"customer_id", "subject"}`: 201 with the ticket; 422 when
    /// the customer does not exist or the subject is empty.
    async fn create(self: Arc<Self>, req: Request) -> Result<(u16, Json<Value>), Error> {
        let new: NewTicket = req.json()?;
        let subject = new.subject.trim();
        let mut invalid = std::collections::BTreeMap::new();
        if subject.is_empty() || subject.chars().count() > 200 {
            invalid.insert("subject", "must be 1 to 200 characters".to_owned());
        }
        let customer: Option<Value> = req
            .ctx()
            .db()
            .query_opt_as(
                "SELECT id FROM customers_customers WHERE id = $1",
                params![new.customer_id],
            )
            .await?;
        if customer.is_none() {
            invalid.insert("customer_id", format!("no customer {}", new.customer_id));
        }
        if !invalid.is_empty() {
            return Err(Error::validation("the ticket is invalid").with_details(json!(invalid)));
        }
        let created = req
            .ctx()
            .db()
            .query_rows::<Ticket>(
                &format!("INSERT INTO tickets_tickets (customer_id, subject) VALUES ($1, $2) RETURNING {COLUMNS}"),
                params![new.customer_id, subject],
            )
            .await?;
        Ok((
            201,
            Json(json!({"ticket": created.rows.first(), "dry_run": created.dry_run})),
        ))
    }
}

plugin_api::export_module!(Tickets);
