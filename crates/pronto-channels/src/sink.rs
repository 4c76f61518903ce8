//! A minimal SMTP receiver that speaks the protocol (greeting, EHLO, STARTTLS, MAIL, RCPT, DATA with
//! dot-stuffing, RSET, NOOP, QUIT) and keeps what it receives in memory. For tests and `pronto bench`: a real
//! SMTP conversation on a local port, in plain text or over TLS (STARTTLS, or TLS from the first byte), which
//! can be told to refuse MAIL FROM with scripted replies (`451 …` temporary, `550 …` permanent) before it
//! accepts, or to refuse one recipient at RCPT TO every time (a mailbox that does not exist).

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[derive(Default)]
struct State {
    replies: Vec<String>,
    /// Recipients (lower-cased) refused at RCPT TO, with the reply.
    refused_rcpt: std::collections::HashMap<String, String>,
    /// Every RCPT TO address, lower-cased, in order.
    rcpts: Vec<String>,
    received: Vec<String>,
    /// When each of `received` was accepted.
    at: Vec<std::time::Instant>,
    /// Whether each of `received` came over TLS.
    tls: Vec<bool>,
    /// How long DATA takes to be accepted, to keep deliveries in flight (crash tests).
    delay: std::time::Duration,
    /// Connections accepted so far.
    connections: usize,
    /// Connections not yet closed.
    open: usize,
}

/// Counts a session as open until it ends, however it ends.
struct Open(Arc<Mutex<State>>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).open -= 1;
    }
}

/// How a TLS sink offers TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTls {
    /// Plain greeting, `STARTTLS` advertised in the EHLO reply.
    StartTls,
    /// TLS from the first byte (as on port 465).
    Implicit,
}

/// A running receiver; it stops when the runtime does.
#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    state: Arc<Mutex<State>>,
    hangup: Arc<tokio::sync::Notify>,
}

impl SmtpSink {
    /// A plain-text receiver (no STARTTLS offered).
    pub async fn start() -> std::io::Result<Self> {
        Self::listen(None).await
    }

