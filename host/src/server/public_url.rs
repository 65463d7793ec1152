//! The address people and Slack reach this Pagehook at, for what it hands
//! out to be opened elsewhere: the one-time links of `/confluence link` and
//! the URLs in the Slack app manifest on the Connections page.
//!
//! `[server] public-url` when it is set. Otherwise the address the request
//! came to: a proxy's `X-Forwarded-Host` and `X-Forwarded-Proto`, else
//! `Host`; the scheme is https unless a proxy says otherwise or the host is
//! on loopback. What it must never do: build a link from a host header that
//! is not a plain host name (letters, digits, `.-:[]`): such a value falls
//! back to a placeholder rather than becoming part of a link.

use axum::http::HeaderMap;

/// Stands for this server when a request names no usable host.
pub const PLACEHOLDER_HOST: &str = "pagehook.example.com";

/// The base URL (no trailing `/`) of this Pagehook as the sender of
/// `headers` reached it, or as `configured` says.
pub fn public_base(configured: Option<&str>, headers: &HeaderMap) -> String {
    if let Some(url) = configured {
        return url.trim_end_matches('/').to_owned();
    }
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = value("x-forwarded-host")
        .or_else(|| value("host"))
        .map(str::trim)
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or(PLACEHOLDER_HOST);
    let scheme = match value("x-forwarded-proto") {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        Some(p) if p.eq_ignore_ascii_case("http") => "http",
        _ if is_loopback(host) => "http",
        _ => "https",
    };
    format!("{scheme}://{host}")
}

fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_setting_wins_then_the_proxy_then_the_host() {
        let h = headers(&[
            ("host", "10.0.0.5:8180"),
            ("x-forwarded-host", "hooks.example.com"),
            ("x-forwarded-proto", "https"),
        ]);
        assert_eq!(
            public_base(Some("https://ph.example.com/"), &h),
            "https://ph.example.com"
        );
        assert_eq!(public_base(None, &h), "https://hooks.example.com");
        assert_eq!(
            public_base(None, &headers(&[("host", "ph.example.com")])),
            "https://ph.example.com"
        );
        assert_eq!(
            public_base(None, &headers(&[("host", "127.0.0.1:8180")])),
            "http://127.0.0.1:8180"
        );
        assert_eq!(
            public_base(None, &headers(&[("host", "[::1]:8180")])),
            "http://[::1]:8180"
        );
        assert_eq!(
            public_base(None, &headers(&[("host", "localhost:8180")])),
            "http://localhost:8180"
        );
        assert_eq!(
            public_base(
                None,
                &headers(&[("host", "ph.internal"), ("x-forwarded-proto", "http")])
            ),
            "http://ph.internal"
        );
    }

    #[test]
    fn a_host_header_that_is_not_a_host_never_becomes_a_link() {
        for bad in ["evil.example.com/phish?x=", "a b", "x@evil.example.com", ""] {
            assert_eq!(
                public_base(None, &headers(&[("host", bad)])),
                "https://pagehook.example.com",
                "{bad}"
            );
        }
    }
}
