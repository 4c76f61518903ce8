//! The state every handler shares.

use crate::config::{FormConfig, Settings};
use crate::service::Service;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub settings: Arc<Settings>,
    pub forms: Arc<Forms>,
    pub metrics: PrometheusHandle,
    /// `/openapi.json`, rendered once at start.
    pub openapi: Arc<str>,
}

/// The declared forms and the per-IP limiter in front of them.
pub struct Forms {
    by_name: HashMap<String, FormConfig>,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

impl Forms {
    pub fn new(settings: &Settings) -> Self {
        let per_minute =
            NonZeroU32::new(settings.forms.rate_limit_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            by_name: settings
                .form_list
                .iter()
                .map(|f| (f.name.clone(), f.clone()))
                .collect(),
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            checks: AtomicU64::new(0),
        }
    }

    pub fn get(&self, name: &str) -> Option<&FormConfig> {
        self.by_name.get(name)
    }

    /// `Err(seconds)` to wait when this IP is over its quota.
    pub fn admit(&self, ip: IpAddr) -> Result<(), u64> {
        // The keyed limiter keeps a cell per IP; forget idle ones now and then so memory stays bounded.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&ip).map_err(|not_until| {
            use governor::clock::{Clock, DefaultClock};
            not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1)
        })
    }
}
