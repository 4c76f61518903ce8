//! SMTP connections: where the server is (the URL), how a connection is opened (TCP with `TCP_NODELAY`, TLS
//! from the first byte or by STARTTLS, AUTH), and the idle connections kept between sends.
//!
//! Why not lettre's own transport and pool: lettre 0.11 opens its sockets with Nagle's algorithm on, and it
//! writes a message's body and the terminating `\r\n.\r\n` in two writes. Nagle holds the small second write
//! until the server acknowledges the first, and the server delays that ACK (~40 ms on Linux) because it is
//! waiting for the rest of the message; every message paid ~40 ms and a connection carried ~22 messages/s
//! (measured). The conversation itself (greeting, EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA, dot-stuffing, reply
//! parsing) stays lettre's [`AsyncSmtpConnection`]; only the socket and the pool are ours.

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use std::borrow::Cow;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    /// `smtp://`: plain text (a relay on the same host or network).
    Plain,
    /// `smtp://…?tls=opportunistic` (STARTTLS when offered) or `?tls=required` (refuse to send without it).
    StartTls { required: bool },
    /// `smtps://`: TLS from the first byte (port 465).
    Implicit,
}

/// One SMTP server, as a `PRONTO_SMTP_URL` names it.
pub(crate) struct Endpoint {
    host: String,
    port: u16,
    security: Security,
    hello: ClientId,
    credentials: Option<Credentials>,
    /// Set for [`Security::Implicit`]: the TLS client (Mozilla's roots, via webpki-roots).
    tls: Option<tokio_rustls::TlsConnector>,
    /// Set for [`Security::StartTls`]: built once, so a configuration error shows at start, not at a send.
    starttls: Option<TlsParameters>,
}

impl Endpoint {
    /// lettre's URL form, read the same way: `smtp://host` (port 25), `smtp://host?tls=opportunistic|required`
    /// (port 587), `smtps://host` (port 465); `user:password@` percent-decoded; a path names the EHLO host.
    /// `ca`: a CA certificate (DER) trusted beside Mozilla's roots, for a relay with a private CA.
    pub(crate) fn parse(url: &str, ca: Option<&[u8]>) -> Result<Self, String> {
        let u = url::Url::parse(url).map_err(|e| e.to_string())?;
        let host = match u.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err("no host".into()),
        };
        let tls = u
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let (security, port) = match (u.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::Plain, 25),
            ("smtp", Some("opportunistic")) => (Security::StartTls { required: false }, 587),
            ("smtp", Some("required")) => (Security::StartTls { required: true }, 587),
            // lettre ignores `tls=` on smtps://, so URLs that worked with it keep working.
            ("smtps", _) => (Security::Implicit, 465),
            (scheme, tls) => {
                return Err(format!(
                    "scheme `{scheme}` with tls={}: use smtp://, smtp://…?tls=opportunistic, \
                     smtp://…?tls=required or smtps://",
                    tls.unwrap_or("(none)")
                ))
            }
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(Cow::into_owned)
                .map_err(|e| format!("credentials: {e}"))
        };
        let credentials = match u.password() {
            Some(p) => Some(Credentials::new(decode(u.username())?, decode(p)?)),
            None => None,
        };
        let hello = match u.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_string()),
        };
        let tls = (security == Security::Implicit).then(|| {
            let mut roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            if let Some(ca) = ca {
                roots
                    .add(ca.to_vec().into())
                    .map_err(|e| rustls::Error::General(format!("CA certificate: {e}")))?;
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth());
            config.map(|c| tokio_rustls::TlsConnector::from(Arc::new(c)))
        });
        let tls = tls.transpose().map_err(|e| format!("TLS: {e}"))?;
        let starttls = match security {
            Security::StartTls { .. } => {
                let mut params = TlsParameters::builder(host.clone());
                if let Some(ca) = ca {
                    params = params.add_root_certificate(
                        Certificate::from_der(ca.to_vec())
                            .map_err(|e| format!("CA certificate: {e}"))?,
                    );
                }
                Some(params.build().map_err(|e| format!("TLS: {e}"))?)
            }
            _ => None,
        };
        Ok(Self {
            port: u.port().unwrap_or(port),
            host,
            security,
            hello,
            credentials,
            tls,
            starttls,
        })
    }

    /// Each address the host resolves to in turn, each given [`CONNECT_TIMEOUT`]: an address that drops packets
    /// (a broken AAAA record) must not use up the whole send.
    async fn tcp(&self) -> Result<TcpStream, String> {
        let addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("resolving {}: {e}", self.host))?;
        let mut last = format!("{} resolves to no address", self.host);
        for addr in addrs {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => return Ok(tcp),
                Ok(Err(e)) => last = format!("connecting to {addr}: {e}"),
                Err(_) => last = format!("connecting to {addr}: no answer in {CONNECT_TIMEOUT:?}"),
            }
        }
        Err(last)
    }

    /// Greeting, EHLO, TLS as configured, AUTH if credentials are given: a connection ready for MAIL FROM, and
    /// its socket, to look at while it is parked.
    async fn connect(&self) -> Result<(AsyncSmtpConnection, Socket), String> {
        let tcp = self.tcp().await?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let socket = Socket::of(&tcp);
        let stream: Box<dyn AsyncTokioStream> = match &self.tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| format!("TLS server name `{}`: {e}", self.host))?;
                let tls = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS with {}: {e}", self.host))?;
                Box::new(Tls(tls))
            }
            None => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(|e| e.to_string())?;
        if let (Security::StartTls { required }, Some(params)) = (self.security, &self.starttls) {
            if conn.can_starttls() {
                conn.starttls(params.clone(), &self.hello)
                    .await
                    .map_err(|e| format!("STARTTLS: {e}"))?;
            } else if required {
                conn.abort().await;
                return Err("the server does not offer STARTTLS (tls=required)".into());
            }
        }
        if let Some(c) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], c)
                .await
                .map_err(|e| format!("AUTH: {e}"))?;
        }
        Ok((conn, socket))
    }
}

