//! HTML (issue 6): the home page, modules' pages rendered in the hub's layout with autoescaping,
//! static files, redirects, and template or handler errors shown as pages without harm to the
//! hub or other modules.

use serde_json::json;

use crate::support::Setup;

#[test]
fn the_home_page_lists_the_running_modules_with_links() {
    let hub = Setup::new()
        .hello()
        .fixture("fx", json!({"description": "The fixture"}))
        .file("broken/module.json", "{")
        .start();
    let home = hub.get("/");
    assert_eq!(home.status, 200);
    assert_eq!(
        home.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert!(
        home.body.contains(r#"<a href="/modules/fx/">fx</a>"#),
        "fx has pages: {}",
        home.body
    );
    assert!(home.body.contains("The fixture"));
    assert!(
        home.body
            .contains(r#"<a href="/api/v1/hello/health">hello</a>"#),
        "hello has none"
    );
    assert!(!home.body.contains("broken"), "only running modules");
}

#[test]
fn a_page_is_rendered_in_the_layout_with_autoescaping() {
    let hub = Setup::new().fixture("fx", json!({})).start();
    let page = hub.get("/modules/fx/?name=%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains(r#"<p id="greeting">Hello &lt;script&gt;alert(1)&lt;&#x2f;script&gt;</p>"#),
        "escaped: {}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"<a href="/modules/fx/" class="current">fx</a>"#),
        "navigation"
    );
    assert!(
        page.body.contains("<strong>READ_ONLY</strong> is on"),
        "the safety banner"
    );
    let redirect = hub.get("/modules/fx");
    assert_eq!(
        (redirect.status, redirect.location.as_deref()),
        (308, Some("/modules/fx/"))
    );
    let posted = hub.post_form("/modules/fx/go", "");
    assert_eq!(
        (posted.status, posted.location.as_deref()),
        (303, Some("/modules/fx/?name=again"))
    );
}

#[test]
fn template_and_context_errors_are_500_pages_naming_module_and_template() {
    let hub = Setup::new().hello().fixture("fx", json!({})).start();
    for (path, template, why) in [
        (
            "/modules/fx/broken",
            "broken.html",
            "number is not iterable (in broken.html:2)",
        ),
        ("/modules/fx/missing", "nope.html", "template not found"),
        (
            "/modules/fx/not-object",
            "ok.html",
            "the context must be a JSON object",
        ),
    ] {
        let page = hub.get(path);
        assert_eq!(page.status, 500, "{path}");
        assert_eq!(
            page.content_type.as_deref(),
            Some("text/html; charset=utf-8")
        );
        let needle =
            format!("template error in module &#x27;fx&#x27;, template &#x27;{template}&#x27;: ");
        assert!(page.body.contains(&needle), "{path}: {}", page.body);
        assert!(page.body.contains(why), "{path}: {}", page.body);
    }
    assert_eq!(
        hub.get("/modules/fx/").status,
        200,
        "the module still serves"
    );
    assert_eq!(
        hub.get("/api/v1/hello/ping").status,
        200,
        "other modules too"
    );
}

#[test]
fn handler_errors_unknown_pages_and_failed_modules_are_pages_not_json() {
    let hub = Setup::new()
        .fixture("fx", json!({}))
        .fixture("sick", json!({"config": {"init": "error"}}))
        .start();
    let page = hub.get("/modules/fx/fails");
    assert_eq!(page.status, 409);
    assert!(
        page.body
            .contains("<code>conflict</code>: the fixture refuses this page"),
        "{}",
        page.body
    );
    let page = hub.get("/modules/fx/nowhere");
    assert_eq!(page.status, 404);
    assert!(
        page.body
            .contains("module &#x27;fx&#x27; has no route GET &#x2f;nowhere"),
        "{}",
        page.body
    );
    let page = hub.get("/modules/fx/static/none.css");
    assert_eq!(page.status, 404);
    let page = hub.get("/modules/sick/");
    assert_eq!(page.status, 503);
    assert!(
        page.body.contains("<code>module_failed</code>"),
        "{}",
        page.body
    );
    let page = hub.get("/modules/ghost/");
    assert_eq!(page.status, 404);
    assert!(
        page.body
            .contains("no module &#x27;ghost&#x27; is installed"),
        "{}",
        page.body
    );
}
