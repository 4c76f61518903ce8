//! DKIM signatures (RFC 6376; Ed25519 by RFC 8463), made by lettre's signer.
//!
//! A domain may sign with several keys at once: RFC 8463 advises an Ed25519 signature beside an RSA one, since
//! not every receiver checks Ed25519 yet. Each key is read from the file formats OpenSSL and dkimpy write: RSA in
//! PEM (PKCS#1 `BEGIN RSA PRIVATE KEY` or PKCS#8 `BEGIN PRIVATE KEY`), Ed25519 in PKCS#8 PEM or as its 32 bytes
//! in base64 (`dknewkey --ktype ed25519`).
//!
//! What is signed: the message's own header fields that say who, what and how to leave (From, To, Subject,
//! Date, Message-ID, MIME-Version, Reply-To, List-Unsubscribe, List-Unsubscribe-Post; RFC 8058 asks that the
//! last two be covered) and the body, both with relaxed canonicalization so a relay that re-folds a line does
//! not break the signature. A field named but absent is signed as absent, so it cannot be added later.

use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{HeaderName, Headers};
use lettre::Message;
use std::fmt;

/// The header fields every signature covers.
const SIGNED: [&str; 9] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Reply-To",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// RFC 8301: verifiers refuse RSA keys under 1024 bits.
const MIN_RSA_BITS: usize = 1024;

/// A signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `rsa-sha256`
    Rsa,
    /// `ed25519-sha256`
    Ed25519,
}

/// One signing key with where its public half is published (`selector._domainkey.domain`).
/// Its `Debug` names the domain, selector and algorithm, never the key.
pub struct DkimKey {
    domain: String,
    selector: String,
    algorithm: Algorithm,
    config: DkimConfig,
}

impl fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Why a key cannot sign. The key's text never appears in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkimError {
    #[error("domain `{0}` is not a domain name")]
    Domain(String),
    #[error("selector `{0}` is not a DNS label (letters, digits, `-`, `_`, dots between labels)")]
    Selector(String),
    #[error("the key is encrypted; decrypt it first (`openssl pkey -in KEY -out KEY.pem`)")]
    Encrypted,
    #[error(
        "not a key pronto reads: RSA in PEM (`BEGIN RSA PRIVATE KEY` or `BEGIN PRIVATE KEY`), or Ed25519 in \
         PKCS#8 PEM or as its 32 bytes in base64"
    )]
    Unknown,
    #[error("the RSA key has {0} bits; receivers refuse fewer than 1024 (RFC 8301), and 2048 is advised")]
    TooShort(usize),
    #[error("the key does not decode: {0}")]
    Malformed(String),
}

