//! The console in a real browser: headless Chromium (driven through
//! chromedriver, `make chromium` installs both) against `pagehook serve`.
//!
//! An admin signs in with the admin token (by keyboard), connects a dry-run
//! Slack, installs slack-poster by upload and reads its audit, binds it to
//! space ENG for page-created only; a signed webhook arrives and the message
//! that would be sent shows up on the Deliveries page without a reload. A
//! Confluence space admin signs in through the fake Confluence, sees only
//! ENG and is refused OPS in the pages and in the API. A dead letter is
//! retried from the Deliveries page. Every page is screenshotted into
//! `target/console/` (docs/console.md shows them) and checked for inputs
//! without a label.

mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, StaticSite};

/// A page with the kinds of inputs the console has, to prove the harness.
const HARNESS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><title>Harness</title></head><body>
<h1>Harness</h1>
<form method="post" action="/sent">
  <label for="name">Name</label> <input id="name" name="name">
  <label for="secret">Secret <small>(optional)</small></label> <input id="secret" name="secret" type="password">
  <label><input type="checkbox" name="dry" value="yes"> Dry run</label>
  <label for="kind">Kind</label> <select id="kind" name="kind"><option>page-created</option><option>blog-created</option></select>
  <button>Send</button>
</form>
<form method="post" action="/other">
  <label for="other-name">Name</label> <input id="other-name" name="other">
  <button>Other</button>
</form>
<table><tr><td>first row</td><td><button type="button" onclick="document.getElementById('out').textContent='first'">Retry</button></td></tr>
<tr><td>second row</td><td><button type="button" onclick="document.getElementById('out').textContent='second'">Retry</button></td></tr></table>
<p id="out"></p>
</body></html>"#;

const UNLABELLED_PAGE: &str = r#"<!doctype html><html lang="en"><body><h1>Bad</h1>
<input id="orphan"><input type="hidden" name="ok"><input aria-label="Search" name="q">
<label>Kept <input name="kept"></label></body></html>"#;

#[test]
fn the_harness_drives_a_static_page_by_labels_buttons_and_keys() {
    let site = StaticSite::serve(&[("/", HARNESS_PAGE), ("/bad", UNLABELLED_PAGE)]);
    let started = Instant::now();
    let b = Browser::start();
    let session = started.elapsed();
    b.goto(&site.url("/"));
    assert_eq!(b.h1(), "Harness");
    b.assert_inputs_labelled("harness");

    // Two forms have a "Name": the look-up is scoped by the form's button.
    let form = b.form("Send");
    form.fill("Name", "Ada Lovelace")
        .fill("Secret", "s3cret")
        .check("Dry run", true)
        .select("Kind", "blog-created");
    b.form("Other").fill("Name", "not sent");
    b.click_button_near("second row", "Retry");
    assert!(b.text().contains("second"));
    b.click_button_near("first row", "Retry");
    assert!(b.texts("#out").contains(&"first".to_string()));
    form.submit();
    b.wait_for_h1("Received", Duration::from_secs(10));
    let text = b.text();
    assert!(text.contains("name=Ada+Lovelace"), "{text}");
    assert!(
        text.contains("secret=s3cret&dry=yes&kind=blog-created"),
        "{text}"
    );
    assert!(!text.contains("not+sent"), "{text}");

    // By keyboard: Tab to the field, type, Enter submits the form.
    b.goto(&site.url("/"));
    let presses = b.tab_to("name", 10);
    assert_eq!(presses, 1, "the first field is the first stop");
    b.keys("typed");
    b.enter();
    b.wait_for_h1("Received", Duration::from_secs(10));
    assert!(b.text().contains("name=typed"));

    let shot = b.screenshot("harness");
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(
        &png[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is a PNG",
        shot.display()
    );
    std::fs::remove_file(shot).unwrap();

    b.goto(&site.url("/bad"));
    assert_eq!(b.unlabelled_inputs(), ["input#orphan"]);
    eprintln!(
        "harness: session opened in {session:?}, whole test {:?}",
        started.elapsed()
    );
}
