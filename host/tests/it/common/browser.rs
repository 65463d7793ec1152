//! A real, headless Chromium driven through WebDriver, for the console's
//! end-to-end tests.
//!
//! [`Browser::start`] runs Debian's `chromedriver` on a free loopback port
//! and opens a Chromium session with a fresh profile (`make chromium`
//! installs both). Every call blocks: the browser owns a small tokio runtime
//! of its own, so tests stay plain `#[test]` functions beside the blocking
//! [`super::sidecar::Sidecar`] helpers. Dropping it closes the session, kills
//! chromedriver and any Chromium process still using its profile.
//!
//! Elements are found the way a person finds them: an input by the text of
//! its `<label>` ([`Browser::fill`]), a button by its text
//! ([`Browser::click_button`]), a form by the text of its submit button
//! ([`Browser::form`]). A page whose input has no label therefore cannot be
//! driven, and [`Browser::unlabelled_inputs`] names the ones that have none.
//!
//! Only one browser runs at a time in a test binary (two Chromiums on a
//! two-core machine make both slow): [`Browser::start`] waits for its turn.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// Debian's Chromium and its WebDriver server.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The window every page is shown (and screenshotted) in.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;
/// Full-page screenshots stop at this height.
const MAX_SHOT_HEIGHT: u32 = 4000;

static TURN: Mutex<()> = Mutex::new(());

/// One headless Chromium session.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    profile: tempfile::TempDir,
    /// Prepended to [`Browser::goto`] paths that start with `/`.
    base: String,
    _turn: MutexGuard<'static, ()>,
}

/// A form on the current page, found by the text of one of its buttons;
/// label look-ups and clicks stay inside it.
pub struct Form<'a> {
    browser: &'a Browser,
    selector: String,
    name: String,
}

/// Finds the element of a label (or reports why not) and marks it with
/// `data-test-target`. Arguments: scope selector or null, label text.
/// Match order: the label's whole text, its own text (without nested help
/// elements), then a label reading `<text> (…)` (say "(optional)").
const FIND_LABELLED: &str = r#"
const [scopeSel, text] = arguments;
const root = scopeSel ? document.querySelector(scopeSel) : document;
if (!root) return {error: 'the scope ' + scopeSel + ' is gone'};
const norm = s => (s || '').replace(/\s+/g, ' ').trim();
const labels = [...root.querySelectorAll('label')];
const own = l => norm([...l.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join(' '));
let found = labels.filter(l => norm(l.textContent) === text);
if (!found.length) found = labels.filter(l => own(l) === text);
if (!found.length) found = labels.filter(l => norm(l.textContent).startsWith(text + ' ('));
if (!found.length) return {error: 'no label "' + text + '"; labels here: ' + JSON.stringify(labels.map(l => norm(l.textContent)))};
const visible = found.filter(l => l.control && (l.control.offsetParent !== null || l.control.type === 'file' || l.control.type === 'checkbox' || l.control.type === 'radio'));
const pick = visible.length ? visible : found;
if (pick.length > 1) return {error: pick.length + ' labels "' + text + '": scope the look-up with form(button)'};
const control = pick[0].control;
if (!control) return {error: 'label "' + text + '" labels no control (no for= and no nested input)'};
window.__testTarget = (window.__testTarget || 0) + 1;
control.setAttribute('data-test-target', String(window.__testTarget));
return {target: String(window.__testTarget), tag: control.tagName.toLowerCase(), type: control.type || ''};
"#;

/// Finds a button by its text (or an `<input type=submit>` by its value),
/// optionally the one closest to an element whose text includes `near`,
/// and marks it. Arguments: scope selector or null, button text, near text
/// or null.
const FIND_BUTTON: &str = r#"
const [scopeSel, text, near] = arguments;
const root = scopeSel ? document.querySelector(scopeSel) : document;
if (!root) return {error: 'the scope ' + scopeSel + ' is gone'};
const norm = s => (s || '').replace(/\s+/g, ' ').trim();
const all = [...root.querySelectorAll('button, input[type=submit], input[type=button]')];
const named = all.filter(b => norm(b.tagName === 'INPUT' ? b.value : b.textContent) === text);
const shown = named.filter(b => b.offsetParent !== null);
if (!shown.length) return {error: 'no button "' + text + '"; buttons here: ' + JSON.stringify(all.filter(b => b.offsetParent !== null).map(b => norm(b.tagName === 'INPUT' ? b.value : b.textContent)))};
let pick = shown;
if (near !== null) {
  const climbs = b => { let n = 0; for (let e = b; e; e = e.parentElement, n++) { if (norm(e.innerText).includes(near)) return n; } return Infinity; };
  const best = Math.min(...shown.map(climbs));
  if (best === Infinity) return {error: 'no button "' + text + '" near "' + near + '"'};
  pick = shown.filter(b => climbs(b) === best);
}
if (pick.length > 1) return {error: pick.length + ' buttons "' + text + '"' + (near === null ? '' : ' equally near "' + near + '"') + ': say which'};
window.__testTarget = (window.__testTarget || 0) + 1;
pick[0].setAttribute('data-test-target', String(window.__testTarget));
return {target: String(window.__testTarget)};
"#;

/// Every input, select and textarea a person fills in that no label names
/// (neither `<label>` nor `aria-label`/`aria-labelledby`).
const UNLABELLED: &str = r#"
const skip = ['hidden', 'submit', 'button', 'reset', 'image'];
return [...document.querySelectorAll('input, select, textarea')]
  .filter(e => !skip.includes((e.type || '').toLowerCase()))
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
  .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.name ? '[name=' + e.name + ']' : ''));
