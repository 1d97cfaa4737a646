//! The JSON API under `/api/v1/tmplmod`: list, create, read, update, delete items. Errors use the
//! hub's one error shape; invalid input is 422 `validation_failed` naming each field in
//! `details`. When DRY_RUN rolled a change back, the answer carries `x-dry-run: true`.

use std::sync::Arc;

use plugin_api::{Error, IntoResponse, Json, Request, Response, json};
use serde::Deserialize;

use crate::Tmplmod;
use crate::items::{self, FieldErrors, ItemInput};

#[derive(Deserialize)]
struct Page {
    limit: Option<i64>,
    offset: Option<i64>,
}

fn invalid(errors: FieldErrors) -> Error {
    Error::validation("the item is invalid").with_details(json!(errors))
}

fn not_found(id: i32) -> Error {
    Error::not_found(format!("no item {id}"))
}

/// `value` as JSON with `status`, marked when DRY_RUN rolled the change back.
fn answer(status: u16, value: &impl serde::Serialize, dry_run: bool) -> Response {
    let response = Response::json(status, value);
    if dry_run {
        response.with_header("x-dry-run", "true")
    } else {
        response
    }
}

impl Tmplmod {
    /// `GET /about` (public): the module and who is asking (`null` when anonymous).
    pub(crate) async fn about(self: Arc<Self>, req: Request) -> Json<plugin_api::Value> {
        let user = req.user();
        Json(json!({
            "module": req.ctx().module_name(),
            "version": env!("CARGO_PKG_VERSION"),
            "user": user.name(),
            "can_write": user.can("items.write"),
        }))
    }

    /// `GET /items?limit&offset`
    pub(crate) async fn list_items(
        self: Arc<Self>,
        req: Request,
    ) -> Result<Json<plugin_api::Value>, Error> {
        let page: Page = req.query()?;
        let limit = page.limit.unwrap_or(self.page_size).clamp(1, 500);
        let offset = page.offset.unwrap_or(0).max(0);
        let items = items::list(req.ctx(), limit, offset).await?;
        Ok(Json(
            json!({"items": items, "limit": limit, "offset": offset}),
        ))
    }

    /// `POST /items` → 201 with the item and its id.
    pub(crate) async fn create_item(self: Arc<Self>, req: Request) -> Result<Response, Error> {
        let input = req.json::<ItemInput>()?.validate().map_err(invalid)?;
        let created = items::create(req.ctx(), &input).await?;
        let item = created
            .rows
            .first()
            .ok_or_else(|| Error::internal("the insert returned no row"))?;
        // Kept in the hub's audit log with the caller, also when DRY_RUN rolled the insert back.
        req.audit(
            "item.create",
            &item.id.to_string(),
            json!({"title": input.title, "dry_run": created.dry_run}),
        );
        Ok(answer(201, item, created.dry_run))
    }

    /// `GET /items/{id}`
    pub(crate) async fn get_item(self: Arc<Self>, req: Request) -> Result<Response, Error> {
        let id: i32 = req.param_as("id")?;
        let item = items::get(req.ctx(), id)
            .await?
            .ok_or_else(|| not_found(id))?;
        Ok(Json(item).into_response())
    }

    /// `PUT /items/{id}` → 200 with the item.
    pub(crate) async fn update_item(self: Arc<Self>, req: Request) -> Result<Response, Error> {
        let id: i32 = req.param_as("id")?;
        let input = req.json::<ItemInput>()?.validate().map_err(invalid)?;
        let updated = items::update(req.ctx(), id, &input).await?;
        let item = updated.rows.first().ok_or_else(|| not_found(id))?;
        req.audit(
            "item.update",
            &id.to_string(),
            json!({"dry_run": updated.dry_run}),
        );
        Ok(answer(200, item, updated.dry_run))
    }

    /// `DELETE /items/{id}` → 204.
    pub(crate) async fn delete_item(self: Arc<Self>, req: Request) -> Result<Response, Error> {
        let id: i32 = req.param_as("id")?;
        let deleted = items::delete(req.ctx(), id).await?;
        if deleted.rows_affected == 0 {
            return Err(not_found(id));
        }
        req.audit(
            "item.delete",
            &id.to_string(),
            json!({"dry_run": deleted.dry_run}),
        );
        let response = Response::no_content();
        Ok(if deleted.dry_run {
            response.with_header("x-dry-run", "true")
        } else {
            response
        })
    }
}
