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
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
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
}

impl Endpoint {
    /// lettre's URL form, read the same way: `smtp://host` (port 25), `smtp://host?tls=opportunistic|required`
    /// (port 587), `smtps://host` (port 465); `user:password@` percent-decoded; a path names the EHLO host.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
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
            ("smtps", None) => (Security::Implicit, 465),
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
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth());
            config.map(|c| tokio_rustls::TlsConnector::from(Arc::new(c)))
        });
        let tls = tls.transpose().map_err(|e| format!("TLS: {e}"))?;
        Ok(Self {
            port: u.port().unwrap_or(port),
            host,
            security,
            hello,
            credentials,
            tls,
        })
    }

    /// Greeting, EHLO, TLS as configured, AUTH if credentials are given: a connection ready for MAIL FROM.
    async fn connect(&self) -> Result<AsyncSmtpConnection, String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connecting to {}:{}: {e}", self.host, self.port))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
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
        if let Security::StartTls { required } = self.security {
            if conn.can_starttls() {
                let params = TlsParameters::new(self.host.clone()).map_err(|e| e.to_string())?;
                conn.starttls(params, &self.hello)
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
        Ok(conn)
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

/// An idle connection this long is closed instead of reused: servers drop idle clients after a few minutes
/// (Postfix: 300 s), and a send should not be the one to find out.
const MAX_IDLE: Duration = Duration::from_secs(60);
/// An idle connection older than this is checked with NOOP before it carries a message; under load
/// connections come back within milliseconds and skip the round trip.
const CHECK_AFTER: Duration = Duration::from_secs(2);

/// Connections to one endpoint. A send takes an idle connection or opens one, and gives it back when the
/// conversation ended cleanly; a connection that failed (lettre closes it on any error) is dropped. At most
/// `max_idle` are kept; how many are open at once is bounded by the caller's concurrency.
pub(crate) struct Pool {
    endpoint: Endpoint,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
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

    pub(crate) async fn take(&self) -> Result<AsyncSmtpConnection, String> {
        loop {
            let parked = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some((mut conn, since)) = parked else {
                return self.endpoint.connect().await;
            };
            // A connection idle too long is dropped without QUIT: the server may be gone, and waiting for its
            // reply would delay this send.
            let idle = since.elapsed();
            if idle <= MAX_IDLE && (idle < CHECK_AFTER || conn.test_connected().await) {
                return Ok(conn);
            }
        }
    }

    pub(crate) fn give_back(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push((conn, Instant::now()));
        }
    }
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
        ];
        for (url, security, port) in cases {
            let e = Endpoint::parse(url).unwrap_or_else(|m| panic!("{url}: {m}"));
            assert_eq!((e.security, e.port), (security, port), "{url}");
            assert_eq!(e.tls.is_some(), security == Security::Implicit, "{url}");
        }
    }

    #[test]
    fn credentials_are_percent_decoded_and_a_path_names_the_ehlo_host() {
        let e =
            Endpoint::parse("smtps://ann%40shop.example:pa%24%24@mail.example.com/mx.shop.example")
                .unwrap();
        assert!(e.credentials == Some(Credentials::new("ann@shop.example".into(), "pa$$".into())));
        assert_eq!(e.hello, ClientId::Domain("mx.shop.example".into()));
    }

    #[test]
    fn unknown_schemes_and_tls_modes_are_refused_by_name() {
        for url in ["http://host", "smtp://host?tls=sometimes", "smtp://"] {
            assert!(Endpoint::parse(url).is_err(), "{url}");
        }
    }
}
