//! Detached minisign signatures of plugin directories: checked offline at
//! install and in every audit, made by `pagehook plugin sign`.
//!
//! A signed plugin directory carries two more files beside `plugin.toml`
//! and its component: `plugin.statement` (the [`Statement`]: name, version,
//! contract and the sha256 of both files) and `plugin.statement.minisig`,
//! a minisign signature of that text. Checking one:
//!
//! 1. no signature file: unsigned;
//! 2. the signature's key ID is looked up: a revoked key refuses at once,
//!    a key not in `trusted-keys` is reported as unknown;
//! 3. the trusted key must verify the statement (and minisign's trusted
//!    comment); then the statement must name this plugin, version and
//!    contract, and the files' hashes must be the ones it lists.
//!
//! Each way of failing has its own message, so an admin can tell a
//! tampered component from a signature moved from another release.
//!
//! Why minisign: a small, stable, documented format (Ed25519 over a
//! BLAKE2b prehash) with a standalone verifier crate, `minisign-verify`,
//! that has no dependencies; keys are one line of text an admin can carry
//! into an air-gapped site; anyone can check a signature with the stock
//! `minisign -V` tool. Sigstore/cosign need a transparency log or OCI
//! registry to be useful; wasmsign2 puts signatures inside the component,
//! which would change the sha256 install pins.
//!
//! What it must never do: print, log or `Debug`-format a secret key
//! (minisign's own `SecretKey` prints its bytes in `Debug`: it stays
//! wrapped in [`SigningKey`]); accept a signature without a trusted key.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::keys::{KeyId, Keyring};
use super::statement::Statement;
use super::{SIGNATURE_FILE, STATEMENT_FILE};
use crate::runtime::PluginPackage;

/// The files a signature check reads, read once, so install copies the
/// very bytes that were checked.
#[derive(Debug, Clone)]
pub struct SignedFiles {
    /// `plugin.toml`'s bytes.
    pub manifest: Vec<u8>,
    /// `plugin.statement`, if there is one.
    pub statement: Option<Vec<u8>>,
    /// `plugin.statement.minisig`, if there is one.
    pub signature: Option<Vec<u8>>,
}

impl SignedFiles {
    /// Reads them from a plugin directory.
    pub fn read(dir: &Path) -> std::io::Result<SignedFiles> {
        let optional = |name: &str| match std::fs::read(dir.join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        };
        Ok(SignedFiles {
            manifest: std::fs::read(dir.join("plugin.toml"))?,
            statement: optional(STATEMENT_FILE)?,
            signature: optional(SIGNATURE_FILE)?,
        })
    }

    /// Writes the signature files (those present) into `dir`.
    pub fn write_signature(&self, dir: &Path) -> std::io::Result<()> {
        for (name, bytes) in [
            (STATEMENT_FILE, &self.statement),
            (SIGNATURE_FILE, &self.signature),
        ] {
            let path = dir.join(name);
            match bytes {
                Some(bytes) => std::fs::write(path, bytes)?,
                None => match std::fs::remove_file(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                },
            }
        }
        Ok(())
    }
}

/// The statement a package's files make: what its publisher signs.
pub fn statement_of(package: &PluginPackage, manifest_bytes: &[u8]) -> Statement {
    let m = &package.manifest;
    Statement {
        name: m.name.clone(),
        version: m.version.clone(),
        contract: m.wit.clone(),
        component: m.component.clone(),
        component_sha256: package.sha256.clone(),
        manifest_sha256: hex::encode(Sha256::digest(manifest_bytes)),
    }
}

/// What a signature check found.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureCheck {
    /// The verdict.
    #[serde(flatten)]
    pub status: SignatureStatus,
    /// The key ID the signature names (whether or not it is known).
    pub key_id: Option<KeyId>,
    /// The name the configuration gives that key.
    pub signer: Option<String>,
    /// When it was signed (Unix seconds), from minisign's trusted comment;
    /// only set once the signature verified.
    pub signed_at: Option<u64>,
}

