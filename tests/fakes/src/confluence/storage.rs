//! Storage format saved as Confluence saves it: parsed, then written out again with macro
//! ids added and entities re-encoded. It must never keep a malformed body.

/// HTML's named entities that Confluence's storage format accepts but bare XML does not know.
pub(super) const ENTITIES: &[(&str, u32)] = &[
    ("nbsp", 160),
    ("iexcl", 161),
    ("cent", 162),
    ("pound", 163),
    ("yen", 165),
    ("sect", 167),
    ("copy", 169),
    ("laquo", 171),
    ("reg", 174),
    ("deg", 176),
    ("plusmn", 177),
    ("para", 182),
    ("middot", 183),
    ("raquo", 187),
    ("iquest", 191),
    ("Auml", 196),
    ("Ouml", 214),
    ("times", 215),
    ("Uuml", 220),
    ("szlig", 223),
    ("agrave", 224),
    ("auml", 228),
    ("ccedil", 231),
    ("egrave", 232),
    ("eacute", 233),
    ("ouml", 246),
    ("divide", 247),
    ("uuml", 252),
    ("ndash", 8211),
    ("mdash", 8212),
    ("lsquo", 8216),
    ("rsquo", 8217),
    ("ldquo", 8220),
    ("rdquo", 8221),
    ("bull", 8226),
    ("hellip", 8230),
    ("euro", 8364),
    ("trade", 8482),
    ("larr", 8592),
    ("uarr", 8593),
    ("rarr", 8594),
    ("darr", 8595),
    ("harr", 8596),
];

pub(super) const XHTML_NS: &str = "http://www.w3.org/1999/xhtml";
pub(super) const AC_NS: &str = "http://atlassian.com/content";
pub(super) const RI_NS: &str = "http://atlassian.com/resource/identifier";

/// HTML elements that never have content; Confluence writes them as `<br />`.
pub(super) const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Elements whose whitespace-only text between children is layout, not content: Confluence
/// drops it when it saves.
pub(super) const BLOCK_PARENTS: &[&str] = &[
    "ac:structured-macro",
    "ac:rich-text-body",
    "ac:layout",
    "ac:layout-section",
    "ac:layout-cell",
    "ac:task-list",
    "ac:task",
    "ac:link",
    "ac:image",
    "ul",
    "ol",
    "table",
    "colgroup",
    "thead",
    "tbody",
    "tfoot",
    "tr",
];

/// Checks a storage-format body is well-formed XML and writes it out the way Confluence
/// saves it; `Err` (Confluence's 400 "Error parsing xhtml") for a malformed body.
///
/// The fragment is wrapped in a root that declares the `ac:` and `ri:` namespaces and HTML's
/// common named entities, so only genuine mistakes (unclosed tags, stray `&`, unknown
/// prefixes) are refused. What comes out keeps every element, attribute value, text and macro
/// parameter, but not its bytes: every `ac:structured-macro` without one gets an
/// `ac:macro-id`; entities are written as characters (`&quot;` → `"`, `&#228;` → `ä`,
/// `&nbsp;` → U+00A0) and only `&`, `<`, `>` (and `"` in attributes) are escaped; attributes
/// come in reverse name order; empty `ac:`/`ri:` elements and HTML void elements are written
/// self-closed with a space (`<ri:page ... />`, `<br />`), other empty HTML elements as an
/// open and close pair (`<p></p>`); whitespace-only text between block elements is dropped;
/// XML comments and processing instructions are removed. `seed` makes the macro ids differ
/// from one save to the next.
pub(super) fn saved_storage(xml: &str, seed: u64) -> Result<String, String> {
    let entities: String = ENTITIES
        .iter()
        .map(|(name, code)| format!("<!ENTITY {name} \"&#{code};\">"))
        .collect();
    let doc = format!(
        "<!DOCTYPE ac:confluence [{entities}]><ac:confluence xmlns=\"{XHTML_NS}\" xmlns:ac=\"{AC_NS}\" xmlns:ri=\"{RI_NS}\">{xml}</ac:confluence>"
    );
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(&doc, options).map_err(|e| e.to_string())?;
    let mut out = String::with_capacity(xml.len() + 64);
    let mut macros = 0u64;
    for child in doc.root_element().children() {
        write_node(child, &mut out, seed, &mut macros, true);
    }
    Ok(out)
}

pub(super) fn qualified(ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(AC_NS) => format!("ac:{name}"),
        Some(RI_NS) => format!("ri:{name}"),
        _ => name.to_string(),
    }
}

pub(super) fn escape_text(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

pub(super) fn escape_attr(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// A made-up but well-formed macro id, stable for a given save and macro.
pub(super) fn macro_id(seed: u64, n: u64) -> String {
    let mut x = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(n.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        ^ 0x94D0_49BB_1331_11EB;
    let mut hex = String::new();
    for _ in 0..2 {
        x ^= x >> 31;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        hex.push_str(&format!("{x:016x}"));
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

pub(super) fn write_node(
    node: roxmltree::Node<'_, '_>,
    out: &mut String,
    seed: u64,
    macros: &mut u64,
    block_parent: bool,
) {
    if node.is_text() {
        let text = node.text().unwrap_or_default();
        if block_parent && text.trim().is_empty() {
            return;
        }
        let parent = node
            .parent()
            .map(|p| qualified(p.tag_name().namespace(), p.tag_name().name()));
        if matches!(
            parent.as_deref(),
            Some("ac:plain-text-body" | "ac:plain-text-link-body")
        ) {
            out.push_str("<![CDATA[");
            out.push_str(&text.replace("]]>", "]]]]><![CDATA[>"));
            out.push_str("]]>");
        } else {
            escape_text(text, out);
        }
        return;
    }
    if !node.is_element() {
        return; // comments and processing instructions are not kept
    }
    let tag = node.tag_name();
    let name = qualified(tag.namespace(), tag.name());
    let mut attrs: Vec<(String, String)> = node
        .attributes()
        .map(|a| (qualified(a.namespace(), a.name()), a.value().to_string()))
        .collect();
    if name == "ac:structured-macro" && !attrs.iter().any(|(n, _)| n == "ac:macro-id") {
        *macros += 1;
        attrs.push(("ac:macro-id".into(), macro_id(seed, *macros)));
    }
    attrs.sort_by(|a, b| b.0.cmp(&a.0));
    out.push('<');
    out.push_str(&name);
    for (n, v) in &attrs {
        out.push(' ');
        out.push_str(n);
        out.push_str("=\"");
        escape_attr(v, out);
        out.push('"');
    }
    let kept: Vec<roxmltree::Node<'_, '_>> = node
        .children()
        .filter(|c| c.is_element() || c.is_text())
        .collect();
    let blocks = BLOCK_PARENTS.contains(&name.as_str());
    let empty = kept
        .iter()
        .all(|c| c.is_text() && blocks && c.text().unwrap_or_default().trim().is_empty());
    if empty && (name.contains(':') || VOID.contains(&name.as_str())) {
        out.push_str(" />");
        return;
    }
    out.push('>');
    for child in kept {
        write_node(child, out, seed, macros, blocks);
    }
    out.push_str("</");
    out.push_str(&name);
    out.push('>');
}
