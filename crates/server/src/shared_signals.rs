//! The authorization server as an OpenID Shared Signals Framework 1.0 transmitter, with poll
//! delivery (RFC 8936): resource servers learn within seconds that access ended, where a JWT
//! would otherwise be accepted until its `exp`.
//!
//! - `GET /.well-known/ssf-configuration` (SSF §7.1): the transmitter's metadata.
//! - `POST|GET|DELETE /ssf/streams` (SSF §8.1.1): a receiver creates, reads and deletes its
//!   streams; one per resource-server instance, each with its own acknowledgements.
//! - `POST /ssf/poll/{stream_id}` (RFC 8936 §2.4): acknowledges what the receiver processed
//!   and answers the events still pending, as Security Event Tokens (RFC 8417) signed with
//!   the server's keys (`typ: secevent+jwt`). Answers at once (the RFC lets a transmitter hold
//!   the request; receivers poll every second or so instead).
//!
//! Only resource servers (operator-marked clients, authenticating with HTTP Basic) may
//! create, read, delete or poll streams, and each only its own: anyone else gets `401` or
//! `403`, and another receiver's stream is `404`. Events come from the database
//! (`SqlStore`'s triggers), so every instance serves the same streams.
//!
//! Event types: CAEP `session-revoked` for a revoked grant (`sub_id`: the grant as a
//! session, with its user and client) and for a removed client (`sub_id`: the client as an
//! application); CAEP `credential-change` for a new password; RISC `account-disabled`; and
//! `urn:mcpauth:secevent:signing-key-removed` (no standard type fits) for a removed key.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mcpauth_oauth_types::security_events::{
    ACCOUNT_DISABLED, CREDENTIAL_CHANGE, POLL_DELIVERY, SESSION_REVOKED, SIGNING_KEY_REMOVED,
};
use mcpauth_store_sql::{SecurityEvent, SecurityEventKind, SqlStore};
use mcpauth_token_engine::{ClientRecord, Clock, ResourceServerRefusal, TokenEngine, random_token};
use serde::Deserialize;
use serde_json::{Value, json};

/// The most events one poll answers.
const MAX_EVENTS_PER_POLL: u32 = 100;
/// The most streams one receiver may hold (one per resource-server instance); past it, its
/// least recently polled stream is replaced.
const MAX_STREAMS_PER_RECEIVER: usize = 64;

/// The event type URIs of each kind, in [`SecurityEventKind::ALL`]'s order.
fn event_type(kind: SecurityEventKind) -> Option<&'static str> {
    Some(match kind {
        SecurityEventKind::GrantRevoked | SecurityEventKind::ClientRemoved => SESSION_REVOKED,
        SecurityEventKind::UserDisabled => ACCOUNT_DISABLED,
        SecurityEventKind::CredentialChanged => CREDENTIAL_CHANGE,
        SecurityEventKind::KeyRemoved => SIGNING_KEY_REMOVED,
        // A kind of a newer store: not sent until this transmitter knows its type.
        _ => return None,
    })
}

/// The kinds a list of requested event types asks for (all, when it names none).
fn kinds_for(requested: &[String]) -> Vec<SecurityEventKind> {
    if requested.is_empty() {
        return SecurityEventKind::ALL.to_vec();
    }
    SecurityEventKind::ALL
        .into_iter()
        .filter(|kind| event_type(*kind).is_some_and(|uri| requested.iter().any(|r| r == uri)))
        .collect()
}

/// The event type URIs of `kinds`, each once (two kinds share `session-revoked`).
fn event_types(kinds: &[SecurityEventKind]) -> Vec<&'static str> {
    let mut types: Vec<&'static str> = Vec::new();
    for uri in kinds.iter().copied().filter_map(event_type) {
        if !types.contains(&uri) {
            types.push(uri);
        }
    }
    types
}

