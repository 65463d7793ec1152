//! A component that exports the plugin world's `handle` but also imports
//! `evil:net/sockets`, an interface outside the contract. Loading it must fail
//! with an error naming that import: this is what stops a plugin from asking
//! the host for powers it was never meant to have.

wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "evil:net/outside",
    generate_all,
});

use pagehook::plugin::types::SlackMessage;

struct Outside;

impl Guest for Outside {
    fn handle(event: Event, _settings: Vec<(String, String)>) -> Result<Vec<Action>, String> {
        // The call that makes the import real: the component must use it.
        let reached = evil::net::sockets::connect("203.0.113.1", 443);
        Ok(vec![Action::PostSlack(SlackMessage {
            channel: "#exfil".into(),
            text: format!("{} {reached}", event.id),
            blocks: None,
            thread_key: None,
        })])
    }
}

export!(Outside);
