//! The HTML views under `/modules/tmplmod`: the list, an item, and the forms to create, edit and
//! delete one. A valid form is saved and the browser redirected (POST, then redirect); an invalid
//! one is shown again with the error of each field. The hub renders the templates inside its
//! layout, which shows a banner while READ_ONLY or DRY_RUN is on.

use std::sync::Arc;

use plugin_api::{DbErrorKind, Error, Form, JsonSchema, Path, Request, User, View, json};
use serde::Deserialize;

use crate::Tmplmod;
use crate::items::{self, FieldErrors, ItemInput};

/// A submitted form: the checkbox is only sent when checked. Every field may be missing or
/// empty: the view shows the form again with the error of each field (the hub's own check would
/// answer with an error page instead).
#[derive(Deserialize, JsonSchema)]
struct ItemForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    done: Option<String>,
}

impl From<ItemForm> for ItemInput {
    fn from(form: ItemForm) -> ItemInput {
        ItemInput {
            title: form.title,
            description: form.description,
            done: form.done.is_some(),
        }
    }
}

/// The form again, with `values`, the errors of its fields, and a message.
fn form_page(
    item_id: Option<i32>,
    values: &ItemInput,
    errors: &FieldErrors,
    error: Option<String>,
    notice: Option<String>,
) -> View {
    View::page(
        "form.html",
        json!({"item_id": item_id, "values": values, "errors": errors, "error": error, "notice": notice}),
    )
}

/// What to tell the user when the database refused or rolled back a change.
fn refused(e: plugin_api::DbError) -> Result<String, Error> {
    match e.kind {
        DbErrorKind::ReadOnly => Ok("READ_ONLY is on: nothing was saved.".to_owned()),
        _ => Err(e.into()),
    }
}

fn home(req: &Request) -> String {
    format!("/modules/{}/", req.ctx().module_name())
}

#[plugin_api::routes(view_routes)]
impl Tmplmod {
    /// Every item.
    #[page("/")]
    async fn index_page(self: Arc<Self>, user: User, req: Request) -> Result<View, Error> {
        let items = items::list(req.ctx(), self.page_size, 0).await?;
        let can_write = user.can("items.write");
        Ok(View::page(
            "index.html",
            json!({"title": self.title, "items": items, "can_write": can_write}),
        ))
    }

    /// One item.
    #[page("/items/{id}")]
    async fn item_page(self: Arc<Self>, Path(id): Path<i32>, req: Request) -> Result<View, Error> {
        let item = items::get(req.ctx(), id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no item {id}")))?;
        Ok(View::page("item.html", json!({"item": item})))
    }

    /// The form for a new item.
    #[page("/items/new", require = "items.write")]
    async fn new_page(self: Arc<Self>) -> View {
        form_page(None, &ItemInput::default(), &FieldErrors::new(), None, None)
    }

    /// Create the item of the form.
    #[form("/items/new", require = "items.write")]
    async fn create_form(
        self: Arc<Self>,
        Form(form): Form<ItemForm>,
        req: Request,
    ) -> Result<View, Error> {
        let input: ItemInput = form.into();
        let input = match input.clone().validate() {
            Ok(input) => input,
            Err(errors) => return Ok(form_page(None, &input, &errors, None, None).with_status(422)),
        };
        match items::create(req.ctx(), &input).await {
            Ok(created) if created.dry_run => {
                let notice =
                    "DRY_RUN is on: the item would have been created; nothing was kept.".to_owned();
                Ok(form_page(
                    None,
                    &input,
                    &FieldErrors::new(),
                    None,
                    Some(notice),
                ))
            }
            Ok(created) => match created.rows.first() {
                Some(item) => Ok(View::redirect(format!("{}items/{}", home(&req), item.id))),
                None => Err(Error::internal("the insert returned no row")),
            },
            Err(e) => Ok(
                form_page(None, &input, &FieldErrors::new(), Some(refused(e)?), None)
                    .with_status(403),
            ),
        }
    }

    /// The form to change an item.
    #[page("/items/{id}/edit", require = "items.write")]
    async fn edit_page(self: Arc<Self>, Path(id): Path<i32>, req: Request) -> Result<View, Error> {
        let item = items::get(req.ctx(), id)
            .await?
            .ok_or_else(|| Error::not_found(format!("no item {id}")))?;
        let values = ItemInput {
            title: item.title,
            description: item.description,
            done: item.done,
        };
        Ok(form_page(
            Some(id),
            &values,
            &FieldErrors::new(),
            None,
            None,
        ))
    }

    /// Change the item as the form says.
    #[form("/items/{id}/edit", require = "items.write")]
    async fn update_form(
        self: Arc<Self>,
        Path(id): Path<i32>,
        Form(form): Form<ItemForm>,
        req: Request,
    ) -> Result<View, Error> {
        let input: ItemInput = form.into();
        let input = match input.clone().validate() {
            Ok(input) => input,
            Err(errors) => {
                return Ok(form_page(Some(id), &input, &errors, None, None).with_status(422));
            }
        };
        match items::update(req.ctx(), id, &input).await {
            Ok(updated) if updated.rows.is_empty() => {
                Err(Error::not_found(format!("no item {id}")))
            }
            Ok(updated) if updated.dry_run => {
                let notice =
                    "DRY_RUN is on: the item would have been changed; nothing was kept.".to_owned();
                Ok(form_page(
                    Some(id),
                    &input,
                    &FieldErrors::new(),
                    None,
                    Some(notice),
                ))
            }
            Ok(_) => Ok(View::redirect(format!("{}items/{id}", home(&req)))),
            Err(e) => Ok(form_page(
                Some(id),
                &input,
                &FieldErrors::new(),
                Some(refused(e)?),
                None,
            )
            .with_status(403)),
        }
    }

    /// Delete an item.
    #[form("/items/{id}/delete", require = "items.write")]
    async fn delete_form(
        self: Arc<Self>,
        Path(id): Path<i32>,
        req: Request,
    ) -> Result<View, Error> {
        items::delete(req.ctx(), id).await?;
        Ok(View::redirect(home(&req)))
    }
}