/// The verdict of a signature check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum SignatureStatus {
    /// No `plugin.statement.minisig`.
    Unsigned,
    /// A trusted key signed exactly these files for this plugin version.
    Verified,
    /// Signed by a key that is not in `[plugins] trusted-keys`.
    UnknownKey,
    /// Signed by a key in `[plugins] revoked-keys`.
    RevokedKey,
    /// The signature is there but does not vouch for these files.
    Invalid {
        /// Why.
        #[serde(flatten)]
        problem: Problem,
    },
}

/// How a signature fails to vouch for the files beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum Problem {
    /// The signature file is not a minisign signature.
    Unreadable {
        /// What is wrong with it.
        detail: String,
    },
    /// There is a signature but no `plugin.statement`.
    StatementMissing,
    /// The trusted key does not verify the statement: it was altered, or
    /// the signature was.
    StatementAltered,
    /// The signed statement is not in the canonical form.
    StatementMalformed {
        /// What is wrong with it.
        detail: String,
    },
    /// The signature is for another plugin, version, contract or component name.
    OtherRelease {
        /// What it was made for.
        signed: String,
        /// What this directory holds.
        actual: String,
    },
    /// The component is not the one that was signed.
    ComponentChanged {
        /// The sha256 the statement lists.
        signed: String,
        /// The component's sha256.
        actual: String,
    },
    /// `plugin.toml` is not the one that was signed.
    ManifestChanged {
        /// The sha256 the statement lists.
        signed: String,
        /// `plugin.toml`'s sha256.
        actual: String,
    },
}

/// Checks the signature of `package`, whose signature files are `files`,
/// against the configured keys. Never fails: every outcome is a verdict.
pub fn check(package: &PluginPackage, files: &SignedFiles, keyring: &Keyring) -> SignatureCheck {
    let mut out = SignatureCheck {
        status: SignatureStatus::Unsigned,
        key_id: None,
        signer: None,
        signed_at: None,
    };
    let invalid = |problem| SignatureStatus::Invalid { problem };
    let Some(signature_bytes) = &files.signature else {
        return out;
    };
    let parsed = std::str::from_utf8(signature_bytes)
        .map_err(|_| "it is not text".to_owned())
        .and_then(|text| {
            let signature = minisign_verify::Signature::decode(text).map_err(|e| e.to_string())?;
            let id = key_id_of_signature(text).ok_or("no key ID in it")?;
            Ok((signature, id))
        });
    let (signature, id) = match parsed {
        Ok(parsed) => parsed,
        Err(detail) => {
            out.status = invalid(Problem::Unreadable { detail });
            return out;
        }
    };
    out.key_id = Some(id);
    if let Some(revoked) = keyring.revoked(id) {
        out.signer = Some(revoked.name.clone());
        out.status = SignatureStatus::RevokedKey;
        return out;
    }
    let Some(key) = keyring.trusted(id) else {
        out.status = SignatureStatus::UnknownKey;
        return out;
    };
    out.signer = Some(key.name.clone());
    let Some(statement_bytes) = &files.statement else {
        out.status = invalid(Problem::StatementMissing);
        return out;
    };
    if key.key.verify(statement_bytes, &signature, false).is_err() {
        out.status = invalid(Problem::StatementAltered);
        return out;
    }
    out.signed_at = signed_at(signature.trusted_comment());
    let signed = match std::str::from_utf8(statement_bytes)
        .map_err(|_| "it is not UTF-8".to_owned())
        .and_then(Statement::parse)
    {
        Ok(signed) => signed,
        Err(detail) => {
            out.status = invalid(Problem::StatementMalformed { detail });
            return out;
        }
    };
    let actual = statement_of(package, &files.manifest);
    let release = |s: &Statement| {
        format!(
            "`{}` {} (contract {}, component {})",
            s.name, s.version, s.contract, s.component
        )
    };
    out.status = if (
        &signed.name,
        &signed.version,
        &signed.contract,
        &signed.component,
    ) != (
        &actual.name,
        &actual.version,
        &actual.contract,
        &actual.component,
    ) {
        invalid(Problem::OtherRelease {
            signed: release(&signed),
            actual: release(&actual),
        })
    } else if signed.component_sha256 != actual.component_sha256 {
        invalid(Problem::ComponentChanged {
            signed: signed.component_sha256,
            actual: actual.component_sha256,
        })
    } else if signed.manifest_sha256 != actual.manifest_sha256 {
        invalid(Problem::ManifestChanged {
            signed: signed.manifest_sha256,
            actual: actual.manifest_sha256,
        })
    } else {
        SignatureStatus::Verified
    };
    out
}

