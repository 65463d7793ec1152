//! What every outbound HTTP client shares: whom it trusts ([`tls`]), how
//! it is built ([`client_builder`]) and how it reads `Retry-After`.
//!
//! Every request Pagehook sends (Confluence, Slack, Teams, webhooks) goes
//! through a client from [`client_builder`], so a CA or a proxy an admin
//! configures applies to all of them. Nothing here may build a client that
//! skips certificate verification.

pub mod clients;
pub mod proxy;
pub mod tls;
pub mod tunnel;

use std::sync::OnceLock;
use std::time::Duration;

/// How the process reaches out: whom it trusts and through what proxy.
#[derive(Debug)]
pub struct Outbound {
    /// The trust roots of every client.
    pub trust: tls::Trust,
    /// `[network] proxy`; `None`: the environment's proxy variables apply.
    pub proxy: Option<proxy::ProxySetting>,
}

static OUTBOUND: OnceLock<Outbound> = OnceLock::new();

/// Makes `config`'s `[tls]` and `[network]` the process's, before any
/// client is built (the CLI does this right after reading `pagehook.toml`).
/// A second call keeps what the first set.
pub fn install(config: &crate::config::Config) -> anyhow::Result<&'static Outbound> {
    if let Some(o) = OUTBOUND.get() {
        return Ok(o);
    }
    let outbound = Outbound {
        // A CA file the admin named that cannot be used stops the command;
        // a machine without any trusted CA only cannot reach HTTPS (every
        // refusal then says so), so commands that need none still work.
        trust: match tls::Trust::load(&config.tls) {
            Err(tls::TrustError::Empty(why)) => tls::Trust::refusing_all(&why),
            other => other?,
        },
        proxy: proxy::ProxySetting::from_config(&config.network)?,
    };
    Ok(OUTBOUND.get_or_init(|| outbound))
}

/// The process's outbound settings: what [`install`] set, else the
/// machine's trust store and the environment's proxy variables.
pub fn current() -> &'static Outbound {
    OUTBOUND.get_or_init(|| Outbound {
        trust: tls::Trust::load_or_refuse_all(&tls::TlsConfig::default()),
        proxy: None,
    })
}

/// A client builder with the process's trust roots and proxy; add
/// timeouts and the like, then `build()`.
pub fn client_builder() -> reqwest::ClientBuilder {
    client_builder_with(current().trust.client_config())
}

/// A client builder for one connection: its own proxy when it has one
/// (`direct`: none at all, not even the environment's), else as
/// [`client_builder`].
pub fn client_builder_for(proxy: Option<&proxy::ProxyOverride>) -> reqwest::ClientBuilder {
    client_builder_with_for(current().trust.client_config(), proxy)
}

/// As [`client_builder`] with another TLS configuration (same proxy).
pub(crate) fn client_builder_with(tls: rustls::ClientConfig) -> reqwest::ClientBuilder {
    client_builder_with_for(tls, None)
}

/// As [`client_builder_for`] with another TLS configuration.
pub(crate) fn client_builder_with_for(
    tls: rustls::ClientConfig,
    own: Option<&proxy::ProxyOverride>,
) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder().use_preconfigured_tls(tls);
    let global = current().proxy.as_ref();
    match own {
        None => match global {
            Some(p) => builder.proxy(p.to_reqwest()),
            None => builder,
        },
        Some(own) => match own.setting(global) {
            Some(setting) => builder.proxy(setting.to_reqwest()),
            None => builder.no_proxy(),
        },
    }
}

/// A failed request in words: reqwest's message without the URL (which may
/// carry a token or a response URL) and each cause below it, so "error
/// sending request" says why; a refused certificate adds where to look.
pub fn describe(e: reqwest::Error) -> String {
    use std::error::Error as _;
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    if tls::certificate_error(&e).is_some() {
        text.push_str(
            " (the server's certificate is not trusted here: `pagehook connection test NAME` names it and the fix)",
        );
    }
    text
}

/// `Retry-After` in seconds from a response, if present and readable.
/// Absurd values (Confluence has sent 2^63-1) are kept whole; callers clamp.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs = v
        .trim()
        .parse::<u128>()
        .unwrap_or(u128::MAX)
        .min(u64::MAX as u128) as u64;
    Some(Duration::from_secs(secs))
}

/// The body of `answer`, refused past `cap` bytes. The error is words
/// without the URL.
pub async fn read_capped(mut answer: reqwest::Response, cap: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(describe)? {
        if body.len() + chunk.len() > cap {
            return Err(format!("the answer is larger than {} KiB", cap / 1024));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_retry_after_does_not_overflow() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "9223372036854775807".parse().unwrap());
        assert!(retry_after(&h).unwrap() > Duration::from_secs(1 << 40));
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
    }
}
