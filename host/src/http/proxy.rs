//! The egress proxy every outbound request goes through, when there is one.
//!
//! Data Center sites reach Slack, Teams and often their own Confluence only
//! through a forward proxy. `[network] proxy` names it (with credentials as
//! a secret reference and a `no-proxy` list); without that setting the
//! standard `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` / `NO_PROXY`
//! variables apply, as for curl. The proxy's password must never appear in
//! a log line, an error or an answer: it is kept as a [`Secret`] and reaches
//! only reqwest's `Proxy-Authorization` header.

use crate::secret::{Secret, SecretSource};

/// `[network]` in `pagehook.toml`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetworkConfig {
    /// `http://host:port` of the egress proxy for every outbound request
    /// (HTTPS goes through it with `CONNECT`). Without it, the environment's
    /// `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` and `NO_PROXY` apply.
    pub proxy: Option<String>,
    /// Hosts reached directly, not through `proxy`: a name (`wiki.corp`,
    /// also matching its subdomains), `.corp.example` (subdomains), an IP
    /// address or a CIDR range (`10.0.0.0/8`), or `*` for every host.
    pub no_proxy: Vec<String>,
    /// `user:password` for the proxy (Basic), as a secret reference
    /// (`{ env = "..." }`, `{ file = "..." }`).
    pub proxy_credentials: Option<SecretSource>,
}

/// A proxy setting, checked and ready for clients.
#[derive(Clone)]
pub struct ProxySetting {
    url: reqwest::Url,
    no_proxy: Vec<String>,
    credentials: Option<(String, Secret)>,
}

impl std::fmt::Debug for ProxySetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxySetting")
            .field("url", &self.url.as_str())
            .field("no_proxy", &self.no_proxy)
            .field("credentials", &self.credentials.as_ref().map(|(u, _)| u))
            .finish()
    }
}

/// Why `[network]` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The proxy URL is not an `http://host:port` URL.
    #[error("[network] proxy: {0}")]
    Url(String),
    /// The credentials could not be read or are not `user:password`.
    #[error("[network] proxy-credentials: {0}")]
    Credentials(String),
}

impl ProxySetting {
    /// The setting `config` asks for; `None` when it names no proxy (the
    /// environment's variables then apply).
    pub fn from_config(config: &NetworkConfig) -> Result<Option<ProxySetting>, ProxyError> {
        let Some(raw) = config
            .proxy
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        else {
            if config.proxy_credentials.is_some() {
                return Err(ProxyError::Credentials(
                    "given without [network] proxy".into(),
                ));
            }
            return Ok(None);
        };
        let url = reqwest::Url::parse(raw)
            .map_err(|e| ProxyError::Url(format!("`{raw}` is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ProxyError::Url(format!(
                "`{raw}`: expected http://host:port (or https://host:port)"
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ProxyError::Url(
                "credentials inside the URL are refused: use proxy-credentials = { env = \"...\" }"
                    .into(),
            ));
        }
        let credentials = match &config.proxy_credentials {
            None => None,
            Some(source) => {
                let secret = source.resolve().map_err(ProxyError::Credentials)?;
                let Some((user, _)) = secret.expose().split_once(':') else {
                    return Err(ProxyError::Credentials("expected user:password".into()));
                };
                Some((user.to_owned(), secret))
            }
        };
        Ok(Some(ProxySetting {
            url,
            no_proxy: config
                .no_proxy
                .iter()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect(),
            credentials,
        }))
    }

    /// The proxy's URL (no credentials in it).
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The hosts reached directly.
    pub fn no_proxy(&self) -> &[String] {
        &self.no_proxy
    }

    /// `Proxy-Authorization` for a tunnel made by hand
    /// ([`super::tunnel`]): `Basic` over the credentials, if any.
    pub(crate) fn authorization(&self) -> Option<String> {
        use base64::Engine as _;
        self.credentials.as_ref().map(|(_, secret)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(secret.expose())
            )
        })
    }

    /// The setting as reqwest applies it to every scheme.
    pub fn to_reqwest(&self) -> reqwest::Proxy {
        let mut proxy = reqwest::Proxy::all(self.url.as_str())
            .expect("checked in from_config")
            .no_proxy(reqwest::NoProxy::from_string(&self.no_proxy.join(",")));
        if let Some((user, secret)) = &self.credentials {
            let password = secret
                .expose()
                .split_once(':')
                .map(|(_, p)| p)
                .unwrap_or("");
            proxy = proxy.basic_auth(user, password);
        }
        proxy
    }
}

/// A connection's own proxy, instead of the global one (`connect ...
/// --proxy`): `direct` (never a proxy, not even the environment's) or an
/// `http(s)://host:port` proxy that carries every request of that
/// connection (the global `no-proxy` list does not apply to it). Stored and
/// shown as that text; it never holds credentials.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProxyOverride {
    /// Reached directly.
    Direct,
    /// Through this proxy (a URL without credentials, normalised).
    Via(String),
}