impl SignatureCheck {
    /// Whether a trusted key vouches for the files.
    pub fn verified(&self) -> bool {
        self.status == SignatureStatus::Verified
    }

    /// The signer as a person reads it: `pagehook (key ID 0123...)`.
    pub fn signer_said(&self) -> String {
        match (&self.signer, &self.key_id) {
            (Some(name), Some(id)) => format!("`{name}` (key ID {id})"),
            (None, Some(id)) => format!("key ID {id}"),
            _ => "nobody".into(),
        }
    }

    /// One line for audits and install output.
    pub fn summary(&self) -> String {
        match &self.status {
            SignatureStatus::Unsigned => "unsigned".into(),
            SignatureStatus::Verified => format!(
                "verified: signed by {}{}",
                self.signer_said(),
                self.signed_at
                    .map(|t| format!(" at {}", crate::clock::utc_seconds(t as i64 * 1000)))
                    .unwrap_or_default()
            ),
            SignatureStatus::UnknownKey => format!(
                "signed by {}, which is not in [plugins] trusted-keys: not verified",
                self.signer_said()
            ),
            SignatureStatus::RevokedKey => format!(
                "signed by REVOKED key {} ([plugins] revoked-keys)",
                self.signer_said()
            ),
            SignatureStatus::Invalid { problem } => {
                format!("INVALID: {}", self.problem_said(problem))
            }
        }
    }

    fn problem_said(&self, problem: &Problem) -> String {
        let by = self.signer_said();
        match problem {
            Problem::Unreadable { detail } => {
                format!("{SIGNATURE_FILE} is not a minisign signature ({detail})")
            }
            Problem::StatementMissing => format!(
                "it is signed by {by} but {STATEMENT_FILE}, the text the signature covers, is missing"
            ),
            Problem::StatementAltered => format!(
                "the signature by {by} does not match {STATEMENT_FILE}: the statement (or the signature) was altered after signing"
            ),
            Problem::StatementMalformed { detail } => {
                format!("the statement signed by {by} cannot be read: {detail}")
            }
            Problem::OtherRelease { signed, actual } => format!(
                "the signature by {by} was made for {signed}, not for {actual}: a signature cannot be moved to another plugin or version"
            ),
            Problem::ComponentChanged { signed, actual } => format!(
                "the component is not the one {by} signed (its sha256 is {actual}, the signed one {signed}): it was changed after signing"
            ),
            Problem::ManifestChanged { signed, actual } => format!(
                "plugin.toml is not the one {by} signed (its sha256 is {actual}, the signed one {signed}): it was changed after signing"
            ),
        }
    }

