//! The HTTP surface. Every route is registered through utoipa-axum's `routes!`, so a route cannot exist
//! without its entry in `/openapi.json`.

pub mod app;
pub mod contacts;
pub mod docs;
pub mod flows;
pub mod ingest;
pub mod keys;
pub mod leads;
pub mod openapi;
pub mod ops;
pub mod owner;
pub mod pages;
pub mod sales;
pub mod shops;
pub mod suppressions;

use crate::state::AppState;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The router and the OpenAPI document built from the same registrations.
pub fn router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let ingest = OpenApiRouter::new()
        .routes(routes!(ingest::identify))
        .routes(routes!(ingest::track))
        .routes(routes!(ingest::page))
        .routes(routes!(ingest::screen))
        .routes(routes!(ingest::group))
        .routes(routes!(ingest::alias))
        .routes(routes!(ingest::batch))
        .routes(routes!(leads::create_lead))
        .routes(routes!(leads::post_form))
        // Browsers post events and forms from the shop's own origin.
        .layer(tower_http::cors::CorsLayer::permissive());
    let (router, api) = OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .merge(ingest)
        .routes(routes!(contacts::get_contact, contacts::erase_contact))
        .routes(routes!(contacts::list_erasures))
        .routes(routes!(contacts::find_contact))
        .routes(routes!(contacts::export_contact))
        .routes(routes!(flows::list_flows))
        .routes(routes!(flows::get_run))
        .routes(routes!(flows::list_messages))
        .routes(routes!(flows::reload))
        .routes(routes!(keys::list_keys, keys::create_key))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(keys::quarantine))
        .routes(routes!(
            suppressions::list_suppressions,
            suppressions::add_suppression
        ))
        .routes(routes!(suppressions::import_suppressions))
        .routes(routes!(suppressions::remove_suppression))
        .routes(routes!(suppressions::inbound_bounce))
        .routes(routes!(suppressions::sendgrid_events))
        .routes(routes!(suppressions::mailgun_events))
        .routes(routes!(flows::unsubscribe_page, flows::unsubscribe))
        .routes(routes!(flows::follow_click))
        .routes(routes!(sales::list_reps))
        .routes(routes!(sales::patch_rep))
        .routes(routes!(sales::list_leads))
        .routes(routes!(sales::get_lead))
        .routes(routes!(sales::claim_lead))
        .routes(routes!(sales::log_attempt))
        .routes(routes!(sales::list_tasks))
        .routes(routes!(sales::claim_page, sales::claim_by_link))
        .routes(routes!(sales::speed_to_lead))
        .routes(routes!(flows::flows_report))
        .routes(routes!(flows::promote))
        .routes(routes!(sales::inbound_sms))
        .routes(routes!(sales::inbound_voice))
        .routes(routes!(sales::inbound_email))
        .routes(routes!(shops::shopify))
        .routes(routes!(shops::woocommerce))
        .routes(routes!(shops::unmapped))
        .routes(routes!(ops::root))
        .routes(routes!(pages::stylesheet))
        .routes(routes!(pages::app_script))
        .routes(routes!(app::home))
        .routes(routes!(app::sign_in_page, app::sign_in))
        .routes(routes!(app::sign_in_with_admin_key))
        .routes(routes!(app::link_page, app::use_link))
        .routes(routes!(app::sign_out))
        .routes(routes!(app::inbox_page))
        .routes(routes!(app::lead_page))
        .routes(routes!(app::claim))
        .routes(routes!(app::log_call))
        .routes(routes!(app::away))
        .routes(routes!(app::board))
        .routes(routes!(app::board_csv))
        .routes(routes!(app::reassign))
        .routes(routes!(app::live))
        .routes(routes!(app::sessions))
        .routes(routes!(app::revoke_session))
        .routes(routes!(owner::recovery))
        .routes(routes!(owner::messages))
        .routes(routes!(owner::message))
        .routes(routes!(owner::message_html))
        .routes(routes!(owner::contact))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi))
        .split_for_parts();
    (router, api)
}
