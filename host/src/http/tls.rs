//! Which certificate authorities outbound HTTPS trusts, and what to tell an
//! admin when a server's certificate is not accepted.
//!
//! Confluence Data Center is usually served with a certificate from the
//! company's own CA, and Slack or Teams may be reached through a
//! TLS-inspecting proxy that signs with one. So Pagehook trusts what the
//! machine trusts (the platform's store, read by `rustls-native-certs`:
//! Debian's `ca-certificates`, or the files `SSL_CERT_FILE` / `SSL_CERT_DIR`
//! name) plus the PEM files `[tls] extra-ca-files` names, never only a
//! bundled list.
//!
//! [`check`] makes one request to a server with a verifier that records the
//! chain it is shown while verifying exactly as every other client does,
//! and when the certificate is refused says in words who signed it and how
//! to trust it.
//!
//! This module must never turn verification off: the recording verifier
//! delegates every decision to rustls's own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// `[tls]` in `pagehook.toml`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsConfig {
    /// PEM files of further certificate authorities to trust (a company's
    /// root CA, a TLS-inspecting proxy's CA), beside the machine's store.
    /// Relative paths are relative to the config file.
    pub extra_ca_files: Vec<PathBuf>,
}

/// The trust roots every outbound client uses, and where they came from.
#[derive(Clone)]
pub struct Trust {
    roots: Arc<RootCertStore>,
    config: Arc<ClientConfig>,
    /// Certificates read from the machine's store.
    pub system_roots: usize,
    /// Certificates read from `extra-ca-files`.
    pub extra_roots: usize,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("system_roots", &self.system_roots)
            .field("extra_roots", &self.extra_roots)
            .finish()
    }
}

/// Why the trust roots could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// An `extra-ca-files` entry could not be read or held no certificate.
    #[error("[tls] extra-ca-files: {path}: {why}")]
    CaFile { path: PathBuf, why: String },
    /// Neither the machine's store nor `extra-ca-files` gave a certificate.
    #[error(
        "no trusted certificate authorities: the machine's trust store is empty or unreadable ({0}); \
         install Debian's ca-certificates or name CA files in [tls] extra-ca-files"
    )]
    Empty(String),
}

impl Trust {
    /// The machine's store plus `config.extra_ca_files`; when the machine's
    /// store cannot be read either, a trust that refuses every certificate
    /// (and says why in the log), so plain-HTTP targets still work.
    pub fn load_or_refuse_all(config: &TlsConfig) -> Trust {
        Trust::load(config).unwrap_or_else(|e| Trust::refusing_all(&e.to_string()))
    }

    /// A trust with no roots (every certificate is refused), logging `why`.
    pub fn refusing_all(why: &str) -> Trust {
        tracing::error!("no trusted certificate authorities: {why}");
        Trust::from_roots(RootCertStore::empty(), 0, 0)
    }

    /// The machine's store plus `config.extra_ca_files`.
    pub fn load(config: &TlsConfig) -> Result<Trust, TrustError> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let problems: Vec<String> = native.errors.iter().map(|e| e.to_string()).collect();
        if !problems.is_empty() {
            tracing::warn!(
                errors = %problems.join("; "),
                "some of the machine's trusted certificates could not be read"
            );
        }
        let (system, _ignored) = roots.add_parsable_certificates(native.certs);
        let mut extra = 0;
        for path in &config.extra_ca_files {
            let certs = read_pem(path)?;
            for cert in certs {
                roots.add(cert).map_err(|e| TrustError::CaFile {
                    path: path.clone(),
                    why: format!("not a CA certificate rustls accepts: {e}"),
                })?;
                extra += 1;
            }
        }
        if roots.is_empty() {
            let why = if problems.is_empty() {
                "it holds no certificate".to_owned()
            } else {
                problems.join("; ")
            };
            return Err(TrustError::Empty(why));
        }
        Ok(Trust::from_roots(roots, system, extra))
    }

    fn from_roots(roots: RootCertStore, system_roots: usize, extra_roots: usize) -> Trust {
        let roots = Arc::new(roots);
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        Trust {
            roots,
            config: Arc::new(config),
            system_roots,
            extra_roots,
        }
    }

    /// The trusted roots (for clients that verify in their own way, such
    /// as the PostgreSQL connector).
    pub fn roots(&self) -> Arc<RootCertStore> {
        self.roots.clone()
    }

    /// The rustls configuration for a client (cheap to clone).
    pub fn client_config(&self) -> ClientConfig {
        (*self.config).clone()
    }

    /// A configuration that verifies exactly as [`Trust::client_config`]
    /// does and records the chain it was shown.
    fn recording_config(&self) -> Option<(ClientConfig, Arc<Recorder>)> {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            self.roots.clone(),
            provider(),
        )
        .build()
        .ok()?;
        let recorder = Arc::new(Recorder {
            inner,
            chain: std::sync::Mutex::new(Vec::new()),
        });
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_no_client_auth();
        Some((config, recorder))
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in the PEM file at `path`.
fn read_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let err = |why: String| TrustError::CaFile {
        path: path.to_path_buf(),
        why,
    };
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(err("holds no `BEGIN CERTIFICATE` block".into()));
    }
    Ok(certs)
}