/// A TLS stream lettre can drive ([`AsyncTokioStream`] asks for the peer's address beside reading and writing).
#[derive(Debug)]
struct Tls(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for Tls {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for Tls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Each address of the server gets this long to accept the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An idle connection this long is dropped instead of reused: servers drop idle clients after a few minutes
/// (Postfix: 300 s), and a send should not be the one to find out.
const MAX_IDLE: Duration = Duration::from_secs(60);
/// An idle connection older than this is also checked with NOOP (bounded by [`NOOP_TIMEOUT`]) before it
/// carries a message, for peers that vanish without closing (a NAT that forgot the flow); under load
/// connections come back within milliseconds and skip the round trip.
const CHECK_AFTER: Duration = Duration::from_secs(2);
const NOOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The descriptor of a connection's socket, kept beside the connection that owns it (never on its own), to
/// look at the socket while the connection is parked without a second descriptor per connection.
#[derive(Clone, Copy)]
pub(crate) struct Socket {
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
}

impl Socket {
    fn of(tcp: &TcpStream) -> Self {
        #[cfg(not(unix))]
        let _ = tcp;
        Self {
            #[cfg(unix)]
            fd: std::os::fd::AsRawFd::as_raw_fd(tcp),
        }
    }

    /// SMTP speaks only when spoken to, so a parked connection with anything to read (a `421` before the
    /// server hung up, a TLS close, end of stream) is one the server has closed or is closing: found without
    /// a round trip, so a restarted server costs no failed sends. (A reply already buffered inside lettre or
    /// rustls is not seen here; such a connection fails its send as before.) Elsewhere than Unix, nothing is
    /// seen and the NOOP check alone applies.
    fn closed_by_server(&self) -> bool {
        #[cfg(unix)]
        {
            use std::os::fd::FromRawFd;
            // SAFETY: `fd` belongs to the connection this `Socket` is stored beside (`Parked`), which is alive
            // and owns it, so the descriptor is open and not reused; `ManuallyDrop` keeps this borrowed view
            // from closing it. The socket is non-blocking (tokio set it so), so the peek never waits.
            let view =
                std::mem::ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(self.fd) });
            !matches!(view.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        }
        #[cfg(not(unix))]
        false
    }
}

struct Parked {
    conn: AsyncSmtpConnection,
    socket: Socket,
    since: Instant,
}

/// Connections to one endpoint. A send takes an idle connection or opens one, and gives it back when the
/// conversation ended cleanly; a connection lettre marked broken (a failed command or reply) is dropped. At
/// most `max_idle` are kept, and those idle past [`MAX_IDLE`] are dropped whenever the pool is used; how many
/// are open at once is bounded by the caller's concurrency.
pub(crate) struct Pool {
    endpoint: Endpoint,
    idle: Mutex<Vec<Parked>>,
    max_idle: usize,
}

impl Pool {
    pub(crate) fn new(endpoint: Endpoint, max_idle: usize) -> Self {
        Self {
            endpoint,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// The parked connections, those idle past [`MAX_IDLE`] dropped. The stack is in the order connections
    /// were given back, so the stale ones are at its bottom and the rest is not looked at.
    fn parked(&self) -> std::sync::MutexGuard<'_, Vec<Parked>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let stale = idle
            .iter()
            .position(|p| p.since.elapsed() <= MAX_IDLE)
            .unwrap_or(idle.len());
        idle.drain(..stale);
        idle
    }

    pub(crate) async fn take(&self) -> Result<Lease, String> {
        loop {
            let Some(mut p) = self.parked().pop() else {
                let (conn, socket) = self.endpoint.connect().await?;
                return Ok(Lease { conn, socket });
            };
            if p.socket.closed_by_server() {
                continue;
            }
            if p.since.elapsed() >= CHECK_AFTER
                && !tokio::time::timeout(NOOP_TIMEOUT, p.conn.test_connected())
                    .await
                    .unwrap_or(false)
            {
                // A peer that vanished without closing (a NAT that forgot the flows) took the connections
                // parked before this one too; testing each in turn could use up the whole send.
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.retain(|q| q.since > p.since);
                continue;
            }
            return Ok(Lease {
                conn: p.conn,
                socket: p.socket,
            });
        }
    }

    pub(crate) fn give_back(&self, lease: Lease) {
        if lease.conn.has_broken() {
            return;
        }
        let mut idle = self.parked();
        if idle.len() < self.max_idle {
            idle.push(Parked {
                conn: lease.conn,
                socket: lease.socket,
                since: Instant::now(),
            });
        }
    }
}

/// A connection out of the pool, for one conversation.
pub(crate) struct Lease {
    pub(crate) conn: AsyncSmtpConnection,
    socket: Socket,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_port_and_protection_the_way_lettre_documents() {
        let cases = [
            ("smtp://relay.local", Security::Plain, 25),
            ("smtp://relay.local:2525", Security::Plain, 2525),
            (
                "smtp://mail.example.com?tls=opportunistic",
                Security::StartTls { required: false },
                587,
            ),
            (
                "smtp://mail.example.com?tls=required",
                Security::StartTls { required: true },
                587,
            ),
            ("smtps://u:p@mail.example.com", Security::Implicit, 465),
            ("smtps://mail.example.com:2465", Security::Implicit, 2465),
            (
                "smtps://mail.example.com?tls=required",
                Security::Implicit,
                465,
            ),
            ("smtp://[::1]:2525", Security::Plain, 2525),
        ];
        for (url, security, port) in cases {
            let e = Endpoint::parse(url, None).unwrap_or_else(|m| panic!("{url}: {m}"));
            assert_eq!((e.security, e.port), (security, port), "{url}");
            assert_eq!(e.tls.is_some(), security == Security::Implicit, "{url}");
            let starttls = matches!(security, Security::StartTls { .. });
            assert_eq!(e.starttls.is_some(), starttls, "{url}");
        }
    }

    #[test]
    fn credentials_are_percent_decoded_and_a_path_names_the_ehlo_host() {
        let e = Endpoint::parse(
            "smtps://ann%40shop.example:pa%24%24@mail.example.com/mx.shop.example",
            None,
        )
        .unwrap();
        assert!(e.credentials == Some(Credentials::new("ann@shop.example".into(), "pa$$".into())));
        assert_eq!(e.hello, ClientId::Domain("mx.shop.example".into()));
    }

    #[test]
    fn unknown_schemes_and_tls_modes_are_refused_by_name() {
        for url in ["http://host", "smtp://host?tls=sometimes", "smtp://"] {
            assert!(Endpoint::parse(url, None).is_err(), "{url}");
        }
    }
}
