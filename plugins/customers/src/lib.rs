//! `customers`: the customer register, the example of a module with data. Its table comes from
//! its migration (compiled in); it reads and writes through the hub's database gateway, so the
//! safety switches hold: with `READ_ONLY` on (the default) creating a customer answers 403.

use std::sync::Arc;

use plugin_api::{
    Ctx, Error, Health, InitContext, Json, JsonSchema, Migration, Module, Path, Query, Request,
    Router, params,
};
use serde::{Deserialize, Serialize};

pub struct Customers {
    page_size: i64,
}

/// A customer as the API shows it.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Customer {
    pub id: i32,
    pub name: String,
    pub email: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// A customer to create.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NewCustomer {
    /// 1 to 200 characters, not only spaces.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"\S"))]
    name: String,
    /// An address to write to, up to 320 characters.
    #[serde(default)]
    #[schemars(length(max = 320))]
    email: Option<String>,
}

/// A page of the list.
#[derive(Deserialize, JsonSchema)]
struct Page {
    /// How many (1 to 500; the module's `page_size` when left out).
    #[serde(default)]
    #[schemars(range(min = 1, max = 500))]
    limit: Option<i64>,
    /// How many to skip.
    #[serde(default)]
    #[schemars(range(min = 0))]
    offset: Option<i64>,
}

/// One page of customers.
#[derive(Serialize, JsonSchema)]
struct CustomerList {
    customers: Vec<Customer>,
    limit: i64,
    offset: i64,
}

/// What creating a customer did.
#[derive(Serialize, JsonSchema)]
struct Created {
    /// The new customer (with `DRY_RUN` on: as it would have been).
    customer: Option<Customer>,
    /// Whether the insert was rolled back because `DRY_RUN` is on.
    dry_run: bool,
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
        Self::declared_routes(r);
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

#[plugin_api::routes]
impl Customers {
    /// Customers by id, a page at a time.
    #[get("/")]
    async fn list(
        self: Arc<Self>,
        Query(page): Query<Page>,
        req: Request,
    ) -> Result<Json<CustomerList>, Error> {
        let limit = page.limit.unwrap_or(self.page_size).clamp(1, 500);
        let offset = page.offset.unwrap_or(0);
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
        Ok(Json(CustomerList {
            customers,
            limit,
            offset,
        }))
    }

    /// One customer.
    ///
    /// 404 when there is no customer with this id.
    #[get("/{id}", errors(404))]
    async fn get(
        self: Arc<Self>,
        Path(id): Path<i32>,
        req: Request,
    ) -> Result<Json<Customer>, Error> {
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

    /// Create a customer.
    ///
    /// With `READ_ONLY` on (the default) the hub refuses the write: 403 `read_only`. With
    /// `DRY_RUN` on, the insert is rolled back and the answer says `"dry_run": true`.
    #[post("/", status = 201, errors(403))]
    async fn create(
        self: Arc<Self>,
        Json(new): Json<NewCustomer>,
        req: Request,
    ) -> Result<(u16, Json<Created>), Error> {
        let created = req
            .ctx()
            .db()
            .query_rows::<Customer>(
                &format!(
                    "INSERT INTO customers_customers (name, email) VALUES ($1, $2) RETURNING {COLUMNS}"
                ),
                params![new.name.trim(), new.email],
            )
            .await?;
        Ok((
            201,
            Json(Created {
                customer: created.rows.into_iter().next(),
                dry_run: created.dry_run,
            }),
        ))
    }
}

plugin_api::export_module!(Customers);
