//! `customers`: the customer register, the example of a module with data. Its table comes from
//! its migration (compiled in); it reads and writes through the hub's database gateway, so the
//! safety switches hold: with `READ_ONLY` on (the default) creating a customer answers 403.

use std::sync::Arc;

use plugin_api::{
    Ctx, Error, Health, InitContext, Json, Migration, Module, Request, Router, Value, json, params,
};
use serde::{Deserialize, Serialize};

pub struct Customers {
    page_size: i64,
}

/// A customer as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Customer {
    pub id: i32,
    pub name: String,
    pub email: Option<String>,
    pub created_at: String,
}

#[derive(Deserialize)]
struct NewCustomer {
    name: String,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

const COLUMNS: &str = "id, name, email, created_at";

/// Compiled in: the module ships as one library.
const MIGRATIONS: &[Migration] = &[Migration::new(
    1,
    "init",
    include_str!("../migrations/001_init.sql"),
)];

impl Module for Customers {
    fn init(ctx: &InitContext) -> Result<Self, Error> {
        Ok(Customers {
            page_size: ctx.config_or("page_size", 50)?,
        })
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
            .query("SELECT 1 FROM customers_customers LIMIT 1", &[])
            .await
        {
            Ok(_) => Health::healthy(),
            Err(e) => Health::unhealthy(format!("customers_customers is not readable: {e}")),
        }
    }
}

impl Customers {
    /// `GET /api/v1/customers/?limit&offset`: customers by id.
    async fn list(self: Arc<Self>, req: Request) -> Result<Json<Value>, Error> {
        let page: Page = req.query()?;
        let limit = page.limit.unwrap_or(self.page_size).clamp(1, 500);
        let offset = page.offset.unwrap_or(0).max(0);
        let customers: Vec<Customer> = req
            .ctx()
            .db()
            .query_as(
                &format!(
                    "SELECT {COLUMNS} FROM customers_customers ORDER BY id LIMIT $1 OFFSET $2"
                ),
                params![limit, offset],
            )
            .await?;
        Ok(Json(
            json!({"customers": customers, "limit": limit, "offset": offset}),
        ))
    }

    /// `GET /api/v1/customers/{id}`.
    async fn get(self: Arc<Self>, req: Request) -> Result<Json<Customer>, Error> {
        let id: i32 = req.param_as("id")?;
        req.ctx()
            .db()
            .query_opt_as(
                &format!("SELECT {COLUMNS} FROM customers_customers WHERE id = $1"),
                params![id],
            )
            .await?
            .map(Json)
            .ok_or_else(|| Error::not_found(format!("no customer {id}")))
    }

    /// `POST /api/v1/customers/` with `{"name", "email"?}`: 201 with the customer.
    async fn create(self: Arc<Self>, req: Request) -> Result<(u16, Json<Value>), Error> {
        let new: NewCustomer = req.json()?;
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(Error::validation("the customer is invalid")
                .with_details(json!({"name": "must be 1 to 200 characters"})));
        }
        let created = req
            .ctx()
            .db()
            .query_rows::<Customer>(
                &format!(
                    "INSERT INTO customers_customers (name, email) VALUES ($1, $2) RETURNING {COLUMNS}"
                ),
                params![name, new.email],
            )
            .await?;
        Ok((
            201,
            Json(json!({"customer": created.rows.first(), "dry_run": created.dry_run})),
        ))
    }
}

plugin_api::export_module!(Customers);
