//! A TCP stream to `host:port` for the one outbound client that is not
//! reqwest: Slack's Socket Mode WebSocket. Direct, or through the egress
//! proxy with `CONNECT`, choosing exactly as every reqwest client does:
//! `[network] proxy` with its `no-proxy` list and credentials when it is
//! set, else the environment's `HTTPS_PROXY` / `ALL_PROXY` and `NO_PROXY`
//! (as curl reads them).
//!
//! Only the tunnel is made here; TLS to the far end goes inside it (the
//! proxy sees a host name and a port, never the traffic). What it must
//! never do: put the proxy's password in an error or a log line (only the
//! `Proxy-Authorization` header carries it), or go direct when a proxy
//! applies.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::proxy::{ProxyOverride, ProxySetting};

/// Largest proxy answer to a `CONNECT` read before the tunnel is refused.
const MAX_ANSWER: usize = 16 * 1024;

/// Why no stream could be opened.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The far end (no proxy) or the proxy could not be reached.
    #[error("cannot reach {what}: {why}")]
    Connect {
        /// `host:port`, and whether it is the proxy.
        what: String,
        /// The operating system's reason.
        why: String,
    },
    /// The proxy refused the tunnel.
    #[error("the proxy {proxy} refused CONNECT {target}: {status}{hint}")]
    Refused {
        /// The proxy (no credentials).
        proxy: String,
        /// `host:port` asked for.
        target: String,
        /// Its status line.
        status: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The proxy answered something that is not HTTP.
    #[error("the proxy {proxy} answered CONNECT with something that is not HTTP")]
    Garbled {
        /// The proxy (no credentials).
        proxy: String,
    },
    /// The proxy's address is not usable for a tunnel.
    #[error("proxy {0}")]
    Unusable(String),
    /// Nothing answered in time.
    #[error("no answer from {0} in time")]
    Timeout(String),
}

/// The proxy a connection goes through: its address and, if any, the
/// value of `Proxy-Authorization`.
#[derive(Clone, PartialEq, Eq)]
pub struct Route {
    /// `host:port` of the proxy.
    pub proxy: String,
    /// `Basic ...`; never printed.
    authorization: Option<String>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("proxy", &self.proxy)
            .field("credentials", &self.authorization.is_some())
            .finish()
    }
}

/// Opens a stream to `host:port` (the name the TLS inside will check),
/// through the proxy that applies to it, within `timeout`.
/// `own` is the connection's proxy override, if it has one: `direct`
/// opens the stream directly, a proxy of its own carries it whatever the
/// global `no-proxy` says.
pub async fn connect(
    host: &str,
    port: u16,
    timeout: Duration,
    own: Option<&ProxyOverride>,
) -> Result<TcpStream, TunnelError> {
    let global = super::current().proxy.as_ref();
    let route = match own {
        None => route_for(host, global, &|name| std::env::var(name).ok())?,
        Some(own) => match own.setting(global) {
            None => None,
            Some(setting) => route_for(host, Some(&setting), &|_| None)?,
        },
    };
    let target = format!("{}:{port}", bracketed(host));
    tokio::time::timeout(timeout, open(&target, route.as_ref()))
        .await
        .map_err(|_| {
            TunnelError::Timeout(match &route {
                Some(r) => format!("the proxy {} (CONNECT {target})", r.proxy),
                None => target.clone(),
            })
        })?
}

