//! The server under test: real HTTP on a free port, a throw-away database, an in-test SMTP server, and a
//! [`ManualClock`] that tests move instead of sleeping.
#![allow(dead_code)]

use chrono::{DateTime, Duration, Utc};
use pronto_channels::sink::SmtpSink;
use pronto_domain::ManualClock;
use pronto_server::config::{FileConfig, Overrides, Settings};
use pronto_server::App;
use pronto_store::testing::TestDb;
use pronto_store::Shared;
use reqwest::{Client, StatusCode};
use serde_json::Value;
use std::sync::Arc;

pub const WRITE: &str = "pk_write_flows_test_key_0001";
pub const ADMIN: &str = "pk_admin_flows_test_key_0001";

pub struct Server {
    pub base: String,
    pub http: Client,
    pub clock: Arc<ManualClock>,
    pub shared: Arc<Shared>,
    pub sink: Option<SmtpSink>,
    /// The workers' steps; the background workers do not run when the server was started stepped.
    pub stepper: pronto_server::workers::Stepper,
    /// No background worker runs: [`Server::settle`] does their work.
    stepped: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pub db_url: String,
    _db: Option<TestDb>,
}

pub async fn start(backend: &str, smtp: bool, config: &str, t0: DateTime<Utc>) -> Server {
    let db = TestDb::of(backend).await;
    let mut s = start_on(&db.url, smtp, config, t0).await;
    s._db = Some(db);
    s
}

/// A server whose timers fire and messages go out only when the test says so ([`Server::settle`]): no
/// background worker runs.
pub async fn start_stepped(backend: &str, smtp: bool, config: &str, t0: DateTime<Utc>) -> Server {
    let db = TestDb::of(backend).await;
    let mut s = launch(&db.url, smtp, config, t0, false).await;
    s._db = Some(db);
    s
}

/// A server on an existing database (a second node, or a database behind a proxy).
pub async fn start_on(url: &str, smtp: bool, config: &str, t0: DateTime<Utc>) -> Server {
    launch(url, smtp, config, t0, true).await
}

/// A second node on an existing database whose workers run only when the test says so.
pub async fn start_stepped_on(url: &str, smtp: bool, config: &str, t0: DateTime<Utc>) -> Server {
    launch(url, smtp, config, t0, false).await
}

async fn launch(
    url: &str,
    smtp: bool,
    config: &str,
    t0: DateTime<Utc>,
    background: bool,
) -> Server {
    let sink = if smtp {
        Some(SmtpSink::start().await.unwrap())
    } else {
        None
    };
    let overrides = Overrides {
        database_url: Some(url.to_string()),
        listen: Some("127.0.0.1:0".into()),
        write_key: Some(WRITE.into()),
        admin_key: Some(ADMIN.into()),
        smtp_url: sink.as_ref().map(SmtpSink::url),
        ..Default::default()
    };
    let settings = Settings::resolve(
        FileConfig::parse(config, "test").unwrap(),
        overrides,
        "example".into(),
    )
    .unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let app = if background {
        App::build(settings.clone(), clock.clone()).await.unwrap()
    } else {
        App::build_stepped(settings.clone(), clock.clone())
            .await
            .unwrap()
    };
    let stepper = app.stepper.clone();
    let shared = app.state.service.store.shared().clone();
    let listener = pronto_server::app::bind(settings.listen).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));
    Server {
        base,
        http: Client::new(),
        clock,
        shared,
        sink,
        stepper,
        stepped: !background,
        stop: Some(stop),
        task: Some(task),
        db_url: url.to_string(),
        _db: None,
    }
}

impl Server {
    pub async fn track(&self, body: Value) {
        let r = self
            .http
            .post(format!("{}/v1/track", self.base))
            .basic_auth(WRITE, Some(""))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }

    /// Sends track calls through `/v1/batch`, 200 at a time.
    pub async fn track_all(&self, events: Vec<Value>) {
        for chunk in events.chunks(200) {
            let batch: Vec<Value> = chunk
                .iter()
                .map(|e| {
                    let mut e = e.clone();
                    e["type"] = "track".into();
                    e
                })
                .collect();
            let r = self
                .http
                .post(format!("{}/v1/batch", self.base))
                .basic_auth(WRITE, Some(""))
                .json(&serde_json::json!({ "batch": batch }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        }
    }

    pub async fn identify(&self, body: Value) {
        let r = self
            .http
            .post(format!("{}/v1/identify", self.base))
            .basic_auth(WRITE, Some(""))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    pub async fn admin(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Sends `body` to `path` with the admin key: the status and the JSON answer (`null` when none).
    pub async fn admin_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Moves time and wakes both workers.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.shared.timers.notify_one();
        self.shared.outbox.notify_one();
    }

    /// Runs the workers' steps until nothing more is due at the clock's now: every due timer fired, every
    /// due message delivered (for a server started with [`start_stepped`]).
    /// With background workers this does nothing: they do the work on their own.
    pub async fn settle(&self) {
        if self.stepped {
            self.stepper.settle().await.unwrap();
        }
    }

    /// Settles what the requests so far left due now (background workers would have done it at once, before
    /// any time passed), moves time, then fires and delivers what fell due.
    pub async fn advance_and_settle(&self, by: Duration) {
        self.settle().await;
        self.clock.advance(by);
        self.settle().await;
    }

    /// Waits (bounded) until `check` holds for the messages `GET /v1/messages` lists.
    pub async fn messages_until(&self, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..200 {
            self.settle().await;
            let m = self.admin("/v1/messages?limit=1000").await["messages"]
                .as_array()
                .unwrap()
                .clone();
            if check(&m) {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("timed out waiting for: {what}");
    }

    pub async fn flow(&self, id: &str) -> Value {
        let flows = self.admin("/v1/flows").await;
        flows["flows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .cloned()
            .unwrap()
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

/// The tracked links (`…/r/…?to=…`) in a raw mail, each with the address it redirects to, in order of
/// appearance (text part first). Quoted-printable soft breaks and `=3D` are undone and HTML's `&#x2f;` and
/// `&amp;` read back, so the same link in the HTML part is found as in the text part.
pub fn tracked_links(mail: &str) -> Vec<(String, String)> {
    let flat = mail
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&");
    let mut out = Vec::new();
    for (i, _) in flat.match_indices("/r/") {
        let start = flat[..i].rfind("http").unwrap_or(i);
        let end = flat[i..]
            .find(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
            .map_or(flat.len(), |e| i + e);
        let link = &flat[start..end];
        let Ok(u) = reqwest::Url::parse(link) else {
            continue;
        };
        if let Some((_, to)) = u.query_pairs().find(|(k, _)| k == "to") {
            out.push((link.to_string(), to.into_owned()));
        }
    }
    out
}

/// The addresses the mail's tracked links redirect to.
pub fn link_targets(mail: &str) -> Vec<String> {
    tracked_links(mail).into_iter().map(|(_, to)| to).collect()
}
