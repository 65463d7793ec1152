//! A forward proxy on loopback that records every connection it carries.
//!
//! Data Center sites reach the internet only through an egress proxy, so
//! tests prove that every outbound request goes through it (and none goes
//! direct except what `no-proxy` names). This proxy speaks what clients send
//! to such proxies: `CONNECT host:port` for HTTPS (then a byte tunnel) and
//! absolute-form requests (`GET http://host:port/path`) for plain HTTP, one
//! request per connection. It may require `Proxy-Authorization` (Basic) and
//! answers 407 without it. It refuses, with 403, any target that is not on
//! loopback: tests never send traffic anywhere else.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;

use crate::server::lock;

/// One connection the proxy was asked to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    /// `CONNECT` or the plain request's method.
    pub method: String,
    /// `host:port` the client asked for.
    pub target: String,
    /// Whether the proxy's credentials came with it (never the value).
    pub authorized: bool,
    /// Whether the proxy carried it (false: 407 or 403).
    pub carried: bool,
}

/// A running proxy; dropping it stops accepting.
pub struct ForwardProxy {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<ProxiedRequest>>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ForwardProxy {
    /// A proxy that carries every loopback request.
    pub fn start() -> ForwardProxy {
        ForwardProxy::spawn(None)
    }

    /// A proxy that wants `Proxy-Authorization: Basic base64(user:password)`.
    pub fn with_credentials(user: &str, password: &str) -> ForwardProxy {
        let expected =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        ForwardProxy::spawn(Some(format!("Basic {expected}")))
    }

    fn spawn(credentials: Option<String>) -> ForwardProxy {
        let listener =
            std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the proxy");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("address");
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = log.clone();
        let credentials = Arc::new(credentials);
        let (tx, mut rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                    loop {
                        let (stream, _) = tokio::select! {
                            _ = &mut rx => return,
                            a = listener.accept() => match a { Ok(p) => p, Err(_) => continue },
                        };
                        tokio::spawn(carry(stream, shared.clone(), credentials.clone()));
                    }
                });
            })
            .expect("spawn the proxy");
        ForwardProxy {
            addr,
            log,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, what a client's proxy setting names.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        lock(&self.log).clone()
    }

    /// The targets (`host:port`) carried so far, without repeats.
    pub fn targets(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for r in lock(&self.log).iter().filter(|r| r.carried) {
            if !seen.contains(&r.target) {
                seen.push(r.target.clone());
            }
        }
        seen
    }
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn carry(
    stream: tokio::net::TcpStream,
    log: Arc<Mutex<Vec<ProxiedRequest>>>,
    credentials: Arc<Option<String>>,
) {
    let mut client = BufReader::new(stream);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        match client.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let end = line == "\r\n" || line == "\n";
        head.push(line);
        if end || head.len() > 100 {
            break;
        }
    }
    let mut parts = head[0].split_whitespace();
    let (Some(method), Some(uri)) = (parts.next(), parts.next()) else {
        return;
    };
    let method = method.to_owned();
    let header = |name: &str| {
        head.iter().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let given = header("proxy-authorization");
    let authorized = given.is_some();
    let (target, rest) = if method == "CONNECT" {
        (uri.to_owned(), String::new())
    } else {
        let Some(after) = uri.strip_prefix("http://") else {
            let _ = client
                .get_mut()
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            return;
        };
        match after.split_once('/') {
            Some((authority, path)) => (authority.to_owned(), format!("/{path}")),
            None => (after.to_owned(), "/".to_owned()),
        }
    };
    let mut record = ProxiedRequest {
        method: method.clone(),
        target: target.clone(),
        authorized,
        carried: false,
    };
    if let Some(wanted) = credentials.as_ref()
        && given.as_deref() != Some(wanted.as_str())
    {
        lock(&log).push(record);
        let _ = client
            .get_mut()
            .write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm=\"fake\"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await;
        return;
    }
    let loopback = target
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']))
        .and_then(|h| {
            if h == "localhost" {
                Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
            } else {
                h.parse::<IpAddr>().ok()
            }
        })
        .is_some_and(|ip| ip.is_loopback());
    let upstream = if loopback {
        tokio::net::TcpStream::connect(&target).await.ok()
    } else {
        None
    };
    let Some(mut upstream) = upstream else {
        lock(&log).push(record);
        let _ = client
            .get_mut()
            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        return;
    };
    record.carried = true;
    lock(&log).push(record);
    if method == "CONNECT" {
        if client
            .get_mut()
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    } else {
        // One request per connection: forward it in origin form, closing after.
        let mut out = format!("{method} {rest} HTTP/1.1\r\n");
        for line in head.iter().skip(1) {
            let name = line
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if matches!(
                name.as_str(),
                "proxy-authorization" | "proxy-connection" | "connection"
            ) || line.trim().is_empty()
            {
                continue;
            }
            out.push_str(line);
        }
        out.push_str("connection: close\r\n\r\n");
        if upstream.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
    // Bytes the client sent after the head (a body, or a TLS hello) are in
    // the reader's buffer: pass them on first.
    let buffered = client.buffer().to_vec();
    if !buffered.is_empty() && upstream.write_all(&buffered).await.is_err() {
        return;
    }
    let mut client = client.into_inner();
    if method == "CONNECT" {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    } else {
        let (mut cr, mut cw) = client.split();
        let (mut ur, mut uw) = upstream.split();
        let to_upstream = async {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if uw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        };
        let to_client = async {
            let _ = tokio::io::copy(&mut ur, &mut cw).await;
            let _ = cw.shutdown().await;
        };
        // The answer decides when the connection ends.
        tokio::select! {
            _ = to_client => {}
            _ = async { to_upstream.await; std::future::pending::<()>().await } => {}
        }
    }
}
