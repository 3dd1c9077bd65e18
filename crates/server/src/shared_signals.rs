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
//! - Push delivery (RFC 8935), where the operator lists the receivers' origins
//!   (`ssf_push_origins`): a stream created with a push endpoint on one of them gets each
//!   event posted there, oldest first, by whichever instance claims the stream
//!   (`Transmitter::deliver_pushes`); a failure is retried after 1 s, doubling to 15 s.
//! - `POST /ssf/verify` (SSF §8.1.4): the receiver asks for a verification event carrying
//!   its `state`, delivered on its stream after every event recorded before it: proof that
//!   the stream delivers (a push receiver has no other way to tell silence from calm).
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
    ACCOUNT_DISABLED, CREDENTIAL_CHANGE, POLL_DELIVERY, PUSH_DELIVERY,
    SECURITY_EVENT_TOKEN_MEDIA_TYPE, SESSION_REVOKED, SIGNING_KEY_REMOVED, VERIFICATION,
};
use mcpauth_store_sql::{PushEndpoint, SecurityEvent, SecurityEventKind, SqlStore, SsfStream};
use mcpauth_token_engine::{ClientRecord, Clock, ResourceServerRefusal, TokenEngine, random_token};
use serde::Deserialize;
use serde_json::{Value, json};

/// The most events one poll answers.
const MAX_EVENTS_PER_POLL: u32 = 100;
/// The most streams one receiver may hold (one per resource-server instance); past it, its
/// least recently polled stream is replaced.
const MAX_STREAMS_PER_RECEIVER: usize = 64;
/// How long one instance holds a push stream it delivers (the lease lapses if it stops).
const PUSH_LEASE_SECONDS: u64 = 30;
/// How long one delivery round starts new pushes: each may take five seconds, and the round
/// must end within its lease.
const PUSH_ROUND: std::time::Duration = std::time::Duration::from_secs(20);
/// The longest wait before a failed push is retried: below a receiver's default 30 s of
/// tolerated silence, so one that recovers is caught up before it fails closed.
const MAX_PUSH_BACKOFF_SECONDS: u64 = 15;
/// The most of a receiver's refusal (`400`) read for its `err`.
const MAX_REFUSAL_BYTES: usize = 4096;

/// The wait before retrying a stream whose pushes failed `failures` times in a row before
/// this one: 1 s, doubling, at most [`MAX_PUSH_BACKOFF_SECONDS`].
fn push_backoff(failures: u32) -> u64 {
    1u64.checked_shl(failures.min(16))
        .unwrap_or(MAX_PUSH_BACKOFF_SECONDS)
        .min(MAX_PUSH_BACKOFF_SECONDS)
}
/// How often due push streams are looked for.
const PUSH_TICK: std::time::Duration = std::time::Duration::from_millis(250);

/// The event type URIs of each kind, in [`SecurityEventKind::ALL`]'s order.
fn event_type(kind: SecurityEventKind) -> Option<&'static str> {
    Some(match kind {
        SecurityEventKind::Verification => VERIFICATION,
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
    /// The origins push streams may deliver to (`ssf_push_origins`); empty: poll only.
    pub(crate) push_origins: Vec<url::Origin>,
    /// What pushes go out with (no redirects, a time limit); built when `push_origins` is
    /// not empty.
    pub(crate) push_client: Option<reqwest::Client>,
}

impl std::fmt::Debug for Transmitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transmitter")
            .field("issuer", &self.issuer)
            .field("push_origins", &self.push_origins)
            .finish_non_exhaustive()
    }
}

/// The HTTP client pushes go out with: redirects are not followed (a receiver's answer
/// cannot send a Security Event Token elsewhere), and each push has five seconds.
pub(crate) fn push_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(5))
        .connect_timeout(std::time::Duration::from_secs(5))
        .no_proxy()
        .user_agent("mcpauth-server")
        .build()
}

