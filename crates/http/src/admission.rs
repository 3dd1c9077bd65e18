//! Admitting a request to a protected MCP server: one state machine for every framework.
//!
//! An adapter (or an application on a framework without one) calls
//! [`ResourceServer::admit`] with the request's method and headers and does what the
//! [`Admission`] says:
//!
//! 1. [`Refuse`](Admission::Refuse): send the response; the request goes no further (a
//!    refusal, or with [`cors`](crate::ResourceServerConfig::cors) on, the answer to a CORS
//!    preflight).
//! 2. [`Preflight`](Admission::Preflight): a CORS preflight, which carries no credentials,
//!    with [`cors`](crate::ResourceServerConfig::cors) off: forward it as it is.
//! 3. [`NeedsBody`](Admission::NeedsBody): some MCP tool has needs of its own, so the body is
//!    read before anything reaches the MCP server. Buffer at most
//!    [`limit`](PendingBody::limit) bytes; answer [`too_large`](PendingBody::too_large) past
//!    it, else [`check`](PendingBody::check) the bytes.
//! 4. [`Admit`](Admission::Admit): forward the request with [`Admitted::token`] where the
//!    handlers find it and its body cut off at [`Admitted::body_limit`] bytes as it streams;
//!    then hand the MCP server's response head to [`Admitted::finish`] (MCP sessions are
//!    bound to the token that opened them).
//!
//! In that order the checks are: the bearer token (RFC 6750, RFC 9068, or RFC 7662 for opaque
//! tokens) and the route's scopes (`403 insufficient_scope` for step-up), a user behind the
//! token where the route needs one (RFC 9470), the declared body length, the MCP session the
//! request names, the body's `Content-Encoding`, and the scopes and users the called tools
//! need.
//!
//! ```
//! use bytes::Bytes;
//! use mcpauth_http::{Admission, HttpResponse, ResourceServer, ResourceServerConfig, RouteRules, now};
//!
//! /// The glue of a framework without an adapter; `mcp` is the MCP server's handler.
//! async fn protect(
//!     resource: &ResourceServer,
//!     request: http::Request<Bytes>,
//!     mcp: impl AsyncFnOnce(http::Request<Bytes>) -> HttpResponse,
//! ) -> HttpResponse {
//!     let (mut parts, body) = request.into_parts();
//!     let admitted = match resource.admit(&parts.method, &parts.headers, &RouteRules::new(), now()).await {
//!         Admission::Refuse(refusal) => return refusal,
//!         Admission::Preflight => return mcp(http::Request::from_parts(parts, body)).await,
//!         // The body is already whole here; a streaming framework reads at most `limit()`.
//!         Admission::NeedsBody(pending) => match pending.check(&body) {
//!             Ok(admitted) => admitted,
//!             Err(refusal) => return refusal,
//!         },
//!         Admission::Admit(admitted) if body.len() > admitted.body_limit() => {
//!             return mcpauth_http::body_too_large();
//!         }
//!         Admission::Admit(admitted) => admitted,
//!     };
//!     parts.extensions.insert(admitted.token().clone());
//!     let response = mcp(http::Request::from_parts(parts, body)).await;
//!     admitted.finish(response.status(), response.headers());
//!     let mut response = response;
//!     resource.add_cors_headers(response.headers_mut());
//!     response
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let resource = ResourceServer::new(ResourceServerConfig::new(
//!     "https://mcp.example.com/mcp",
//!     "https://auth.example.com",
//!     "https://auth.example.com/jwks.json",
//! ))?;
//! let request = http::Request::post("/mcp").body(Bytes::from_static(b"{}"))?;
//! let response = protect(&resource, request, async |_| http::Response::new(Bytes::new())).await;
//! // No token: the challenge MCP clients discover the authorization server from.
//! assert_eq!(response.status(), 401);
//! assert!(response.headers()["www-authenticate"].to_str()?.contains("resource_metadata="));
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode};
use mcpauth_bearer::VerifiedToken;
use mcpauth_oauth_types::UnixTime;

use crate::HttpResponse;
use crate::resource_server::ResourceServer;
use crate::session_binding::{SESSION_HEADER, SessionTicket};

/// What one protected route requires beyond a valid token for this resource: the adapters'
/// `requiring` and `requiring_user`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteRules {
    scopes: Option<Arc<[String]>>,
    user: bool,
}

