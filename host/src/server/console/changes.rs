//! `/console/changes`: the change log, who changed what through the admin
//! API or the console, newest first, a page at a time (keyset on id).
//!
//! Only the Pagehook admin reads it: it spans every space. What it must
//! never show is a secret, and the log holds none (callers write names and
//! ids in `detail`).

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use maud::html;
use serde::Deserialize;

use super::events::{Paging, caption, given, pager, params};
use super::{PageResult, Section, Viewer, page, when};
use crate::server::AppState;
use crate::store::ChangeQuery;

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/changes", get(list))
}

#[derive(Debug, Default, Deserialize)]
struct ListParams {
    before: Option<String>,
    limit: Option<String>,
}

async fn list(
    viewer: Viewer,
    State(state): State<Arc<AppState>>,
    query: Result<Query<ListParams>, QueryRejection>,
) -> PageResult {
    viewer.require_admin("the change log")?;
    let p = params(query)?;
    let paging = Paging::parse(given(&p.before), given(&p.limit))?;
    let rows = state
        .store
        .changes(&ChangeQuery {
            before: paging.before,
            limit: paging.limit,
        })
        .await?;
    let mut filters = Vec::new();
    paging.push_limit(&mut filters);
    let body = html! {
        p class="muted" { "Every change made through the admin API or this console, and every sign-in and sign-out." }
        (caption(rows.len(), ("change", "changes"), paging.before))
        @if rows.is_empty() {
            p class="muted" { "Nothing has been changed yet." }
        } @else {
            table id="changes-table" {
                thead {
                    tr {
                        th scope="col" { "When" }
                        th scope="col" { "Actor" }
                        th scope="col" { "Action" }
                        th scope="col" { "Target" }
                        th scope="col" { "Detail" }
                    }
                }
                tbody {
                    @for c in &rows {
                        tr {
                            td { (when(c.at)) }
                            td { (c.actor) }
                            td { code { (c.action) } }
                            td { (c.target) }
                            td {
                                @if !c.detail.is_null() {
                                    code { (c.detail.to_string()) }
                                }
                            }
                        }
                    }
                }
            }
        }
        (pager("/console/changes", &filters, &paging, rows.len(), rows.last().map(|c| c.id), "changes"))
    };
    Ok(page(&viewer, Section::Changes, "Changes", body))
}
