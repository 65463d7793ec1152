//! The admin API's OpenAPI document and error answers, in process through
//! `pagehook::server::router` on a temp SQLite store: the document is
//! OpenAPI 3.1 and served without auth, lists exactly the routes served,
//! every documented operation is served and answers a status it documents,
//! and errors are `{"error": ...}` JSON that never carries a file path.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use pagehook::config::Config;
use pagehook::server::{AppState, router};
use pagehook::store::Store;
use serde_json::Value;
use tower::ServiceExt;

const TOKEN: &str = "api-openapi-test-token";

/// A router over a fresh store in a temp dir.
struct App {
    dir: tempfile::TempDir,
    state: Arc<AppState>,
}

impl App {
    fn new() -> App {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.store.database = dir.path().join("pagehook.db");
        config.store.plugins_dir = dir.path().join("plugins");
        config.server.admin_token = Some(pagehook::secret::SecretSource::Value(TOKEN.into()));
        let store = Arc::new(Store::open_sqlite(&config.store.database).unwrap());
        let ingest =
            pagehook::store::ingest::Ingest::start(&store, Arc::new(tokio::sync::Notify::new()))
                .unwrap();
        let state = Arc::new(AppState {
            ingest,
            metrics: Arc::new(pagehook::metrics::Metrics::new()),
            runtime: Arc::new(pagehook::runtime::Runtime::new(
                config.runtime_config().unwrap(),
            )),
            admin_token: config.admin_token().unwrap(),
            config,
            store,
            sources: Default::default(),
        });
        App { dir, state }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Body::from(body.unwrap_or("").to_owned())).unwrap();
        let response = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{method} {path}: {status} answered non-JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        (status, headers, value)
    }

    async fn document(&self) -> Value {
        let (status, _, doc) = self.call("GET", "/api/openapi.json", None, None).await;
        assert_eq!(status, StatusCode::OK, "{doc}");
        doc
    }
}

/// Every route of the admin API, as the console and automation use them.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/openapi.json"),
    ("get", "/api/plugins"),
    ("post", "/api/plugins"),
    ("delete", "/api/plugins/{name}"),
    ("post", "/api/plugins/{name}/enable"),
    ("post", "/api/plugins/{name}/disable"),
    ("post", "/api/plugins/{name}/reset"),
    ("get", "/api/connections"),
    ("post", "/api/connections"),
    ("delete", "/api/connections/{name}"),
    ("post", "/api/connections/{name}/test"),
    ("get", "/api/bindings"),
    ("post", "/api/bindings"),
    ("delete", "/api/bindings/{id}"),
    ("get", "/api/events"),
    ("get", "/api/events/{id}"),
    ("get", "/api/deliveries"),
    ("post", "/api/deliveries/{id}/retry"),
    ("get", "/api/deliveries/{id}/attempts"),
    ("get", "/api/audit"),
    ("get", "/api/failures"),
];

fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                ops.push((method.to_owned(), path.clone()));
            }
        }
    }
    ops.sort();
    ops
}

#[tokio::test]
async fn the_document_is_openapi_3_1_served_without_auth() {
    let app = App::new();
    let doc = app.document().await;
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    assert_eq!(doc["info"]["title"], "Pagehook admin API");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["paths"]["/api/openapi.json"]["get"]["security"],
        serde_json::json!([])
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

#[tokio::test]
async fn the_document_lists_every_route_and_every_route_is_served() {
    let app = App::new();
    let doc = app.document().await;
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(operations(&doc), expected);

    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let uri = path
            .replace("{name}", "no-such-thing")
            .replace("{id}", "424242");
        let body = op.get("requestBody").map(|_| "{}");
        let (status, _, answer) = app
            .call(&method.to_uppercase(), &uri, body, Some(TOKEN))
            .await;
        assert!(
            !(status == StatusCode::NOT_FOUND
                && answer["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("no such API route"))
                && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not served: {status} {answer}"
        );
        assert!(
            op["responses"].get(status.as_str()).is_some(),
            "{method} {path} answered {status}, which its document does not list: {answer}"
        );
        if status.is_client_error() {
            assert!(answer["error"].is_string(), "{method} {path}: {answer}");
        }
        if op.get("security") != Some(&serde_json::json!([])) {
            let (status, _, answer) = app.call(&method.to_uppercase(), &uri, body, None).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path}: {answer}"
            );
            assert!(op["responses"].get("401").is_some(), "{method} {path}");
        }
    }
}

#[tokio::test]
async fn rejections_and_unknown_routes_answer_json() {
    let app = App::new();
    let auth = Some(TOKEN);
    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        ("POST", "/api/bindings", Some("{not json"), 400, "as JSON"),
        (
            "POST",
            "/api/bindings",
            Some(r#"{"plugin": 7}"#),
            422,
            "plugin",
        ),
        (
            "POST",
            "/api/bindings",
            Some(r#"{"plugin": "x", "nope": 1}"#),
            422,
            "nope",
        ),
        ("GET", "/api/events/abc", None, 400, "abc"),
        ("GET", "/api/events?status=lost", None, 400, "lost"),
        ("GET", "/api/events?limit=-1", None, 400, "limit"),
        ("GET", "/api/events?colour=red", None, 400, "colour"),
        ("GET", "/api/nothing-here", None, 404, "no such API route"),
        ("PUT", "/api/plugins", Some("{}"), 405, "method"),
        (
            "POST",
            "/api/plugins",
            Some(r#"{"dir": "/no/such/plugin/dir"}"#),
            400,
            "not a directory",
        ),
    ];
    for (method, path, body, status, says) in cases {
        let (got, headers, answer) = app.call(method, path, *body, auth).await;
        assert_eq!(got.as_u16(), *status, "{method} {path}: {answer}");
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"));
        assert!(error.contains(says), "{method} {path}: {error}");
        if *status == 405 {
            assert!(headers.get("allow").is_some(), "405 keeps its Allow header");
        }
    }
    // A body that is not declared JSON.
    let req = Request::builder()
        .method("POST")
        .uri("/api/bindings")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    let response = router(app.state.clone()).oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("application/json")
    );
}

#[tokio::test]
async fn a_failure_inside_pagehook_answers_without_a_path() {
    let app = App::new();
    // The database loses a table behind the server's back.
    let db = app.dir.path().join("pagehook.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("DROP TABLE bindings")
        .unwrap();
    let (status, _, answer) = app.call("GET", "/api/bindings", None, Some(TOKEN)).await;
    assert!(status.is_server_error(), "{status} {answer}");
    let doc = app.document().await;
    assert!(
        doc["paths"]["/api/bindings"]["get"]["responses"]
            .get(status.as_str())
            .is_some()
    );
    let text = answer.to_string();
    let dir = app.dir.path().display().to_string();
    for leak in [dir.as_str(), "pagehook.db", "bindings", "no such table"] {
        assert!(!text.contains(leak), "`{leak}` in {text}");
    }
    assert!(text.contains("the log has the details"), "{text}");
}
