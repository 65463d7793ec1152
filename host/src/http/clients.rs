//! Shared HTTP clients, one per proxy a connection asks for.
//!
//! A long-lived worker (delivery, dispatch) sends for many connections; a
//! connection may name its own proxy or `direct` (see
//! [`super::proxy::ProxyOverride`]). Building a reqwest client per request
//! would throw away its connection pool and TLS sessions, so clients are
//! made once per override and kept. What it must never do: hand one
//! connection a client built for another's proxy, or grow without bound
//! (it is emptied when it holds [`MAX_CLIENTS`] different proxies).

use std::collections::HashMap;
use std::sync::Mutex;

use super::proxy::ProxyOverride;

/// Different proxies kept before the cache starts again.
pub const MAX_CLIENTS: usize = 32;

/// How a client is finished once its proxy is set (timeouts, redirects).
type Finish = dyn Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync;

/// Clients that differ only by proxy, built on first use.
pub struct ClientsByProxy {
    finish: Box<Finish>,
    clients: Mutex<HashMap<Option<ProxyOverride>, reqwest::Client>>,
}

impl std::fmt::Debug for ClientsByProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.clients.lock().map(|c| c.len()).unwrap_or(0);
        f.debug_struct("ClientsByProxy")
            .field("clients", &n)
            .finish()
    }
}

impl ClientsByProxy {
    /// Clients finished by `finish` (it adds timeouts and the like to a
    /// builder that already has the trust roots and the proxy).
    pub fn new(
        finish: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync + 'static,
    ) -> ClientsByProxy {
        ClientsByProxy {
            finish: Box::new(finish),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client for a connection with `proxy` (`None`: the global
    /// setting); cheap, it shares the cached client's pool.
    pub fn get(&self, proxy: Option<&ProxyOverride>) -> reqwest::Client {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&proxy.cloned()) {
            return c.clone();
        }
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        let client = (self.finish)(super::client_builder_for(proxy))
            .build()
            .expect("a TLS backend is compiled in");
        clients.insert(proxy.cloned(), client.clone());
        client
    }

    /// How many clients are kept (tests).
    pub fn len(&self) -> usize {
        self.clients.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Whether none is kept yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_per_proxy_and_never_more_than_the_cap() {
        let clients = ClientsByProxy::new(|b| b);
        let direct = ProxyOverride::Direct;
        let eu = ProxyOverride::parse("http://proxy.eu.corp:3128").unwrap();
        clients.get(None);
        clients.get(Some(&direct));
        clients.get(Some(&eu));
        clients.get(Some(&eu));
        clients.get(None);
        assert_eq!(clients.len(), 3);
        for port in 0..MAX_CLIENTS as u16 {
            let p = ProxyOverride::parse(&format!("http://p.corp:{}", 1000 + port)).unwrap();
            clients.get(Some(&p));
        }
        assert!(clients.len() <= MAX_CLIENTS);
    }
}
