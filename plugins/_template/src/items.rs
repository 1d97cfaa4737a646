//! Items: the data, its validation and its queries, through the hub's database gateway. The
//! safety switches are enforced by PostgreSQL: under READ_ONLY a write fails (403 `read_only`),
//! under DRY_RUN it is rolled back (`Rows::dry_run`).

use std::collections::BTreeMap;

use plugin_api::{Ctx, DbError, JsonSchema, Rows, params};
use serde::{Deserialize, Serialize};

/// An item as the API and the pages show it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Item {
    pub id: i32,
    pub title: String,
    pub description: String,
    pub done: bool,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

/// What a client sends to create or change an item. Its rules are on its fields: the hub checks
/// them before the handler runs (422 naming each field), and the OpenAPI document shows them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    /// 1 to 200 characters, not only spaces.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"\S"))]
    pub title: String,
    /// Up to 2000 characters.
    #[serde(default)]
    #[schemars(length(max = 2000))]
    pub description: String,
    #[serde(default)]
    pub done: bool,
}

/// Field → what is wrong with it.
pub type FieldErrors = BTreeMap<&'static str, String>;

impl ItemInput {
    /// The input trimmed, or what is wrong with each field.
    pub fn validate(mut self) -> Result<ItemInput, FieldErrors> {
        self.title = self.title.trim().to_owned();
        self.description = self.description.trim().to_owned();
        let mut errors = FieldErrors::new();
        let title = self.title.chars().count();
        if title == 0 || title > 200 {
            errors.insert("title", "must be 1 to 200 characters".to_owned());
        }
        if self.description.chars().count() > 2000 {
            errors.insert("description", "must be at most 2000 characters".to_owned());
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(errors)
        }
    }
}

const COLUMNS: &str = "id, title, description, done, created_at, updated_at";

pub async fn list(ctx: &Ctx, limit: i64, offset: i64) -> Result<Vec<Item>, DbError> {
    ctx.db()
        .query_as(
            &format!("SELECT {COLUMNS} FROM tmplmod_items ORDER BY id LIMIT $1 OFFSET $2"),
            params![limit, offset],
        )
        .await
}

/// How many items there are, and how many are done.
#[derive(Debug, Default, Deserialize)]
pub struct Counts {
    pub items: i64,
    pub done: i64,
}

pub async fn count(ctx: &Ctx) -> Result<Counts, DbError> {
    let row: Option<Counts> = ctx
        .db()
        .query_opt_as(
            "SELECT count(*) AS items, count(*) FILTER (WHERE done) AS done FROM tmplmod_items",
            &[],
        )
        .await?;
    Ok(row.unwrap_or_default())
}

pub async fn get(ctx: &Ctx, id: i32) -> Result<Option<Item>, DbError> {
    ctx.db()
        .query_opt_as(
            &format!("SELECT {COLUMNS} FROM tmplmod_items WHERE id = $1"),
            params![id],
        )
        .await
}

/// The new item (and whether it was rolled back: DRY_RUN).
pub async fn create(ctx: &Ctx, input: &ItemInput) -> Result<Rows<Item>, DbError> {
    ctx.db()
        .query_rows(
            &format!(
                "INSERT INTO tmplmod_items (title, description, done) VALUES ($1, $2, $3) RETURNING {COLUMNS}"
            ),
            params![input.title, input.description, input.done],
        )
        .await
}

/// The changed item, if it exists.
pub async fn update(ctx: &Ctx, id: i32, input: &ItemInput) -> Result<Rows<Item>, DbError> {
    ctx.db()
        .query_rows(
            &format!(
                "UPDATE tmplmod_items SET title = $2, description = $3, done = $4, updated_at = now() \
                 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            params![id, input.title, input.description, input.done],
        )
        .await
}

/// How many items were (or would have been) deleted: 0 or 1.
pub async fn delete(ctx: &Ctx, id: i32) -> Result<Rows, DbError> {
    ctx.db()
        .execute("DELETE FROM tmplmod_items WHERE id = $1", params![id])
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_each_field() {
        let errors = ItemInput {
            title: "   ".to_owned(),
            description: "x".repeat(2001),
            done: false,
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            errors.get("title").map(String::as_str),
            Some("must be 1 to 200 characters")
        );
        assert_eq!(
            errors.get("description").map(String::as_str),
            Some("must be at most 2000 characters")
        );
        let ok = ItemInput {
            title: "  Buy milk ".to_owned(),
            ..ItemInput::default()
        }
        .validate()
        .unwrap();
        assert_eq!(ok.title, "Buy milk");
    }
}
