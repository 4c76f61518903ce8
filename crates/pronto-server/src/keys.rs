//! API keys: generated on first start, shown once, stored only as SHA-256 hashes.
//!
//! A plain SHA-256 (no salt, no slow hash) is right here: keys are 32 random bytes, so there is nothing to
//! brute-force, and a fast hash lets every request be checked without a password-hashing cost.

use pronto_domain::WorkspaceId;
use pronto_store::{KeyKind, KeyOrigin, Store, StoreError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

pub fn hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random key: a readable prefix saying what it opens, then 32 random bytes in hex.
pub fn generate_key(kind: KeyKind) -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    match kind {
        KeyKind::Write => format!("pk_write_{hex}"),
        KeyKind::Admin => format!("pk_admin_{hex}"),
    }
}

/// How long this process trusts a key it has checked before asking the store again: a key revoked on any
/// node stops working everywhere within this time, while a busy API still costs one lookup per key per second.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// Keys this process has checked recently, so most requests authenticate without a query.
#[derive(Default)]
pub struct KeyCache(RwLock<HashMap<Slot, (WorkspaceId, Instant)>>);

/// A key's hash and kind.
type Slot = (String, &'static str);

impl KeyCache {
    pub async fn lookup(
        &self,
        store: &dyn Store,
        kind: KeyKind,
        key: &str,
    ) -> Result<Option<WorkspaceId>, StoreError> {
        let h = hash(key);
        let slot = (h, kind.as_str());
        if let Some((ws, at)) = self.0.read().unwrap_or_else(|e| e.into_inner()).get(&slot) {
            if at.elapsed() < KEY_CACHE_TTL {
                return Ok(Some(*ws));
            }
        }
        let found = store.key_workspace(kind, &slot.0).await?;
        let mut cache = self.0.write().unwrap_or_else(|e| e.into_inner());
        match found {
            Some(ws) => {
                cache.insert(slot, (ws, Instant::now()));
            }
            None => {
                cache.remove(&slot);
            }
        }
        // Forget keys nobody used lately, so memory stays bounded however many keys are tried.
        if cache.len() > 1024 {
            cache.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
        }
        Ok(found)
    }

    /// Forgets every key at once (after a revocation through this process).
    pub fn clear(&self) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Creates a key of `kind` (origin `api`); answers the key itself, to be shown once, and its listing.
pub async fn create(
    store: &dyn Store,
    ws: WorkspaceId,
    kind: KeyKind,
    label: Option<&str>,
) -> Result<(String, pronto_store::ApiKey), StoreError> {
    let key = generate_key(kind);
    let h = hash(&key);
    store
        .add_keys(ws, &[(kind, h.as_str())], KeyOrigin::Api, label)
        .await?;
    let info = store
        .key_by_hash(&h)
        .await?
        .ok_or_else(|| StoreError::Corrupt("a key just created cannot be read".into()))?;
    Ok((key, info))
}

/// Keys generated at this start, to show once.
#[derive(Debug, Default)]
pub struct NewKeys {
    pub write: Option<String>,
    pub admin: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the configured {kind} key ({var}) was revoked (key {id}); configure a new one")]
    Revoked {
        kind: &'static str,
        var: &'static str,
        id: String,
    },
}

/// Registers the configured keys (`env`; a previous `env` key of the same kind is revoked: a restart with a
/// new key is a rotation) and generates the ones a workspace does not have, both in one transaction, so that
/// of two first starts racing on an empty database exactly one stores and shows its pair.
pub async fn bootstrap(
    store: &dyn Store,
    ws: WorkspaceId,
    write: Option<&str>,
    admin: Option<&str>,
) -> Result<NewKeys, BootstrapError> {
    let mut shown = NewKeys::default();
    let mut generate: Vec<(KeyKind, String)> = Vec::new();
    for (kind, given, var) in [
        (KeyKind::Write, write, "PRONTO_WRITE_KEY"),
        (KeyKind::Admin, admin, "PRONTO_ADMIN_KEY"),
    ] {
        match given {
            Some(k) => {
                let h = hash(k);
                match store.key_by_hash(&h).await? {
                    Some(found) if found.revoked_at.is_some() => {
                        return Err(BootstrapError::Revoked {
                            kind: kind.as_str(),
                            var,
                            id: found.id,
                        })
                    }
                    Some(_) => {}
                    None => {
                        store
                            .add_keys(ws, &[(kind, h.as_str())], KeyOrigin::Env, None)
                            .await?;
                    }
                }
                let retired = store
                    .revoke_env_keys_except(ws, kind, &h, chrono::Utc::now())
                    .await?;
                if retired > 0 {
                    tracing::info!(
                        kind = kind.as_str(),
                        retired,
                        "the previous {var} was revoked"
                    );
                }
            }
            None if !store.has_key(ws, kind).await? => generate.push((kind, generate_key(kind))),
            None => {}
        }
    }
    if generate.is_empty() {
        return Ok(shown);
    }
    let hashes: Vec<(KeyKind, String)> = generate.iter().map(|(k, key)| (*k, hash(key))).collect();
    let rows: Vec<(KeyKind, &str)> = hashes.iter().map(|(k, h)| (*k, h.as_str())).collect();
    if store
        .add_keys(ws, &rows, KeyOrigin::Generated, None)
        .await?
    {
        for (kind, key) in generate {
            match kind {
                KeyKind::Write => shown.write = Some(key),
                KeyKind::Admin => shown.admin = Some(key),
            }
        }
    } else {
        tracing::info!("another process generated this database's keys first; it printed them");
    }
    Ok(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_prefixed_and_hash_to_hex() {
        let a = generate_key(KeyKind::Write);
        let b = generate_key(KeyKind::Write);
        assert_ne!(a, b);
        assert!(a.starts_with("pk_write_") && a.len() == 9 + 64);
        assert!(generate_key(KeyKind::Admin).starts_with("pk_admin_"));
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
