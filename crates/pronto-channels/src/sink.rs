//! A minimal SMTP receiver that speaks the protocol (greeting, EHLO, MAIL, RCPT, DATA with dot-stuffing, RSET,
//! QUIT) and keeps what it receives in memory. For tests and `pronto bench`: a real SMTP conversation on a
//! local port, which can be told to refuse MAIL FROM with scripted replies (`451 …` temporary, `550 …`
//! permanent) before it accepts.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Default)]
struct State {
    replies: Vec<String>,
    received: Vec<String>,
    /// When each of `received` was accepted.
    at: Vec<std::time::Instant>,
    /// How long DATA takes to be accepted, to keep deliveries in flight (crash tests).
    delay: std::time::Duration,
    /// Connections accepted so far.
    connections: usize,
}

/// A running receiver; it stops when the runtime does.
#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl SmtpSink {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                shared.lock().unwrap_or_else(|e| e.into_inner()).connections += 1;
                tokio::spawn(session(socket, shared.clone()));
            }
        });
        Ok(Self { port, state })
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The next MAIL FROM commands get these replies, in order; later ones are accepted.
    pub fn refuse(&self, replies: &[&str]) {
        self.lock().replies = replies.iter().map(|r| r.to_string()).collect();
    }

    /// Each message takes this long to be accepted.
    pub fn slow(&self, per_message: std::time::Duration) {
        self.lock().delay = per_message;
    }

    /// Every message received so far (headers and body, dot-unstuffed, `\n` line ends).
    pub fn received(&self) -> Vec<String> {
        self.lock().received.clone()
    }

    /// Every message received so far with the instant it was accepted.
    pub fn received_at(&self) -> Vec<(std::time::Instant, String)> {
        let s = self.lock();
        s.at.iter()
            .copied()
            .zip(s.received.iter().cloned())
            .collect()
    }

    /// How many connections clients have opened.
    pub fn connections(&self) -> usize {
        self.lock().connections
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn session(socket: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    // Replies are small writes; without TCP_NODELAY, Nagle's algorithm and the client's delayed ACK add
    // ~40 ms to some of them (as they would not on a real mail server, which pipelines).
    let _ = socket.set_nodelay(true);
    let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    if write.write_all(b"220 sink.local ESMTP\r\n").await.is_err() {
        return;
    }
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            "250-sink.local\r\n250 8BITMIME".into()
        } else if upper.starts_with("MAIL FROM") {
            let mut s = lock();
            if s.replies.is_empty() {
                "250 OK".into()
            } else {
                s.replies.remove(0)
            }
        } else if upper.starts_with("RCPT TO") || upper == "RSET" || upper == "NOOP" {
            "250 OK".into()
        } else if upper == "DATA" {
            if write.write_all(b"354 go ahead\r\n").await.is_err() {
                return;
            }
            let mut body = String::new();
            while let Ok(Some(l)) = lines.next_line().await {
                if l == "." {
                    break;
                }
                body.push_str(l.strip_prefix('.').unwrap_or(&l));
                body.push('\n');
            }
            let delay = lock().delay;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut s = lock();
            s.received.push(body);
            s.at.push(std::time::Instant::now());
            drop(s);
            "250 queued".into()
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            "502 not implemented".into()
        };
        if write
            .write_all(format!("{reply}\r\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}