    /// Why install must refuse this plugin, if it must.
    ///
    /// A revoked key or a signature that does not vouch for the files
    /// refuses always: that is evidence of tampering or of a compromised
    /// key, whatever the policy. `require_signature` also refuses unsigned
    /// plugins and keys this site does not trust.
    pub fn refusal(&self, plugin: &str, require_signature: bool) -> Option<String> {
        let policy = "[plugins] require-signature = true";
        match &self.status {
            SignatureStatus::Verified => None,
            SignatureStatus::RevokedKey => Some(format!(
                "plugin `{plugin}` is signed by {}, which this site has revoked ([plugins] revoked-keys): refused; ask its publisher for a release signed with their current key",
                self.signer_said()
            )),
            SignatureStatus::Invalid { problem } => Some(format!(
                "plugin `{plugin}`'s signature does not vouch for these files: {}; refused (sign it again with `pagehook plugin sign`, or get the release from its publisher again)",
                self.problem_said(problem)
            )),
            SignatureStatus::Unsigned if require_signature => Some(format!(
                "plugin `{plugin}` is not signed ({STATEMENT_FILE} and {SIGNATURE_FILE} are missing) and {policy}: refused; ask its publisher for a signed release, or sign it with a key in [plugins] trusted-keys (`pagehook plugin sign`)"
            )),
            SignatureStatus::UnknownKey if require_signature => Some(format!(
                "plugin `{plugin}` is signed by {}, which is not in [plugins] trusted-keys, and {policy}: refused; add the publisher's public key to trusted-keys if you trust it",
                self.signer_said()
            )),
            SignatureStatus::Unsigned | SignatureStatus::UnknownKey => None,
        }
    }
}

/// The key ID in a minisign signature file (bytes 2..10 of its second line).
fn key_id_of_signature(text: &str) -> Option<KeyId> {
    use base64::Engine as _;
    let line = text.lines().nth(1)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .ok()?;
    (bytes.len() == 74).then(|| KeyId(bytes[2..10].try_into().unwrap_or_default()))
}

/// `timestamp:<secs>` in a trusted comment.
fn signed_at(trusted_comment: &str) -> Option<u64> {
    trusted_comment
        .split('\t')
        .find_map(|part| part.trim().strip_prefix("timestamp:"))
        .and_then(|t| t.parse().ok())
}

/// A secret signing key, decrypted. Never printed: it has no `Debug`.
pub struct SigningKey {
    secret: minisign::SecretKey,
    id: KeyId,
}

impl SigningKey {
    /// Reads a minisign secret key file. An encrypted key needs its
    /// password: `password`, or (when `None`) typed at the terminal.
    pub fn from_file(path: &Path, password: Option<String>) -> Result<SigningKey, String> {
        use base64::Engine as _;
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the key {}: {e}", path.display()))?;
        let not_a_key = || {
            format!(
                "{} is not a minisign secret key (an `untrusted comment:` line, then the key)",
                path.display()
            )
        };
        let encrypted = text
            .lines()
            .nth(1)
            .and_then(|line| {
                base64::engine::general_purpose::STANDARD
                    .decode(line.trim())
                    .ok()
            })
            .and_then(|bytes| minisign::SecretKey::from_bytes(&bytes).ok())
            .map(|key| key.is_encrypted())
            .ok_or_else(not_a_key)?;
        let key_box = minisign::SecretKeyBox::from_string(&text).map_err(|_| not_a_key())?;
        let secret = if encrypted {
            minisign::SecretKey::from_box(key_box, password).map_err(|e| {
                format!(
                    "{} is not a minisign secret key this password opens: {e}",
                    path.display()
                )
            })?
        } else {
            minisign::SecretKey::from_unencrypted_box(key_box).map_err(|e| {
                format!(
                    "cannot read the unencrypted key {} ({e}); keys made by `minisign -G -W` are not read, use `pagehook plugin keygen --unencrypted` or a password-protected key",
                    path.display()
                )
            })?
        };
        let id = KeyId(
            secret
                .keynum()
                .try_into()
                .map_err(|_| format!("{}: the key has no 8-byte key ID", path.display()))?,
        );
        Ok(SigningKey { secret, id })
    }

    /// Its key ID.
    pub fn id(&self) -> KeyId {
        self.id
    }
}

/// What `sign` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Signed {
    /// The statement that was signed.
    pub statement: Statement,
    /// The signing key's ID.
    pub key_id: KeyId,
    /// The files written.
    pub files: Vec<String>,
}

