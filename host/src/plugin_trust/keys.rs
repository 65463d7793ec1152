//! `[plugins]` in `pagehook.toml`: which publishers' keys this site
//! trusts, which keys it has revoked, and whether install demands a
//! signature.
//!
//! ```toml
//! [plugins]
//! require-signature = true
//! [plugins.trusted-keys]
//! pagehook = { file = "/etc/pagehook/keys/pagehook.pub" }
//! acme = "RWQ...the base64 line of acme's minisign .pub file..."
//! [plugins.revoked-keys]
//! acme-2024 = { file = "/etc/pagehook/keys/acme-2024.pub" }
//! ```
//!
//! Keys are minisign public keys: the base64 line of a `.pub` file, or the
//! file itself. A key listed as revoked is refused even where it is also
//! listed as trusted, so revoking never depends on editing two places.
//!
//! What it must never do: hold or load a secret key; trust a key that is
//! not written in the configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[plugins]`: signature policy and the keys it uses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrustConfig {
    /// Refuse to install a plugin unless it is signed by a trusted key.
    /// `require-signature = true`.
    pub require_signature: bool,
    /// Publisher keys by a name admins recognise (shown as the signer).
    /// `acme = "RWQ..."` or `acme = { file = "keys/acme.pub" }`.
    pub trusted_keys: BTreeMap<String, KeySource>,
    /// Keys that must no longer be accepted, by name; a plugin signed by
    /// one is refused whatever else is configured.
    pub revoked_keys: BTreeMap<String, KeySource>,
}

/// Where a public key is written.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum KeySource {
    /// The base64 key itself (the second line of a minisign `.pub` file).
    Inline(String),
    /// A minisign `.pub` file (relative paths are relative to the config file).
    File {
        /// Its path.
        file: PathBuf,
    },
}

/// A key ID as minisign prints it: 16 uppercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A public key with the name the configuration gives it.
#[derive(Debug, Clone)]
pub struct NamedKey {
    /// Its name in `trusted-keys` or `revoked-keys`.
    pub name: String,
    /// Its key ID.
    pub id: KeyId,
    /// The key, ready to verify with.
    pub key: minisign_verify::PublicKey,
}

/// The policy and keys, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    /// Whether install demands a trusted signature.
    pub require_signature: bool,
    /// Trusted keys (none of them revoked).
    pub trusted: Vec<NamedKey>,
    /// Revoked keys.
    pub revoked: Vec<NamedKey>,
}

impl TrustConfig {
    /// Makes relative key file paths relative to `base` (the config's directory).
    pub fn rebase(&mut self, base: &Path) {
        for source in self
            .trusted_keys
            .values_mut()
            .chain(self.revoked_keys.values_mut())
        {
            if let KeySource::File { file } = source
                && file.is_relative()
            {
                *file = base.join(&*file);
            }
        }
    }