/// What the transmitter serves with.
pub(crate) struct Transmitter {
    pub(crate) engine: Arc<TokenEngine<SqlStore>>,
    pub(crate) store: SqlStore,
    pub(crate) clock: Arc<dyn Clock>,
    /// The issuer identifier, as in tokens.
    pub(crate) issuer: String,
    /// The issuer's path (empty, or `/tenant`), below which the endpoints are.
    pub(crate) base: String,
    /// Polls, deliveries and lag, for `/metrics`.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

impl Transmitter {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer.trim_end_matches('/'))
    }

    /// The caller, if it is a resource server; otherwise the answer to send it.
    async fn receiver(&self, headers: &HeaderMap) -> Result<ClientRecord, Response> {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.engine
            .authenticate_resource_server(authorization, self.clock.now())
            .await
            .map_err(|refusal| match refusal {
                ResourceServerRefusal::Unauthenticated(why) => {
                    let mut response =
                        error(StatusCode::UNAUTHORIZED, "invalid_client", why).into_response();
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"ssf\""),
                    );
                    response
                }
                ResourceServerRefusal::NotAResourceServer => error(
                    StatusCode::FORBIDDEN,
                    "access_denied",
                    &ResourceServerRefusal::NotAResourceServer.to_string(),
                )
                .into_response(),
                other => {
                    tracing::error!(error = %other, "authenticating an SSF receiver failed");
                    server_error()
                }
            })
    }

    /// The stream configuration (SSF §8.1.1) of `stream_id` for `receiver`.
    fn stream_configuration(
        &self,
        stream_id: &str,
        receiver: &str,
        kinds: &[SecurityEventKind],
        description: Option<&str>,
    ) -> Value {
        let delivered = event_types(kinds);
        let mut configuration = json!({
            "stream_id": stream_id,
            "iss": self.issuer,
            "aud": receiver,
            "delivery": {
                "method": POLL_DELIVERY,
                "endpoint_url": self.url(&format!("/ssf/poll/{stream_id}")),
            },
            "events_supported": event_types(&SecurityEventKind::ALL),
            "events_requested": delivered,
            "events_delivered": delivered,
            // SSF §8.1.1: a stream not polled for this long is deleted.
            "inactivity_timeout": crate::SSF_STREAM_IDLE,
        });
        if let (Some(description), Value::Object(members)) = (description, &mut configuration) {
            members.insert("description".into(), description.into());
        }
        configuration
    }

    /// The Security Event Token of `event` for `receiver` (RFC 8417 §2.2; SSF §4).
    fn security_event_token(&self, event: &SecurityEvent, receiver: &str) -> Option<String> {
        let user = |sub: &str| json!({ "format": "iss_sub", "iss": self.issuer, "sub": sub });
        let opaque = |id: &str| json!({ "format": "opaque", "id": id });
        let (sub_id, mut details) = match event.kind {
            SecurityEventKind::GrantRevoked => {
                let mut subject = serde_json::Map::new();
                subject.insert("format".into(), "complex".into());
                if let Some(grant) = &event.grant_id {
                    subject.insert("session".into(), opaque(grant));
                }
                if let Some(sub) = &event.subject {
                    subject.insert("user".into(), user(sub));
                }
                if let Some(client) = &event.client_id {
                    subject.insert("application".into(), opaque(client));
                }
                (Value::Object(subject), serde_json::Map::new())
            }
            SecurityEventKind::ClientRemoved => (
                json!({ "format": "complex", "application": opaque(event.client_id.as_deref()?) }),
                serde_json::Map::new(),
            ),
            SecurityEventKind::UserDisabled => {
                (user(event.subject.as_deref()?), serde_json::Map::new())
            }
            SecurityEventKind::CredentialChanged => {
                let mut details = serde_json::Map::new();
                details.insert("credential_type".into(), "password".into());
                details.insert("change_type".into(), "update".into());
                (user(event.subject.as_deref()?), details)
            }
            SecurityEventKind::KeyRemoved => {
                (opaque(event.kid.as_deref()?), serde_json::Map::new())
            }
            _ => return None,
        };
        details.insert("event_timestamp".into(), event.occurred_at.into());
        let claims = json!({
            "iss": self.issuer,
            "iat": self.clock.now().0,
            "jti": jti_of(event.event_id),
            "aud": receiver,
            "sub_id": sub_id,
            "events": { event_type(event.kind)?: details },
        });
        match self.engine.sign_security_event_token(&claims) {
            Ok(token) => Some(token),
            Err(e) => {
                tracing::error!(error = %e, "signing a security event token failed");
                None
            }
        }
    }
}

/// A SET's `jti`: the event's number, which the receiver acknowledges.
fn jti_of(event_id: i64) -> String {
    format!("e{event_id}")
}

fn event_of(jti: &str) -> Option<i64> {
    jti.strip_prefix('e')?.parse().ok()
}

fn error(status: StatusCode, code: &str, description: &str) -> impl IntoResponse {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "error": code, "error_description": description })),
    )
}