/// Signs the plugin in `dir`: writes `plugin.statement` and its minisign
/// signature beside `plugin.toml`, replacing earlier ones.
pub fn sign(dir: &Path, key: &SigningKey) -> Result<Signed, String> {
    let package = PluginPackage::open(dir).map_err(|e| e.to_string())?;
    let manifest = std::fs::read(dir.join("plugin.toml"))
        .map_err(|e| format!("cannot read {}: {e}", dir.join("plugin.toml").display()))?;
    let statement = statement_of(&package, &manifest);
    let text = statement.render();
    let trusted_comment = format!(
        "timestamp:{}\tfile:{STATEMENT_FILE}\tplugin:{} {}",
        crate::store::now_ms() / 1000,
        statement.name,
        statement.version
    );
    let untrusted_comment = format!("signature from pagehook plugin sign, key ID {}", key.id);
    let signature = minisign::sign(
        None,
        &key.secret,
        text.as_bytes(),
        Some(&trusted_comment),
        Some(&untrusted_comment),
    )
    .map_err(|e| format!("cannot sign: {e}"))?;
    let files = SignedFiles {
        manifest,
        statement: Some(text.into_bytes()),
        signature: Some(signature.into_string().into_bytes()),
    };
    files
        .write_signature(dir)
        .map_err(|e| format!("cannot write the signature into {}: {e}", dir.display()))?;
    Ok(Signed {
        statement,
        key_id: key.id,
        files: [STATEMENT_FILE, SIGNATURE_FILE]
            .map(|f| dir.join(f).display().to_string())
            .to_vec(),
    })
}

/// How a new secret key is kept.
pub enum KeyProtection {
    /// Encrypted with this password (`None`: asked at the terminal).
    Password(Option<String>),
    /// Not encrypted: only for throwaway and development keys.
    Unencrypted,
}

/// A new key pair's files.
#[derive(Debug, Clone, Serialize)]
pub struct NewKey {
    /// The secret key file (mode 0600).
    pub secret_file: String,
    /// The public key file.
    pub public_file: String,
    /// The public key's base64 line, for `[plugins] trusted-keys`.
    pub public_key: String,
    /// Its key ID.
    pub key_id: KeyId,
}

