//! retro-writer: when an incident page appears in Confluence, create its
//! retrospective page and link it from the incident.
//!
//! Trigger: a page or blog post carrying the incident label (setting
//! `label`, default `incident`) is created, or that label is added to one.
//! Actions: `create-page` (a child of the incident page, or under a
//! configured parent, titled from a Liquid pattern, body rendered from a
//! Liquid template, labelled, with a once-key so an incident never gets two
//! retrospectives) and `add-comment` on the incident page linking to it
//! (once-key too). Template values are XML-escaped before they are inserted,
//! so a title like `DB <primary> & replica` cannot break the page's markup.

use liquid::model::{Object, Value};
use pagehook_guest::storage::{self, Xml};
use pagehook_guest::{Action, Event, EventKind, NewComment, NewPage, Plugin, Settings, log};

/// The bundled body template (Confluence storage format with Liquid tags).
pub const DEFAULT_TEMPLATE: &str = include_str!("../templates/retrospective.liquid");
/// The bundled title pattern.
pub const DEFAULT_TITLE: &str = "Retrospective: {{ incident.title }}";
/// Longest page title Confluence accepts.
const MAX_TITLE_CHARS: usize = 255;

/// The plugin.
pub struct RetroWriter;

impl Plugin for RetroWriter {
    fn handle(event: Event, settings: Settings) -> Result<Vec<Action>, String> {
        let label = settings.string_or("label", "incident").to_lowercase();
        let spaces = settings.list("spaces");
        let Some(content) = &event.content else {
            return Ok(vec![]);
        };
        let labelled = content
            .labels
            .iter()
            .any(|l| l.eq_ignore_ascii_case(&label));
        let triggered = match event.kind {
            EventKind::PageCreated | EventKind::BlogCreated => labelled,
            EventKind::LabelAdded => event
                .label
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case(&label)),
            _ => false,
        };
        if !triggered {
            log::debug(format!("{} does not add the `{label}` label", event.id));
            return Ok(vec![]);
        }
        if event.by_pagehook {
            log::info("skipped: caused by Pagehook itself");
            return Ok(vec![]);
        }
        if !spaces.is_empty() && !spaces.contains(&content.space_key) {
            log::info(format!(
                "skipped: space {} is not in `spaces`",
                content.space_key
            ));
            return Ok(vec![]);
        }
        if !event.enriched && content.title.is_empty() {
            return Err(format!(
                "incident {} could not be read from Confluence, so there is no title to write a retrospective for",
                content.id
            ));
        }

        let raw = variables(&event, false);
        let escaped = variables(&event, true);
        let title = render("title", settings.string_or("title", DEFAULT_TITLE), raw)?;
        let title = pagehook_guest::text::truncate(title.trim(), MAX_TITLE_CHARS);
        if title.is_empty() {
            return Err("setting `title` renders to an empty title".into());
        }
        let (setting, template) = body_template(&settings)?;
        let body = render(setting, template, escaped)?;
        let space = settings.string_or("space", &content.space_key).to_owned();
        let parent = match settings.string("parent-id") {
            Some(_) => Some(settings.u64_or("parent-id", 0)?),
            None if space == content.space_key => Some(content.id),
            None => None,
        };
        let key = format!("{}-{}", event.source, content.id);
        let mut page = NewPage::new(space.clone(), title.clone(), body);
        page.parent_id = parent;
        page.labels = match settings.string("labels") {
            None => vec!["retrospective".into()],
            Some(_) => settings.list("labels"),
        };
        page.once_key = Some(format!("retro-{key}"));
        let mut actions = vec![Action::CreatePage(page)];
        if settings.bool_or("comment", true)? {
            let link = storage::page_link_in(&space, &title);
            let comment = storage::paragraph(
                Xml::text("The retrospective for this incident is ready to fill in: ").then(link),
            );
            let mut comment = NewComment::new(content.id, comment.into_string());
            comment.once_key = Some(format!("retro-comment-{key}"));
            actions.push(Action::AddComment(comment));
        }
        log::info(format!(
            "retrospective \"{title}\" for incident {}",
            content.id
        ));
        Ok(actions)
    }
}