fn server_error() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the transmitter could not answer; try again",
    )
    .into_response()
}

/// The routes, below the issuer's path.
pub(crate) fn routes(transmitter: Arc<Transmitter>) -> axum::Router {
    let base = transmitter.base.clone();
    axum::Router::new()
        .route(
            &format!("/.well-known/ssf-configuration{base}"),
            get(configuration),
        )
        .route(
            &format!("{base}/ssf/streams"),
            post(create_stream).get(read_stream).delete(delete_stream),
        )
        .route(&format!("{base}/ssf/poll/{{stream_id}}"), post(poll))
        .with_state(transmitter)
}

/// SSF §7.1: the transmitter's configuration metadata.
async fn configuration(State(t): State<Arc<Transmitter>>) -> Response {
    Json(json!({
        "spec_version": "1_0",
        "issuer": t.issuer,
        "jwks_uri": t.engine.metadata().jwks_uri,
        "delivery_methods_supported": [POLL_DELIVERY],
        "configuration_endpoint": t.url("/ssf/streams"),
        "authorization_schemes": [{ "spec_urn": "urn:ietf:rfc:7617" }],
        "default_subjects": "ALL",
    }))
    .into_response()
}

/// What a receiver may ask for when it creates a stream (SSF §8.1.1.1).
#[derive(Deserialize)]
struct StreamRequest {
    #[serde(default)]
    delivery: Option<DeliveryRequest>,
    #[serde(default)]
    events_requested: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct DeliveryRequest {
    method: String,
}

async fn create_stream(
    State(t): State<Arc<Transmitter>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let receiver = match t.receiver(&headers).await {
        Ok(receiver) => receiver,
        Err(refused) => return refused,
    };
    let Ok(request) = serde_json::from_slice::<StreamRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be a JSON stream configuration (SSF §8.1.1.1)",
        )
        .into_response();
    };
    if let Some(delivery) = &request.delivery
        && delivery.method != POLL_DELIVERY
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "only poll delivery (urn:ietf:rfc:8936) is supported",
        )
        .into_response();
    }
    if request.description.as_ref().is_some_and(|d| d.len() > 256) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "description is longer than 256 bytes",
        )
        .into_response();
    }
    let kinds = kinds_for(&request.events_requested);
    if kinds.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "none of events_requested is supported: see events_supported in a stream's configuration",
        )
        .into_response();
    }
    // At the most streams a receiver may hold, its least recently polled one goes (an
    // instance that restarted without deleting its stream), never the new request.
    match t.store.list_ssf_streams(receiver.client_id.as_str()).await {
        Ok(held) if held.len() >= MAX_STREAMS_PER_RECEIVER => {
            if let Some(stalest) = held.iter().min_by_key(|s| s.last_polled_at)
                && let Err(e) = t.store.delete_ssf_stream(&stalest.stream_id).await
            {
                tracing::error!(error = %e, "deleting a receiver's stalest SSF stream failed");
                return server_error();
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(error = %e, "listing SSF streams failed");
            return server_error();
        }
    }
    let stream_id = match random_token(&mcpauth_token_engine::OsRandom) {
        Ok(id) => id,
        Err(_) => return server_error(),
    };
    if let Err(e) = t
        .store
        .create_ssf_stream(
            &stream_id,
            receiver.client_id.as_str(),
            request.description.as_deref(),
            &kinds,
            t.clock.now(),
        )
        .await
    {
        tracing::error!(error = %e, "creating an SSF stream failed");
        return server_error();
    }
    tracing::info!(receiver = %receiver.client_id, %stream_id, "SSF stream created");
    (
        StatusCode::CREATED,
        Json(t.stream_configuration(
            &stream_id,
            receiver.client_id.as_str(),
            &kinds,
            request.description.as_deref(),
        )),
    )
        .into_response()
}

#[derive(Deserialize)]
struct StreamQuery {
    stream_id: Option<String>,
}

/// The receiver's own stream named in the query, or the answer to send.
async fn own_stream(
    t: &Transmitter,
    headers: &HeaderMap,
    stream_id: Option<&str>,
) -> Result<(ClientRecord, mcpauth_store_sql::SsfStream), Response> {
    let receiver = t.receiver(headers).await?;
    let Some(stream_id) = stream_id else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "stream_id is required",
        )
        .into_response());
    };
    match t.store.find_ssf_stream(stream_id).await {
        // Another receiver's stream is as absent as a stream that never was.
        Ok(Some(stream)) if stream.client_id == receiver.client_id.as_str() => {
            Ok((receiver, stream))
        }
        Ok(_) => Err(error(StatusCode::NOT_FOUND, "not_found", "no such stream").into_response()),
        Err(e) => {
            tracing::error!(error = %e, "reading an SSF stream failed");
            Err(server_error())
        }
    }
}

