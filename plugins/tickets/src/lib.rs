//! `tickets`: support tickets of the company's customers, the example of a module that needs
//! another. Its manifest says `"dependencies": {"customers": "^0.1"}`: the hub starts `customers`
//! first, refuses to disable it while `tickets` runs, and stops `tickets` when `customers` goes.
//! A new ticket must name an existing customer: it asks `customers` (`req.call`, in-process, as
//! the request's caller) rather than reading its table.

use std::sync::Arc;

use plugin_api::{
    Ctx, Error, Health, InitContext, Json, JsonSchema, Migration, Module, Path, Request, Router,
    params,
};
use serde::{Deserialize, Serialize};

pub struct Tickets;

/// A support ticket.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Ticket {
    pub id: i32,
    /// The customer it is about.
    pub customer_id: i32,
    pub subject: String,
    /// `open` or `closed`.
    pub status: String,
    /// When it was opened (RFC 3339).
    pub created_at: String,
}

/// A ticket to open.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewTicket {
    /// An existing customer's id.
    #[schemars(range(min = 1))]
    customer_id: i32,
    /// 1 to 200 characters, not only spaces.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"\S"))]
    subject: String,
}

/// The newest tickets.
#[derive(Serialize, JsonSchema)]
struct TicketList {
    tickets: Vec<Ticket>,
}

/// What opening a ticket did.
#[derive(Serialize, JsonSchema)]
struct Opened {
    /// The new ticket (with `DRY_RUN` on: as it would have been).
    ticket: Option<Ticket>,
    /// Whether the insert was rolled back because `DRY_RUN` is on.
    dry_run: bool,
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
        Self::declared_routes(r);
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

#[plugin_api::routes]
impl Tickets {
    /// The 200 newest tickets, newest first.
    #[get("/")]
    async fn list(self: Arc<Self>, req: Request) -> Result<Json<TicketList>, Error> {
        let tickets: Vec<Ticket> = req
            .ctx()
            .db()
            .query_as(
                &format!("SELECT {COLUMNS} FROM tickets_tickets ORDER BY id DESC LIMIT 200"),
                &[],
            )
            .await?;
        Ok(Json(TicketList { tickets }))
    }

    /// One ticket.
    ///
    /// 404 when there is no ticket with this id.
    #[get("/{id}", errors(404))]
    async fn get(
        self: Arc<Self>,
        Path(id): Path<i32>,
        req: Request,
    ) -> Result<Json<Ticket>, Error> {
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

    /// Open a ticket for a customer.
    ///
    /// 422 when the customer does not exist. With `READ_ONLY` on (the default) the hub refuses
    /// the write: 403 `read_only`.
    #[post("/", status = 201, errors(403))]
    async fn create(
        self: Arc<Self>,
        Json(new): Json<NewTicket>,
        req: Request,
    ) -> Result<(u16, Json<Opened>), Error> {
        // Ask the customers module (in-process, as this request's caller), not its table.
        let customer = req
            .call("customers", "GET", &format!("/{}", new.customer_id))
            .await;
        if customer.status == 404 {
            let message = format!("names no customer ({})", new.customer_id);
            return Err(Error::invalid("body", "customer_id", &message));
        }
        if let Some(error) = customer.error() {
            return Err(error);
        }
        let created = req
            .ctx()
            .db()
            .query_rows::<Ticket>(
                &format!("INSERT INTO tickets_tickets (customer_id, subject) VALUES ($1, $2) RETURNING {COLUMNS}"),
                params![new.customer_id, new.subject.trim()],
            )
            .await?;
        Ok((
            201,
            Json(Opened {
                ticket: created.rows.into_iter().next(),
                dry_run: created.dry_run,
            }),
        ))
    }
}

plugin_api::export_module!(Tickets);