    /// Reads every key, refusing the first that is not a minisign public
    /// key with a message naming it.
    pub fn keyring(&self) -> Result<Keyring, String> {
        let read = |table: &str, keys: &BTreeMap<String, KeySource>| {
            keys.iter()
                .map(|(name, source)| {
                    read_key(name, source).map_err(|m| format!("[plugins] {table}.{name}: {m}"))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let revoked = read("revoked-keys", &self.revoked_keys)?;
        let trusted = read("trusted-keys", &self.trusted_keys)?
            .into_iter()
            .filter(|k| !revoked.iter().any(|r| r.id == k.id))
            .collect();
        Ok(Keyring {
            require_signature: self.require_signature,
            trusted,
            revoked,
        })
    }
}

impl Keyring {
    /// The trusted key with this ID.
    pub fn trusted(&self, id: KeyId) -> Option<&NamedKey> {
        self.trusted.iter().find(|k| k.id == id)
    }

    /// The revoked key with this ID.
    pub fn revoked(&self, id: KeyId) -> Option<&NamedKey> {
        self.revoked.iter().find(|k| k.id == id)
    }
}

fn read_key(name: &str, source: &KeySource) -> Result<NamedKey, String> {
    let base64 = match source {
        KeySource::Inline(text) => text.trim().to_owned(),
        KeySource::File { file } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            // A minisign .pub file: an untrusted comment, then the key.
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            match (lines.next(), lines.next()) {
                (Some(comment), Some(key)) if comment.starts_with("untrusted comment:") => {
                    key.to_owned()
                }
                (Some(key), None) => key.to_owned(),
                _ => {
                    return Err(format!(
                        "{} is not a minisign public key file (an `untrusted comment:` line, then the key)",
                        file.display()
                    ));
                }
            }
        }
    };
    let id = key_id_of_public_key(&base64).ok_or_else(|| {
        "not a minisign public key (the base64 line of a .pub file, starting `RW`)".to_owned()
    })?;
    let key = minisign_verify::PublicKey::from_base64(&base64)
        .map_err(|e| format!("not a minisign public key: {e}"))?;
    Ok(NamedKey {
        name: name.to_owned(),
        id,
        key,
    })
}

/// The key ID inside a base64 public key (bytes 2..10 of its 42).
pub fn key_id_of_public_key(base64: &str) -> Option<KeyId> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64.trim())
        .ok()?;
    if bytes.len() != 42 || &bytes[..2] != b"Ed" {
        return None;
    }
    Some(KeyId(bytes[2..10].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh key pair's public key as base64, and its ID as minisign prints it.
    fn new_key() -> (String, String) {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let id = u64::from_le_bytes(pair.pk.keynum().try_into().unwrap());
        (pair.pk.to_base64(), format!("{id:016X}"))
    }

    fn config(text: &str) -> TrustConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn inline_and_file_keys_are_read_and_named() {
        let (key, id) = new_key();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.pub"),
            format!("untrusted comment: minisign public key {id}\n{key}\n"),
        )
        .unwrap();
        let mut c = config(&format!(
            "require-signature = true\n[trusted-keys]\ninline = \"{key}\"\nfromfile = {{ file = \"a.pub\" }}\n"
        ));
        c.rebase(dir.path());
        let ring = c.keyring().unwrap();
        assert!(ring.require_signature);
        assert_eq!(ring.trusted.len(), 2);
        assert_eq!(ring.trusted[0].name, "fromfile");
        assert_eq!(ring.trusted[0].id.to_string(), id);
        assert_eq!(ring.trusted[1].id.to_string(), id);
    }

    #[test]
    fn a_revoked_key_is_never_trusted() {
        let (key, _) = new_key();
        let (other, _) = new_key();
        let c = config(&format!(
            "[trusted-keys]\nacme = \"{key}\"\nbeta = \"{other}\"\n[revoked-keys]\nacme-2024 = \"{key}\"\n"
        ));
        let ring = c.keyring().unwrap();
        assert_eq!(ring.trusted.len(), 1);
        assert_eq!(ring.trusted[0].name, "beta");
        let id = key_id_of_public_key(&key).unwrap();
        assert_eq!(ring.revoked(id).unwrap().name, "acme-2024");
        assert!(ring.trusted(id).is_none());
    }

    #[test]
    fn a_bad_key_is_named() {
        let c = config("[trusted-keys]\nacme = \"not a key\"\n");
        let err = c.keyring().unwrap_err();
        assert!(
            err.starts_with("[plugins] trusted-keys.acme: not a minisign public key"),
            "{err}"
        );
        let c = config("[revoked-keys]\nold = { file = \"/nonexistent/old.pub\" }\n");
        let err = c.keyring().unwrap_err();
        assert!(
            err.starts_with("[plugins] revoked-keys.old: cannot read /nonexistent/old.pub"),
            "{err}"
        );
        let err = toml::from_str::<TrustConfig>("require-signatures = true\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("require-signatures"), "{err}");
    }
}
