//! The JSON API under `/api/v1/tmplmod`: list, create, read, update, delete items. Each handler
//! takes typed arguments (`Path`, `Query`, `Json`): the hub checks them against their schemas
//! before the handler runs (400 for a value that is not of its type, 422 `validation_failed`
//! naming each field that breaks a rule), and the OpenAPI document at `/api/v1/openapi.json`
//! shows them with the handlers' doc comments. When DRY_RUN rolled a change back, the answer
//! carries `x-dry-run: true`.

use std::sync::Arc;
use std::time::Duration;

use plugin_api::{Error, Json, JsonSchema, Path, Query, Request, User, json};
use serde::{Deserialize, Serialize};

use crate::Tmplmod;
use crate::items::{self, FieldErrors, Item, ItemInput};

/// A page of the list.
#[derive(Deserialize, JsonSchema)]
struct Page {
    /// How many (1 to 500; the module's `page_size` when left out).
    #[schemars(range(min = 1, max = 500))]
    limit: Option<i64>,
    /// How many to skip.
    #[schemars(range(min = 0))]
    offset: Option<i64>,
}

/// The module, and who is asking.
#[derive(Serialize, JsonSchema)]
struct About {
    module: String,
    version: String,
    /// The caller's name; `null` when anonymous.
    user: Option<String>,
    /// Whether the caller may create, change and delete items.
    can_write: bool,
}

/// What the upstream system answered.
#[derive(Serialize, JsonSchema)]
struct Upstream {
    /// Its HTTP status.
    status: u16,
    /// The size of its answer.
    bytes: usize,
}

/// One page of items.
#[derive(Serialize, JsonSchema)]
struct ItemList {
    items: Vec<Item>,
    limit: i64,
    offset: i64,
}

/// `x-dry-run`: whether DRY_RUN rolled the change back.
type DryRun = [(&'static str, &'static str); 1];

fn dry_run(rolled_back: bool) -> DryRun {
    [("x-dry-run", if rolled_back { "true" } else { "false" })]
}

fn invalid(errors: FieldErrors) -> Error {
    let details: Vec<_> = errors
        .iter()
        .map(|(field, message)| json!({"location": "body", "field": field, "message": message}))
        .collect();
    Error::validation("the item is invalid").with_details(json!(details))
}

fn not_found(id: i32) -> Error {
    Error::not_found(format!("no item {id}"))
}

#[plugin_api::routes]
impl Tmplmod {
    /// The module, and who is asking.
    ///
    /// Public: `user` is `null` for an anonymous caller.
    #[get("/about", public)]
    async fn about(self: Arc<Self>, user: User, req: Request) -> Json<About> {
        Json(About {
            module: req.ctx().module_name().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            user: user.name().map(str::to_owned),
            can_write: user.can("items.write"),
        })
    }

    /// What the upstream system says: a GET of `config.status_url` through the hub's HTTP
    /// client, which allows only the hosts module.json's `outbound` names.
    ///
    /// 409 `not_configured` until `status_url` is set; the hub's refusal otherwise (403
    /// `outbound_not_allowed` naming the host to add, 504 `outbound_timeout`, 502).
    #[get("/upstream", errors(409, 403, 502, 504))]
    async fn upstream(self: Arc<Self>, req: Request) -> Result<Json<Upstream>, Error> {
        if self.status_url.is_empty() {
            return Err(Error::new(
                409,
                "not_configured",
                "set config.status_url (or MODULES__TMPLMOD__STATUS_URL) and add its host to \"outbound\" in module.json",
            ));
        }
        let answer = req
            .ctx()
            .http()
            .get(&self.status_url)
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        Ok(Json(Upstream {
            status: answer.status,
            bytes: answer.body.len(),
        }))
    }

    /// Items by id, a page at a time.
    #[get("/items")]
    async fn list_items(
        self: Arc<Self>,
        Query(page): Query<Page>,
        req: Request,
    ) -> Result<Json<ItemList>, Error> {
        let limit = page.limit.unwrap_or(self.page_size);
        let offset = page.offset.unwrap_or(0);
        let items = items::list(req.ctx(), limit, offset).await?;
        Ok(Json(ItemList {
            items,
            limit,
            offset,
        }))
    }

    /// Create an item.
    ///
    /// Answers 201 with the item. With READ_ONLY on the hub refuses the write (403
    /// `read_only`); with DRY_RUN on it is rolled back and the answer says `x-dry-run: true`.
    #[post("/items", require = "items.write", status = 201, errors(403))]
    async fn create_item(
        self: Arc<Self>,
        Json(input): Json<ItemInput>,
        req: Request,
    ) -> Result<(u16, DryRun, Json<Item>), Error> {
        let input = input.validate().map_err(invalid)?;
        let created = items::create(req.ctx(), &input).await?;
        let item = created
            .rows
            .into_iter()
            .next()
            .ok_or_else(|| Error::internal("the insert returned no row"))?;
        // Kept in the hub's audit log with the caller, also when DRY_RUN rolled the insert back.
        req.audit(
            "item.create",
            &item.id.to_string(),
            json!({"title": input.title, "dry_run": created.dry_run}),
        );
        Ok((201, dry_run(created.dry_run), Json(item)))
    }

    /// One item.
    #[get("/items/{id}", errors(404))]
    async fn get_item(
        self: Arc<Self>,
        Path(id): Path<i32>,
        req: Request,
    ) -> Result<Json<Item>, Error> {
        let item = items::get(req.ctx(), id)
            .await?
            .ok_or_else(|| not_found(id))?;
        Ok(Json(item))
    }

    /// Change an item.
    ///
    /// Answers 200 with the item, 404 when there is none with this id.
    #[put("/items/{id}", require = "items.write", errors(403, 404))]
    async fn update_item(
        self: Arc<Self>,
        Path(id): Path<i32>,
        Json(input): Json<ItemInput>,
        req: Request,
    ) -> Result<(u16, DryRun, Json<Item>), Error> {
        let input = input.validate().map_err(invalid)?;
        let updated = items::update(req.ctx(), id, &input).await?;
        let item = updated
            .rows
            .into_iter()
            .next()
            .ok_or_else(|| not_found(id))?;
        req.audit(
            "item.update",
            &id.to_string(),
            json!({"dry_run": updated.dry_run}),
        );
        Ok((200, dry_run(updated.dry_run), Json(item)))
    }

    /// Delete an item.
    ///
    /// Answers 204, or 404 when there is none with this id.
    #[delete("/items/{id}", require = "items.write", errors(403, 404))]
    async fn delete_item(
        self: Arc<Self>,
        Path(id): Path<i32>,
        req: Request,
    ) -> Result<(u16, DryRun, ()), Error> {
        let deleted = items::delete(req.ctx(), id).await?;
        if deleted.rows_affected == 0 {
            return Err(not_found(id));
        }
        req.audit(
            "item.delete",
            &id.to_string(),
            json!({"dry_run": deleted.dry_run}),
        );
        Ok((204, dry_run(deleted.dry_run), ()))
    }
}