async fn read_stream(
    State(t): State<Arc<Transmitter>>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Response {
    // SSF §8.1.1.2: without `stream_id`, every stream of the receiver.
    if query.stream_id.is_none() {
        let receiver = match t.receiver(&headers).await {
            Ok(receiver) => receiver,
            Err(refused) => return refused,
        };
        return match t.store.list_ssf_streams(receiver.client_id.as_str()).await {
            Ok(streams) => Json(
                streams
                    .iter()
                    .map(|stream| {
                        t.stream_configuration(
                            &stream.stream_id,
                            receiver.client_id.as_str(),
                            &stream.kinds,
                            stream.description.as_deref(),
                        )
                    })
                    .collect::<Vec<_>>(),
            )
            .into_response(),
            Err(e) => {
                tracing::error!(error = %e, "listing SSF streams failed");
                server_error()
            }
        };
    }
    match own_stream(&t, &headers, query.stream_id.as_deref()).await {
        Ok((receiver, stream)) => Json(t.stream_configuration(
            &stream.stream_id,
            receiver.client_id.as_str(),
            &stream.kinds,
            stream.description.as_deref(),
        ))
        .into_response(),
        Err(refused) => refused,
    }
}

async fn delete_stream(
    State(t): State<Arc<Transmitter>>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Response {
    match own_stream(&t, &headers, query.stream_id.as_deref()).await {
        Ok((_, stream)) => match t.store.delete_ssf_stream(&stream.stream_id).await {
            Ok(_) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => {
                tracing::error!(error = %e, "deleting an SSF stream failed");
                server_error()
            }
        },
        Err(refused) => refused,
    }
}

/// RFC 8936 §2.4's poll request.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PollRequest {
    #[serde(default)]
    max_events: Option<u32>,
    #[serde(default)]
    ack: Vec<String>,
    #[serde(default)]
    set_errs: serde_json::Map<String, Value>,
}

async fn poll(
    State(t): State<Arc<Transmitter>>,
    headers: HeaderMap,
    Path(stream_id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (receiver, stream) = match own_stream(&t, &headers, Some(&stream_id)).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let request = if body.is_empty() {
        PollRequest {
            max_events: None,
            ack: Vec::new(),
            set_errs: serde_json::Map::new(),
        }
    } else {
        match serde_json::from_slice::<PollRequest>(&body) {
            Ok(request) => request,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the body must be an RFC 8936 poll request",
                )
                .into_response();
            }
        }
    };
    // RFC 8936 §2.4.4: an event the receiver could not process is acknowledged too (it is
    // not delivered again), and said in the log.
    if let Some((jti, failure)) = request.set_errs.iter().next() {
        tracing::warn!(
            receiver = %receiver.client_id,
            refused = request.set_errs.len(),
            first = %jti,
            %failure,
            "an SSF receiver could not process events"
        );
    }
    let acknowledged: Vec<i64> = request
        .ack
        .iter()
        .chain(request.set_errs.keys())
        .take(SqlStore::MAX_ACKNOWLEDGED)
        .filter_map(|jti| event_of(jti))
        .collect();
    let max_events = request
        .max_events
        .unwrap_or(MAX_EVENTS_PER_POLL)
        .min(MAX_EVENTS_PER_POLL);
    let polled = match t
        .store
        .poll_ssf_stream(&stream, &acknowledged, max_events, t.clock.now())
        .await
    {
        Ok(polled) => polled,
        Err(e) => {
            tracing::error!(error = %e, "polling an SSF stream failed");
            return server_error();
        }
    };
    let now = t.clock.now().0;
    t.metrics.ssf_polled(
        polled.events.len(),
        polled.events.iter().map(|e| e.occurred_at).min(),
        now,
    );
    let mut sets = serde_json::Map::new();
    for event in &polled.events {
        if let Some(token) = t.security_event_token(event, receiver.client_id.as_str()) {
            sets.insert(jti_of(event.event_id), token.into());
        }
    }
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "sets": sets, "moreAvailable": polled.more_available })),
    )
        .into_response()
}