/// Makes a key pair: `<prefix>.key` (secret) and `<prefix>.pub`; refuses
/// to overwrite either.
pub fn keygen(prefix: &Path, protection: KeyProtection) -> Result<NewKey, String> {
    let with = |ext: &str| {
        let mut name = prefix.as_os_str().to_owned();
        name.push(ext);
        PathBuf::from(name)
    };
    let (secret_path, public_path) = (with(".key"), with(".pub"));
    for path in [&secret_path, &public_path] {
        if path.exists() {
            return Err(format!(
                "{} exists: keygen never overwrites a key",
                path.display()
            ));
        }
    }
    let pair = match protection {
        KeyProtection::Unencrypted => minisign::KeyPair::generate_unencrypted_keypair(),
        KeyProtection::Password(password) => {
            minisign::KeyPair::generate_encrypted_keypair(password)
        }
    }
    .map_err(|e| format!("cannot make a key: {e}"))?;
    let id = KeyId(
        pair.pk
            .keynum()
            .try_into()
            .map_err(|_| "the new key has no 8-byte key ID".to_owned())?,
    );
    let secret_box = pair
        .sk
        .to_box(Some(&format!("pagehook plugin signing key {id}")))
        .map_err(|e| format!("cannot encode the key: {e}"))?;
    let public_box = pair
        .pk
        .to_box()
        .map_err(|e| format!("cannot encode the key: {e}"))?;
    write_new(&secret_path, secret_box.into_string().as_bytes(), 0o600)?;
    write_new(&public_path, public_box.into_string().as_bytes(), 0o644)?;
    Ok(NewKey {
        secret_file: secret_path.display().to_string(),
        public_file: public_path.display().to_string(),
        public_key: pair.pk.to_base64(),
        key_id: id,
    })
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin_trust::keys::{KeySource, TrustConfig};

    const MANIFEST: &str = r#"name = "hello"
version = "1.0.0"
description = "d"
wit = "0.1.0"
component = "hello.wasm"
events = ["page-created"]
actions = ["post-slack"]
"#;

    /// A plugin directory (the component need not be valid wasm: nothing
    /// here compiles it).
    fn plugin_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plugin.toml"), MANIFEST).unwrap();
        std::fs::write(dir.path().join("hello.wasm"), b"\0asm component bytes").unwrap();
        dir
    }

    fn new_key(dir: &Path, name: &str) -> (SigningKey, String) {
        let new = keygen(&dir.join(name), KeyProtection::Unencrypted).unwrap();
        let key = SigningKey::from_file(Path::new(&new.secret_file), None).unwrap();
        (key, new.public_key)
    }

    fn ring(trusted: &[(&str, &str)], revoked: &[(&str, &str)], require: bool) -> Keyring {
        let map = |keys: &[(&str, &str)]| {
            keys.iter()
                .map(|(n, k)| (n.to_string(), KeySource::Inline(k.to_string())))
                .collect()
        };
        TrustConfig {
            require_signature: require,
            trusted_keys: map(trusted),
            revoked_keys: map(revoked),
        }
        .keyring()
        .unwrap()
    }

    fn check_dir(dir: &Path, keyring: &Keyring) -> SignatureCheck {
        let package = PluginPackage::open(dir).unwrap();
        check(&package, &SignedFiles::read(dir).unwrap(), keyring)
    }

    #[test]
    fn a_signed_directory_verifies_with_its_key_and_names_the_signer() {
        let keys = tempfile::tempdir().unwrap();
        let (key, public) = new_key(keys.path(), "acme");
        let dir = plugin_dir();
        let signed = sign(dir.path(), &key).unwrap();
        assert_eq!(signed.statement.name, "hello");
        let check = check_dir(dir.path(), &ring(&[("acme", &public)], &[], true));
        assert_eq!(
            check.status,
            SignatureStatus::Verified,
            "{}",
            check.summary()
        );
        assert_eq!(check.signer.as_deref(), Some("acme"));
        assert!(check.signed_at.is_some());
        assert!(check.refusal("hello", true).is_none());
        assert!(
            check
                .summary()
                .starts_with("verified: signed by `acme` (key ID ")
        );
    }

    #[test]
    fn each_failure_has_its_own_verdict_and_message() {
        let keys = tempfile::tempdir().unwrap();
        let (key, public) = new_key(keys.path(), "acme");
        let (_, stranger) = new_key(keys.path(), "stranger");
        let trusting = ring(&[("acme", &public)], &[], true);

        // Unsigned.
        let dir = plugin_dir();
        let c = check_dir(dir.path(), &trusting);
        assert_eq!(c.status, SignatureStatus::Unsigned);
        assert!(c.refusal("hello", true).unwrap().contains("is not signed"));
        assert!(c.refusal("hello", false).is_none());

        // Tampered component.
        sign(dir.path(), &key).unwrap();
        std::fs::write(dir.path().join("hello.wasm"), b"\0asm other bytes").unwrap();
        let c = check_dir(dir.path(), &trusting);
        assert!(
            matches!(
                &c.status,
                SignatureStatus::Invalid {
                    problem: Problem::ComponentChanged { .. }
                }
            ),
            "{c:?}"
        );
        let message = c.refusal("hello", false).unwrap();
        assert!(
            message.contains("the component is not the one `acme`"),
            "{message}"
        );

        // Tampered manifest.
        let dir = plugin_dir();
        sign(dir.path(), &key).unwrap();
        std::fs::write(
            dir.path().join("plugin.toml"),
            MANIFEST.replace("[\"post-slack\"]", "[\"post-slack\", \"dm-slack\"]"),
        )
        .unwrap();
        let message = check_dir(dir.path(), &trusting)
            .refusal("hello", false)
            .unwrap();
        assert!(
            message.contains("plugin.toml is not the one `acme` (key ID"),
            "{message}"
        );

        // A signature moved to another version.
        let dir = plugin_dir();
        sign(dir.path(), &key).unwrap();
        let other = plugin_dir();
        std::fs::write(
            other.path().join("plugin.toml"),
            MANIFEST.replace("1.0.0", "1.0.1"),
        )
        .unwrap();
        for f in [STATEMENT_FILE, SIGNATURE_FILE] {
            std::fs::copy(dir.path().join(f), other.path().join(f)).unwrap();
        }
        let message = check_dir(other.path(), &trusting)
            .refusal("hello", false)
            .unwrap();
        assert!(
            message.contains("was made for `hello` 1.0.0 (contract 0.1.0, component hello.wasm), not for `hello` 1.0.1")
                && message.contains("cannot be moved"),
            "{message}"
        );

        // An altered statement (made to match the tampered files).
        let dir = plugin_dir();
        sign(dir.path(), &key).unwrap();
        std::fs::write(dir.path().join("hello.wasm"), b"\0asm other bytes").unwrap();
        let package = PluginPackage::open(dir.path()).unwrap();
        let forged = statement_of(&package, MANIFEST.as_bytes()).render();
        std::fs::write(dir.path().join(STATEMENT_FILE), forged).unwrap();
        let message = check_dir(dir.path(), &trusting)
            .refusal("hello", false)
            .unwrap();
        assert!(
            message.contains("does not match plugin.statement"),
            "{message}"
        );

        // An unknown key: refused only under the policy.
        let dir = plugin_dir();
        sign(dir.path(), &key).unwrap();
        let c = check_dir(dir.path(), &ring(&[("other", &stranger)], &[], true));
        assert_eq!(c.status, SignatureStatus::UnknownKey);
        let message = c.refusal("hello", true).unwrap();
        assert!(
            message.contains("which is not in [plugins] trusted-keys"),
            "{message}"
        );
        assert!(c.refusal("hello", false).is_none());

        // A revoked key: refused always, even when also listed as trusted.
        let c = check_dir(
            dir.path(),
            &ring(&[("acme", &public)], &[("acme-2024", &public)], false),
        );
        assert_eq!(c.status, SignatureStatus::RevokedKey);
        let message = c.refusal("hello", false).unwrap();
        assert!(
            message.contains("`acme-2024`") && message.contains("revoked"),
            "{message}"
        );

        // A damaged signature file.
        std::fs::write(
            dir.path().join(SIGNATURE_FILE),
            "untrusted comment: x\nnot base64\n",
        )
        .unwrap();
        let message = check_dir(dir.path(), &trusting)
            .refusal("hello", false)
            .unwrap();
        assert!(message.contains("is not a minisign signature"), "{message}");
    }

    #[test]
    fn an_encrypted_key_needs_its_password_and_keygen_never_overwrites() {
        let keys = tempfile::tempdir().unwrap();
        let prefix = keys.path().join("release");
        let new = keygen(
            &prefix,
            KeyProtection::Password(Some("correct horse".into())),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&new.secret_file)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let err = SigningKey::from_file(Path::new(&new.secret_file), Some("wrong".into()))
            .err()
            .unwrap();
        assert!(
            err.contains("not a minisign secret key this password opens"),
            "{err}"
        );
        let key = SigningKey::from_file(Path::new(&new.secret_file), Some("correct horse".into()))
            .unwrap();
        assert_eq!(key.id(), new.key_id);
        let err = keygen(&prefix, KeyProtection::Unencrypted).unwrap_err();
        assert!(err.contains("never overwrites"), "{err}");
    }
}
