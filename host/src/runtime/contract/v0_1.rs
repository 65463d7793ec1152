//! `pagehook:plugin@0.1.0`, frozen: the bindings of `wit/since_v0.1.0/` and
//! the adapter from the host's model to them.
//!
//! A 0.1.0 plugin sees exactly what it saw before 0.2.0 existed: the
//! fields 0.2.0 added (`people`, `chat`) are left out, and chat event kinds
//! never reach it (its manifest cannot ask for them; were one handed over
//! anyway it would read `other`). It cannot return `unfurl` or `respond`.

use wasmtime::Store;

use super::Returned;
use crate::model::{Action, Event};
use crate::runtime::sandbox::CallState;

super::version_glue!("../wit/since_v0.1.0");

/// The event as 0.1.0 has it.
pub(crate) fn event(e: &Event) -> types::Event {
    common_event!(
        e,
        common_event_kind(e.kind).unwrap_or(types::EventKind::Other),
        {}
    )
}

pub(super) fn call(
    pre: &Pre,
    store: &mut Store<CallState>,
    event_: &Event,
    settings: &[(String, String)],
) -> wasmtime::Result<Returned> {
    let wit_event = event(event_);
    let instance = pre.instantiate(&mut *store)?;
    let returned = instance.call_handle(&mut *store, &wit_event, &settings.to_vec())?;
    Ok(returned.map(|actions| {
        actions
            .into_iter()
            .map(|action| {
                let kind = common_kind(&action).unwrap_or("unknown");
                (kind, convert(action))
            })
            .collect()
    }))
}

fn convert(action: types::Action) -> Result<Action, String> {
    common_action(action).unwrap_or_else(|_| Err("not an action of contract 0.1.0".into()))
}