/// The Liquid variables: `incident` (the page) and `event`; with `escape`,
/// every string is XML-escaped (quotes too, as values also land in
/// attributes such as `href`) for the storage-format body.
fn variables(event: &Event, escape: bool) -> Object {
    let s = |text: &str| -> Value {
        Value::scalar(if escape {
            storage::escape_attr(text)
        } else {
            text.to_owned()
        })
    };
    let content = event.content.as_ref().expect("checked by the caller");
    let actor = event.actor.as_ref();
    let mut incident = Object::new();
    incident.insert("id".into(), Value::scalar(content.id as i64));
    incident.insert("title".into(), s(&content.title));
    incident.insert("url".into(), s(&content.url));
    incident.insert("space_key".into(), s(&content.space_key));
    incident.insert(
        "space_name".into(),
        s(content.space_name.as_deref().unwrap_or(&content.space_key)),
    );
    incident.insert("author".into(), s(actor.map_or("someone", |a| a.name())));
    incident.insert(
        "author_email".into(),
        s(actor.and_then(|a| a.email.as_deref()).unwrap_or("")),
    );
    incident.insert(
        "excerpt".into(),
        s(content.excerpt.as_deref().unwrap_or("")),
    );
    incident.insert("opened".into(), s(&utc(event.occurred_at_ms)));
    incident.insert(
        "labels".into(),
        Value::Array(content.labels.iter().map(|l| s(l)).collect()),
    );
    let mut ev = Object::new();
    ev.insert("id".into(), s(&event.id));
    ev.insert("name".into(), s(&event.name));
    ev.insert("source".into(), s(&event.source));
    let mut globals = Object::new();
    globals.insert("incident".into(), Value::Object(incident));
    globals.insert("event".into(), Value::Object(ev));
    globals
}

/// The body's Liquid template and the setting it came from: the space
/// template's body when the binding names one (`space-template`, whose
/// value the host replaces with that template's body read from
/// Confluence), else `template`, else the bundled one.
fn body_template(settings: &Settings) -> Result<(&'static str, &str), String> {
    if let Some(body) = settings.string("space-template") {
        // A storage-format body is XHTML. A value without any tag is the
        // template's name that no host replaced (an older host, or
        // `plugin run --set`): writing it as the page would be wrong.
        if !body.contains('<') {
            return Err(format!(
                "setting `space-template` holds `{}`, not a template body: the host replaces the name of a space template with its body, and this one did not (a Pagehook that reads space templates is needed; or set `template` instead)",
                pagehook_guest::text::truncate(body, 80)
            ));
        }
        return Ok(("space-template", body));
    }
    Ok(("template", settings.string_or("template", DEFAULT_TEMPLATE)))
}

