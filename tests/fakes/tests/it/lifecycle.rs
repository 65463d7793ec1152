use std::net::TcpStream;
use std::time::Duration;

use pagehook_fakes::{FakeSlack, FakeTeams, Fault};
use serde_json::json;

use crate::client;

#[test]
fn listens_on_loopback_only_and_stops_when_dropped() {
    let s = FakeSlack::start("t");
    let addr = s.addr();
    assert!(addr.ip().is_loopback());
    assert!(s.base_url().starts_with("http://127.0.0.1:"));
    assert!(TcpStream::connect(addr).is_ok());
    drop(s);
    assert!(
        TcpStream::connect(addr).is_err(),
        "dropping the fake closes its port"
    );
}

#[test]
fn dropping_during_a_delay_does_not_hang() {
    let t = FakeTeams::start();
    let url = t.add_workflow("w");
    t.inject("w", Fault::Delay(Duration::from_secs(60)));
    let waiter = std::thread::spawn(move || {
        client()
            .post(url)
            .json(&json!({"type": "message", "attachments": []}))
            .send()
    });
    std::thread::sleep(Duration::from_millis(200));
    let started = std::time::Instant::now();
    drop(t);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        waiter.join().unwrap().is_err(),
        "the parked request ends with a connection error"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_current_thread_runtime_can_drive_the_client_while_the_fake_serves() {
    let s = FakeSlack::start("t");
    s.add_channel("eng", "C1", true);
    let post = crate::async_client()
        .post(format!("{}chat.postMessage", s.base_url()))
        .bearer_auth("t")
        .json(&json!({"channel": "C1", "text": "hi"}))
        .send();
    let (resp, posts) = tokio::join!(post, s.wait_for_posts_async(1, Duration::from_secs(5)));
    assert!(resp.unwrap().status().is_success());
    assert_eq!(posts[0].channel, "C1");
}