impl DkimKey {
    /// A key for `domain` published under `selector`, from the text of its file.
    pub fn new(domain: &str, selector: &str, key: &str) -> Result<Self, DkimError> {
        let label_ok = |s: &str, extra: &[char]| {
            !s.is_empty()
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || extra.contains(&c))
                })
        };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if !label_ok(&domain, &[]) || !domain.contains('.') {
            return Err(DkimError::Domain(domain));
        }
        if !label_ok(selector, &['_']) {
            return Err(DkimError::Selector(selector.to_string()));
        }
        let (algorithm, signing) = read_key(key.trim())?;
        let config = DkimConfig::new(
            selector.to_string(),
            domain.clone(),
            signing,
            SIGNED
                .iter()
                .map(|h| HeaderName::new_from_ascii_str(h))
                .collect(),
            DkimCanonicalization {
                header: DkimCanonicalizationType::Relaxed,
                body: DkimCanonicalizationType::Relaxed,
            },
        );
        Ok(Self {
            domain,
            selector: selector.to_string(),
            algorithm,
            config,
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn selector(&self) -> &str {
        &self.selector
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn read_key(text: &str) -> Result<(Algorithm, DkimSigningKey), DkimError> {
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};
    use rsa::traits::PublicKeyParts as _;
    let malformed = |e: &dyn fmt::Display| DkimError::Malformed(e.to_string());
    let rsa = |key: rsa::RsaPrivateKey| {
        let bits = key.size() * 8;
        if bits < MIN_RSA_BITS {
            return Err(DkimError::TooShort(bits));
        }
        // lettre reads RSA keys as PKCS#1 PEM only.
        let pem = key
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .map_err(|e| malformed(&e))?;
        DkimSigningKey::new(&pem, DkimSigningAlgorithm::Rsa)
            .map(|k| (Algorithm::Rsa, k))
            .map_err(|e| malformed(&e))
    };
    let ed25519 = |bytes: [u8; 32]| {
        use base64::Engine as _;
        // lettre reads Ed25519 keys as their 32 bytes in base64 only.
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        DkimSigningKey::new(&b64, DkimSigningAlgorithm::Ed25519)
            .map(|k| (Algorithm::Ed25519, k))
            .map_err(|e| malformed(&e))
    };
    if text.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
        rsa(rsa::RsaPrivateKey::from_pkcs1_pem(text).map_err(|e| malformed(&e))?)
    } else if text.starts_with("-----BEGIN PRIVATE KEY-----") {
        match rsa::RsaPrivateKey::from_pkcs8_pem(text) {
            Ok(key) => rsa(key),
            Err(_) => match ed25519_dalek::SigningKey::from_pkcs8_pem(text) {
                Ok(key) => ed25519(key.to_bytes()),
                Err(_) => Err(DkimError::Unknown),
            },
        }
    } else if text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
    {
        Err(DkimError::Encrypted)
    } else {
        use base64::Engine as _;
        match base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        {
            Some(bytes) => ed25519(bytes),
            None => Err(DkimError::Unknown),
        }
    }
}

/// The message as sent, signed with every key (the first key's signature topmost). lettre's signer keeps one
/// `DKIM-Signature` field in the message, so each earlier signature is taken out and written above the rest;
/// no signature covers another, so each checks on its own.
pub(crate) fn signed(mut message: Message, keys: &[DkimKey]) -> Vec<u8> {
    let mut earlier = Headers::new();
    let mut out = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        message.sign(&key.config);
        if i + 1 < keys.len() {
            if let Some(sig) = message.headers_mut().remove_raw("DKIM-Signature") {
                earlier.insert_raw(sig);
                out.extend_from_slice(earlier.to_string().as_bytes());
                earlier.clear();
            }
        }
    }
    out.extend_from_slice(&message.formatted());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_PKCS1: &str = include_str!("../tests/fixtures/dkim/rsa-pkcs1.pem");
    const RSA_PKCS8: &str = include_str!("../tests/fixtures/dkim/rsa-pkcs8.pem");
    const ED25519_PEM: &str = include_str!("../tests/fixtures/dkim/ed25519.pem");
    const ED25519_B64: &str = include_str!("../tests/fixtures/dkim/ed25519.b64");
    const RSA_512: &str = include_str!("../tests/fixtures/dkim/rsa-512.pem");

    #[test]
    fn each_key_file_format_is_read_as_its_algorithm_and_bad_ones_are_named() {
        let cases: [(&str, &str, &str, Result<Algorithm, DkimError>); 10] = [
            ("example.com", "s1", RSA_PKCS1, Ok(Algorithm::Rsa)),
            ("example.com", "s1", RSA_PKCS8, Ok(Algorithm::Rsa)),
            ("example.com", "s1", ED25519_PEM, Ok(Algorithm::Ed25519)),
            ("Example.COM.", "s_1.a", ED25519_B64, Ok(Algorithm::Ed25519)),
            ("example.com", "s1", "not a key", Err(DkimError::Unknown)),
            ("example.com", "s1", RSA_512, Err(DkimError::TooShort(512))),
            ("example.com", "s1", "AAAA", Err(DkimError::Unknown)),
            (
                "example.com",
                "s1",
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----",
                Err(DkimError::Encrypted),
            ),
            (
                "localhost",
                "s1",
                RSA_PKCS1,
                Err(DkimError::Domain("localhost".into())),
            ),
            (
                "example.com",
                "bad selector",
                RSA_PKCS1,
                Err(DkimError::Selector("bad selector".into())),
            ),
        ];
        for (domain, selector, key, want) in cases {
            let got = DkimKey::new(domain, selector, key).map(|k| k.algorithm());
            assert_eq!(got, want, "{domain} {selector}");
        }
    }

    #[test]
    fn a_key_prints_where_it_is_published_and_never_itself() {
        let k = DkimKey::new("example.com", "s1", RSA_PKCS1).unwrap();
        let shown = format!("{k:?}");
        assert!(
            shown.contains("example.com") && shown.contains("s1"),
            "{shown}"
        );
        assert!(
            !shown.contains("MII") && !shown.contains("PRIVATE"),
            "{shown}"
        );
    }
}
