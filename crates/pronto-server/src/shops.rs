//! The shop door: `POST /v1/webhooks/shopify` and `POST /v1/webhooks/woocommerce`.
//!
//! Order of work, so that nothing unsigned is parsed or stored: find the shop the headers name among the
//! configured `[[shop]]`s, check the signature over the raw body, then let [`pronto_domain::shop::map`]
//! decide. Mapped messages are committed through the same group commit as the Segment API (a redelivery is a
//! repeat of the same message ids, scoped to the shop); a signed body that cannot be mapped is kept raw with
//! the reason and answered 2xx, so the shop neither retries it for hours nor disables the webhook. A product
//! delivery changes the shop's catalog (`Store::apply_catalog`), which recommendations are chosen from.

use crate::error::ApiError;
use crate::service::Service;
use pronto_domain::event::parse_message;
use pronto_domain::shop::{self, Delivery, Mapped, Platform};
use pronto_store::{IngestItem, UnmappedDelivery};
use serde::Serialize;

/// What became of a delivery.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ShopAnswer {
    /// `stored` (mapped and committed), `duplicate` (a redelivery: nothing new), `catalog` (a product
    /// change applied to the shop's catalog), `ignored` (nothing to store: a ping, a topic pronto does not
    /// use) or `kept` (signed but not mappable: kept raw with the reason).
    pub outcome: &'static str,
    /// Events committed.
    pub events: usize,
    /// What a product delivery did to the catalog.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog: Option<pronto_domain::catalog::Applied>,
    /// Why it was ignored or kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn count(platform: Platform, outcome: &'static str) {
    metrics::counter!("pronto_shop_deliveries_total", "platform" => platform.as_str(), "outcome" => outcome)
        .increment(1);
}

impl Service {
    /// One delivery; `header` reads a request header by its lower-case name.
    pub async fn shop_webhook(
        &self,
        platform: Platform,
        header: impl Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Result<ShopAnswer, ApiError> {
        let first = |names: &[&str]| names.iter().find_map(|n| header(n));
        let signature = first(platform.signature_headers());
        // WooCommerce pings a webhook when it is saved, unsigned and without its headers; only an exact 200
        // keeps the webhook active. The ping stores nothing, so answering it cannot be abused.
        if platform == Platform::WooCommerce
            && signature.is_none()
            && shop::woocommerce::is_ping(body)
        {
            count(platform, "ignored");
            return Ok(ShopAnswer {
                outcome: "ignored",
                events: 0,
                catalog: None,
                reason: Some("WooCommerce's ping when a webhook is saved".into()),
            });
        }
        let refuse = |header: &'static str, message: String| {
            count(platform, "refused");
            ApiError::ShopAuth { header, message }
        };
        // Named as the platform's documentation writes them.
        let (shop_header, sig_header) = match platform {
            Platform::Shopify => ("X-Shopify-Shop-Domain", "X-Shopify-Hmac-Sha256"),
            Platform::WooCommerce => ("X-WC-Webhook-Source", "X-WC-Webhook-Signature"),
        };
        let name = first(platform.shop_headers())
            .map(|s| shop::shop_name(&s))
            .ok_or_else(|| refuse(shop_header, "is required: it names the shop".into()))?;
        let configured = self
            .shops
            .iter()
            .find(|s| s.platform == platform && s.shop == name)
            .ok_or_else(|| {
                refuse(
                    shop_header,
                    format!("`{name}` is not a configured [[shop]] of this platform"),
                )
            })?;
        let signature = signature.ok_or_else(|| {
            refuse(
                sig_header,
                "is required: the base64 HMAC-SHA256 of the body".into(),
            )
        })?;
        if !shop::verify(configured.secret.as_bytes(), body, &signature) {
            return Err(refuse(
                sig_header,
                "does not match the body signed with this shop's secret".into(),
            ));
        }
        // Both platforms always send a body; an empty one is not a delivery to keep.
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(pronto_domain::Invalid::one(
                "body",
                "is empty: a webhook delivery carries the JSON resource",
            )
            .into());
        }
        let topic = first(platform.topic_headers()).unwrap_or_default();
        let id = shop::delivery_id(platform, &topic, &header, body);
        let delivery = Delivery {
            platform,
            shop: &name,
            topic: &topic,
            id: &id,
            body,
        };
        let reason = match shop::map(&delivery) {
            Ok(Mapped::Ignored(why)) => {
                count(platform, "ignored");
                return Ok(ShopAnswer {
                    outcome: "ignored",
                    events: 0,
                    catalog: None,
                    reason: Some(why.into()),
                });
            }
            Ok(Mapped::Catalog(changes)) => {
                let applied = self
                    .store
                    .apply_catalog(self.default_workspace, &name, &changes)
                    .await?;
                count(platform, "catalog");
                return Ok(ShopAnswer {
                    outcome: "catalog",
                    events: 0,
                    catalog: Some(applied),
                    reason: None,
                });
            }
            Ok(Mapped::Messages(messages)) => {
                let scope = format!("shop:{}:{name}", platform.as_str());
                let parsed: Result<Vec<IngestItem>, _> = messages
                    .into_iter()
                    .map(|m| {
                        parse_message(m, None, None, self.opts).map(|mut e| {
                            e.dedupe_scope = Some(scope.clone());
                            IngestItem::from(e)
                        })
                    })
                    .collect();
                match parsed {
                    Ok(items) => {
                        let done = self.commit(self.default_workspace, items).await?;
                        let duplicate = done.iter().all(|d| d.duplicate);
                        let outcome = if duplicate { "duplicate" } else { "stored" };
                        count(platform, outcome);
                        return Ok(ShopAnswer {
                            outcome,
                            events: if duplicate { 0 } else { done.len() },
                            catalog: None,
                            reason: None,
                        });
                    }
                    Err(invalid) => format!("a mapped message was refused: {invalid}"),
                }
            }
            Err(unmappable) => unmappable.0,
        };
        self.store
            .keep_unmapped(
                self.default_workspace,
                &UnmappedDelivery {
                    platform: platform.as_str().into(),
                    shop: name.clone(),
                    delivery_id: id.clone(),
                    topic: topic.clone(),
                    reason: reason.clone(),
                    body: String::from_utf8_lossy(body).into_owned(),
                    received_at: self.clock.now(),
                },
            )
            .await?;
        count(platform, "unmapped");
        tracing::warn!(platform = platform.as_str(), shop = %name, topic = %topic, %reason, "kept a shop delivery that could not be mapped");
        Ok(ShopAnswer {
            outcome: "kept",
            events: 0,
            catalog: None,
            reason: Some(reason),
        })
    }

    /// Signed shop deliveries that could not be mapped, newest first.
    pub async fn unmapped_deliveries(
        &self,
        ws: pronto_domain::WorkspaceId,
    ) -> Result<Vec<UnmappedDelivery>, ApiError> {
        Ok(self.store.unmapped(ws).await?)
    }
}