async fn open(target: &str, route: Option<&Route>) -> Result<TcpStream, TunnelError> {
    let Some(route) = route else {
        return TcpStream::connect(target)
            .await
            .map_err(|e| TunnelError::Connect {
                what: target.to_owned(),
                why: e.to_string(),
            });
    };
    let mut stream = TcpStream::connect(&route.proxy)
        .await
        .map_err(|e| TunnelError::Connect {
            what: format!("the proxy {}", route.proxy),
            why: e.to_string(),
        })?;
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = &route.authorization {
        request.push_str("Proxy-Authorization: ");
        request.push_str(auth);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let io = |e: std::io::Error| TunnelError::Connect {
        what: format!("the proxy {}", route.proxy),
        why: e.to_string(),
    };
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    // Read the answer's head byte by byte, so nothing the far end sends
    // after it (the TLS handshake) is taken from the stream.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_ANSWER {
            return Err(TunnelError::Garbled {
                proxy: route.proxy.clone(),
            });
        }
        let b = stream.read_u8().await.map_err(io)?;
        head.push(b);
    }
    let head = String::from_utf8_lossy(&head);
    let status_line = head.lines().next().unwrap_or_default().trim().to_owned();
    let mut parts = status_line.split_whitespace();
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(TunnelError::Garbled {
            proxy: route.proxy.clone(),
        });
    };
    if !version.starts_with("HTTP/") {
        return Err(TunnelError::Garbled {
            proxy: route.proxy.clone(),
        });
    }
    match code.parse::<u16>() {
        Ok(200..=299) => Ok(stream),
        Ok(code) => Err(TunnelError::Refused {
            proxy: route.proxy.clone(),
            target: target.to_owned(),
            status: status_line.clone(),
            hint: match code {
                407 if route.authorization.is_some() => {
                    " (the proxy refused the credentials in [network] proxy-credentials)"
                }
                407 => " (the proxy wants credentials: [network] proxy-credentials)",
                403 => " (the proxy's rules forbid this host or port: ask its admin to allow it)",
                _ => "",
            },
        }),
        Err(_) => Err(TunnelError::Garbled {
            proxy: route.proxy.clone(),
        }),
    }
}

/// `[::1]` for an IPv6 address, the name otherwise.
fn bracketed(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) if !host.starts_with('[') => format!("[{host}]"),
        _ => host.to_owned(),
    }
}

/// The proxy `host` is reached through, if any: `setting` when there is
/// one, else the environment (`env` reads a variable).
pub fn route_for(
    host: &str,
    setting: Option<&ProxySetting>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Route>, TunnelError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Some(setting) = setting {
        if bypassed(host, setting.no_proxy().iter().map(String::as_str)) {
            return Ok(None);
        }
        let url = reqwest::Url::parse(setting.url())
            .map_err(|e| TunnelError::Unusable(format!("{}: {e}", setting.url())))?;
        return Ok(Some(Route {
            proxy: address(&url)?,
            authorization: setting.authorization(),
        }));
    }
    let var = |names: &[&str]| {
        names.iter().find_map(|n| {
            env(n)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        })
    };
    let Some(raw) = var(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]) else {
        return Ok(None);
    };
    let no_proxy = var(&["NO_PROXY", "no_proxy"]).unwrap_or_default();
    if bypassed(host, no_proxy.split(',')) {
        return Ok(None);
    }
    // curl takes a proxy without a scheme as http://.
    let with_scheme = if raw.contains("://") {
        raw.clone()
    } else {
        format!("http://{raw}")
    };
    let url = reqwest::Url::parse(&with_scheme)
        .map_err(|_| TunnelError::Unusable("from HTTPS_PROXY/ALL_PROXY is not a URL".to_owned()))?;
    let authorization = (!url.username().is_empty()).then(|| {
        let pair = format!(
            "{}:{}",
            percent_decode(url.username()),
            percent_decode(url.password().unwrap_or(""))
        );
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    });
    Ok(Some(Route {
        proxy: address(&url)?,
        authorization,
    }))
}

/// `host:port` of a proxy URL; only `http://` proxies carry a tunnel here.
fn address(url: &reqwest::Url) -> Result<String, TunnelError> {
    let host = url
        .host_str()
        .ok_or_else(|| TunnelError::Unusable("without a host".to_owned()))?;
    if url.scheme() != "http" {
        return Err(TunnelError::Unusable(format!(
            "{}://{host}: Socket Mode tunnels through an http:// proxy only",
            url.scheme()
        )));
    }
    Ok(format!(
        "{host}:{}",
        url.port_or_known_default().unwrap_or(80)
    ))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (
                (b[i + 1] as char).to_digit(16),
                (b[i + 2] as char).to_digit(16),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `host` is in a no-proxy list: `*`, a name (itself and its
/// subdomains), `.name` (its subdomains), an IP address or a CIDR range.
pub fn bypassed<'a>(host: &str, list: impl IntoIterator<Item = &'a str>) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let ip = host.parse::<IpAddr>().ok();
    list.into_iter()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry.to_ascii_lowercase();
            if let Some((net, bits)) = entry.split_once('/') {
                return match (ip, net.parse::<IpAddr>(), bits.parse::<u8>()) {
                    (Some(ip), Ok(net), Ok(bits)) => in_range(ip, net, bits),
                    _ => false,
                };
            }
            let entry = entry.trim_start_matches('[').trim_end_matches(']');
            if let Ok(addr) = entry.parse::<IpAddr>() {
                return ip == Some(addr);
            }
            let name = entry.trim_start_matches("*.").trim_start_matches('.');
            host == name || host.ends_with(&format!(".{name}"))
        })
}

fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::proxy::NetworkConfig;

    fn setting(toml: &str) -> ProxySetting {
        let config: NetworkConfig = toml::from_str(toml).unwrap();
        ProxySetting::from_config(&config).unwrap().unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn no_proxy_entries_match_names_subdomains_addresses_and_ranges() {
        let list = ["wiki.corp", ".internal", "10.0.0.0/8", "::1", "192.168.1.7"];
        for host in [
            "wiki.corp",
            "a.wiki.corp",
            "x.internal",
            "10.2.3.4",
            "::1",
            "192.168.1.7",
        ] {
            assert!(bypassed(host, list), "{host}");
        }
        for host in [
            "notwiki.corp",
            "internal2",
            "11.0.0.1",
            "192.168.1.8",
            "slack.com",
        ] {
            assert!(!bypassed(host, list), "{host}");
        }
        assert!(bypassed("anything", ["*"]));
        assert!(!bypassed("anything", [" ", ""]));
    }

    #[test]
    fn the_setting_wins_over_the_environment_and_honours_no_proxy() {
        let s = setting(
            "proxy = \"http://proxy.corp:3128\"\nno-proxy = [\"127.0.0.1\"]\nproxy-credentials = { value = \"svc:hunter2\" }",
        );
        let env = |n: &str| (n == "HTTPS_PROXY").then(|| "http://other:1".to_owned());
        let r = route_for("wss-primary.slack.com", Some(&s), &env)
            .unwrap()
            .unwrap();
        assert_eq!(r.proxy, "proxy.corp:3128");
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("svc:hunter2")
        );
        assert_eq!(r.authorization.as_deref(), Some(expected.as_str()));
        assert!(!format!("{r:?}").contains("hunter2"));
        assert_eq!(route_for("127.0.0.1", Some(&s), &env).unwrap(), None);
    }

    #[test]
    fn the_environment_applies_without_a_setting() {
        let env = |n: &str| match n {
            "https_proxy" => Some("user%40corp:p%3Ass@proxy.env:8080".to_owned()),
            "NO_PROXY" => Some("localhost, .corp".to_owned()),
            _ => None,
        };
        let r = route_for("slack.com", None, &env).unwrap().unwrap();
        assert_eq!(r.proxy, "proxy.env:8080");
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("user@corp:p:ss")
        );
        assert_eq!(r.authorization.as_deref(), Some(expected.as_str()));
        assert_eq!(route_for("wiki.corp", None, &env).unwrap(), None);
        assert_eq!(route_for("slack.com", None, &no_env).unwrap(), None);
    }

    #[test]
    fn an_https_proxy_is_refused_in_words() {
        let env = |n: &str| (n == "ALL_PROXY").then(|| "https://proxy:443".to_owned());
        let err = route_for("slack.com", None, &env).unwrap_err().to_string();
        assert!(err.contains("http:// proxy only"), "{err}");
    }

    #[tokio::test]
    async fn a_refused_connect_names_the_status_and_the_fix_but_no_password() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            let asked = String::from_utf8_lossy(&buf[..n]).into_owned();
            s.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                .await
                .unwrap();
            asked
        });
        let route = Route {
            proxy: addr.to_string(),
            authorization: Some("Basic c3ZjOmh1bnRlcjI=".into()),
        };
        let err = open("wss.example:443", Some(&route))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("407"), "{err}");
        assert!(err.contains("proxy-credentials"), "{err}");
        assert!(!err.contains("c3Zj"), "{err}");
        let asked = server.await.unwrap();
        assert!(
            asked.starts_with("CONNECT wss.example:443 HTTP/1.1\r\n"),
            "{asked}"
        );
        assert!(asked.contains("Proxy-Authorization: Basic c3ZjOmh1bnRlcjI=\r\n"));
    }
}