impl ProxyOverride {
    /// `direct`, or an `http(s)://host:port` URL without credentials; the
    /// error says what is wrong and never echoes a password.
    pub fn parse(raw: &str) -> Result<ProxyOverride, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("direct") {
            return Ok(ProxyOverride::Direct);
        }
        let url = reqwest::Url::parse(raw).map_err(|_| {
            "expected `direct` or a proxy URL such as http://proxy.corp:3128".to_owned()
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "credentials inside the proxy URL are refused: give http://host:port; [network] proxy-credentials apply when it is the same proxy as [network] proxy"
                    .into(),
            );
        }
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "`{}://...` is not an HTTP proxy: expected `direct` or http://host:port (or https://host:port)",
                url.scheme()
            ));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err("a proxy URL is http://host:port, with no path or query".into());
        }
        Ok(ProxyOverride::Via(url.as_str().to_owned()))
    }

    /// As stored and shown: `direct` or the proxy's URL.
    pub fn as_str(&self) -> &str {
        match self {
            ProxyOverride::Direct => "direct",
            ProxyOverride::Via(url) => url,
        }
    }

    /// The setting clients apply for this override; `None` for `direct`.
    /// The global `proxy-credentials` go with it only when it names the same
    /// proxy as `[network] proxy` (they are that proxy's, not another's).
    pub fn setting(&self, global: Option<&ProxySetting>) -> Option<ProxySetting> {
        let ProxyOverride::Via(raw) = self else {
            return None;
        };
        let url = reqwest::Url::parse(raw).expect("checked in ProxyOverride::parse");
        let credentials = global
            .filter(|g| g.url == url)
            .and_then(|g| g.credentials.clone());
        Some(ProxySetting {
            url,
            no_proxy: Vec::new(),
            credentials,
        })
    }
}

impl std::fmt::Display for ProxyOverride {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ProxyOverride {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> NetworkConfig {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn no_proxy_setting_leaves_the_environment_in_charge() {
        assert!(
            ProxySetting::from_config(&NetworkConfig::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_proxy_with_credentials_in_the_url_is_refused_without_echoing_them() {
        let err =
            ProxySetting::from_config(&config("proxy = \"http://svc:hunter2@proxy.corp:3128\""))
                .unwrap_err()
                .to_string();
        assert!(err.contains("proxy-credentials"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn credentials_must_be_user_colon_password_and_never_print() {
        let err = ProxySetting::from_config(&config(
            "proxy = \"http://proxy.corp:3128\"\nproxy-credentials = { value = \"justapassword\" }",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("user:password"), "{err}");
        assert!(!err.contains("justapassword"), "{err}");
        let ok = ProxySetting::from_config(&config(
            "proxy = \"http://proxy.corp:3128\"\nno-proxy = [\"wiki.corp\", \" \"]\nproxy-credentials = { value = \"svc:hunter2\" }",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(ok.no_proxy(), ["wiki.corp"]);
        assert!(!format!("{ok:?}").contains("hunter2"));
    }

    #[test]
    fn a_proxy_must_be_an_http_url() {
        let err = ProxySetting::from_config(&config("proxy = \"socks5://proxy.corp:1080\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected http://host:port"), "{err}");
    }

    #[test]
    fn a_connection_override_is_direct_or_an_http_url_without_credentials() {
        assert_eq!(
            ProxyOverride::parse(" Direct ").unwrap(),
            ProxyOverride::Direct
        );
        let via = ProxyOverride::parse("http://proxy.eu.corp:3128").unwrap();
        assert_eq!(via.as_str(), "http://proxy.eu.corp:3128/");
        assert_eq!(ProxyOverride::parse(via.as_str()).unwrap(), via);
        for (bad, says) in [
            ("proxy.corp:3128", "not an HTTP proxy"),
            ("socks5://proxy.corp:1080", "not an HTTP proxy"),
            ("nonsense", "expected `direct`"),
            ("", "expected `direct`"),
            ("http://proxy.corp:3128/path", "no path"),
            ("http://svc:hunter2@proxy.corp:3128", "credentials inside"),
        ] {
            let err = ProxyOverride::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn an_override_takes_the_global_credentials_only_for_the_same_proxy() {
        let global = ProxySetting::from_config(&config(
            "proxy = \"http://proxy.corp:3128\"\nno-proxy = [\"wiki.corp\"]\nproxy-credentials = { value = \"svc:hunter2\" }",
        ))
        .unwrap()
        .unwrap();
        let same = ProxyOverride::parse("http://proxy.corp:3128").unwrap();
        let same = same.setting(Some(&global)).unwrap();
        assert!(same.authorization().is_some());
        assert!(same.no_proxy().is_empty());
        let other = ProxyOverride::parse("http://proxy.eu.corp:3128").unwrap();
        assert!(
            other
                .setting(Some(&global))
                .unwrap()
                .authorization()
                .is_none()
        );
        assert!(ProxyOverride::Direct.setting(Some(&global)).is_none());
    }
}