/// The certificate problem behind a failed request, if that is what failed.
pub fn certificate_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut cause: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<rustls::Error>()
            && matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        {
            return Some(r);
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(r) = certificate_error(inner)
        {
            return Some(r);
        }
        cause = c.source();
    }
    None
}

/// Checks that `url`'s server presents a certificate this process trusts,
/// with one `HEAD` request through the process's client (and so through its
/// proxy): `Ok` for plain `http://` and for a trusted server, else the
/// explanation in words. The chain is recorded while it is verified; a
/// refused one is never sent a request. Other failures are left to the real
/// request.
pub async fn check(url: &str) -> Result<(), String> {
    check_via(url, None).await
}

/// As [`check`] for a connection with its own proxy (`None`: the global one).
pub async fn check_via(
    url: &str,
    proxy: Option<&super::proxy::ProxyOverride>,
) -> Result<(), String> {
    if !url.starts_with("https://") {
        return Ok(());
    }
    let Some((config, recorder)) = super::current().trust.recording_config() else {
        return Err(
            "this server trusts no certificate authority at all (the machine's trust store is empty or unreadable), so no HTTPS server can be reached: install Debian's ca-certificates, or name CA files in [tls] extra-ca-files"
                .to_owned(),
        );
    };
    let client = match super::client_builder_with_for(config, proxy)
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(_) => return Ok(()),
    };
    let Err(e) = client.head(url).send().await else {
        return Ok(());
    };
    let Some(cert) = certificate_error(&e) else {
        return Ok(());
    };
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()))
        .unwrap_or_else(|| url.to_owned());
    let chain = recorder.chain();
    let presented = describe_chain(&chain).ok();
    Err(explain(&host, cert, presented.as_ref()))
}

/// What a server presented, as far as an admin needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct PresentedChain {
    /// The server certificate's subject (its common name, else the whole name).
    pub subject: String,
    /// Who signed the last certificate the server sent: the CA to trust.
    pub issuer: String,
    /// The names the server certificate is valid for.
    pub names: Vec<String>,
    /// When the server certificate stops being valid (RFC 3339).
    pub not_after: String,
    /// Whether the last certificate sent signs itself (a self-signed server
    /// certificate, or a root sent along).
    pub self_signed: bool,
}

