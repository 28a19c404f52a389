//! The OpenAPI 3.1 document of `/v1`, generated from the handlers' annotations and the
//! types they take and return, served at `GET /v1/openapi.json`.

use crate::dto::{
    ApiKey, Application, Asset, Deletion, Delivery, DeliveryAttempt, Pause, Publication, Recording,
    Room, Session, Track, WebhookEndpoint,
};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error: a stable machine code and a sentence for people.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

macro_rules! list_of {
    ($name:ident, $item:ty) => {
        #[derive(Serialize, ToSchema)]
        pub struct $name {
            pub data: Vec<$item>,
        }

        impl $name {
            /// The list of these rows, in their wire form.
            pub fn of<R: Into<$item>>(rows: Vec<R>) -> Self {
                $name {
                    data: rows.into_iter().map(Into::into).collect(),
                }
            }
        }
    };
}

list_of!(RoomList, Room);
list_of!(SessionList, Session);
list_of!(AssetList, Asset);
list_of!(RecordingList, Recording);
list_of!(ApplicationList, Application);
list_of!(KeyList, ApiKey);
list_of!(WebhookList, WebhookEndpoint);
list_of!(DeliveryList, Delivery);
list_of!(EventList, Event);
list_of!(DeletionList, Deletion);

/// An event as a webhook delivers it (`type`, `timestamp`, `data`), with its id. `payload`
/// and `created_at` are the same values under their first names, kept for clients that
/// read them.
#[derive(Serialize, ToSchema)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened (Unix milliseconds), as in a webhook's body.
    pub timestamp: i64,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub created_at: i64,
}

#[derive(Serialize, ToSchema)]
pub struct PublishToken {
    pub token: String,
    pub whip_url: String,
    pub room_id: String,
    pub participant: String,
    pub kind: String,
    pub expires_at: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Link {
    pub url: String,
    pub expires_at: i64,
    /// `reel` (a signed link to this server) or `destination` (the store's presigned URL).
    pub served_by: String,
}

#[derive(Serialize, ToSchema)]
pub struct Participant {
    #[serde(flatten)]
    pub publication: Publication,
    pub tracks: Vec<Track>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub session: Session,
    pub participants: Vec<Participant>,
}

/// A new API key: the secret is in this response only.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub api_key: ApiKey,
    pub key: String,
}

/// A new webhook endpoint: the signing secret is in this response only.
#[derive(Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    pub secret: String,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Reel", description = "Recording service for WebRTC (WHIP) and SIP calls: rooms, recordings, assets, webhooks."),
    paths(
        crate::v1::create_room, crate::v1::list_rooms, crate::v1::get_room, crate::v1::update_room, crate::v1::delete_room,
        crate::v1::create_token, crate::v1::list_sessions, crate::v1::get_session,
        crate::v1::list_assets, crate::v1::get_asset, crate::v1::delete_asset, crate::v1::download_asset, crate::v1::presigned_url,
        crate::v1::list_events,
        crate::apps::create_application, crate::apps::list_applications, crate::apps::get_application,
        crate::apps::create_key, crate::apps::list_keys, crate::apps::revoke_key,
        crate::webhooks::create, crate::webhooks::list, crate::webhooks::read, crate::webhooks::update, crate::webhooks::remove,
        crate::webhooks::deliveries, crate::webhooks::redeliver,
        crate::recordings::start, crate::recordings::list, crate::recordings::read,
        crate::recordings::pause, crate::recordings::resume, crate::recordings::stop, crate::recordings::active,
        crate::recordings::rerender, crate::recordings::change_layout,
        crate::storage::retry_upload, crate::storage::legal_hold, crate::storage::list_deletions,
        crate::apps::update_application,
    ),
    components(schemas(ErrorBody, Pause, DeliveryAttempt)),
    modifiers(&BearerAuth),
    security(("api_key" = []))
)]
pub struct ApiDoc;

pub async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