/// Why a push stream's delivery request was refused (the `error_description`).
fn push_endpoint_refusal(
    origins: &[url::Origin],
    delivery: &DeliveryRequest,
) -> Result<PushEndpoint, &'static str> {
    if origins.is_empty() {
        return Err(
            "push delivery (urn:ietf:rfc:8935) is not enabled on this server (its \
                    operator lists receivers' origins in ssf_push_origins); poll instead",
        );
    }
    let url = delivery
        .endpoint_url
        .as_deref()
        .ok_or("push delivery needs delivery.endpoint_url")?;
    let parsed = url::Url::parse(url).map_err(|_| "delivery.endpoint_url is not a URL")?;
    if !matches!(parsed.scheme(), "https" | "http")
        || !parsed.username().is_empty()
        || parsed.password().is_some()
        || parsed.fragment().is_some()
        || url.len() > 2048
    {
        return Err(
            "delivery.endpoint_url must be an http(s) URL without credentials or a \
                    fragment, of at most 2048 bytes",
        );
    }
    if !origins.contains(&parsed.origin()) {
        return Err(
            "delivery.endpoint_url is not on an origin this server pushes to \
                    (ssf_push_origins)",
        );
    }
    let authorization = delivery.authorization_header.as_deref();
    if authorization.is_some_and(|value| {
        value.len() > 1024 || value.is_empty() || HeaderValue::from_str(value).is_err()
    }) {
        return Err(
            "delivery.authorization_header must be a header value of 1 to 1024 \
                    visible characters",
        );
    }
    Ok(PushEndpoint::new(parsed.as_str(), authorization))
}

/// What a receiver answered one pushed event (RFC 8935 §2.2-§2.4).
enum PushAnswer {
    /// Accepted (`202`).
    Accepted,
    /// Refused for good (`400` with an `err`): not sent again.
    Refused(String),
    /// Anything else: the event stays pending and the stream is retried later.
    Failed(String),
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

    /// The stream configuration (SSF §8.1.1) of `stream` (the push endpoint's
    /// `authorization_header` is not repeated).
    fn stream_configuration(&self, stream: &SsfStream) -> Value {
        let stream_id = &stream.stream_id;
        let delivered = event_types(&stream.kinds);
        let delivery = match &stream.push {
            Some(push) => json!({ "method": PUSH_DELIVERY, "endpoint_url": push.url }),
            None => json!({
                "method": POLL_DELIVERY,
                "endpoint_url": self.url(&format!("/ssf/poll/{stream_id}")),
            }),
        };
        let mut configuration = json!({
            "stream_id": stream_id,
            "iss": self.issuer,
            "aud": stream.client_id,
            "delivery": delivery,
            "events_supported": event_types(&SecurityEventKind::ALL),
            "events_requested": delivered,
            "events_delivered": delivered,
            // SSF §8.1.1: a stream not polled for this long is deleted.
            "inactivity_timeout": crate::SSF_STREAM_IDLE,
            "min_verification_interval": SqlStore::MIN_VERIFICATION_INTERVAL,
        });
        if let (Some(description), Value::Object(members)) =
            (stream.description.as_deref(), &mut configuration)
        {
            members.insert("description".into(), description.into());
        }
        configuration
    }

    /// The Security Event Token of `event` on `stream` (RFC 8417 §2.2; SSF §4).
    fn security_event_token(
        &self,
        event: &SecurityEvent,
        stream: &SsfStream,
    ) -> Result<String, NoToken> {
        let claims = self
            .security_event_claims(event, stream)
            .ok_or(NoToken::Inexpressible)?;
        self.engine.sign_security_event_token(&claims).map_err(|e| {
            tracing::error!(error = %e, "signing a security event token failed");
            NoToken::SigningFailed
        })
    }

    /// The claims of `event`'s SET on `stream`; `None` for an event that cannot be said.
    fn security_event_claims(&self, event: &SecurityEvent, stream: &SsfStream) -> Option<Value> {
        let receiver = stream.client_id.as_str();
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
            // SSF §8.1.4: about the stream itself, with the receiver's state.
            SecurityEventKind::Verification => {
                let mut details = serde_json::Map::new();
                if let Some(state) = &event.state {
                    details.insert("state".into(), state.as_str().into());
                }
                (opaque(&stream.stream_id), details)
            }
            _ => return None,
        };
        if event.kind != SecurityEventKind::Verification {
            details.insert("event_timestamp".into(), event.occurred_at.into());
        }
        let claims = json!({
            "iss": self.issuer,
            "iat": self.clock.now().0,
            "jti": jti_of(event.event_id),
            "aud": receiver,
            "sub_id": sub_id,
            "events": { event_type(event.kind)?: details },
        });
        Some(claims)
    }
}

/// Why an event has no Security Event Token.
enum NoToken {
    /// It lacks what its type needs, or is of a kind this transmitter cannot say: it never
    /// will have one.
    Inexpressible,
    /// Signing failed (logged): it may next time.
    SigningFailed,
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
        .route(&format!("{base}/ssf/verify"), post(verify))
        .with_state(transmitter)
}

