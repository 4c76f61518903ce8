//! PostgreSQL going away and coming back, as a network partition does it: the server reaches its database
//! through a TCP proxy the test controls, which can drop every connection and swallow new ones (connects
//! that hang, the worst case: a refused connection fails by itself).

use chrono::{DateTime, Duration, Utc};
use pronto_server::config::EXAMPLE_CONFIG;
use pronto_store::testing::TestDb;
use reqwest::StatusCode;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

mod common;

/// Forwards to PostgreSQL while `up`; when cut, every open connection is dropped and new ones are accepted
/// and then left hanging.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: broadcast::Sender<()>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = broadcast::channel(4);
        let (up2, cut2) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let (target, up, mut cut) = (target.clone(), up2.clone(), cut2.subscribe());
                tokio::spawn(async move {
                    if !up.load(Ordering::SeqCst) {
                        // A partition: the connection opens and nothing ever answers.
                        let _ = cut.recv().await;
                        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                        drop(client);
                        return;
                    }
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut c, mut s) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut c, &mut s) => {}
                        _ = cut.recv() => {}
                    }
                });
            }
        });
        Self { port, up, cut }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        let _ = self.cut.send(());
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T15:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_fails_requests_fast_and_the_backlog_drains_when_it_returns() {
    let db = TestDb::postgres().await;
    let proxy = Proxy::start("127.0.0.1:5432".into()).await;
    let name = db.url.rsplit('/').next().unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{}/{name}", proxy.port);
    let s = common::start_on(&url, false, EXAMPLE_CONFIG, t0()).await;
    let track = |i: usize| {
        json!({"userId": format!("u-{i}"), "event": "Checkout Started", "messageId": format!("m-{i}"),
               "properties": {"checkout_id": format!("c-{i}"), "value": 20,
                              "products": [{"product_id": "p", "name": "Mug", "price": 20, "quantity": 1}]},
               "context": {"traits": {"email": format!("u{i}@client.example")}}})
    };
    let post = |i: usize| {
        s.http
            .post(format!("{}/v1/track", s.base))
            .basic_auth(common::WRITE, Some(""))
            .json(&track(i))
            .send()
    };
    for i in 0..5 {
        assert_eq!(post(i).await.unwrap().status(), StatusCode::OK);
    }

    proxy.cut();
    let started = Instant::now();
    let r = post(100).await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        r.headers().contains_key("retry-after"),
        "a 503 says when to retry"
    );
    assert!(
        took < std::time::Duration::from_secs(6),
        "failed fast ({took:?}), not after a minute"
    );
    let started = Instant::now();
    let ready = s
        .http
        .get(format!("{}/readyz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1500),
        "readyz answers within a second"
    );

    // The carts' timers come due during the outage (10 minutes for a 20.00 cart).
    s.advance(Duration::minutes(11));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    proxy.restore();
    let back = Instant::now();
    loop {
        let r = post(200).await.unwrap();
        if r.status() == StatusCode::OK {
            break;
        }
        assert!(
            back.elapsed() < std::time::Duration::from_secs(15),
            "writes resume by themselves"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let ready = s
        .http
        .get(format!("{}/readyz", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    // Nothing acknowledged is lost, and the timers that came due while the database was away fire.
    let m = s
        .messages_until("every cart's reminder", |m| {
            (0..5).all(|i| {
                m.iter()
                    .any(|x| x["to"] == format!("u{i}@client.example").as_str())
            })
        })
        .await;
    assert!(
        !m.iter().any(|x| x["to"] == "u100@client.example"),
        "the refused request stored nothing"
    );
    s.stop().await;
}