"#;

/// What has the keyboard focus, as `tag#id "label"`.
const FOCUSED: &str = r#"
const e = document.activeElement;
if (!e) return '';
const label = e.labels && e.labels.length ? e.labels[0].textContent.replace(/\s+/g, ' ').trim() : (e.textContent || '').trim();
return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ' "' + label + '"';
"#;

impl Browser {
    /// Starts chromedriver and a headless Chromium session; waits for any
    /// other browser in this test binary to be dropped first.
    ///
    /// # Panics
    /// When Chromium or chromedriver is missing (run `make chromium`) or the
    /// session cannot be opened.
    pub fn start() -> Browser {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(bin).exists(),
                "{bin} is missing: run `make chromium` (or `make test`) to install Debian's chromium and chromium-driver"
            );
        }
        let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let profile = tempfile::tempdir().unwrap();
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                profile.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut browser = Browser {
            rt,
            client: None,
            driver,
            profile,
            base: String::new(),
            _turn: turn,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        let data_dir = browser.profile.path().join("chromium");
        let caps = json!({
            "browserName": "chrome",
            // The page's console (CSP violations among it), read by console_log().
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    format!("--window-size={WIDTH},{HEIGHT}"),
                    format!("--user-data-dir={}", data_dir.display()),
                ],
            },
        });
        let caps = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let client = browser.rt.block_on(async {
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&url)
                .await
        });
        match client {
            Ok(c) => browser.client = Some(c),
            Err(e) => {
                let log = std::fs::read_to_string(browser.profile.path().join("chromedriver.log"))
                    .unwrap_or_default();
                let tail: String = log
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                panic!("cannot open a Chromium session: {e}\nchromedriver log:\n{tail}");
            }
        }
        browser
    }

    /// Makes [`Browser::goto`] paths starting with `/` relative to `base`.
    pub fn set_base(&mut self, base: &str) {
        self.base = base.trim_end_matches('/').to_string();
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("session open")
    }

    fn run<T, E: std::fmt::Display>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, E>>,
    ) -> T {
        match self.rt.block_on(f) {
            Ok(v) => v,
            Err(e) => panic!("{what} on {}: {e}", self.url()),
        }
    }

    /// Runs JavaScript in the page (`arguments` holds `args`; `return` a value).
    pub fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.run("running a script", self.client().execute(script, args))
    }

    /// Opens `url` (a path starting with `/` is under the base) and waits for it to load.
    pub fn goto(&self, url: &str) {
        let full = if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_string()
        };
        let result = self.rt.block_on(self.client().goto(&full));
        if let Err(e) = result {
            panic!("opening {full}: {e}");
        }
    }

    /// The current address.
    pub fn url(&self) -> String {
        self.rt
            .block_on(self.client().current_url())
            .map(|u| u.to_string())
            .unwrap_or_else(|e| format!("<unknown: {e}>"))
    }

    /// The current path (without scheme, host and query).
    pub fn path(&self) -> String {
        self.js("return location.pathname;", vec![])
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// What a person reads on the page (`document.body.innerText`).
    pub fn text(&self) -> String {
        self.js(
            "return document.body ? document.body.innerText : '';",
            vec![],
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The text of the first `<h1>`, or "" without one.
    pub fn h1(&self) -> String {
        self.js(
            "const h = document.querySelector('h1'); return h ? h.innerText.trim() : '';",
            vec![],
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The text of the elements matching a CSS selector, one string each (the
    /// value of a textarea or input).
    pub fn texts(&self, css: &str) -> Vec<String> {
        self.js(
            "return [...document.querySelectorAll(arguments[0])].map(e => (e.tagName === 'TEXTAREA' || e.tagName === 'INPUT' ? e.value : e.innerText).trim());",
            vec![json!(css)],
        )
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
    }

    /// The `content` of `<meta name="{name}">`.
    pub fn meta(&self, name: &str) -> Option<String> {
        self.js(
            "const m = document.querySelector('meta[name=\"' + arguments[0] + '\"]'); return m ? m.content : null;",
            vec![json!(name)],
        )
        .as_str()
        .map(str::to_string)
    }

    /// Waits until the page text contains `text`; returns how long it took.
    ///
    /// # Panics
    /// After `timeout`, with the page's address and text.
    pub fn wait_for_text(&self, text: &str, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.text().contains(text) {
                return started.elapsed();
            }
            if started.elapsed() > timeout {
                panic!(
                    "{:?} did not appear on {} within {timeout:?}; the page reads:\n{}",
                    text,
                    self.url(),
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the `<h1>` reads `h1`.
    pub fn wait_for_h1(&self, h1: &str, timeout: Duration) {
        let started = Instant::now();
        loop {
            let now = self.h1();
            if now == h1 {
                return;
            }
            if started.elapsed() > timeout {
                panic!(
                    "expected the heading {h1:?} within {timeout:?} but {} shows {now:?}; the page reads:\n{}",
                    self.url(),
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until a CSS selector matches something; returns its text.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(t) = self.texts(css).into_iter().next() {
                return t;
            }
            if started.elapsed() > timeout {
                panic!(
                    "nothing matched {css:?} on {} within {timeout:?}; the page reads:\n{}",
                    self.url(),
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn marked(&self, what: &str, answer: Value) -> fantoccini::elements::Element {
        if let Some(error) = answer.get("error").and_then(Value::as_str) {
            panic!("{what} on {}: {error}", self.url());
        }
        let target = answer["target"].as_str().expect("a target").to_string();
        self.run(
            what,
            self.client()
                .find(Locator::Css(&format!("[data-test-target=\"{target}\"]"))),
        )
    }

    fn labelled(
        &self,
        scope: Option<&str>,
        label: &str,
    ) -> (fantoccini::elements::Element, String, String) {
        let answer = self.js(FIND_LABELLED, vec![json!(scope), json!(label)]);
        let tag = answer["tag"].as_str().unwrap_or_default().to_string();
        let kind = answer["type"].as_str().unwrap_or_default().to_string();
        (
            self.marked(&format!("finding the input labelled {label:?}"), answer),
            tag,
            kind,
        )
    }

    fn fill_in(&self, scope: Option<&str>, label: &str, value: &str) {
        let (el, tag, kind) = self.labelled(scope, label);
        assert!(
            tag != "select" && kind != "checkbox" && kind != "radio" && kind != "file",
            "{label:?} is a {tag} {kind}: use select/check/upload"
        );
        let what = format!("filling in {label:?}");
        self.run(&what, el.clear());
        self.run(&what, el.send_keys(value));
    }

    fn select_in(&self, scope: Option<&str>, label: &str, option: &str) {
        let (el, tag, _) = self.labelled(scope, label);
        assert_eq!(tag, "select", "{label:?} labels a {tag}, not a select");
        self.run(
            &format!("choosing {option:?} in {label:?}"),
            el.select_by_label(option),
        );
    }

    fn select_containing_in(&self, scope: Option<&str>, label: &str, part: &str) {
        let (el, tag, _) = self.labelled(scope, label);
        assert_eq!(tag, "select", "{label:?} labels a {tag}, not a select");
        let options = self.options_of(&el);
        let Some(option) = options.iter().find(|o| o.contains(part)) else {
            panic!(
                "no option of {label:?} on {} contains {part:?}; options: {options:?}",
                self.url()
            );
        };
        self.run(
            &format!("choosing {option:?} in {label:?}"),
            el.select_by_label(option),
        );
    }

    fn options_of(&self, el: &fantoccini::elements::Element) -> Vec<String> {
        let v = self.js(
            "return [...arguments[0].options].map(o => o.text.replace(/\\s+/g, ' ').trim());",
            vec![serde_json::to_value(el).unwrap()],
        );
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|o| o.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn check_in(&self, scope: Option<&str>, label: &str, on: bool) {
        let (el, _, kind) = self.labelled(scope, label);
        assert!(
            kind == "checkbox" || kind == "radio",
            "{label:?} labels a {kind}, not a checkbox"
        );
        let what = format!("ticking {label:?}");
        if self.run(&what, el.is_selected()) != on {
            self.run(&what, el.click());
        }
    }

    fn upload_in(&self, scope: Option<&str>, label: &str, path: &std::path::Path) {
        let (el, _, kind) = self.labelled(scope, label);
        assert_eq!(kind, "file", "{label:?} labels a {kind}, not a file input");
        self.run(
            &format!("choosing the file for {label:?}"),
            el.send_keys(&path.display().to_string()),
        );
    }

    fn click_in(&self, scope: Option<&str>, text: &str, near: Option<&str>) {
        let answer = self.js(FIND_BUTTON, vec![json!(scope), json!(text), json!(near)]);
        let el = self.marked(&format!("finding the button {text:?}"), answer);
        self.run(&format!("clicking {text:?}"), el.click());
    }

    /// The options shown by the select labelled `label`.
    pub fn options(&self, label: &str) -> Vec<String> {
        let (el, tag, _) = self.labelled(None, label);
        assert_eq!(tag, "select", "{label:?} labels a {tag}, not a select");
        self.options_of(&el)
    }

    /// Ticks (`on`) or clears the checkbox labelled `label`.
    pub fn check(&self, label: &str, on: bool) {
        self.check_in(None, label, on);
    }

    /// Whether the checkbox labelled `label` is ticked.
    pub fn checked(&self, label: &str) -> bool {
        let (el, _, kind) = self.labelled(None, label);
        assert!(
            kind == "checkbox" || kind == "radio",
            "{label:?} labels a {kind}"
        );
        self.run(&format!("reading {label:?}"), el.is_selected())
    }

    /// Clicks the one visible button reading `text`.
    pub fn click_button(&self, text: &str) {
        self.click_in(None, text, None);
    }

    /// Clicks the button reading `text` that sits closest to something
    /// reading `near` (the row of a table or list, say).
    pub fn click_button_near(&self, near: &str, text: &str) {
        self.click_in(None, text, Some(near));
    }

    /// Follows the link reading exactly `text`.
    pub fn click_link(&self, text: &str) {
        let el = self.run(
            &format!("finding the link {text:?}"),
            self.client().find(Locator::LinkText(text)),
        );
        self.run(&format!("following {text:?}"), el.click());
    }

    /// The form holding the one visible button reading `button`.
    pub fn form(&self, button: &str) -> Form<'_> {
        self.form_of(button, None)
    }

    /// The form holding the button reading `button` closest to something
    /// reading `near` (one row's form among many alike).
    pub fn form_near(&self, near: &str, button: &str) -> Form<'_> {
        self.form_of(button, Some(near))
    }

    fn form_of(&self, button: &str, near: Option<&str>) -> Form<'_> {
        // A page that is still being replaced can lose the mark between
        // the two scripts: then look again on the new page.
        let mut answer = Value::Null;
        for _ in 0..20 {
            answer = self.mark_form(button, near);
            if answer.get("gone").is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(error) = answer.get("error").and_then(Value::as_str) {
            panic!("finding the form of {button:?} on {}: {error}", self.url());
        }
        Form {
            browser: self,
            selector: format!(
                "[data-test-form=\"{}\"]",
                answer["target"].as_str().unwrap()
            ),
            name: button.to_string(),
        }
    }

    fn mark_form(&self, button: &str, near: Option<&str>) -> Value {
        let found = self.js(FIND_BUTTON, vec![Value::Null, json!(button), json!(near)]);
        if found.get("error").is_some() {
            return found;
        }
        self.js(
            r#"
const b = document.querySelector('[data-test-target="' + arguments[0] + '"]');
if (!b) return {gone: true};
const form = b.form || b.closest('form, fieldset, section');
if (!form) return {error: 'the button is in no form'};
window.__testTarget = (window.__testTarget || 0) + 1;
form.setAttribute('data-test-form', String(window.__testTarget));
return {target: String(window.__testTarget)};
"#,
            vec![found["target"].clone()],
        )
    }

    /// Waits until the address contains `part` (after a form that navigates).
    pub fn wait_for_url(&self, part: &str, timeout: Duration) {
        let started = Instant::now();
        while !self.url().contains(part) {
            assert!(
                started.elapsed() < timeout,
                "the address never contained {part:?} within {timeout:?}: {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends keys (text, or [`Key`]s as chars) to whatever has the focus.
    pub fn keys(&self, keys: &str) {
        let el = self.run("finding the focus", self.client().active_element());
        self.run("typing", el.send_keys(keys));
    }

    /// Presses Tab.
    pub fn tab(&self) {
        self.keys(&char::from(Key::Tab).to_string());
    }

    /// Presses Enter.
    pub fn enter(&self) {
        self.keys(&char::from(Key::Enter).to_string());
    }

    /// What has the keyboard focus, as `tag#id "label"`.
    pub fn focused(&self) -> String {
        self.js(FOCUSED, vec![])
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Presses Tab until the element with id `id` has the focus; returns
    /// how many presses it took.
    ///
    /// # Panics
    /// After `max` presses.
    pub fn tab_to(&self, id: &str, max: usize) -> usize {
        let mut seen = Vec::new();
        for n in 1..=max {
            self.tab();
            let now = self.focused();
            if now.contains(&format!("#{id} ")) {
                return n;
            }
            seen.push(now);
        }
        panic!(
            "#{id} never got the focus in {max} Tab presses on {}; the focus went: {seen:#?}",
            self.url()
        );
    }

    /// The value of cookie `name` as the browser holds it for the current page.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.rt
            .block_on(self.client().get_named_cookie(name))
            .ok()
            .map(|c| c.value().to_string())
    }

    /// Every input a person fills in that has no label (empty when all do).
    pub fn unlabelled_inputs(&self) -> Vec<String> {
        self.js(UNLABELLED, vec![])
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fails the test if an input on the page has no label.
    pub fn assert_inputs_labelled(&self, page: &str) {
        let missing = self.unlabelled_inputs();
        assert!(
            missing.is_empty(),
            "inputs without a label on the {page} page ({}): {missing:?}",
            self.url()
        );
    }

    /// What the pages logged to the browser's console since the last call
    /// (`LEVEL message`), through chromedriver's log endpoint: script
    /// errors, and each request or inline script the Content-Security-Policy
    /// refused.
    pub fn console_log(&self) -> Vec<String> {
        let answer = self.run(
            "reading the browser's console",
            self.client().issue_cmd(BrowserLog),
        );
        answer
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["level"].as_str().unwrap_or_default(),
                            e["message"].as_str().unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The console lines since the last call that say the
    /// Content-Security-Policy refused something.
    pub fn csp_violations(&self) -> Vec<String> {
        self.console_log()
            .into_iter()
            .filter(|l| l.contains("Content Security Policy") || l.contains("Refused to"))
            .collect()
    }

    /// Saves the whole page (up to 4000 px tall) as `target/console/<name>.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let height = self
            .js(
                "return Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0);",
                vec![],
            )
            .as_u64()
            .unwrap_or(u64::from(HEIGHT)) as u32;
        let tall = height.clamp(HEIGHT, MAX_SHOT_HEIGHT);
        if tall != HEIGHT {
            self.run("resizing", self.client().set_window_size(WIDTH, tall));
        }
        let png = self.run("taking a screenshot", self.client().screenshot());
        if tall != HEIGHT {
            self.run("resizing", self.client().set_window_size(WIDTH, HEIGHT));
        }
        let dir = super::root().join("target/console");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

/// chromedriver's (legacy, still served) log endpoint for the browser's console.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &reqwest::Url,
        session_id: Option<&str>,
    ) -> Result<reqwest::Url, url_parse::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(r#"{"type":"browser"}"#.into()),
        )
    }
}

/// `url::ParseError`, named through reqwest (the same `url` crate).
mod url_parse {
    pub type ParseError = <reqwest::Url as std::str::FromStr>::Err;
}

impl Form<'_> {
    /// Types into the input labelled `label` in this form.
    pub fn fill(&self, label: &str, value: &str) -> &Self {
        self.browser.fill_in(Some(&self.selector), label, value);
        self
    }

    /// Chooses an option of the select labelled `label` in this form.
    pub fn select(&self, label: &str, option: &str) -> &Self {
        self.browser.select_in(Some(&self.selector), label, option);
        self
    }

    /// Chooses the first option of the select labelled `label` containing `part`.
    pub fn select_containing(&self, label: &str, part: &str) -> &Self {
        self.browser
            .select_containing_in(Some(&self.selector), label, part);
        self
    }

    /// Ticks or clears the checkbox labelled `label` in this form.
    pub fn check(&self, label: &str, on: bool) -> &Self {
        self.browser.check_in(Some(&self.selector), label, on);
        self
    }

    /// In the fieldset of this form whose legend reads `legend`, ticks the
    /// checkboxes labelled `on` and clears every other one.
    pub fn check_only(&self, legend: &str, on: &[&str]) -> &Self {
        let labels = self.browser.js(
            r#"
const [formSel, legend] = arguments;
const norm = s => (s || '').replace(/\s+/g, ' ').trim();
const set = [...document.querySelectorAll(formSel + ' fieldset')]
  .find(f => f.querySelector('legend') && norm(f.querySelector('legend').textContent) === legend);
if (!set) return {error: 'no fieldset with the legend "' + legend + '"'};
return {labels: [...set.querySelectorAll('input[type=checkbox]')]
  .map(c => c.labels && c.labels.length ? norm(c.labels[0].textContent) : null)};
"#,
            vec![json!(self.selector), json!(legend)],
        );
        if let Some(error) = labels.get("error").and_then(Value::as_str) {
            panic!("{error} on {}", self.browser.url());
        }
        let labels: Vec<String> = labels["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                l.as_str()
                    .unwrap_or_else(|| panic!("a checkbox under {legend:?} has no label"))
                    .to_string()
            })
            .collect();
        for want in on {
            assert!(
                labels.iter().any(|l| l == want),
                "no checkbox {want:?} under {legend:?}; there are {labels:?}"
            );
        }
        for label in &labels {
            self.check(label, on.contains(&label.as_str()));
        }
        self
    }

    /// Chooses a file for the input labelled `label` in this form.
    pub fn upload(&self, label: &str, path: &std::path::Path) -> &Self {
        self.browser.upload_in(Some(&self.selector), label, path);
        self
    }

    /// Clicks the button the form was found by.
    pub fn submit(&self) {
        self.browser
            .click_in(Some(&self.selector), &self.name.clone(), None);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), client.close()).await
            });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        kill_users_of(&self.profile.path().display().to_string());
    }
}

/// Kills (by pid) every process whose command line names `marker`: the
/// Chromium processes of a profile whose chromedriver is gone.
fn kill_users_of(marker: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let me = std::process::id().to_string();
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tiny HTTP server of fixed pages on 127.0.0.1, to try the browser
/// harness on before there is a console: `GET` answers the page registered
/// for the path (404 otherwise); `POST` answers a page `<h1>Received</h1>`
/// showing the form body it was sent.
pub struct StaticSite {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl StaticSite {
    /// Serves `pages` (path, HTML) until dropped.
    pub fn serve(pages: &[(&str, &str)]) -> StaticSite {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let pages: Vec<(String, String)> = pages
            .iter()
            .map(|(p, h)| ((*p).to_string(), (*h).to_string()))
            .collect();
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    let _ = answer(stream, &pages);
                }
            }
        });
        StaticSite { port, stop }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for StaticSite {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

fn answer(stream: TcpStream, pages: &[(String, String)]) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut parts = request.split_whitespace();
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let (status, html) = if method == "POST" {
        let body = String::from_utf8_lossy(&body)
            .replace('&', "&amp;")
            .replace('<', "&lt;");
        (
            "200 OK",
            format!("<!doctype html><title>Received</title><h1>Received</h1><pre>{body}</pre>"),
        )
    } else {
        match pages.iter().find(|(p, _)| p == path) {
            Some((_, html)) => ("200 OK", html.clone()),
            None => ("404 Not Found", "<h1>Not found</h1>".to_string()),
        }
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
        html.len()
    )?;
    stream.flush()
}