impl RouteRules {
    /// The resource's configured rules
    /// ([`required_scopes`](crate::ResourceServerConfig::required_scopes),
    /// [`require_user`](crate::ResourceServerConfig::require_user)).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `scopes` instead of the configured
    /// [`required_scopes`](crate::ResourceServerConfig::required_scopes).
    #[must_use]
    pub fn requiring(mut self, scopes: &[&str]) -> Self {
        self.scopes = Some(scopes.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    /// Requires a user behind the token: a client's own token (`client_credentials`) is
    /// answered `401 insufficient_user_authentication` (RFC 9470).
    #[must_use]
    pub fn requiring_user(mut self) -> Self {
        self.user = true;
        self
    }

    pub(crate) fn scopes<'a>(&'a self, configured: &'a [String]) -> Vec<&'a str> {
        self.scopes
            .as_deref()
            .unwrap_or(configured)
            .iter()
            .map(String::as_str)
            .collect()
    }

    pub(crate) fn needs_user(&self) -> bool {
        self.user
    }
}

/// What to do with a request to a protected MCP server; see the [module](self) docs.
#[must_use = "an admission says whether to refuse, read the body or forward the request"]
#[derive(Debug)]
pub enum Admission<'a> {
    /// Send this response; the request goes no further (a refusal, or the answer to a CORS
    /// preflight when [`cors`](crate::ResourceServerConfig::cors) is on).
    Refuse(HttpResponse),
    /// A CORS preflight (`OPTIONS`) with [`cors`](crate::ResourceServerConfig::cors) off: it
    /// carries no credentials; forward it as it is.
    Preflight,
    /// Read the body (at most [`PendingBody::limit`] bytes), then
    /// [`check`](PendingBody::check) it.
    NeedsBody(PendingBody<'a>),
    /// Forward the request; then [`finish`](Admitted::finish).
    Admit(Admitted<'a>),
}

/// A request whose body must be read and checked before it may go on.
#[derive(Debug)]
#[must_use = "read the body and check it, or answer too_large"]
pub struct PendingBody<'a> {
    admitted: Admitted<'a>,
}

impl<'a> PendingBody<'a> {
    /// The most bytes to buffer
    /// ([`max_body_bytes`](crate::ResourceServerConfig::max_body_bytes)); past it, answer
    /// [`too_large`](Self::too_large).
    #[must_use]
    pub fn limit(&self) -> usize {
        self.admitted.body_limit()
    }

    /// The verified token, for logging while the body is read.
    #[must_use]
    pub fn token(&self) -> &VerifiedToken {
        self.admitted.token()
    }

    /// The `413` answer for a body longer than [`limit`](Self::limit).
    #[must_use]
    pub fn too_large(self) -> HttpResponse {
        let mut refusal = crate::body_too_large();
        self.admitted
            .resource
            .add_cors_headers(refusal.headers_mut());
        refusal
    }

    /// Checks the tool calls in `body` against the token: `403 insufficient_scope` when it
    /// calls a tool with scopes the token lacks, `401 insufficient_user_authentication` when
    /// it calls a tool that needs a user with a token that has none, and a JSON-RPC parse
    /// error (`400`, code -32700) for a body that is not JSON here, whatever another parser
    /// makes of it. A body longer than the limit is answered `413`.
    ///
    /// # Errors
    ///
    /// The refusal to send.
    #[allow(
        clippy::result_large_err,
        reason = "the refusal is the response adapters send as is"
    )]
    pub fn check(self, body: &[u8]) -> Result<Admitted<'a>, HttpResponse> {
        if body.len() > self.limit() {
            return Err(self.too_large());
        }
        let admitted = self.admitted;
        match admitted.resource.refuse_tool_calls(&admitted.token, body) {
            Some(mut refusal) => {
                admitted.resource.add_cors_headers(refusal.headers_mut());
                Err(refusal)
            }
            None => Ok(admitted),
        }
    }
}

/// A request let through: forward it, then [`finish`](Self::finish) with the response.
#[derive(Debug)]
#[must_use = "forward the request, then call finish with the response"]
pub struct Admitted<'a> {
    pub(crate) resource: &'a ResourceServer,
    pub(crate) token: VerifiedToken,
    pub(crate) ticket: SessionTicket,
}

