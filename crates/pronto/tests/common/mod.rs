//! What the binary tests share: a spawned `pronto serve` and a small HTTP client.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `pronto serve` and the lines it printed before it was ready.
pub struct Serve {
    pub child: Child,
    pub url: String,
    pub banner: Vec<String>,
}

impl Serve {
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_in(dir, env, &[])
    }

    /// `pronto serve` run by `wrapper` (a command that ends by exec'ing its arguments, such as
    /// `unshare … sh -c '…; exec "$@"'`), so the process id is pronto's.
    pub fn start_in(dir: &Path, env: &[(&str, &str)], wrapper: &[&str]) -> Self {
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_pronto"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_pronto")),
        };
        cmd.arg("serve")
            .current_dir(dir)
            // Port 0: the kernel picks a free port and the banner names it (a port picked here and freed
            // before pronto binds it can be taken by a test starting at the same moment).
            .env("PRONTO_LISTEN", "127.0.0.1:0")
            .env_remove("DATABASE_URL")
            .env_remove("PRONTO_CONFIG")
            .env_remove("PRONTO_WRITE_KEY")
            .env_remove("PRONTO_ADMIN_KEY")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn pronto serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut banner: Vec<String> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            while let Ok(line) = rx.try_recv() {
                banner.push(line);
            }
            let url = banner
                .first()
                .and_then(|l| l.split_whitespace().find(|w| w.starts_with("http://")))
                .map(str::to_string);
            if let Some(url) = url.filter(|u| {
                banner.iter().any(|l| l.contains("metrics:")) && get(&format!("{u}/readyz")).is_ok()
            }) {
                std::thread::sleep(Duration::from_millis(50));
                while let Ok(line) = rx.try_recv() {
                    banner.push(line);
                }
                return Self { child, url, banner };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("pronto serve did not become ready; printed {banner:?}");
    }

    pub fn key(&self, which: &str) -> Option<String> {
        self.banner
            .iter()
            .find(|l| l.trim_start().starts_with(which))
            .and_then(|l| l.split_whitespace().last())
            .map(str::to_string)
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "pronto did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request's status and body, whatever the status.
pub fn call(
    method: &str,
    url: &str,
    basic: Option<&str>,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut req = client.request(method.parse().unwrap(), url);
        if let Some(k) = basic {
            req = req.basic_auth(k, Some(""));
        }
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    })
}

pub fn get(url: &str) -> Result<Value, String> {
    http("GET", url, None, None)
}

/// A tiny blocking HTTP client over the curl binary would add a dependency on curl; instead, reqwest's async
/// client runs on a throw-away runtime.
pub fn http(
    method: &str,
    url: &str,
    bearer: Option<&str>,
    basic_json: Option<(&str, Value)>,
) -> Result<Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut req = if method == "GET" {
            client.get(url)
        } else {
            client.post(url)
        };
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some((key, body)) = basic_json {
            req = req.basic_auth(key, Some("")).json(&body);
        }
        let res = req.send().await.map_err(|e| e.to_string())?;
        let status = res.status();
        let text = res.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{status}: {text}"));
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    })
}
