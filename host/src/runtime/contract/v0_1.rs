//! `pagehook:plugin@0.1.0`, frozen: the bindings of `wit/since_v0.1.0/` and
//! the adapter from the host's model to them.
//!
//! A 0.1.0 plugin sees exactly what it saw before 0.2.0 existed: the
//! fields 0.2.0 added (`people`, `chat`) are left out, and chat event kinds
//! never reach it (its manifest cannot ask for them; were one handed over
//! anyway it would read `other`). It cannot return `unfurl` or `respond`.

use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker};

use super::Returned;
use crate::model::{Action, Event};
use crate::runtime::sandbox::CallState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/since_v0.1.0",
        world: "plugin",
        imports: { default: trappable },
    });
}

use bindings::{Plugin, PluginImports, PluginPre};

pub(crate) use self::bindings::pagehook::plugin::types;
use self::types::LogLevel;

pub(crate) type Pre = PluginPre<CallState>;

super::shared_conversions!();
use super::common_event;

impl types::Host for CallState {}

impl PluginImports for CallState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        self.log_line(log_level(level), &message)
    }
}

pub(super) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    Plugin::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

pub(super) fn prepare(
    linker: &Linker<CallState>,
    component: &wasmtime::component::Component,
) -> wasmtime::Result<Pre> {
    PluginPre::new(linker.instantiate_pre(component)?)
}

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