/// SSF §7.1: the transmitter's configuration metadata.
async fn configuration(State(t): State<Arc<Transmitter>>) -> Response {
    let mut delivery_methods = vec![POLL_DELIVERY];
    if !t.push_origins.is_empty() {
        delivery_methods.push(PUSH_DELIVERY);
    }
    Json(json!({
        "spec_version": "1_0",
        "issuer": t.issuer,
        "jwks_uri": t.engine.metadata().jwks_uri,
        "delivery_methods_supported": delivery_methods,
        "configuration_endpoint": t.url("/ssf/streams"),
        "verification_endpoint": t.url("/ssf/verify"),
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
    /// Push: where to post events.
    #[serde(default)]
    endpoint_url: Option<String>,
    /// Push: the `Authorization` header to post them with.
    #[serde(default)]
    authorization_header: Option<String>,
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
    let push = match &request.delivery {
        Some(delivery) if delivery.method == PUSH_DELIVERY => {
            match push_endpoint_refusal(&t.push_origins, delivery) {
                Ok(push) => Some(push),
                Err(why) => {
                    return error(StatusCode::BAD_REQUEST, "invalid_request", why).into_response();
                }
            }
        }
        Some(delivery) if delivery.method != POLL_DELIVERY => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "delivery.method must be urn:ietf:rfc:8936 (poll) or urn:ietf:rfc:8935 (push)",
            )
            .into_response();
        }
        _ => None,
    };
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
            push.as_ref(),
            t.clock.now(),
        )
        .await
    {
        tracing::error!(error = %e, "creating an SSF stream failed");
        return server_error();
    }
    tracing::info!(
        receiver = %receiver.client_id,
        %stream_id,
        push = push.as_ref().map(|p| p.url.as_str()),
        "SSF stream created"
    );
    match t.store.find_ssf_stream(&stream_id).await {
        Ok(Some(stream)) => {
            (StatusCode::CREATED, Json(t.stream_configuration(&stream))).into_response()
        }
        Ok(None) => server_error(),
        Err(e) => {
            tracing::error!(error = %e, "reading a new SSF stream failed");
            server_error()
        }
    }
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
                    .map(|stream| t.stream_configuration(stream))
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
        Ok((_, stream)) => Json(t.stream_configuration(&stream)).into_response(),
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
    if stream.push.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "this stream's events are pushed (urn:ietf:rfc:8935), not polled",
        )
        .into_response();
    }
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
        if let Ok(token) = t.security_event_token(event, &stream) {
            sets.insert(jti_of(event.event_id), token.into());
        }
    }
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "sets": sets, "moreAvailable": polled.more_available })),
    )
        .into_response()
}

/// SSF §8.1.4's verification request.
#[derive(Deserialize)]
struct VerificationRequest {
    stream_id: String,
    #[serde(default)]
    state: Option<String>,
}

/// SSF §8.1.4: queues a verification event on the receiver's own stream, after every event
/// recorded before it; `204`.
async fn verify(
    State(t): State<Arc<Transmitter>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let request = serde_json::from_slice::<VerificationRequest>(&body).ok();
    let (_, stream) =
        match own_stream(&t, &headers, request.as_ref().map(|r| r.stream_id.as_str())).await {
            Ok(found) => found,
            Err(refused) => return refused,
        };
    if request
        .as_ref()
        .and_then(|r| r.state.as_ref())
        .is_some_and(|state| state.len() > 256)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "state is longer than 256 bytes",
        )
        .into_response();
    }
    let state = request.as_ref().and_then(|r| r.state.as_deref());
    match t
        .store
        .request_ssf_verification(&stream.stream_id, state, t.clock.now())
        .await
    {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            "at most one verification request per second (min_verification_interval)",
        )
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "recording an SSF verification failed");
            server_error()
        }
    }
}

