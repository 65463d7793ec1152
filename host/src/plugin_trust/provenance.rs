//! What a component says about how it was built: the WebAssembly
//! `producers` custom sections (languages, tools and SDKs with their
//! versions: rustc, wit-component, componentize-py, ...) of the component
//! and of every module inside it, and the dependency list that
//! `cargo auditable` embeds (the `.dep-v0` section: every crate and
//! version compiled in).
//!
//! Read with `wasm-metadata`, the Bytecode Alliance's reader of these
//! sections, which bounds the zlib-compressed dependency list at 2 MiB.
//!
//! These are the builder's own words: they are not signed separately and a
//! component can say anything. They are worth reading because a signature
//! (see `signature`) ties them to a publisher, and because they name what
//! to look up in an advisory database. What it must never do: run the
//! component, or fail an audit because the metadata is missing or odd
//! (that is reported, never fatal).

use serde::Serialize;

/// A component's build metadata.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Provenance {
    /// Every producers entry, de-duplicated, component first, then its modules.
    pub producers: Vec<Producer>,
    /// The embedded dependency list, when the component carries one.
    pub dependencies: Option<Vec<Dependency>>,
    /// Why the metadata could not be read, when it could not.
    pub problem: Option<String>,
}

/// One `producers` entry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Producer {
    /// `language`, `processed-by` or `sdk`.
    pub field: String,
    /// E.g. `Rust`, `rustc`, `wit-component`, `componentize-py`.
    pub name: String,
    /// As the tool wrote it (may be empty).
    pub version: String,
}

/// One package of an embedded dependency list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Dependency {
    /// Crate name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// `crates.io`, `git`, `local`, `registry`, ...
    pub source: String,
    /// `runtime`, or `build` for build-time-only crates.
    pub kind: String,
    /// Whether it is the package that was built.
    pub root: bool,
}

impl Provenance {
    /// Reads the build metadata of a component (or core module).
    pub fn of(wasm: &[u8]) -> Provenance {
        match wasm_metadata::Payload::from_binary(wasm) {
            Ok(payload) => {
                let mut out = Provenance::default();
                collect(&payload, &mut out);
                out
            }
            Err(e) => Provenance {
                problem: Some(format!("the component's metadata cannot be read: {e:#}")),
                ..Provenance::default()
            },
        }
    }

    /// The producers as one line: `language Rust; processed-by rustc 1.95.0, wit-component 0.239.0`.
    pub fn producers_said(&self) -> String {
        if self.producers.is_empty() {
            return "none recorded".into();
        }
        let mut fields: Vec<(&str, Vec<String>)> = Vec::new();
        for p in &self.producers {
            let entry = if p.version.is_empty() {
                p.name.clone()
            } else {
                format!("{} {}", p.name, p.version)
            };
            match fields.iter_mut().find(|(f, _)| *f == p.field) {
                Some((_, entries)) => entries.push(entry),
                None => fields.push((&p.field, vec![entry])),
            }
        }
        fields
            .into_iter()
            .map(|(field, entries)| format!("{field} {}", entries.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The package that was built, from the dependency list.
    pub fn root(&self) -> Option<&Dependency> {
        self.dependencies.as_ref()?.iter().find(|d| d.root)
    }
}

fn collect(payload: &wasm_metadata::Payload, out: &mut Provenance) {
    let metadata = payload.metadata();
    if let Some(producers) = &metadata.producers {
        for (field, values) in producers.iter() {
            for (name, version) in values.iter() {
                let producer = Producer {
                    field: field.clone(),
                    name: name.clone(),
                    version: version.clone(),
                };
                if !out.producers.contains(&producer) {
                    out.producers.push(producer);
                }
            }
        }
    }
    if let Some(dependencies) = &metadata.dependencies {
        let list = out.dependencies.get_or_insert_with(Vec::new);
        for p in &dependencies.version_info().packages {
            let dependency = Dependency {
                name: p.name.clone(),
                version: p.version.to_string(),
                source: String::from(p.source.clone()),
                kind: serde_json::to_value(p.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "runtime".into()),
                root: p.root,
            };
            if !list.contains(&dependency) {
                list.push(dependency);
            }
        }
    }
    if let wasm_metadata::Payload::Component { children, .. } = payload {
        for child in children {
            collect(child, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module with a producers section, made by wasm-metadata itself.
    fn module_with_producers() -> Vec<u8> {
        let empty = b"\0asm\x01\0\0\0".to_vec();
        let mut producers = wasm_metadata::Producers::empty();
        producers.add("language", "Rust", "");
        producers.add("processed-by", "rustc", "1.95.0");
        producers.add("sdk", "pagehook-guest", "0.1.0");
        producers.add_to_wasm(&empty).unwrap()
    }

    #[test]
    fn producers_are_read_and_said_by_field() {
        let p = Provenance::of(&module_with_producers());
        assert_eq!(p.problem, None);
        assert_eq!(p.producers.len(), 3);
        assert_eq!(
            p.producers_said(),
            "language Rust; processed-by rustc 1.95.0; sdk pagehook-guest 0.1.0"
        );
        assert_eq!(p.dependencies, None);
    }

    #[test]
    fn no_metadata_and_bad_bytes_are_reported_not_fatal() {
        let p = Provenance::of(b"\0asm\x01\0\0\0");
        assert_eq!(p.producers_said(), "none recorded");
        assert_eq!(p.problem, None);
        let p = Provenance::of(b"not wasm at all");
        assert!(p.problem.unwrap().contains("cannot be read"));
    }
}
