//! The subset of CQL Pagehook writes, parsed strictly: anything else is refused with 400
//! as Confluence refuses CQL it cannot parse. It must never guess at a query.

use serde_json::Value;
/// One CQL token.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cql {
    Word(String),
    Str(String),
    Op(&'static str),
    Open,
    Close,
    Comma,
}

pub(super) fn cql_tokens(cql: &str) -> Result<Vec<Cql>, String> {
    let mut out = Vec::new();
    let mut chars = cql.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '"' | '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string".into()),
                        Some('\\') => match chars.next() {
                            Some(e) => s.push(e),
                            None => return Err("unterminated string".into()),
                        },
                        Some(q) if q == c => break,
                        Some(o) => s.push(o),
                    }
                }
                out.push(Cql::Str(s));
            }
            '~' => {
                chars.next();
                out.push(Cql::Op("~"));
            }
            '=' => {
                chars.next();
                out.push(Cql::Op("="));
            }
            '(' => {
                chars.next();
                out.push(Cql::Open);
            }
            ')' => {
                chars.next();
                out.push(Cql::Close);
            }
            ',' => {
                chars.next();
                out.push(Cql::Comma);
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' || c == '.' {
                        w.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Cql::Word(w));
            }
            other => return Err(format!("unexpected character '{other}'")),
        }
    }
    Ok(out)
}

/// One clause of the CQL subset the fake understands.
pub(super) enum Clause {
    Text(String),
    Title(String),
    Types(Vec<String>),
    Space(String),
}

pub(super) fn cql_parse(cql: &str) -> Result<Vec<Clause>, String> {
    let tokens = cql_tokens(cql)?;
    let mut clauses = Vec::new();
    let mut i = 0;
    let value = |t: Option<&Cql>| match t {
        Some(Cql::Str(s)) | Some(Cql::Word(s)) => Ok(s.clone()),
        other => Err(format!("expected a value, found {other:?}")),
    };
    loop {
        let Some(Cql::Word(field)) = tokens.get(i) else {
            return Err(format!("expected a field at token {i}"));
        };
        let field = field.to_lowercase();
        match (field.as_str(), tokens.get(i + 1)) {
            ("text" | "sitesearch", Some(Cql::Op("~"))) => {
                clauses.push(Clause::Text(value(tokens.get(i + 2))?));
                i += 3;
            }
            ("title", Some(Cql::Op("~"))) => {
                clauses.push(Clause::Title(value(tokens.get(i + 2))?));
                i += 3;
            }
            ("type", Some(Cql::Op("="))) => {
                clauses.push(Clause::Types(vec![value(tokens.get(i + 2))?]));
                i += 3;
            }
            ("space", Some(Cql::Op("="))) => {
                clauses.push(Clause::Space(value(tokens.get(i + 2))?));
                i += 3;
            }
            ("type", Some(Cql::Word(w))) if w.eq_ignore_ascii_case("in") => {
                if tokens.get(i + 2) != Some(&Cql::Open) {
                    return Err("expected ( after in".into());
                }
                i += 3;
                let mut types = Vec::new();
                loop {
                    types.push(value(tokens.get(i))?);
                    match tokens.get(i + 1) {
                        Some(Cql::Comma) => i += 2,
                        Some(Cql::Close) => {
                            i += 2;
                            break;
                        }
                        other => return Err(format!("expected , or ) in list, found {other:?}")),
                    }
                }
                clauses.push(Clause::Types(types));
            }
            (f, op) => return Err(format!("field '{f}' with {op:?} is not supported here")),
        }
        match tokens.get(i) {
            None => return Ok(clauses),
            Some(Cql::Word(w)) if w.eq_ignore_ascii_case("and") => i += 1,
            other => return Err(format!("expected and, found {other:?}")),
        }
    }
}

/// Text of content for `text ~`: title and storage body without tags, lower case.
pub(super) fn searchable(c: &Value) -> String {
    let body = c
        .pointer("/body/storage/value")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut text = c["title"].as_str().unwrap_or_default().to_lowercase();
    text.push(' ');
    let mut in_tag = false;
    for ch in body.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            ch if !in_tag => text.extend(ch.to_lowercase()),
            _ => {}
        }
    }
    text
}
