//! The browser facade (`hub_testkit::browser`) against a page of its own: a loopback HTTP server
//! in a thread answering every request with one page (a form, a select, a button whose script
//! writes a text later) that shows the path and query it was asked for.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use hub_testkit::browser::Browser;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

/// The page, with `{target}` replaced by the request's path and query.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Smoke page</title></head>
<body>
<h1 id="greeting">Hello</h1>
<p id="target">{target}</p>
<form id="profile" action="/saved" method="get">
  <input id="name" name="name" value="old">
  <select id="level" name="level">
    <option value="viewer">Viewer</option>
    <option value="admin">Admin</option>
  </select>
  <button type="submit">Save</button>
</form>
<button id="greet" type="button">Greet</button>
<p id="out"></p>
<ul><li>one</li><li> two </li><li hidden>three</li></ul>
<script>
document.getElementById('greet').addEventListener('click', () => {
  const name = document.getElementById('name').value;
  setTimeout(() => { document.getElementById('out').textContent = 'Hello, ' + name + '!'; }, 300);
});
</script>
</body></html>
"#;

/// Serve `PAGE` on a loopback port; its base URL.
fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    url
}

fn answer(stream: TcpStream) {
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => return,
            Ok(_) if header == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let target = request_line.split(' ').nth(1).unwrap_or("?").to_owned();
    let (status, body) = if target == "/favicon.ico" {
        ("404 Not Found", String::new())
    } else {
        let escaped = target.replace('&', "&amp;").replace('<', "&lt;");
        ("200 OK", PAGE.replace("{target}", &escaped))
    };
    let _ = write!(
        &stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

#[test]
fn browser_drives_a_page() {
    let base = serve();
    let browser = Browser::start();

    browser.goto(&format!("{base}/start"));
    assert_eq!(browser.current_url(), format!("{base}/start"));
    assert_eq!(browser.title(), "Smoke page");
    assert_eq!(browser.text("#greeting"), "Hello");
    assert_eq!(browser.text("#target"), "/start");
    assert!(browser.source().contains(r#"<h1 id="greeting">Hello</h1>"#));
    assert_eq!(browser.texts("li"), ["one", "two", ""]);
    assert!(browser.exists("#greet"));
    assert!(!browser.exists("#missing"));
    assert_eq!(browser.attr("#name", "name").as_deref(), Some("name"));
    assert_eq!(browser.attr("#name", "placeholder"), None);
    assert_eq!(
        browser.execute("return arguments[0] + 1;", vec![json!(41)]),
        json!(42)
    );

    // Typing replaces the value; the script writes its text 300 ms after the click.
    browser.fill("#name", "Ada Lovelace");
    browser.click("#greet");
    assert_eq!(browser.text("#out"), "");
    assert_eq!(
        browser.wait_for_text("#out", "Ada", WAIT),
        "Hello, Ada Lovelace!"
    );
    assert_eq!(browser.text("#out"), "Hello, Ada Lovelace!");

    // A real submission: the browser navigates to the form's action with the fields.
    browser.select("#level", "admin");
    browser.submit_form("#profile");
    browser.wait_for_text("#target", "/saved", WAIT);
    assert_eq!(
        browser.text("#target"),
        "/saved?name=Ada+Lovelace&level=admin"
    );
    assert_eq!(
        browser.current_url(),
        format!("{base}/saved?name=Ada+Lovelace&level=admin")
    );
    browser.wait_for("#profile", WAIT);

    browser.set_size(800, 600);
    let (width, height) = (
        browser.execute("return window.outerWidth;", vec![]),
        browser.execute("return window.outerHeight;", vec![]),
    );
    assert_eq!((width, height), (json!(800), json!(600)));
    let shot = tempfile::tempdir().unwrap();
    let path = shot.path().join("shots").join("page.png");
    browser.screenshot(&path);
    let png = std::fs::read(&path).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {:?}",
        &png[..png.len().min(16)]
    );

    // Failures name what was looked for and where.
    let message = |f: &dyn Fn()| {
        let payload = std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_err();
        payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default()
    };
    let waited = message(&|| browser.wait_for("#never", Duration::from_millis(200)));
    assert!(
        waited.starts_with("browser: no element matched `#never` within 200ms at "),
        "{waited}"
    );
    assert!(
        waited.contains("/saved?name=Ada+Lovelace&level=admin"),
        "{waited}"
    );
    assert!(
        waited.contains(r#"<h1 id="greeting">Hello</h1>"#),
        "{waited}"
    );
    let clicked = message(&|| browser.click("#nothing"));
    assert!(
        clicked.starts_with("browser: no element matches `#nothing` at "),
        "{clicked}"
    );
    let texted = message(&|| {
        browser.wait_for_text("#greeting", "Bye", Duration::from_millis(200));
    });
    assert!(
        texted.starts_with(
            "browser: `#greeting` did not contain \"Bye\" within 200ms (its text was \"Hello\") at "
        ),
        "{texted}"
    );
    let selected = message(&|| browser.select("#level", "owner"));
    assert!(
        selected.starts_with(
            "browser: `#level` has no option with value \"owner\" (its values: [\"viewer\",\"admin\"]) at "
        ),
        "{selected}"
    );
}
