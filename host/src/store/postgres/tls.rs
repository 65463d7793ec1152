//! TLS to PostgreSQL, with libpq's `sslmode` semantics, for the pool and
//! the LISTEN connection alike.
//!
//! Managed and hardened databases accept only TLS clients (`rds.force_ssl`,
//! `hostssl`-only `pg_hba.conf`). A DBA hands out a libpq URL, so the
//! settings are libpq's query parameters, taken out of `[store] database`
//! before the rest goes to tokio-postgres (which knows none of them past
//! `require`):
//!
//! | `sslmode` | TLS | the server's certificate |
//! | --- | --- | --- |
//! | `disable` | never | - |
//! | `prefer` (default) | if the server offers it | not checked (libpq's rule) |
//! | `require` | always | not checked, unless `sslrootcert` is given: then as `verify-ca` (libpq's rule) |
//! | `verify-ca` | always | signed by a trusted CA |
//! | `verify-full` | always | signed by a trusted CA and issued to the URL's host |
//!
//! Trusted CAs: the `sslrootcert` file when given, else the process's trust
//! (the machine's store plus `[tls] extra-ca-files`). `sslcert` and
//! `sslkey` give a client certificate. What must never happen: a
//! `verify-*` mode that accepts a certificate it could not check.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, String> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err(
                    "sslmode=allow is not supported (it tries plain first); use prefer or require"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }

    /// The name libpq uses.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS settings of one database URL.
#[derive(Debug, Clone, PartialEq)]
pub struct PgTls {
    /// How strict.
    pub mode: SslMode,
    /// CA certificates (PEM) that sign the server's certificate.
    pub root_cert: Option<PathBuf>,
    /// The client certificate (PEM), for servers that ask for one.
    pub client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub client_key: Option<PathBuf>,
}

impl PgTls {
    /// Takes `sslmode`, `sslrootcert`, `sslcert` and `sslkey` out of `url`'s
    /// query; returns the URL without them and the settings.
    pub fn from_url(url: &str) -> Result<(String, PgTls), String> {
        let mut tls = PgTls {
            mode: SslMode::Prefer,
            root_cert: None,
            client_cert: None,
            client_key: None,
        };
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), tls));
        };
        let mut rest = Vec::new();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "sslmode" => tls.mode = SslMode::parse(&value)?,
                "sslrootcert" => tls.root_cert = Some(PathBuf::from(value.as_ref())),
                "sslcert" => tls.client_cert = Some(PathBuf::from(value.as_ref())),
                "sslkey" => tls.client_key = Some(PathBuf::from(value.as_ref())),
                _ => rest.push((key.into_owned(), value.into_owned())),
            }
        }
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            return Err("sslcert and sslkey go together: give both or neither".into());
        }
        if tls.mode == SslMode::Require && tls.root_cert.is_some() {
            // libpq: "if a root CA file exists, verify as verify-ca".
            tls.mode = SslMode::VerifyCa;
        }
        let url = if rest.is_empty() {
            base.to_owned()
        } else {
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &rest {
                query.append_pair(k, v);
            }
            format!("{base}?{}", query.finish())
        };
        Ok((url, tls))
    }

    /// tokio-postgres's own mode: whether it asks the server for TLS.
    pub fn pg_mode(&self) -> PgSslMode {
        match self.mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            _ => PgSslMode::Require,
        }
    }

    /// The connector for the pool and the LISTEN connection.
    pub fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => {
                Arc::new(Unchecked(provider.clone()))
            }
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let roots = match &self.root_cert {
                    Some(path) => Arc::new(read_roots(path)?),
                    None => crate::http::current().trust.roots(),
                };
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| {
                        format!("no CA to check the database's certificate against ({e}): give sslrootcert=/path/to/ca.pem")
                    })?;
                if self.mode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(AnyName(webpki))
                }
            }
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "sslcert")?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("sslkey {}: {e}", key.display()))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    format!("sslcert and sslkey do not make a client certificate: {e}")
                })?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(MakeRustlsConnect::new(config))
    }
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{what} {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: holds no `BEGIN CERTIFICATE` block",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path, "sslrootcert")? {
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
    }
    Ok(roots)
}

/// libpq's `prefer`/`require` without a root certificate: encrypted, the
/// server's certificate not checked (signatures of the handshake still are).
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name may differ.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError as C;
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            // The name is checked only after the chain verified, so this
            // error means: trusted chain, another name.
            Err(rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A refused database certificate in words, when that is what `message`
/// (tokio-postgres's error with its causes) says.
pub fn explain(message: &str, tls: &PgTls) -> Option<String> {
    let where_from = match &tls.root_cert {
        Some(p) => format!("sslrootcert {}", p.display()),
        None => "this machine's trust store or [tls] extra-ca-files".to_owned(),
    };
    if message.contains("UnknownIssuer") || message.contains("BadSignature") {
        Some(format!(
            "the database server's certificate is not signed by a CA in {where_from} \
             (sslmode={}): give the CA that signs it as sslrootcert=/path/to/ca.pem in the URL",
            tls.mode.name()
        ))
    } else if message.contains("NotValidForName") || message.contains("not valid for name") {
        Some(
            "the database server's certificate is not issued to the host name in the URL \
             (sslmode=verify-full): connect by the name the certificate names, or use sslmode=verify-ca"
                .to_owned(),
        )
    } else if message.contains("Expired") || message.contains("certificate expired") {
        Some("the database server's certificate has expired".to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_parameters_are_taken_out_of_the_url() {
        let (url, tls) = PgTls::from_url(
            "postgres://pagehook@db.corp:5432/pagehook?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=ph",
        )
        .unwrap();
        assert_eq!(
            url,
            "postgres://pagehook@db.corp:5432/pagehook?application_name=ph"
        );
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert.as_deref(), Some(Path::new("/etc/ca.pem")));
        let (url, tls) = PgTls::from_url("postgres://pagehook@db/pagehook").unwrap();
        assert_eq!(url, "postgres://pagehook@db/pagehook");
        assert_eq!(tls.mode, SslMode::Prefer);
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_chain_as_libpq_does() {
        let (_, tls) =
            PgTls::from_url("postgres://u@db/x?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert_eq!(tls.mode, SslMode::VerifyCa);
    }

    #[test]
    fn unknown_modes_and_half_client_certificates_are_refused() {
        let err = PgTls::from_url("postgres://u@db/x?sslmode=verify").unwrap_err();
        assert!(err.contains("verify-full"), "{err}");
        let err = PgTls::from_url("postgres://u@db/x?sslcert=/c.pem").unwrap_err();
        assert!(err.contains("sslkey"), "{err}");
    }

    #[test]
    fn a_missing_root_certificate_file_is_named() {
        let (_, tls) = PgTls::from_url(
            "postgres://u@db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )
        .unwrap();
        let err = tls.connector().err().expect("refused");
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
