//! The trust half of an audit, shared by `pagehook plugin audit` and the
//! console's plugin page: the signature verdict, the build provenance, and
//! the sandbox guarantees that bind every plugin whatever it says.
//!
//! What it must never do: claim a guarantee the sandbox does not enforce
//! (each one names the host code and the tests that hold it), or fail an
//! audit because a signature or metadata is missing (those are findings).

use serde::Serialize;

use super::keys::Keyring;
use super::provenance::Provenance;
use super::signature::{self, SignatureCheck, SignedFiles};
use crate::runtime::PluginPackage;

/// What a plugin's files say about where they come from.
#[derive(Debug, Clone, Serialize)]
pub struct TrustFacts {
    /// The signature verdict.
    pub signature: SignatureCheck,
    /// The component's producers and embedded dependency list.
    pub provenance: Provenance,
}

/// Checks the signature of `package` (reading its signature files from its
/// directory) and reads its build metadata.
pub fn examine(package: &PluginPackage, keyring: &Keyring) -> TrustFacts {
    let signature = match SignedFiles::read(&package.dir) {
        Ok(files) => signature::check(package, &files, keyring),
        Err(e) => SignatureCheck {
            status: signature::SignatureStatus::Invalid {
                problem: signature::Problem::Unreadable {
                    detail: format!("the plugin's files cannot be read: {e}"),
                },
            },
            key_id: None,
            signer: None,
            signed_at: None,
        },
    };
    TrustFacts {
        signature,
        provenance: Provenance::of(&package.wasm),
    }
}

/// One guarantee the host gives about every plugin.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Guarantee {
    /// What holds.
    pub guarantee: &'static str,
    /// Where the host enforces it, and the tests that show it.
    pub enforced_by: &'static str,
}

/// What the sandbox guarantees for every plugin, whatever its manifest or
/// component says.
pub const SANDBOX_GUARANTEES: &[Guarantee] = &[
    Guarantee {
        guarantee: "No network: no socket is ever granted, and an import outside `pagehook:plugin` and WASI 0.2 refuses the component at load",
        enforced_by: "runtime/imports.rs, runtime/sandbox.rs; tests hostile_plugins, plugin_cli (imports-outside)",
    },
    Guarantee {
        guarantee: "No files, no environment variables, no arguments, no stdin: WASI is linked with nothing preopened or inherited",
        enforced_by: "runtime/sandbox.rs; tests hostile_plugins",
    },
    Guarantee {
        guarantee: "No secrets: tokens stay in the host; a plugin names destinations, never credentials",
        enforced_by: "deliver/ (the host holds every token), dispatch/",
    },
    Guarantee {
        guarantee: "Deterministic calls: clocks read the event's time and randomness is fixed, so the same event and settings give the same actions",
        enforced_by: "runtime/clocks.rs, runtime/sandbox.rs; tests replay",
    },
    Guarantee {
        guarantee: "A fresh instance per event: nothing a call leaves behind reaches the next",
        enforced_by: "runtime/mod.rs (LoadedPlugin::call); tests hostile_plugins::nothing_survives_from_one_call_to_the_next",
    },
    Guarantee {
        guarantee: "Bounded work: fuel, a wall-clock deadline, a memory cap, a stack cap, and caps on actions, their bytes and the log (the limits below)",
        enforced_by: "runtime/limits.rs, runtime/engine.rs; tests hostile_plugins",
    },
    Guarantee {
        guarantee: "The two-party rule: an action runs only if the manifest declares it, the admin granted it, and its destination is one the binding names",
        enforced_by: "dispatch/judge.rs; tests sidecar",
    },
    Guarantee {
        guarantee: "The pinned component: the sha256 recorded at install must match the file, or the plugin does not load",
        enforced_by: "dispatch/run.rs (load_pinned)",
    },
    Guarantee {
        guarantee: "An upgrade grants nothing new by itself: new actions stay ungranted and larger limit requests run at the granted limits until an admin grants them",
        enforced_by: "plugin_trust/grants.rs, the install path; tests plugin_signing",
    },
];
