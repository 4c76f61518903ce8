//! API keys: generated on first start, shown once, stored only as SHA-256 hashes.
//!
//! A plain SHA-256 (no salt, no slow hash) is right here: keys are 32 random bytes, so there is nothing to
//! brute-force, and a fast hash lets every request be checked without a password-hashing cost.

use pronto_domain::WorkspaceId;
use pronto_store::{KeyKind, Store, StoreError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::RwLock;

pub fn hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random key: a readable prefix saying what it opens, then 32 random bytes in hex.
pub fn generate(kind: KeyKind) -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    match kind {
        KeyKind::Write => format!("pk_write_{hex}"),
        KeyKind::Admin => format!("pk_admin_{hex}"),
    }
}

/// Keys this process has seen accepted, so most requests authenticate without a query. Keys are never
/// deleted yet; when revocation arrives, it must clear this cache.
#[derive(Default)]
pub struct KeyCache(RwLock<HashMap<(String, &'static str), WorkspaceId>>);

impl KeyCache {
    pub async fn lookup(
        &self,
        store: &dyn Store,
        kind: KeyKind,
        key: &str,
    ) -> Result<Option<WorkspaceId>, StoreError> {
        let h = hash(key);
        let slot = (h, kind.as_str());
        if let Some(ws) = self.0.read().unwrap_or_else(|e| e.into_inner()).get(&slot) {
            return Ok(Some(*ws));
        }
        let found = store.key_workspace(kind, &slot.0).await?;
        if let Some(ws) = found {
            self.0
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(slot, ws);
        }
        Ok(found)
    }
}

/// Keys generated at this start, to show once.
#[derive(Debug, Default)]
pub struct NewKeys {
    pub write: Option<String>,
    pub admin: Option<String>,
}

/// Registers configured keys, or generates the ones a workspace does not have yet.
pub async fn bootstrap(
    store: &dyn Store,
    ws: WorkspaceId,
    write: Option<&str>,
    admin: Option<&str>,
) -> Result<NewKeys, StoreError> {
    let mut shown = NewKeys::default();
    for (kind, given, slot) in [
        (KeyKind::Write, write, &mut shown.write),
        (KeyKind::Admin, admin, &mut shown.admin),
    ] {
        match given {
            Some(k) => store.add_key(ws, kind, &hash(k)).await?,
            None if !store.has_key(ws, kind).await? => {
                let k = generate(kind);
                store.add_key(ws, kind, &hash(&k)).await?;
                *slot = Some(k);
            }
            None => {}
        }
    }
    Ok(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_prefixed_and_hash_to_hex() {
        let a = generate(KeyKind::Write);
        let b = generate(KeyKind::Write);
        assert_ne!(a, b);
        assert!(a.starts_with("pk_write_") && a.len() == 9 + 64);
        assert!(generate(KeyKind::Admin).starts_with("pk_admin_"));
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
