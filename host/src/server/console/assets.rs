//! The console's stylesheet and script, compiled into the binary: nothing
//! to install beside `pagehook`, and no page loads anything from elsewhere.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::server::AppState;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");
/// Pickers, typed settings and feedback that stays (binding_form.rs).
const FORMS_CSS: &str = include_str!("assets/forms.css");
const FORMS_JS: &str = include_str!("assets/forms.js");
/// Rendered previews: Slack, Teams and Confluence looks (render/), and the
/// script that starts the Adaptive Cards renderer.
const PREVIEW_CSS: &str = include_str!("assets/preview.css");
const PREVIEW_JS: &str = include_str!("assets/preview.js");
/// Microsoft's Adaptive Cards renderer, npm `adaptivecards` 3.0.6 as
/// published (assets/vendor/README.md): loaded only where a Teams card shows.
const ADAPTIVECARDS_JS: &str = include_str!("assets/vendor/adaptivecards.min.js");
const ADAPTIVECARDS_CSS: &str = include_str!("assets/vendor/adaptivecards.css");
/// The sha256 of the two vendored files, as the vendor README records them.
#[cfg(test)]
const ADAPTIVECARDS_SHA256: [(&str, &str); 2] = [
    (
        ADAPTIVECARDS_JS,
        "5e7c13f3300ae7b89b34703501e08d709fbb6635f1c6755b92495577a77344f2",
    ),
    (
        ADAPTIVECARDS_CSS,
        "bcf97b20804a64d79e1f7bc121fc727a177e72fe093bc5b8f0df2e7338ab27ac",
    ),
];

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/assets/console.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/assets/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", JS) }),
        )
        .route(
            "/assets/forms.css",
            get(|| async { asset("text/css; charset=utf-8", FORMS_CSS) }),
        )
        .route(
            "/assets/forms.js",
            get(|| async { asset("text/javascript; charset=utf-8", FORMS_JS) }),
        )
        .route(
            "/assets/preview.css",
            get(|| async { asset("text/css; charset=utf-8", PREVIEW_CSS) }),
        )
        .route(
            "/assets/preview.js",
            get(|| async { asset("text/javascript; charset=utf-8", PREVIEW_JS) }),
        )
        .route(
            "/assets/adaptivecards.min.js",
            get(|| async { asset("text/javascript; charset=utf-8", ADAPTIVECARDS_JS) }),
        )
        .route(
            "/assets/adaptivecards.css",
            get(|| async { asset("text/css; charset=utf-8", ADAPTIVECARDS_CSS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Assets change only with the binary; an hour saves a request per page.
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    #[test]
    fn the_vendored_adaptive_cards_renderer_is_the_published_build() {
        for (file, sha) in super::ADAPTIVECARDS_SHA256 {
            assert_eq!(
                hex::encode(Sha256::digest(file.as_bytes())),
                sha,
                "a vendored Adaptive Cards file changed: run scripts/adaptivecards.sh"
            );
        }
        // What the Content-Security-Policy forbids is not in it.
        assert!(!super::ADAPTIVECARDS_JS.contains("eval("));
        assert!(!super::ADAPTIVECARDS_JS.contains("new Function"));
        assert!(!super::ADAPTIVECARDS_JS.contains("createElement(\"style\")"));
    }
}
