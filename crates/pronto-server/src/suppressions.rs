//! The suppression list as admins manage it (`/v1/suppressions`, `pronto suppressions`): read, add (one at a
//! time or as CSV), remove, export. The delivery worker lists addresses by itself (hard bounces, carrier
//! opt-outs, repeated soft bounces); `pronto_domain::suppression` checks what an admin gives and says what
//! each refusal means.

use crate::error::ApiError;
use crate::service::Service;
use pronto_domain::suppression::{self, Medium, Reason, Suppression};
use pronto_domain::{Invalid, WorkspaceId};
use pronto_store::SuppressionQuery;

/// The most entries one page lists.
pub const MAX_PAGE: i64 = 1000;

impl Service {
    /// A page of the workspace's list, newest first. `address` is read for its medium (or for either when
    /// none is given) as the list spells it.
    pub async fn suppressions(
        &self,
        ws: WorkspaceId,
        medium: Option<Medium>,
        address: Option<&str>,
        reason: Option<Reason>,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> Result<Vec<Suppression>, ApiError> {
        let limit = limit.unwrap_or(100);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Invalid::one("limit", format!("must be 1-{MAX_PAGE}")).into());
        }
        let offset = offset.unwrap_or(0);
        if offset < 0 {
            return Err(Invalid::one("offset", "must be 0 or more").into());
        }
        let (medium, address) = match address {
            None => (medium, None),
            Some(a) => {
                let m = medium.unwrap_or(if a.contains('@') {
                    Medium::Email
                } else {
                    Medium::Sms
                });
                // An address that cannot be listed lists nothing.
                let Ok(a) = suppression::address(m, a) else {
                    return Ok(Vec::new());
                };
                (Some(m), Some(a))
            }
        };
        let query = SuppressionQuery {
            medium,
            address,
            reason,
            limit: Some(limit),
            offset,
        };
        Ok(self.store.suppressions(ws, &query).await?)
    }

    /// Lists one address given by an admin; answers the entry as listed now and whether it changed.
    pub async fn suppress(
        &self,
        ws: WorkspaceId,
        entry: Suppression,
    ) -> Result<(Suppression, bool), ApiError> {
        let changed = self
            .store
            .suppress(ws, std::slice::from_ref(&entry))
            .await?
            > 0;
        let query = SuppressionQuery {
            medium: Some(entry.medium),
            address: Some(entry.address.clone()),
            limit: Some(1),
            ..Default::default()
        };
        let now = self
            .store
            .suppressions(ws, &query)
            .await?
            .into_iter()
            .next()
            .unwrap_or(entry);
        Ok((now, changed))
    }

    /// Lists every entry of a CSV (all or none); answers how many were added or changed.
    pub async fn import_suppressions(&self, ws: WorkspaceId, csv: &str) -> Result<u64, ApiError> {
        let entries = suppression::from_csv(csv, "csv", self.clock.now())?;
        Ok(self.store.suppress(ws, &entries).await?)
    }

    /// The whole list as CSV.
    pub async fn export_suppressions(&self, ws: WorkspaceId) -> Result<String, ApiError> {
        let all = self
            .store
            .suppressions(ws, &SuppressionQuery::default())
            .await?;
        Ok(suppression::to_csv(&all))
    }

    /// Takes an address off the list; 404 when it was not on it.
    pub async fn unsuppress(
        &self,
        ws: WorkspaceId,
        medium: Medium,
        address: &str,
    ) -> Result<(), ApiError> {
        // An address that cannot be spelt as the list spells it cannot be on it.
        let Ok(address) = suppression::address(medium, address) else {
            return Err(ApiError::NotFound("suppression"));
        };
        if self.store.unsuppress(ws, medium, &address).await? {
            Ok(())
        } else {
            Err(ApiError::NotFound("suppression"))
        }
    }
}
