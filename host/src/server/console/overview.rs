//! (being written)

use std::sync::Arc;

use axum::Router;

use crate::server::AppState;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
}
