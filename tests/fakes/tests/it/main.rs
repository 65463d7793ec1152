//! Tests of the fakes themselves: they must speak the wire formats the sidecar will meet in
//! production and misbehave exactly as asked, or end-to-end tests built on them prove nothing.
//! All traffic goes to 127.0.0.1.

mod confluence;
mod lifecycle;
mod slack;
mod slack_socket;
mod teams;
mod teams_bot;

use std::time::Duration;

/// A blocking client that never uses a proxy from the environment, so requests to the fakes
/// cannot leave the machine.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build client")
}

/// The async counterpart of [`client`].
pub fn async_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build client")
}
