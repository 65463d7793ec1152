//! The admin API in process: `pagehook::server::router` over a fresh SQLite
//! store in a temp dir, called with `Router::oneshot` (no socket), by the
//! admin token or by a console session (cookie + CSRF token).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use pagehook::config::Config;
use pagehook::server::session::{self, Principal, SESSION_COOKIE, SpaceAdmin};
use pagehook::server::{AppState, router};
use serde_json::Value;
use tower::ServiceExt;

/// The admin token of every [`App`].
pub const TOKEN: &str = "api-test-admin-token";

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    /// No credentials.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// A console session's cookie, with this CSRF header (if any).
    Session {
        cookie: String,
        csrf: Option<String>,
    },
}

impl Auth {
    /// The admin token.
    pub fn admin() -> Auth {
        Auth::Bearer(TOKEN.into())
    }
}

/// A console session, as a browser holds it.
#[derive(Clone, Debug)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

impl Session {
    /// Its cookie with its CSRF token.
    pub fn auth(&self) -> Auth {
        Auth::Session {
            cookie: self.cookie.clone(),
            csrf: Some(self.csrf.clone()),
        }
    }

    /// Its cookie without the CSRF header.
    pub fn without_csrf(&self) -> Auth {
        Auth::Session {
            cookie: self.cookie.clone(),
            csrf: None,
        }
    }
}

/// An answer: status, headers and JSON body (`Null` when empty).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

/// A router over a fresh store.
pub struct App {
    pub dir: tempfile::TempDir,
    pub state: Arc<AppState>,
}

impl App {
    pub fn new() -> App {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.store.database = dir.path().join("pagehook.db");
        config.store.plugins_dir = dir.path().join("plugins");
        config.sandbox.cache_dir = Some(
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pagehook-cache"),
        );
        config.server.admin_token = Some(pagehook::secret::SecretSource::Value(TOKEN.into()));
        let state = AppState::standalone(config).unwrap();
        App { dir, state }
    }

    /// A console session for `principal`, made as sign-in makes it.
    pub async fn session(&self, principal: &Principal) -> Session {
        let set_cookie = session::start(&self.state.store, principal, false)
            .await
            .unwrap();
        let id = set_cookie
            .strip_prefix(&format!("{SESSION_COOKIE}="))
            .and_then(|rest| rest.split(';').next())
            .unwrap()
            .to_owned();
        let record = self
            .state
            .store
            .session(&session::id_hash(&id))
            .await
            .unwrap()
            .unwrap();
        Session {
            cookie: format!("{SESSION_COOKIE}={id}"),
            csrf: record.csrf,
        }
    }

    /// A session of a Confluence user who administers `spaces`.
    pub async fn space_admin(&self, spaces: &[&str]) -> Session {
        self.session(&Principal::SpaceAdmin(SpaceAdmin {
            source: "wiki".into(),
            user_key: "u-jdoe".into(),
            username: "jdoe".into(),
            display_name: "J. Doe".into(),
            spaces: spaces.iter().map(|s| (*s).to_owned()).collect(),
        }))
        .await
    }

    /// Sends a request with a JSON body (or none).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        auth: &Auth,
    ) -> Answer {
        let (bytes, content_type) = match body {
            Some(v) => (
                v.to_string().into_bytes(),
                Some("application/json".to_owned()),
            ),
            None => (Vec::new(), None),
        };
        self.send(method, path, bytes, content_type.as_deref(), &[], auth)
            .await
    }

    /// Sends a request with a raw body and extra headers.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
        auth: &Auth,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => req = req.header("authorization", format!("Bearer {t}")),
            Auth::Session { cookie, csrf } => {
                req = req.header("cookie", cookie.as_str());
                if let Some(c) = csrf {
                    req = req.header("x-csrf-token", c.as_str());
                }
            }
        }
        let response = router(self.state.clone())
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{method} {path}: {status} answered non-JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Answer {
            status,
            headers,
            json,
        }
    }

    /// The OpenAPI document.
    pub async fn document(&self) -> Value {
        let a = self
            .call("GET", "/api/openapi.json", None, &Auth::None)
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.json);
        a.json
    }
}
