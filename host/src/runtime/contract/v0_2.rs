//! `pagehook:plugin@0.2.0`, frozen: the bindings of `wit/since_v0.2.0/` and
//! the conversions between the host's model and them.
//!
//! Everything 0.1.0 had converts as it did there (written once, in the
//! parent module); 0.2.0 added the people a page event concerns, chat
//! events, and the `unfurl` and `respond` actions (also written once, for
//! every version since). A 0.2.0 plugin is called once per event: digests
//! (0.3.0) never reach it.

use wasmtime::Store;

use super::Returned;
use crate::model::{Action, Event};
use crate::runtime::sandbox::CallState;

super::version_glue!("../wit/since_v0.2.0");
super::since_0_2_conversions!();

/// The event as 0.2.0 has it.
pub(crate) fn event(e: &Event) -> types::Event {
    common_event!(
        e,
        since_0_2_event_kind(e.kind).unwrap_or(types::EventKind::Other),
        {
            people: e.people.iter().map(concerned).collect(),
            chat: e.chat.as_ref().and_then(slack_chat),
        }
    )
}

/// An action and its kind, converted to the model (or why it cannot be).
pub(crate) fn convert(action: types::Action) -> (&'static str, Result<Action, String>) {
    since_0_2_action(action).unwrap_or_else(|newer| {
        (
            "unknown",
            Err(format!("not an action of contract 0.2.0: {newer:?}")),
        )
    })
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
    Ok(returned.map(|actions| actions.into_iter().map(convert).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_blocks_must_be_a_json_array_and_unfurls_an_object() {
        let post = |blocks: &str| {
            convert(types::Action::PostSlack(types::SlackMessage {
                channel: "#eng".into(),
                text: "t".into(),
                blocks: Some(blocks.into()),
                thread_key: None,
            }))
        };
        assert_eq!(post(r#"[{"type":"divider"}]"#).0, "post-slack");
        assert!(post(r#"[{"type":"divider"}]"#).1.is_ok());
        assert!(post("{").1.unwrap_err().contains("not valid JSON"));
        assert!(post("{}").1.unwrap_err().contains("array"));
        let unfurl = |unfurls: &str| {
            convert(types::Action::Unfurl(types::SlackUnfurl {
                channel: "C1".into(),
                message_ts: "1.2".into(),
                unfurls: unfurls.into(),
            }))
        };
        assert_eq!(unfurl("{}").0, "unfurl");
        assert!(unfurl("[]").1.unwrap_err().contains("object"));
    }
}
