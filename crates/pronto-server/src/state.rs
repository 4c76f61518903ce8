//! The state every handler shares.

use crate::config::{FormConfig, Settings};
use crate::service::Service;
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::HashMap;
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

/// The declared forms.
pub struct Forms {
    by_name: HashMap<String, FormConfig>,
}

impl Forms {
    pub fn new(settings: &Settings) -> Self {
        Self {
            by_name: settings
                .form_list
                .iter()
                .map(|f| (f.name.clone(), f.clone()))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&FormConfig> {
        self.by_name.get(name)
    }
}