/// Renders a Liquid template; an error names the setting and Liquid's line.
fn render(setting: &str, template: &str, globals: Object) -> Result<String, String> {
    let parser = liquid::ParserBuilder::with_stdlib()
        .build()
        .map_err(|e| format!("liquid: {e}"))?;
    let template = parser.parse(template).map_err(|e| {
        format!(
            "setting `{setting}` is not a valid Liquid template: {}",
            one_line(&e.to_string())
        )
    })?;
    template.render(&globals).map_err(|e| {
        format!(
            "setting `{setting}` failed to render: {}",
            one_line(&e.to_string())
        )
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `2026-01-12 18:07 UTC` from milliseconds since the epoch.
fn utc(ms: u64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "an unknown time".into())
}

pagehook_guest::export_plugin!(RetroWriter);

#[cfg(test)]
mod tests {
    use super::*;
    use pagehook_guest::testing;

    /// Storage format is XML with the ac:/ri: prefixes undeclared: wrap it
    /// the way Confluence does before parsing.
    pub fn parse_storage(body: &str) {
        let doc = format!(
            r#"<root xmlns:ac="http://atlassian.com/content" xmlns:ri="http://atlassian.com/resource/identifier">{body}</root>"#
        );
        if let Err(e) = roxmltree::Document::parse(&doc) {
            panic!("not well-formed XML: {e}\n{body}");
        }
    }

    fn incident() -> Event {
        let mut e = testing::event(EventKind::PageCreated);
        let c = e.content.as_mut().unwrap();
        c.title = "Checkout down <EU> & US".into();
        c.labels = vec!["Incident".into()];
        e
    }

    fn run(event: Event, pairs: &[(&str, &str)]) -> Result<Vec<Action>, String> {
        RetroWriter::handle(event, Settings::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn an_incident_page_gets_a_child_retrospective_and_a_comment() {
        let actions = run(incident(), &[]).unwrap();
        let [Action::CreatePage(page), Action::AddComment(comment)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(page.title, "Retrospective: Checkout down <EU> & US");
        assert_eq!(page.space_key, "ENG");
        assert_eq!(page.parent_id, Some(123_456));
        assert_eq!(page.labels, vec!["retrospective"]);
        assert_eq!(page.once_key.as_deref(), Some("retro-wiki-123456"));
        parse_storage(&page.body);
        assert!(page.body.contains("Checkout down &lt;EU&gt; &amp; US"));
        assert!(page.body.contains("ac:name=\"status\"") && page.body.contains("<ac:task-list>"));
        for section in [
            "Summary",
            "Impact",
            "Timeline",
            "Root cause",
            "What went well",
            "What went wrong",
        ] {
            assert!(
                page.body.contains(&format!("<h2>{section}</h2>")),
                "{section}"
            );
        }
        assert!(page.body.contains("2026-01-01 00:00 UTC"), "{}", page.body);
        assert_eq!(comment.page_id, 123_456);
        assert_eq!(
            comment.once_key.as_deref(),
            Some("retro-comment-wiki-123456")
        );
        parse_storage(&comment.body);
        assert!(
            comment
                .body
                .contains("ri:content-title=\"Retrospective: Checkout down &lt;EU&gt; &amp; US\""),
            "{}",
            comment.body
        );
    }

    #[test]
    fn label_added_triggers_and_other_events_do_not() {
        let mut added = testing::event(EventKind::LabelAdded);
        added.label = Some("incident".into());
        assert_eq!(run(added, &[]).unwrap().len(), 2);
        assert!(
            run(testing::event(EventKind::PageCreated), &[])
                .unwrap()
                .is_empty(),
            "no label"
        );
        let mut updated = incident();
        updated.kind = EventKind::PageUpdated;
        assert!(run(updated, &[]).unwrap().is_empty());
        let mut own = incident();
        own.by_pagehook = true;
        assert!(run(own, &[]).unwrap().is_empty());
        assert!(
            run(incident(), &[("spaces", "OPS, SRE")])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn settings_change_place_title_labels_and_template() {
        let actions = run(
            incident(),
            &[
                ("space", "SRE"),
                ("parent-id", "777"),
                (
                    "title",
                    "PIR {{ incident.id }}: {{ incident.title | upcase }}",
                ),
                ("labels", "retro, pir"),
                (
                    "template",
                    "<p>{{ incident.title }} by {{ incident.author }}</p>",
                ),
                ("comment", "false"),
            ],
        )
        .unwrap();
        let [Action::CreatePage(page)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(
            (page.space_key.as_str(), page.parent_id),
            ("SRE", Some(777))
        );
        assert_eq!(page.title, "PIR 123456: CHECKOUT DOWN <EU> & US");
        assert_eq!(page.labels, vec!["retro", "pir"]);
        assert_eq!(
            page.body,
            "<p>Checkout down &lt;EU&gt; &amp; US by Ada Lovelace</p>"
        );
        // Another space without a parent: top level there.
        let actions = run(incident(), &[("space", "SRE")]).unwrap();
        let Action::CreatePage(page) = &actions[0] else {
            panic!()
        };
        assert_eq!(page.parent_id, None);
    }

    #[test]
    fn a_space_template_body_replaces_template() {
        let space_template = "<h1>From the space</h1><p>{{ incident.title }}</p>";
        let actions = run(
            incident(),
            &[
                ("template", "<p>ignored</p>"),
                ("space-template", space_template),
            ],
        )
        .unwrap();
        let [Action::CreatePage(page), _] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(
            page.body,
            "<h1>From the space</h1><p>Checkout down &lt;EU&gt; &amp; US</p>"
        );
        parse_storage(&page.body);
        // Blank: as if unset.
        let actions = run(incident(), &[("space-template", "  ")]).unwrap();
        let [Action::CreatePage(page), _] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert!(page.body.contains("<h2>Root cause</h2>"));
        // Errors name the setting.
        let err = run(incident(), &[("space-template", "<p>{% if %}</p>")]).unwrap_err();
        assert!(
            err.starts_with("setting `space-template` is not a valid Liquid template"),
            "{err}"
        );
        // A name no host replaced is not written as the page.
        let err = run(incident(), &[("space-template", "Incident retro")]).unwrap_err();
        assert!(
            err.starts_with("setting `space-template` holds `Incident retro`, not a template body"),
            "{err}"
        );
    }

    #[test]
    fn template_errors_name_the_setting_and_line() {
        let err = run(incident(), &[("template", "<p>ok</p>\n<p>{% if %}</p>")]).unwrap_err();
        assert!(
            err.starts_with("setting `template` is not a valid Liquid template"),
            "{err}"
        );
        assert!(err.contains('2'), "names line 2: {err}");
        let err = run(incident(), &[("title", "{{ incident.title ")]).unwrap_err();
        assert!(err.contains("setting `title`"), "{err}");
    }

    #[test]
    fn markup_in_every_field_stays_text_in_storage_format() {
        let nasty = "]]> <![CDATA[ <ac:link> & \"q\" 'a' </p> &amp; <!channel>";
        let mut e = incident();
        e.actor.as_mut().unwrap().display_name = Some(nasty.into());
        let c = e.content.as_mut().unwrap();
        c.title = nasty.into();
        c.space_name = Some(nasty.into());
        c.excerpt = Some(nasty.into());
        c.url = format!("https://wiki.example.com/x?a=1&b=\"{nasty}");
        c.labels.push(nasty.into());
        let actions = run(e, &[]).unwrap();
        let [Action::CreatePage(page), Action::AddComment(comment)] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        // The title is a JSON string for Confluence, not markup: kept as is.
        assert_eq!(page.title, format!("Retrospective: {nasty}"));
        parse_storage(&page.body);
        parse_storage(&comment.body);
        let escaped = "]]&gt; &lt;![CDATA[ &lt;ac:link&gt; &amp; &quot;q&quot; &#39;a&#39; &lt;/p&gt; &amp;amp; &lt;!channel&gt;";
        assert!(page.body.contains(escaped), "{}", page.body);
        assert!(!page.body.contains("]]>") && !page.body.contains("<![CDATA["));
        assert!(
            comment
                .body
                .contains(&format!("ri:content-title=\"Retrospective: {escaped}\"")),
            "{}",
            comment.body
        );
    }

    #[test]
    fn long_unicode_titles_are_cut_to_confluence_limit() {
        let mut e = incident();
        e.content.as_mut().unwrap().title = "事故".repeat(300);
        let actions = run(e, &[]).unwrap();
        let Action::CreatePage(page) = &actions[0] else {
            panic!()
        };
        assert!(page.title.chars().count() <= 255);
        parse_storage(&page.body);
    }
}