    /// A receiver that offers TLS with this certificate (DER) and PKCS#8 key (DER).
    pub async fn start_tls(mode: SinkTls, cert: &[u8], key: &[u8]) -> std::io::Result<Self> {
        let key = rustls::pki_types::PrivateKeyDer::try_from(key.to_vec())
            .map_err(|e| std::io::Error::other(format!("key: {e}")))?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            b.with_no_client_auth()
                .with_single_cert(vec![cert.to_vec().into()], key)
        })
        .map_err(std::io::Error::other)?;
        Self::listen(Some((mode, TlsAcceptor::from(Arc::new(config))))).await
    }

    async fn listen(tls: Option<(SinkTls, TlsAcceptor)>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        let hangup: Arc<tokio::sync::Notify> = Arc::default();
        let hangups = hangup.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                {
                    let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                    s.connections += 1;
                    s.open += 1;
                }
                // Replies are small writes; without TCP_NODELAY, Nagle's algorithm and the client's delayed
                // ACK add ~40 ms to some of them (as they would not on a real mail server, which pipelines).
                let _ = socket.set_nodelay(true);
                let (state, hangup, tls) = (shared.clone(), hangups.clone(), tls.clone());
                tokio::spawn(async move {
                    let _open = Open(state.clone());
                    let s = Session { state, hangup };
                    match tls {
                        None => s.run(Box::new(socket), None, false).await,
                        Some((SinkTls::StartTls, acceptor)) => {
                            s.run(Box::new(socket), Some(acceptor), false).await
                        }
                        Some((SinkTls::Implicit, acceptor)) => {
                            if let Ok(tls) = acceptor.accept(socket).await {
                                s.run(Box::new(tls), None, true).await
                            }
                        }
                    }
                });
            }
        });
        Ok(Self {
            port,
            state,
            hangup,
        })
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The next MAIL FROM commands get these replies, in order; later ones are accepted.
    pub fn refuse(&self, replies: &[&str]) {
        self.lock().replies = replies.iter().map(|r| r.to_string()).collect();
    }

    /// Every RCPT TO naming `address` (any case) gets `reply`, as a server does for a mailbox that does not
    /// exist.
    pub fn refuse_recipient(&self, address: &str, reply: &str) {
        self.lock()
            .refused_rcpt
            .insert(address.to_lowercase(), reply.to_string());
    }

    /// How many times `address` (any case) was named in RCPT TO, refused or not.
    pub fn rcpt_attempts(&self, address: &str) -> usize {
        let a = address.to_lowercase();
        self.lock().rcpts.iter().filter(|r| **r == a).count()
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

    /// For each message received so far, whether it came over TLS.
    pub fn received_over_tls(&self) -> Vec<bool> {
        self.lock().tls.clone()
    }

    /// Every connection waiting for a command is closed with `421`, as a mail server does when it restarts;
    /// returns once they are closed (on loopback the client's socket then already holds the 421 and the end),
    /// or after 5 s if a session is stuck elsewhere (a handshake, a DATA body).
    pub async fn hang_up_idle(&self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        // Again on every turn: a session busy with a command when first told waits for its next one.
        while self.lock().open > 0 && tokio::time::Instant::now() < deadline {
            self.hangup.notify_waiters();
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// How many connections clients have opened.
    pub fn connections(&self) -> usize {
        self.lock().connections
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A byte stream a session runs over: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Session {
    state: Arc<Mutex<State>>,
    hangup: Arc<tokio::sync::Notify>,
}

impl Session {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One connection. `starttls` is the acceptor while STARTTLS is still on offer; after the upgrade the
    /// conversation starts over on the TLS stream (the client must EHLO again), as RFC 3207 says.
    /// `encrypted`: the stream is already TLS (implicit TLS).
    async fn run(
        &self,
        stream: Box<dyn Io>,
        mut starttls: Option<TlsAcceptor>,
        mut encrypted: bool,
    ) {
        let mut io = BufReader::new(stream);
        if say(&mut io, "220 sink.local ESMTP").await.is_err() {
            return;
        }
        loop {
            let mut line = String::new();
            let read = tokio::select! {
                n = io.read_line(&mut line) => n,
                _ = self.hangup.notified() => {
                    let _ = say(&mut io, "421 sink.local closing").await;
                    return;
                }
            };
            if !matches!(read, Ok(n) if n > 0) {
                return;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let upper = line.to_ascii_uppercase();
            let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                match starttls {
                    Some(_) => "250-sink.local\r\n250-STARTTLS\r\n250 8BITMIME".into(),
                    None => "250-sink.local\r\n250 8BITMIME".into(),
                }
            } else if upper == "STARTTLS" && starttls.is_some() {
                if say(&mut io, "220 go ahead").await.is_err() {
                    return;
                }
                let Some(acceptor) = starttls.take() else {
                    return;
                };
                // Nothing may follow STARTTLS before the handshake, so the reader holds no bytes to keep.
                match acceptor.accept(io.into_inner()).await {
                    Ok(tls) => io = BufReader::new(Box::new(tls) as Box<dyn Io>),
                    Err(_) => return,
                }
                encrypted = true;
                continue;
            } else if upper.starts_with("MAIL FROM") {
                let mut s = self.lock();
                if s.replies.is_empty() {
                    "250 OK".into()
                } else {
                    s.replies.remove(0)
                }
            } else if upper.starts_with("RCPT TO") {
                let address = line[7..]
                    .trim_start_matches([':', ' '])
                    .split('>')
                    .next()
                    .unwrap_or("")
                    .trim_start_matches('<')
                    .to_lowercase();
                let mut s = self.lock();
                s.rcpts.push(address.clone());
                s.refused_rcpt
                    .get(&address)
                    .cloned()
                    .unwrap_or_else(|| "250 OK".into())
            } else if upper == "RSET" || upper == "NOOP" {
                "250 OK".into()
            } else if upper == "DATA" {
                if say(&mut io, "354 go ahead").await.is_err() {
                    return;
                }
                let mut body = String::new();
                loop {
                    let mut l = String::new();
                    if !matches!(io.read_line(&mut l).await, Ok(n) if n > 0) {
                        return;
                    }
                    let l = l.trim_end_matches(['\r', '\n']);
                    if l == "." {
                        break;
                    }
                    body.push_str(l.strip_prefix('.').unwrap_or(l));
                    body.push('\n');
                }
                let delay = self.lock().delay;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let mut s = self.lock();
                s.received.push(body);
                s.at.push(std::time::Instant::now());
                s.tls.push(encrypted);
                drop(s);
                "250 queued".into()
            } else if upper == "QUIT" {
                let _ = say(&mut io, "221 bye").await;
                return;
            } else {
                "502 not implemented".into()
            };
            if say(&mut io, &reply).await.is_err() {
                return;
            }
        }
    }
}

/// One reply, flushed (a TLS stream holds written bytes until then).
async fn say(io: &mut BufReader<Box<dyn Io>>, reply: &str) -> std::io::Result<()> {
    let w = io.get_mut();
    w.write_all(format!("{reply}\r\n").as_bytes()).await?;
    w.flush().await
}
