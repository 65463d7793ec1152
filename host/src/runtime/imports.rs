//! What a component asks of its host, and whether the sandbox allows it.
//!
//! A plugin may import only a `pagehook:plugin` world (its `log` function
//! and `types`, of a contract version this host runs) and WASI 0.2 interfaces, which the sandbox links with nothing
//! granted. Anything else — a socket library of its own, `wasi:http`, a
//! future host API — refuses the component at load, naming the import, so a
//! security reviewer never has to wonder what an unknown import would do.

use wasmtime::Engine;
use wasmtime::component::Component;

/// WASI 0.2 packages the sandbox links (all with nothing granted).
const WASI_PACKAGES: &[&str] = &["cli", "clocks", "filesystem", "io", "random", "sockets"];

/// The names a component imports and exports, in declaration order.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Surface {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// Lists a component's imports and exports.
pub fn surface(engine: &Engine, component: &Component) -> Surface {
    let ty = component.component_type();
    Surface {
        imports: ty
            .imports(engine)
            .map(|(name, _)| name.to_string())
            .collect(),
        exports: ty
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect(),
    }
}

/// Whether the sandbox can satisfy an import.
pub fn allowed(import: &str) -> bool {
    if import == "log" || super::Contract::of_imports([import]).is_some() {
        return true;
    }
    let Some(rest) = import.strip_prefix("wasi:") else {
        return false;
    };
    let Some((package, version)) = rest.split_once('@') else {
        return false;
    };
    let Some((package, _interface)) = package.split_once('/') else {
        return false;
    };
    WASI_PACKAGES.contains(&package) && version.starts_with("0.2.")
}

/// The first import the sandbox refuses, if any.
pub fn first_forbidden(surface: &Surface) -> Option<&str> {
    surface
        .imports
        .iter()
        .map(String::as_str)
        .find(|i| !allowed(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_and_wasi_p2_are_allowed() {
        for ok in [
            "log",
            "pagehook:plugin/types@0.1.0",
            "pagehook:plugin/types@0.2.0",
            "pagehook:plugin/types@0.3.0",
            "wasi:cli/stdout@0.2.6",
            "wasi:io/streams@0.2.0",
            "wasi:filesystem/preopens@0.2.3",
            "wasi:random/random@0.2.6",
        ] {
            assert!(allowed(ok), "{ok}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "evil:net/sockets",
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:cli/stdout@0.3.0",
            "wasi:cli/stdout",
            "pagehook:plugin/types@0.4.0",
            "pagehook:plugin/other@0.2.0",
            "logger",
        ] {
            assert!(!allowed(bad), "{bad}");
        }
    }
}