impl Transmitter {
    /// Pushes every push stream's pending events (RFC 8935) until the future is dropped:
    /// every quarter second, the streams with events due are claimed (one instance each) and
    /// delivered. Returns at once when no push origin is configured.
    pub(crate) async fn deliver_pushes(self: Arc<Self>) {
        let Some(client) = self.push_client.clone() else {
            return;
        };
        let mut tick = tokio::time::interval(PUSH_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = self.clock.now();
            let due = match self.store.due_push_streams(now).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "finding SSF push streams failed");
                    continue;
                }
            };
            for stream in due {
                let Ok(lease) = random_token(&mcpauth_token_engine::OsRandom) else {
                    tracing::error!("no randomness for an SSF push lease");
                    continue;
                };
                let lease_until = mcpauth_token_engine::UnixTime(now.0 + PUSH_LEASE_SECONDS);
                match self
                    .store
                    .claim_push_stream(&stream.stream_id, &lease, now, lease_until)
                    .await
                {
                    Ok(true) => {
                        // Each stream on its own: a slow receiver holds up only itself.
                        tokio::spawn(self.clone().push_stream(client.clone(), stream, lease));
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "claiming an SSF push stream failed"),
                }
            }
        }
    }

    /// Delivers what is pending on `stream`, claimed under `lease`, oldest first, stopping
    /// at the first failure or when the round's time is up; then releases it.
    async fn push_stream(
        self: Arc<Self>,
        client: reqwest::Client,
        stream: SsfStream,
        lease: String,
    ) {
        let Some(push) = &stream.push else {
            return;
        };
        let started = tokio::time::Instant::now();
        let (pending, mut failure) =
            match self.store.pending_ssf_events(&stream.stream_id, 100).await {
                Ok(pending) => (pending.events, None),
                Err(e) => (Vec::new(), Some(format!("reading the stream failed: {e}"))),
            };
        let mut delivered = Vec::new();
        let (mut accepted, mut refused) = (0, 0);
        for event in &pending {
            if started.elapsed() >= PUSH_ROUND {
                // The rest goes in the next round (due at once), within a fresh lease.
                break;
            }
            let answer = match self.security_event_token(event, &stream) {
                Ok(set) => push_one(&client, push, set).await,
                Err(NoToken::Inexpressible) => {
                    PushAnswer::Refused("not expressible as a security event token".into())
                }
                Err(NoToken::SigningFailed) => PushAnswer::Failed("signing failed".into()),
            };
            match answer {
                PushAnswer::Accepted => accepted += 1,
                PushAnswer::Refused(why) => {
                    refused += 1;
                    tracing::warn!(
                        receiver = %stream.client_id,
                        stream_id = %stream.stream_id,
                        jti = %jti_of(event.event_id),
                        refusal = %why,
                        "an SSF receiver refused a pushed event; it is not sent again"
                    );
                }
                PushAnswer::Failed(why) => {
                    failure = Some(why);
                    break;
                }
            }
            delivered.push(event.event_id);
        }
        let now = self.clock.now();
        let retry_at = failure.as_ref().map(|why| {
            let wait = push_backoff(stream.push_failures);
            tracing::warn!(
                receiver = %stream.client_id,
                // The origin only: a path or query may carry what the receiver put there.
                endpoint = %url::Url::parse(&push.url)
                    .map(|u| u.origin().ascii_serialization())
                    .unwrap_or_default(),
                error = %why,
                retry_in = wait,
                "pushing SSF events failed"
            );
            mcpauth_token_engine::UnixTime(now.0 + wait)
        });
        self.metrics.ssf_pushed(
            accepted,
            refused,
            failure.is_some(),
            pending
                .iter()
                .take(accepted + refused)
                .map(|e| e.occurred_at)
                .min(),
            now.0,
        );
        if let Err(e) = self
            .store
            .finish_push(&stream.stream_id, &lease, &delivered, retry_at, now)
            .await
        {
            // The lease lapses; what was delivered may come again (receivers apply it twice
            // harmlessly: a revocation is idempotent).
            tracing::warn!(error = %e, "releasing an SSF push stream failed");
        }
    }
}

/// Posts one Security Event Token (RFC 8935 §2.1) and reads the answer (§2.2-§2.4).
async fn push_one(client: &reqwest::Client, push: &PushEndpoint, set: String) -> PushAnswer {
    let mut request = client
        .post(&push.url)
        .header(header::CONTENT_TYPE, SECURITY_EVENT_TOKEN_MEDIA_TYPE)
        .header(header::ACCEPT, "application/json")
        .body(set);
    if let Some(authorization) = &push.authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return PushAnswer::Failed(format!("the receiver could not be reached: {e}")),
    };
    let status = response.status();
    if status.is_success() {
        return PushAnswer::Accepted;
    }
    if status == reqwest::StatusCode::BAD_REQUEST {
        // §2.3: a SET the receiver will never accept says why in `err` (read up to a bound).
        let mut response = response;
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_REFUSAL_BYTES {
                break;
            }
        }
        if let Some(err) = serde_json::from_slice::<Value>(&body)
            .ok()
            .as_ref()
            .and_then(|v| v.get("err"))
            .and_then(Value::as_str)
        {
            return PushAnswer::Refused(err.chars().take(64).collect());
        }
    }
    PushAnswer::Failed(format!("the receiver answered {status}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failing_push_waits_one_second_doubling_to_fifteen() {
        let waits: Vec<u64> = (0..8).map(super::push_backoff).collect();
        assert_eq!(waits, [1, 2, 4, 8, 15, 15, 15, 15]);
        assert_eq!(super::push_backoff(u32::MAX), 15);
    }
}
