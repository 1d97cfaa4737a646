//! `/docs`: the interactive API reference of the OpenAPI document (Swagger UI, vendored under
//! `static/docs/` with its version and licence, compiled in: no CDN). Public, like the document;
//! its "Authorize" takes a token.

use actix_web::HttpResponse;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};

const PAGE: &str = include_str!("../../../static/docs/index.html");
const INIT: &str = include_str!("../../../static/docs/init.js");
const BUNDLE: &str = include_str!("../../../static/docs/swagger-ui-bundle.js");
const CSS: &str = include_str!("../../../static/docs/swagger-ui.css");

/// The reference's page.
pub(crate) async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
        .body(PAGE)
}

/// One of its files: `init.js`, `swagger-ui-bundle.js`, `swagger-ui.css`.
pub(crate) fn file(name: &str) -> Option<HttpResponse> {
    let (body, content_type) = match name {
        "init.js" => (INIT, "text/javascript; charset=utf-8"),
        "swagger-ui-bundle.js" => (BUNDLE, "text/javascript; charset=utf-8"),
        "swagger-ui.css" => (CSS, "text/css; charset=utf-8"),
        _ => return None,
    };
    Some(
        HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, content_type))
            .insert_header((CACHE_CONTROL, "public, max-age=3600"))
            .body(body),
    )
}
