//! The console in process: `pagehook::server::router` over a fresh SQLite
//! store in a temp dir, its pages fetched with `Router::oneshot` (no socket,
//! no browser) and read as HTML text, for the tests of the console's pages,
//! sign-in and speed.
//!
//! It must never reach past the router it builds (no socket, no other
//! store) nor read a page any other way than a browser would get it.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use pagehook::config::Config;
use pagehook::secret::SecretSource;
use pagehook::server::session::{self, Principal};
use pagehook::server::{AppState, router};
use tower::ServiceExt;

/// A router over a fresh store in a temp dir, signed into by `admin_token`.
pub struct ConsoleApp {
    _dir: tempfile::TempDir,
    pub state: Arc<AppState>,
}

impl ConsoleApp {
    pub fn new(admin_token: &str) -> ConsoleApp {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.store.database = dir.path().join("pagehook.db");
        config.store.plugins_dir = dir.path().join("plugins");
        config.server.admin_token = Some(SecretSource::Value(admin_token.into()));
        let state = AppState::standalone(config).unwrap();
        ConsoleApp { _dir: dir, state }
    }

    /// A session cookie (`pagehook_session=...`) for `principal`, made as
    /// sign-in makes it.
    pub async fn session_cookie(&self, principal: &Principal) -> String {
        let set = session::start(&self.state.store, principal, false)
            .await
            .unwrap();
        set.split(';').next().unwrap().to_owned()
    }

    /// Sends `method path` with `cookies`, a form body (if any) and `extra`
    /// headers; the page it answers.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        cookies: &[&str],
        form: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Page {
        let mut req = Request::builder().method(method).uri(path);
        if !cookies.is_empty() {
            req = req.header(header::COOKIE, cookies.join("; "));
        }
        if form.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::from(form.unwrap_or("").to_owned())).unwrap();
        let response = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

/// What the console answered: status, headers and the body as text.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// The text of the page's `<h1>`.
    pub fn h1(&self) -> &str {
        let start = self.body.find("<h1>").expect("a heading") + 4;
        let end = self.body[start..].find("</h1>").unwrap() + start;
        &self.body[start..end]
    }

    /// The ids in links `href="<prefix><id>"`, in page order.
    pub fn linked_ids(&self, prefix: &str) -> Vec<i64> {
        let marker = format!("href=\"{prefix}");
        self.body
            .match_indices(&marker)
            .filter_map(|(i, _)| {
                let rest = &self.body[i + marker.len()..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                (rest[digits.len()..].starts_with('"'))
                    .then(|| digits.parse().ok())
                    .flatten()
            })
            .collect()
    }

    /// The events listed in `#events-table`.
    pub fn events(&self) -> Vec<i64> {
        let Some(table) = self.body.find("id=\"events-table\"") else {
            return Vec::new();
        };
        let end = self.body[table..].find("</table>").unwrap() + table;
        let part = Page {
            status: self.status,
            headers: HeaderMap::new(),
            body: self.body[table..end].to_owned(),
        };
        let mut ids = part.linked_ids("/console/events/");
        ids.dedup();
        ids
    }

    /// How many deliveries `#deliveries-table` lists.
    pub fn delivery_rows(&self) -> usize {
        self.body.matches("<summary>Attempts (").count()
    }

    /// The `href` of the link whose text is `text`.
    pub fn link(&self, text: &str) -> Option<String> {
        let end = self.body.find(&format!(">{text}</a>"))?;
        let start = self.body[..end].rfind("href=\"")? + 6;
        let len = self.body[start..].find('"')?;
        Some(self.body[start..start + len].replace("&amp;", "&"))
    }

    /// The `name=value` of a Set-Cookie for `name`, with its attributes.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// Just `name=value` of that cookie, for a Cookie header.
    pub fn cookie(&self, name: &str) -> String {
        let c = self
            .set_cookie(name)
            .unwrap_or_else(|| panic!("no {name} cookie in {:?}", self.headers));
        c.split(';').next().unwrap().to_owned()
    }

    /// The value of `<input ... name="csrf" value="...">` or the csrf meta.
    pub fn csrf(&self) -> String {
        for marker in ["name=\"csrf\" value=\"", "name=\"csrf-token\" content=\""] {
            if let Some(i) = self.body.find(marker) {
                let rest = &self.body[i + marker.len()..];
                return rest[..rest.find('"').unwrap()].to_owned();
            }
        }
        panic!("no CSRF token in {}", self.body)
    }
}