impl Admitted<'_> {
    /// The verified token: put it where handlers find it (the request's extensions).
    #[must_use]
    pub fn token(&self) -> &VerifiedToken {
        &self.token
    }

    /// The most body bytes to let through; cut a body that streams past it off (`413`, or
    /// an error the MCP server's body reader sees).
    #[must_use]
    pub fn body_limit(&self) -> usize {
        self.resource.max_body_bytes()
    }

    /// Records what the MCP server's response did to MCP sessions: a session it opened
    /// (its `Mcp-Session-Id` header) belongs to this token's subject and client; one a
    /// `DELETE` ended is forgotten.
    pub fn finish(self, status: StatusCode, headers: &HeaderMap) {
        let opened = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok());
        self.resource.record_session(self.ticket, status, opened);
    }
}

impl ResourceServer {
    /// Decides what happens to a request with `method` and `headers` on a route with
    /// `rules`, at `now`; see the [`Admission`] steps. Reaches the authorization server only
    /// through the [`KeySource`](crate::KeySource) (keys for a `kid` not seen yet, at most
    /// every 30 seconds; introspection for opaque tokens).
    pub async fn admit(
        &self,
        method: &Method,
        headers: &HeaderMap,
        rules: &RouteRules,
        now: UnixTime,
    ) -> Admission<'_> {
        match self.decide(method, headers, rules, now).await {
            // Every refusal readable by a browser-based client (`cors`): a 503 or a 413 is
            // as much its business as the 401.
            Admission::Refuse(mut refusal) => {
                self.add_cors_headers(refusal.headers_mut());
                Admission::Refuse(refusal)
            }
            other => other,
        }
    }

    async fn decide(
        &self,
        method: &Method,
        headers: &HeaderMap,
        rules: &RouteRules,
        now: UnixTime,
    ) -> Admission<'_> {
        if method == Method::OPTIONS {
            return if self.config().cors {
                Admission::Refuse(self.preflight_response(headers))
            } else {
                Admission::Preflight
            };
        }
        let scopes = rules.scopes(&self.config().required_scopes);
        let token = match self
            .authenticate_with_scopes(method, headers, &scopes, now)
            .await
        {
            Ok(token) => token,
            Err(refusal) => return Admission::Refuse(refusal),
        };
        if rules.needs_user()
            && let Some(refusal) = self.refuse_without_user(&token)
        {
            return Admission::Refuse(refusal);
        }
        if let Some(refusal) = self.refuse_declared_length(headers) {
            return Admission::Refuse(refusal);
        }
        let ticket = match self.check_session(method, headers, &token) {
            Ok(ticket) => ticket,
            Err(refusal) => return Admission::Refuse(refusal),
        };
        let admitted = Admitted {
            resource: self,
            token,
            ticket,
        };
        if !self.reads_body(method) {
            return Admission::Admit(admitted);
        }
        // A body this check would see compressed is refused before it is read.
        match self.refuse_encoded_body(headers) {
            Some(refusal) => Admission::Refuse(refusal),
            None => Admission::NeedsBody(PendingBody { admitted }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use base64::Engine as _;
    use bytes::Bytes;

    use super::*;
    use crate::{IntrospectionClient, KeySource, KeySourceError, ResourceServerConfig};

    /// A key source that counts what it is asked and knows no keys: the state machine's
    /// contract with its source, without a network.
    #[derive(Debug, Default)]
    struct CountingKeys {
        fetches: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl KeySource for CountingKeys {
        async fn jwk_set(&self, _: &str) -> Result<Bytes, KeySourceError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            Ok(Bytes::from_static(br#"{"keys":[]}"#))
        }

        async fn introspect(
            &self,
            _: &IntrospectionClient,
            _: &str,
        ) -> Result<Bytes, KeySourceError> {
            Err("no introspection here".into())
        }
    }

    fn protection(keys: Arc<CountingKeys>) -> ResourceServer {
        let config = ResourceServerConfig::new(
            "https://mcp.example.com/mcp",
            "https://auth.example.com",
            "https://auth.example.com/jwks.json",
        )
        .tool_requires("admin_report", &["admin"]);
        ResourceServer::with_key_source(config, keys).unwrap()
    }

    /// A JWT access token signed by a key (`kid`) the resource server has not seen.
    fn token_with_unknown_kid() -> String {
        let encode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.AAAA",
            encode(r#"{"alg":"ES256","typ":"at+jwt","kid":"k1"}"#),
            encode("{}")
        )
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    #[tokio::test]
    async fn a_cors_preflight_is_answered_without_credentials() {
        let resource = protection(Arc::default());
        let admission = resource
            .admit(
                &Method::OPTIONS,
                &HeaderMap::new(),
                &RouteRules::new(),
                UnixTime(0),
            )
            .await;
        let Admission::Refuse(answer) = admission else {
            panic!("with cors on, the preflight is answered here: {admission:?}");
        };
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
        assert_eq!(answer.headers()["access-control-allow-origin"], "*");
        let mut headers = HeaderMap::new();
        resource.add_cors_headers(&mut headers);
        assert!(
            headers["access-control-expose-headers"]
                .to_str()
                .unwrap()
                .contains("mcp-session-id")
        );
    }

    #[tokio::test]
    async fn with_cors_off_a_preflight_reaches_the_application_and_nothing_is_added() {
        let mut config = ResourceServerConfig::new(
            "https://mcp.example.com/mcp",
            "https://auth.example.com",
            "https://auth.example.com/jwks.json",
        );
        config.cors = false;
        let resource =
            ResourceServer::with_key_source(config, Arc::new(CountingKeys::default())).unwrap();
        let admission = resource
            .admit(
                &Method::OPTIONS,
                &HeaderMap::new(),
                &RouteRules::new(),
                UnixTime(0),
            )
            .await;
        assert!(matches!(admission, Admission::Preflight), "{admission:?}");
        let mut headers = HeaderMap::new();
        resource.add_cors_headers(&mut headers);
        assert!(headers.is_empty());
    }

    #[tokio::test]
    async fn a_request_without_a_token_is_refused_with_the_challenge() {
        let resource = protection(Arc::default());
        let Admission::Refuse(response) = resource
            .admit(
                &Method::POST,
                &HeaderMap::new(),
                &RouteRules::new(),
                UnixTime(0),
            )
            .await
        else {
            panic!("a request without a token must be refused");
        };
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(
            response.headers()[http::header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\"")
        );
    }

    // Started before its authorization server: while the keys cannot be fetched a token is
    // answered 503 (it may be fine), the next fetch comes a second later, backing off to 30 s,
    // and once the server is up the keys are fetched at the next try.
    #[tokio::test]
    async fn keys_that_could_not_be_fetched_are_tried_again_within_a_second() {
        let keys = Arc::new(SlowKeys::default());
        let config = ResourceServerConfig::new(
            "https://mcp.example.com/mcp",
            "https://auth.example.com",
            "https://auth.example.com/jwks.json",
        );
        let resource = ResourceServer::with_key_source(config, keys.clone()).unwrap();
        let headers = bearer(&token_with_unknown_kid());
        let rules = RouteRules::new();
        let status = |now| {
            let resource = &resource;
            let (headers, rules) = (&headers, &rules);
            async move {
                match resource
                    .admit(&Method::POST, headers, rules, UnixTime(now))
                    .await
                {
                    // A browser-based client reads a 503 as it reads a 401.
                    Admission::Refuse(response) => {
                        assert_eq!(response.headers()["access-control-allow-origin"], "*");
                        response.status()
                    }
                    other => panic!("{other:?}"),
                }
            }
        };
        // Down: fetched at 1000, 1001 (1 s), 1003 (2 s), 1007 (4 s); not in between.
        for (now, fetches) in [
            (1_000, 1),
            (1_000, 1),
            (1_001, 2),
            (1_002, 2),
            (1_003, 3),
            (1_007, 4),
        ] {
            assert_eq!(
                status(now).await,
                StatusCode::SERVICE_UNAVAILABLE,
                "at {now}"
            );
            assert_eq!(keys.fetches.load(Ordering::SeqCst), fetches, "at {now}");
        }
        keys.up.store(true, Ordering::SeqCst);
        // Up: the next try (8 s after the last) loads the keys; this token's key is not
        // among them, so it is refused as any unknown key is, and no fetch follows for 30 s.
        assert_eq!(status(1_015).await, StatusCode::UNAUTHORIZED);
        assert_eq!(keys.fetches.load(Ordering::SeqCst), 5);
        assert_eq!(status(1_040).await, StatusCode::UNAUTHORIZED);
        assert_eq!(keys.fetches.load(Ordering::SeqCst), 5);
    }

    /// A key source whose authorization server is down until `up` is set, and whose fetches
    /// wait for `release` while `hold` is set (a slow or blackholed server).
    #[derive(Debug, Default)]
    struct SlowKeys {
        up: std::sync::atomic::AtomicBool,
        hold: std::sync::atomic::AtomicBool,
        release: tokio::sync::Notify,
        fetches: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl KeySource for SlowKeys {
        async fn jwk_set(&self, _: &str) -> Result<Bytes, KeySourceError> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            if self.hold.load(Ordering::SeqCst) {
                self.release.notified().await;
            }
            if self.up.load(Ordering::SeqCst) {
                Ok(Bytes::from_static(br#"{"keys":[]}"#))
            } else {
                Err("timed out".into())
            }
        }

        async fn introspect(
            &self,
            _: &IntrospectionClient,
            _: &str,
        ) -> Result<Bytes, KeySourceError> {
            Err("no introspection here".into())
        }
    }

    async fn status_at(resource: &ResourceServer, now: u64) -> StatusCode {
        let headers = bearer(&token_with_unknown_kid());
        match resource
            .admit(&Method::POST, &headers, &RouteRules::new(), UnixTime(now))
            .await
        {
            Admission::Refuse(response) => response.status(),
            other => panic!("{other:?}"),
        }
    }

    // One fetch at a time: requests that arrive while it runs take its outcome instead of
    // fetching again, and once the keys are known to be unreachable they do not wait for a
    // slow fetch at all: they are answered 503 at once.
    #[tokio::test]
    async fn one_key_fetch_at_a_time_and_nobody_waits_on_an_unreachable_server() {
        let keys = Arc::new(SlowKeys::default());
        let config = ResourceServerConfig::new(
            "https://mcp.example.com/mcp",
            "https://auth.example.com",
            "https://auth.example.com/jwks.json",
        );
        let resource = Arc::new(ResourceServer::with_key_source(config, keys.clone()).unwrap());

        // Up but slow: the second request waits for the first one's fetch and uses it.
        keys.up.store(true, Ordering::SeqCst);
        keys.hold.store(true, Ordering::SeqCst);
        let first = tokio::spawn({
            let resource = resource.clone();
            async move { status_at(&resource, 1_000).await }
        });
        while keys.fetches.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let second = tokio::spawn({
            let resource = resource.clone();
            async move { status_at(&resource, 1_000).await }
        });
        tokio::task::yield_now().await;
        keys.release.notify_waiters();
        assert_eq!(first.await.unwrap(), StatusCode::UNAUTHORIZED);
        assert_eq!(second.await.unwrap(), StatusCode::UNAUTHORIZED);
        assert_eq!(keys.fetches.load(Ordering::SeqCst), 1);

        // Down (a fetch failed at 1 030); at 1 031 a slow fetch runs, and a request beside it
        // is answered 503 without waiting for it.
        keys.up.store(false, Ordering::SeqCst);
        keys.hold.store(false, Ordering::SeqCst);
        assert_eq!(
            status_at(&resource, 1_030).await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(keys.fetches.load(Ordering::SeqCst), 2);
        keys.hold.store(true, Ordering::SeqCst);
        let slow = tokio::spawn({
            let resource = resource.clone();
            async move { status_at(&resource, 1_031).await }
        });
        while keys.fetches.load(Ordering::SeqCst) == 2 {
            tokio::task::yield_now().await;
        }
        let beside = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            status_at(&resource, 1_031),
        )
        .await
        .expect("a request waited for a fetch from an unreachable server");
        assert_eq!(beside, StatusCode::SERVICE_UNAVAILABLE);
        keys.release.notify_waiters();
        assert_eq!(slow.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(keys.fetches.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn unknown_keys_are_fetched_at_most_every_30_seconds_of_the_callers_clock() {
        let keys = Arc::new(CountingKeys::default());
        let resource = protection(keys.clone());
        let headers = bearer(&token_with_unknown_kid());
        let rules = RouteRules::new();
        // A clock stepped back (to 900) fetches again rather than wait for it to catch up.
        for (now, fetches) in [
            (1_000, 1),
            (1_001, 1),
            (1_029, 1),
            (1_030, 2),
            (1_031, 2),
            (900, 3),
            (901, 3),
        ] {
            let admission = resource
                .admit(&Method::POST, &headers, &rules, UnixTime(now))
                .await;
            let Admission::Refuse(response) = admission else {
                panic!("a token signed by an unknown key must be refused");
            };
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(keys.fetches.load(Ordering::SeqCst), fetches, "at {now}");
        }
    }
}
