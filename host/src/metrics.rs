//! Prometheus metrics for `/metrics`: what an operator alerts on.
//!
//! Counters for events received, rejected and dispatched, plugin calls and
//! failures by plugin, a histogram of plugin call duration, and a gauge of
//! the seconds left before each Confluence connection's personal access
//! token expires (negative once it has; computed at scrape time from the
//! expiry `pagehook serve` last read), and counters of the people whose
//! email was found for personal notifications (by connection and the way it
//! was found) and of those left out (by connection and reason, see
//! `source::emails`). Label values come from a closed set
//! (results, error codes) or from names the admin chose (sources, plugins,
//! connections), so cardinality stays bounded.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    plugin: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeopleLabels {
    connection: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EmailFoundLabels {
    connection: String,
    via: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    plugin: String,
    code: String,
}

fn call_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    ])
}

/// The sidecar's metrics; one per process, shared by reference.
pub struct Metrics {
    registry: Mutex<Registry>,
    received: Family<SourceLabels, Counter>,
    duplicates: Family<SourceLabels, Counter>,
    rejected: Family<RejectLabels, Counter>,
    dispatched: Counter,
    calls: Family<CallLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    call_seconds: Family<PluginLabels, Histogram, fn() -> Histogram>,
    token_expiry: Family<ConnectionLabels, Gauge>,
    people_unresolved: Family<PeopleLabels, Counter>,
    people_emails: Family<EmailFoundLabels, Counter>,
    /// Connection → when its token expires (ms since the epoch).
    token_expires_at: Mutex<BTreeMap<String, i64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("pagehook");
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            received: Family::default(),
            duplicates: Family::default(),
            rejected: Family::default(),
            dispatched: Counter::default(),
            calls: Family::default(),
            failures: Family::default(),
            call_seconds: Family::new_with_constructor(call_histogram),
            token_expiry: Family::default(),
            people_unresolved: Family::default(),
            people_emails: Family::default(),
            token_expires_at: Mutex::new(BTreeMap::new()),
        };
        registry.register(
            "events_received",
            "Webhook events stored durably, by source",
            m.received.clone(),
        );
        registry.register(
            "events_duplicate",
            "Webhook deliveries recognised as repeats of a stored event",
            m.duplicates.clone(),
        );
        registry.register(
            "events_rejected",
            "Webhook requests refused, by reason",
            m.rejected.clone(),
        );
        registry.register(
            "events_dispatched",
            "Events whose bindings have run",
            m.dispatched.clone(),
        );
        registry.register(
            "plugin_calls",
            "Plugin calls, by plugin and outcome (ok or error)",
            m.calls.clone(),
        );
        registry.register(
            "plugin_failures",
            "Failed plugin calls, by plugin and error code",
            m.failures.clone(),
        );
        registry.register(
            "plugin_call_seconds",
            "Wall-clock time of a plugin call (instantiate and run)",
            m.call_seconds.clone(),
        );
        registry.register(
            "confluence_token_expiry_seconds",
            "Seconds until the personal access token of a Confluence connection expires (negative once expired)",
            m.token_expiry.clone(),
        );
        registry.register(
            "people_unresolved",
            "People an event concerns who were left out of personal notifications because no email could be found or whether they may view the content could not be told, by Confluence connection and reason (email_hidden, no_profile, not_permitted, lookup_failed, view_not_known)",
            m.people_unresolved.clone(),
        );
        registry.register(
            "people_emails",
            "Emails found for people an event concerns, by Confluence connection and where from (link, mobile_profile, admin_list)",
            m.people_emails.clone(),
        );
        *m.registry.lock().unwrap_or_else(|p| p.into_inner()) = registry;
        m
    }

    /// An event from `source` was stored (or recognised as a duplicate).
    pub fn received(&self, source: &str, duplicate: bool) {
        let labels = SourceLabels {
            source: source.to_owned(),
        };
        if duplicate {
            self.duplicates.get_or_create(&labels).inc();
        } else {
            self.received.get_or_create(&labels).inc();
        }
    }

    /// A webhook was refused (`signature`, `too-large`, `malformed`, `unknown-source`).
    pub fn rejected(&self, reason: &str) {
        self.rejected
            .get_or_create(&RejectLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// An event was dispatched.
    pub fn dispatched(&self) {
        self.dispatched.inc();
    }

    /// A plugin call finished; `error_code` is `None` on success.
    pub fn call(&self, plugin: &str, seconds: f64, error_code: Option<&str>) {
        self.calls
            .get_or_create(&CallLabels {
                plugin: plugin.to_owned(),
                outcome: if error_code.is_some() { "error" } else { "ok" }.to_owned(),
            })
            .inc();
        self.call_seconds
            .get_or_create(&PluginLabels {
                plugin: plugin.to_owned(),
            })
            .observe(seconds);
        if let Some(code) = error_code {
            self.failure(plugin, code);
        }
    }

    /// A binding failed without a call (breaker open, plugin not loadable).
    pub fn failure(&self, plugin: &str, code: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                plugin: plugin.to_owned(),
                code: code.to_owned(),
            })
            .inc();
    }

    /// A person was left out of `event.people` for want of an email
    /// (`reason`: `email_hidden`, `no_profile`, `not_permitted`, `lookup_failed`)
    /// or because whether they may view the content cannot be told
    /// (`view_not_known`).
    pub fn person_unresolved(&self, connection: &str, reason: &str) {
        self.people_unresolved
            .get_or_create(&PeopleLabels {
                connection: connection.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// A person's email was found (`via`: `link`, `mobile_profile`, `admin_list`).
    pub fn person_email_found(&self, connection: &str, via: &str) {
        self.people_emails
            .get_or_create(&EmailFoundLabels {
                connection: connection.to_owned(),
                via: via.to_owned(),
            })
            .inc();
    }

    /// Replaces the known token expiries: `(connection, expires at in ms)`;
    /// a connection without an expiry (never expires, or not read yet) has
    /// no series.
    pub fn set_token_expiries(&self, expiries: Vec<(String, Option<i64>)>) {
        let mut known = self
            .token_expires_at
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *known = expiries
            .into_iter()
            .filter_map(|(name, at)| Some((name, at?)))
            .collect();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        self.refresh_token_expiry(crate::store::now_ms());
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Sets the expiry gauge to the seconds left at `now` (ms).
    fn refresh_token_expiry(&self, now: i64) {
        let known = self
            .token_expires_at
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.token_expiry.clear();
        for (connection, at) in known.iter() {
            self.token_expiry
                .get_or_create(&ConnectionLabels {
                    connection: connection.clone(),
                })
                .set((at - now).div_euclid(1000));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_exposition_has_every_family_with_labels() {
        let m = Metrics::new();
        m.received("prod", false);
        m.received("prod", true);
        m.rejected("signature");
        m.dispatched();
        m.call("slack-poster", 0.002, None);
        m.call("slack-poster", 0.2, Some("out-of-fuel"));
        m.person_unresolved("prod", "email_hidden");
        m.person_unresolved("prod", "email_hidden");
        m.person_email_found("prod", "mobile_profile");
        let text = m.encode();
        for line in [
            "pagehook_events_received_total{source=\"prod\"} 1",
            "pagehook_events_duplicate_total{source=\"prod\"} 1",
            "pagehook_events_rejected_total{reason=\"signature\"} 1",
            "pagehook_events_dispatched_total 1",
            "pagehook_plugin_calls_total{plugin=\"slack-poster\",outcome=\"error\"} 1",
            "pagehook_plugin_failures_total{plugin=\"slack-poster\",code=\"out-of-fuel\"} 1",
            "pagehook_plugin_call_seconds_count{plugin=\"slack-poster\"} 2",
            "pagehook_people_unresolved_total{connection=\"prod\",reason=\"email_hidden\"} 2",
            "pagehook_people_emails_total{connection=\"prod\",via=\"mobile_profile\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn token_expiry_counts_down_from_the_recorded_expiry() {
        let m = Metrics::new();
        m.set_token_expiries(vec![
            ("prod".into(), Some(10_000_000)),
            ("old".into(), Some(1_000)),
            ("forever".into(), None),
        ]);
        m.refresh_token_expiry(4_000_000);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &m.registry.lock().unwrap()).unwrap();
        assert!(
            text.contains("pagehook_confluence_token_expiry_seconds{connection=\"prod\"} 6000\n"),
            "{text}"
        );
        assert!(
            text.contains("pagehook_confluence_token_expiry_seconds{connection=\"old\"} -3999\n"),
            "{text}"
        );
        assert!(!text.contains("forever"), "{text}");
        m.set_token_expiries(vec![]);
        assert!(!m.encode().contains("connection=\"prod\""));
    }
}