/// Why a certificate was refused and how to fix it, from the error and
/// (when it was recorded) the chain the server presented.
pub fn explain(host: &str, error: &rustls::Error, chain: Option<&PresentedChain>) -> String {
    use rustls::CertificateError as C;
    let fix = "add the CA's certificate (PEM) to [tls] extra-ca-files in pagehook.toml, \
               or to this machine's trust store (Debian: copy it to \
               /usr/local/share/ca-certificates/NAME.crt and run update-ca-certificates), \
               then restart pagehook";
    let cert = match error {
        rustls::Error::InvalidCertificate(c) => c,
        other => return format!("{host}'s TLS handshake failed: {other}"),
    };
    let subject = chain
        .map(|c| format!(" for '{}'", c.subject))
        .unwrap_or_default();
    match cert {
        C::UnknownIssuer | C::BadSignature => match chain {
            Some(c) if c.self_signed && c.issuer == c.subject => format!(
                "{host} presented a self-signed certificate{subject}, which this server does not trust: {fix}"
            ),
            Some(c) => format!(
                "{host} presented a certificate{subject} signed by '{}', which this server does not trust: {fix}",
                c.issuer
            ),
            None => format!(
                "{host} presented a certificate signed by a certificate authority this server does not trust: {fix}"
            ),
        },
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            let names = chain
                .map(|c| format!(" (it is valid for: {})", c.names.join(", ")))
                .unwrap_or_default();
            format!(
                "{host} presented a certificate{subject} that is not valid for the name '{host}'{names}: \
                 use the host name the certificate names in the connection's URL, or have the certificate reissued"
            )
        }
        C::Expired | C::ExpiredContext { .. } => {
            let when = chain
                .map(|c| format!(" on {}", c.not_after))
                .unwrap_or_default();
            format!(
                "{host} presented a certificate{subject} that expired{when}: renew it on the server \
                 (or check this machine's clock)"
            )
        }
        C::NotValidYet | C::NotValidYetContext { .. } => format!(
            "{host} presented a certificate{subject} that is not valid yet: check this machine's clock"
        ),
        C::Revoked => format!("{host} presented a revoked certificate{subject}"),
        other => format!("{host} presented a certificate{subject} that was refused: {other:?}"),
    }
}

/// Reads the names out of a presented chain (server certificate first).
pub fn describe_chain(chain: &[CertificateDer<'static>]) -> Result<PresentedChain, String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let leaf_der = chain.first().ok_or("the server presented no certificate")?;
    let (_, leaf) = X509Certificate::from_der(leaf_der).map_err(|e| e.to_string())?;
    let last_der = chain.last().expect("not empty");
    let (_, last) = X509Certificate::from_der(last_der).map_err(|e| e.to_string())?;
    let common_name = |name: &x509_parser::x509::X509Name<'_>| {
        name.iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| name.to_string())
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push((*d).to_owned()),
                GeneralName::IPAddress(ip) => names.push(match ip.len() {
                    4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
                    16 => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(ip);
                        std::net::Ipv6Addr::from(b).to_string()
                    }
                    _ => format!("{ip:?}"),
                }),
                _ => {}
            }
        }
    }
    Ok(PresentedChain {
        subject: common_name(leaf.subject()),
        issuer: common_name(last.issuer()),
        names,
        not_after: leaf
            .validity()
            .not_after
            .to_rfc2822()
            .unwrap_or_else(|_| leaf.validity().not_after.to_string()),
        self_signed: last.subject() == last.issuer(),
    })
}

/// Verifies as the process's roots do, keeping the chain it was shown:
/// for [`check`] only.
#[derive(Debug)]
struct Recorder {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    chain: std::sync::Mutex<Vec<CertificateDer<'static>>>,
}

impl Recorder {
    fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.lock().expect("not poisoned").clone()
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        *self.chain.lock().expect("not poisoned") = chain;
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_is_named() {
        let err = Trust::load(&TlsConfig {
            extra_ca_files: vec!["/nonexistent/corp-ca.pem".into()],
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/corp-ca.pem"), "{err}");
        assert!(err.contains("cannot read"), "{err}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = Trust::load(&TlsConfig {
            extra_ca_files: vec![path],
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("no `BEGIN CERTIFICATE`"), "{err}");
    }

    #[test]
    fn explanations_name_the_signer_and_the_fix() {
        let chain = PresentedChain {
            subject: "wiki.corp".into(),
            issuer: "Corp Root CA".into(),
            names: vec!["wiki.corp".into()],
            not_after: "Tue, 1 Jan 2030 00:00:00 +0000".into(),
            self_signed: false,
        };
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let text = explain("wiki.corp", &unknown, Some(&chain));
        assert!(text.contains("signed by 'Corp Root CA'"), "{text}");
        assert!(text.contains("extra-ca-files"), "{text}");
        let wrong_name =
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        let text = explain("10.0.0.1", &wrong_name, Some(&chain));
        assert!(text.contains("valid for: wiki.corp"), "{text}");
    }
}
