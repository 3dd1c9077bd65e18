//! One black-box HTTP conformance suite for every web-framework adapter, the way
//! node-oidc-provider runs its suite under several frameworks: each adapter's test mounts the
//! same [`Fixture`] in its framework, serves it on loopback, and calls [`run`]. The suite sends
//! real HTTP requests and checks exact answers: status, headers, JSON error bodies.
//!
//! [`attacker`] is the other side: a suite that attacks a deployed server (the real
//! `mcpauth-server` in its tests) and the resource server that trusts it.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let base = format!("http://{}", listener.local_addr().unwrap());
//! let fixture = mcpauth_conformance::Fixture::new(&format!("{base}/tenant")).await;
//! // Mount `fixture.server()` in the framework under test (here axum) and serve it:
//! let app = mcpauth_adapter_axum::router(fixture.server())
//!     .into_make_service_with_connect_info::<std::net::SocketAddr>();
//! let server = tokio::spawn(async move { axum::serve(listener, app).await });
//! mcpauth_conformance::run(&base, &fixture).await; // panics listing every mismatch
//! server.abort();
//! # }
//! ```

#![allow(
    clippy::indexing_slicing,
    reason = "serde_json::Value indexing never panics (a missing key is Null); slices are indexed after a length check"
)]

pub mod attacker;

use std::sync::Arc;

use bytes::Bytes;
use mcpauth_http::{AuthorizationServer, HttpResponse, Interaction, now};
use mcpauth_oauth_types::ClientMetadata;
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{
    AccessTokenFormat, EngineConfig, MemoryModel, PendingAuthorization, SigningKey, TokenEngine,
};
use reqwest::StatusCode;
use serde_json::Value;

/// The redirect URI of the fixture's clients.
pub const REDIRECT: &str = "http://127.0.0.1:53682/callback";
/// The resource tokens are asked for.
pub const RESOURCE: &str = "http://127.0.0.1:3000/mcp";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";

/// Approves every authorization as user `alice`, at once: the suite tests the HTTP surface,
/// not pages.
struct ApproveAsAlice(Arc<TokenEngine<MemoryModel>>);

#[async_trait::async_trait]
impl Interaction for ApproveAsAlice {
    async fn begin(
        &self,
        pending: PendingAuthorization,
        _request: &http::request::Parts,
    ) -> HttpResponse {
        let mut response = http::Response::new(Bytes::new());
        match self.0.approve(pending, "alice", now()).await {
            Ok(redirect) => {
                *response.status_mut() = http::StatusCode::SEE_OTHER;
                if let Ok(location) = http::HeaderValue::from_str(&redirect.location) {
                    response
                        .headers_mut()
                        .insert(http::header::LOCATION, location);
                }
            }
            Err(_) => *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR,
        }
        response
    }
}

/// An engine on the memory model with a public and a confidential client, behind an
/// [`AuthorizationServer`] whose interaction approves at once.
pub struct Fixture {
    server: Arc<AuthorizationServer<MemoryModel>>,
    issuer: String,
    public_client: String,
    confidential_client: (String, String),
    /// A confidential client that is not a resource server.
    bystander: (String, String),
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// A fixture for `issuer` (where the test will serve it, with or without a path).
    ///
    /// # Panics
    ///
    /// When `issuer` is not a valid issuer or the key cannot be made: a broken test setup.
    pub async fn new(issuer: &str) -> Self {
        Self::build(issuer, AccessTokenFormat::Jwt).await
    }

    /// Like [`new`](Self::new), issuing opaque access tokens (checked by introspection).
    ///
    /// # Panics
    ///
    /// As [`new`](Self::new).
    pub async fn with_opaque_tokens(issuer: &str) -> Self {
        Self::build(issuer, AccessTokenFormat::Opaque).await
    }

    #[allow(clippy::expect_used, reason = "test setup")]
    async fn build(issuer: &str, format: AccessTokenFormat) -> Self {
        let mut config = EngineConfig::new(issuer.parse().expect("issuer URL")).expect("issuer");
        config.scopes_supported(vec!["mcp".into(), "admin".into()]);
        config.access_token_format(format);
        let der = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .expect("key generation");
        let key = SigningKey::es256_from_pkcs8_der(der.as_ref()).expect("key");
        let engine = Arc::new(TokenEngine::new(
            config,
            Arc::new(MemoryModel::new()),
            key,
            Arc::new(SeededRandom::new(11)),
        ));
        let mut public = ClientMetadata::default();
        public.redirect_uris = vec![REDIRECT.into()];
        public.token_endpoint_auth_method = Some("none".into());
        public.grant_types = vec!["authorization_code".into(), "refresh_token".into()];
        let public = engine
            .register_client(public, now())
            .await
            .expect("public client");
        let mut confidential = ClientMetadata::default();
        confidential.token_endpoint_auth_method = Some("client_secret_basic".into());
        confidential.grant_types = vec!["client_credentials".into()];
        let confidential = engine
            .register_client(confidential, now())
            .await
            .expect("confidential client");
        // The confidential client is also a resource server: it may introspect (RFC 7662 §4).
        {
            use mcpauth_token_engine::ClientStore as _;
            let model = engine.model();
            let mut record = model
                .find_client(&confidential.client_id)
                .await
                .expect("storage")
                .expect("the confidential client");
            record.resource_server = true;
            model.update_client(record).await.expect("storage");
        }
        let mut bystander = ClientMetadata::default();
        bystander.token_endpoint_auth_method = Some("client_secret_basic".into());
        bystander.grant_types = vec!["client_credentials".into()];
        let bystander = engine
            .register_client(bystander, now())
            .await
            .expect("bystander client");
        let server = AuthorizationServer::new(engine.clone(), Arc::new(ApproveAsAlice(engine)));
        Self {
            server: Arc::new(server),
            issuer: issuer.to_owned(),
            public_client: public.client_id,
            confidential_client: (
                confidential.client_id,
                confidential.client_secret.expect("secret"),
            ),
            bystander: (
                bystander.client_id,
                bystander.client_secret.expect("secret"),
            ),
        }
    }

    /// The service to mount in the framework under test.
    #[must_use]
    pub fn server(&self) -> Arc<AuthorizationServer<MemoryModel>> {
        self.server.clone()
    }

    /// The issuer.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The confidential client (`client_credentials`, `client_secret_basic`): id and secret.
    #[must_use]
    pub fn confidential_client(&self) -> (&str, &str) {
        (&self.confidential_client.0, &self.confidential_client.1)
    }
}

/// A request and what must come back.
struct Check {
    name: &'static str,
    failures: Vec<String>,
}

impl Check {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            failures: Vec::new(),
        }
    }

    fn expect(&mut self, ok: bool, what: impl std::fmt::Display) {
        if !ok {
            self.failures.push(format!("{}: {what}", self.name));
        }
    }

    fn status(&mut self, response: &Answer, expected: StatusCode) {
        self.expect(
            response.status == expected,
            format!(
                "status {} (expected {expected}); body {}",
                response.status, response.text
            ),
        );
    }

    fn header(&mut self, response: &Answer, name: &str, expected: &str) {
        let actual = response.header(name);
        self.expect(
            actual.as_deref() == Some(expected),
            format!("header {name}: {actual:?} (expected {expected:?})"),
        );
    }

    fn json_error(&mut self, response: &Answer, status: StatusCode, error: &str) {
        self.status(response, status);
        self.header(response, "cache-control", "no-store");
        self.expect(
            response
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            format!(
                "content-type {:?} (expected JSON)",
                response.header("content-type")
            ),
        );
        let body = response.json();
        self.expect(
            body["error"] == error,
            format!("error {} (expected {error})", body["error"]),
        );
        self.expect(
            body["error_description"].is_string(),
            "an error_description says what was wrong",
        );
    }

    fn common_headers(&mut self, response: &Answer, cors: bool) {
        self.header(response, "x-content-type-options", "nosniff");
        self.header(response, "x-frame-options", "DENY");
        self.header(response, "referrer-policy", "no-referrer");
        if cors {
            self.header(response, "access-control-allow-origin", "*");
        }
    }
}

/// A response, read whole.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    async fn from(response: reqwest::Response) -> Self {
        Self {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap_or_default(),
        }
    }

    /// Sends `request` and reads the answer; a request that got none is `418` with the
    /// reason as its text, so every check on it fails and says why.
    async fn of(request: reqwest::RequestBuilder) -> Self {
        match request.send().await {
            Ok(response) => Self::from(response).await,
            Err(e) => Self {
                status: StatusCode::IM_A_TEAPOT,
                headers: reqwest::header::HeaderMap::new(),
                text: format!("no answer: {e}"),
            },
        }
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

struct Suite<'a> {
    http: reqwest::Client,
    base: &'a str,
    fixture: &'a Fixture,
    issuer_path: String,
}

impl Suite<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{}{path}", self.base, self.issuer_path)
    }

    fn authorize_url(&self, pairs: &[(&str, &str)]) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        format!("{}?{query}", self.url("/authorize"))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        Answer::of(request).await
    }

    async fn metadata(&self) -> Check {
        let mut check = Check::new("RFC 8414 §3: metadata at the path-inserted well-known URL");
        let url = format!(
            "{}/.well-known/oauth-authorization-server{}",
            self.base, self.issuer_path
        );
        let answer = self.send(self.http.get(&url)).await;
        check.status(&answer, StatusCode::OK);
        check.common_headers(&answer, true);
        let metadata = answer.json();
        check.expect(
            metadata["issuer"] == self.fixture.issuer.as_str(),
            format!(
                "issuer {} (expected {})",
                metadata["issuer"], self.fixture.issuer
            ),
        );
        check.expect(
            metadata["token_endpoint"] == self.url("/token").as_str(),
            format!("token_endpoint {}", metadata["token_endpoint"]),
        );
        check.expect(
            metadata["code_challenge_methods_supported"] == serde_json::json!(["S256"]),
            "code_challenge_methods_supported is exactly [\"S256\"]",
        );
        let head = self.send(self.http.head(&url)).await;
        check.status(&head, StatusCode::OK);
        check.expect(head.text.is_empty(), "HEAD has no body");
        let preflight = self
            .send(
                self.http
                    .request(reqwest::Method::OPTIONS, &url)
                    .header("origin", "http://localhost:6274")
                    .header("access-control-request-method", "GET"),
            )
            .await;
        check.status(&preflight, StatusCode::NO_CONTENT);
        check.header(&preflight, "access-control-allow-origin", "*");
        check
    }

    async fn jwks(&self) -> Check {
        let mut check = Check::new("RFC 7517: the JWK Set publishes the signing key");
        let answer = self.send(self.http.get(self.url("/jwks.json"))).await;
        check.status(&answer, StatusCode::OK);
        check.common_headers(&answer, true);
        let keys = answer.json()["keys"].clone();
        check.expect(
            keys.as_array()
                .is_some_and(|k| k.len() == 1 && k[0]["d"].is_null()),
            format!("one public key, no private part: {keys}"),
        );
        check
    }

    async fn token_preflight_and_methods(&self) -> Check {
        let mut check = Check::new("CORS preflight and methods of the token endpoint");
        let preflight = self
            .send(
                self.http
                    .request(reqwest::Method::OPTIONS, self.url("/token"))
                    .header("origin", "http://localhost:6274")
                    .header("access-control-request-method", "POST"),
            )
            .await;
        check.status(&preflight, StatusCode::NO_CONTENT);
        check.header(&preflight, "access-control-allow-origin", "*");
        check.header(&preflight, "access-control-allow-methods", "POST, OPTIONS");
        let get = self.send(self.http.get(self.url("/token"))).await;
        check.json_error(&get, StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
        check.header(&get, "allow", "POST");
        check
    }

    async fn token_errors(&self) -> Check {
        let mut check = Check::new("RFC 6749 §5.2: token endpoint errors");
        let unsupported = self
            .send(self.http.post(self.url("/token")).form(&[
                ("grant_type", "password"),
                ("client_id", &self.fixture.public_client),
            ]))
            .await;
        check.json_error(
            &unsupported,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        );
        check.common_headers(&unsupported, true);
        let (id, _) = &self.fixture.confidential_client;
        let wrong_secret = self
            .send(
                self.http
                    .post(self.url("/token"))
                    .basic_auth(id, Some("not-the-secret"))
                    .form(&[("grant_type", "client_credentials")]),
            )
            .await;
        check.json_error(&wrong_secret, StatusCode::UNAUTHORIZED, "invalid_client");
        check.expect(
            wrong_secret
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Basic")),
            "a failed Basic authentication is challenged (RFC 6749 §5.2)",
        );
        let repeated = self
            .send(
                self.http
                    .post(self.url("/token"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials&grant_type=client_credentials"),
            )
            .await;
        check.json_error(&repeated, StatusCode::BAD_REQUEST, "invalid_request");
        let too_large = self
            .send(
                self.http
                    .post(self.url("/token"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!(
                        "grant_type=client_credentials&scope={}",
                        "a".repeat(mcpauth_http::MAX_BODY_BYTES + 1)
                    )),
            )
            .await;
        check.json_error(&too_large, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
        check
    }

    async fn client_credentials(&self) -> Check {
        let mut check = Check::new("RFC 6749 §4.4: client credentials");
        let (id, secret) = &self.fixture.confidential_client;
        let answer = self
            .send(
                self.http
                    .post(self.url("/token"))
                    .basic_auth(id, Some(secret))
                    .form(&[("grant_type", "client_credentials"), ("resource", RESOURCE)]),
            )
            .await;
        check.status(&answer, StatusCode::OK);
        check.header(&answer, "cache-control", "no-store");
        check.common_headers(&answer, true);
        let body = answer.json();
        check.expect(
            body["token_type"] == "Bearer",
            format!("token_type {}", body["token_type"]),
        );
        check.expect(body["access_token"].is_string(), "an access token");
        check.expect(
            body["refresh_token"].is_null(),
            "no refresh token for client credentials",
        );
        check
    }

    async fn authorization_code(&self) -> Check {
        let mut check = Check::new("RFC 6749 §4.1 + RFC 7636 + RFC 9207: authorization code");
        let client_id = &self.fixture.public_client;
        let authorize = self
            .send(self.http.get(self.authorize_url(&[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", REDIRECT),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("state", "xyz"),
                ("resource", RESOURCE),
            ])))
            .await;
        check.status(&authorize, StatusCode::SEE_OTHER);
        let location = authorize
            .header("location")
            .and_then(|l| url::Url::parse(&l).ok());
        let params: Vec<(String, String)> = location
            .map(|l| l.query_pairs().into_owned().collect())
            .unwrap_or_default();
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        check.expect(param("state").as_deref() == Some("xyz"), "state comes back");
        check.expect(
            param("iss").as_deref() == Some(self.fixture.issuer.as_str()),
            format!("iss {:?} (RFC 9207)", param("iss")),
        );
        let code = param("code").unwrap_or_default();
        let redeem = [
            ("grant_type", "authorization_code"),
            ("client_id", client_id.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ];
        let wrong_verifier = self
            .send(self.http.post(self.url("/token")).form(&[
                ("grant_type", "authorization_code"),
                ("client_id", client_id.as_str()),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &"x".repeat(43)),
            ]))
            .await;
        check.json_error(&wrong_verifier, StatusCode::BAD_REQUEST, "invalid_grant");
        let tokens = self
            .send(self.http.post(self.url("/token")).form(&redeem))
            .await;
        check.status(&tokens, StatusCode::OK);
        check.header(&tokens, "cache-control", "no-store");
        check.expect(
            tokens.json()["refresh_token"].is_string(),
            "a refresh token",
        );
        let replay = self
            .send(self.http.post(self.url("/token")).form(&redeem))
            .await;
        check.json_error(&replay, StatusCode::BAD_REQUEST, "invalid_grant");
        let refresh_token = tokens.json()["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let refreshed = self
            .send(self.http.post(self.url("/token")).form(&[
                ("grant_type", "refresh_token"),
                ("client_id", client_id.as_str()),
                ("refresh_token", refresh_token.as_str()),
            ]))
            .await;
        check.json_error(&refreshed, StatusCode::BAD_REQUEST, "invalid_grant");
        check
    }

    async fn authorization_errors(&self) -> Check {
        let mut check =
            Check::new("RFC 6749 §4.1.2.1: errors before redirect validation are shown");
        let answer = self
            .send(self.http.get(self.authorize_url(&[
                ("response_type", "code"),
                ("client_id", self.fixture.public_client.as_str()),
                ("redirect_uri", "https://evil.example/cb"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ])))
            .await;
        check.status(&answer, StatusCode::BAD_REQUEST);
        check.expect(answer.header("location").is_none(), "never redirected");
        check.expect(
            answer
                .header("content-type")
                .is_some_and(|c| c.starts_with("text/html")),
            "an HTML page",
        );
        check.expect(!answer.text.contains("<script"), "escaped");
        let redirected = self
            .send(self.http.get(self.authorize_url(&[
                ("response_type", "code"),
                ("client_id", self.fixture.public_client.as_str()),
                ("redirect_uri", REDIRECT),
                ("state", "s"),
            ])))
            .await;
        check.status(&redirected, StatusCode::SEE_OTHER);
        check.expect(
            redirected
                .header("location")
                .is_some_and(|l| l.starts_with(REDIRECT) && l.contains("error=invalid_request")),
            format!(
                "PKCE missing: redirected with invalid_request, got {:?}",
                redirected.header("location")
            ),
        );
        check
    }

    async fn registration(&self) -> Check {
        let mut check = Check::new("RFC 7591 / RFC 7592: registration and its management");
        let created = self
            .send(
                self.http
                    .post(self.url("/register"))
                    .json(&serde_json::json!({
                        "redirect_uris": [REDIRECT],
                        "client_name": "conformance",
                        "token_endpoint_auth_method": "none",
                    })),
            )
            .await;
        check.status(&created, StatusCode::CREATED);
        check.header(&created, "cache-control", "no-store");
        check.common_headers(&created, true);
        let client = created.json();
        let (Some(uri), Some(token)) = (
            client["registration_client_uri"].as_str(),
            client["registration_access_token"].as_str(),
        ) else {
            check.expect(false, format!("management fields missing: {client}"));
            return check;
        };
        let read = self.send(self.http.get(uri).bearer_auth(token)).await;
        check.status(&read, StatusCode::OK);
        check.expect(
            read.json()["client_id"] == client["client_id"],
            "reads itself",
        );
        let wrong = self.send(self.http.get(uri).bearer_auth("wrong")).await;
        check.status(&wrong, StatusCode::UNAUTHORIZED);
        let deleted = self.send(self.http.delete(uri).bearer_auth(token)).await;
        check.status(&deleted, StatusCode::NO_CONTENT);
        let bad = self
            .send(
                self.http
                    .post(self.url("/register"))
                    .json(&serde_json::json!({
                        "redirect_uris": ["javascript:alert(1)"],
                    })),
            )
            .await;
        check.json_error(&bad, StatusCode::BAD_REQUEST, "invalid_redirect_uri");
        check
    }

    async fn revocation_and_introspection(&self) -> Check {
        let mut check = Check::new("RFC 7009 / RFC 7662: revocation and introspection");
        let (id, secret) = &self.fixture.confidential_client;
        let token = self
            .send(
                self.http
                    .post(self.url("/token"))
                    .basic_auth(id, Some(secret))
                    .form(&[("grant_type", "client_credentials"), ("resource", RESOURCE)]),
            )
            .await
            .json()["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let introspect = |token: String| {
            self.http
                .post(self.url("/introspect"))
                .basic_auth(id, Some(secret))
                .form(&[("token", token)])
        };
        let active = self.send(introspect(token.clone())).await;
        check.status(&active, StatusCode::OK);
        check.expect(
            active.json()["active"] == true,
            format!("active: {}", active.text),
        );
        let unknown = self.send(introspect("nonsense".into())).await;
        check.expect(
            unknown.json()["active"] == false,
            "unknown tokens are inactive",
        );
        let anonymous = self
            .send(
                self.http
                    .post(self.url("/introspect"))
                    .form(&[("token", token.as_str())]),
            )
            .await;
        check.status(&anonymous, StatusCode::UNAUTHORIZED);
        let revoked = self
            .send(
                self.http
                    .post(self.url("/revoke"))
                    .basic_auth(id, Some(secret))
                    .form(&[("token", "not-a-token")]),
            )
            .await;
        check.status(&revoked, StatusCode::OK);
        check
    }

    /// A user's access token for `scope` at `resource`, through the authorization code flow
    /// of the public client (the fixture approves as `alice`); empty when the flow fails.
    async fn user_token(&self, scope: &str, resource: &str) -> String {
        let authorize = self
            .send(self.http.get(self.authorize_url(&[
                ("response_type", "code"),
                ("client_id", self.fixture.public_client.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("scope", scope),
                ("resource", resource),
            ])))
            .await;
        let code = authorize
            .header("location")
            .and_then(|l| url::Url::parse(&l).ok())
            .and_then(|l| {
                l.query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
            })
            .unwrap_or_default();
        self.send(self.http.post(self.url("/token")).form(&[
            ("grant_type", "authorization_code"),
            ("client_id", self.fixture.public_client.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ]))
        .await
        .json()["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The issue-21 rules every adapter must carry to the wire unchanged.
    async fn safe_defaults(&self) -> Check {
        let mut check = Check::new("DESIGN §3c: what an anonymous or unprivileged caller gets");
        // A self-registered client gets user-delegated grants only.
        let machine = self
            .send(
                self.http
                    .post(self.url("/register"))
                    .json(&serde_json::json!({
                        "grant_types": ["client_credentials"],
                        "token_endpoint_auth_method": "client_secret_post",
                        "scope": "mcp admin",
                    })),
            )
            .await;
        check.json_error(&machine, StatusCode::BAD_REQUEST, "invalid_client_metadata");
        // RFC 7591 §3.2.2: a registration nested beyond client metadata's needs is refused.
        let mut nested = serde_json::json!("leaf");
        for _ in 0..40 {
            nested = serde_json::json!({ "a": nested });
        }
        let deep = self
            .send(
                self.http
                    .post(self.url("/register"))
                    .json(&serde_json::json!({
                        "redirect_uris": [REDIRECT],
                        "x-deep": nested,
                    })),
            )
            .await;
        check.json_error(&deep, StatusCode::BAD_REQUEST, "invalid_client_metadata");
        // RFC 6749 §5.2: a malformed Basic header is a failed Basic authentication.
        for value in ["Basic", "Basic !!!not-base64", "Basic bm8tY29sb24="] {
            let answer = self
                .send(
                    self.http
                        .post(self.url("/token"))
                        .header("authorization", value)
                        .form(&[("grant_type", "client_credentials")]),
                )
                .await;
            check.json_error(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
            check.expect(
                answer
                    .header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Basic")),
                format!("`{value}` is challenged with WWW-Authenticate: Basic"),
            );
        }
        // An unsupported response_mode is refused before any code is issued.
        let fragment = self
            .send(self.http.get(self.authorize_url(&[
                ("response_type", "code"),
                ("client_id", self.fixture.public_client.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("response_mode", "fragment"),
                ("resource", RESOURCE),
            ])))
            .await;
        check.status(&fragment, StatusCode::SEE_OTHER);
        let location = fragment.header("location").unwrap_or_default();
        check.expect(
            location.contains("error=invalid_request") && !location.contains("code="),
            format!("response_mode=fragment: an error and no code, got {location}"),
        );
        // RFC 7662 §4: only resource servers introspect; others learn nothing.
        let (id, secret) = &self.fixture.confidential_client;
        let token = self
            .send(
                self.http
                    .post(self.url("/token"))
                    .basic_auth(id, Some(secret))
                    .form(&[("grant_type", "client_credentials"), ("resource", RESOURCE)]),
            )
            .await
            .json()["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (bystander, bystander_secret) = &self.fixture.bystander;
        let nosy = self
            .send(
                self.http
                    .post(self.url("/introspect"))
                    .basic_auth(bystander, Some(bystander_secret))
                    .form(&[("token", token.as_str())]),
            )
            .await;
        check.json_error(&nosy, StatusCode::FORBIDDEN, "unauthorized_client");
        check.expect(
            nosy.json().get("active").is_none(),
            "a refused introspection says nothing about the token",
        );
        // Tokens say whether a user stands behind them.
        let described = self
            .send(
                self.http
                    .post(self.url("/introspect"))
                    .basic_auth(id, Some(secret))
                    .form(&[("token", token.as_str())]),
            )
            .await;
        check.expect(
            described.json()["sub_type"] == "client",
            format!(
                "a client_credentials token is sub_type client: {}",
                described.text
            ),
        );
        let user = self.user_token("mcp", RESOURCE).await;
        let described = self
            .send(
                self.http
                    .post(self.url("/introspect"))
                    .basic_auth(id, Some(secret))
                    .form(&[("token", user.as_str())]),
            )
            .await;
        check.expect(
            described.json()["sub_type"] == "user",
            format!("a user's token is sub_type user: {}", described.text),
        );
        check
    }

    async fn unknown_client_config_path(&self) -> Check {
        let mut check = Check::new("RFC 7592: unknown registrations look like a wrong token");
        let answer = self
            .send(
                self.http
                    .get(self.url("/register/nobody"))
                    .bearer_auth("whatever"),
            )
            .await;
        check.status(&answer, StatusCode::UNAUTHORIZED);
        check
    }
}

/// A `client_credentials` access token for the fixture's confidential client, for `scope`
/// (empty: the default) and `resource`; empty when none comes back.
pub async fn client_credentials_token(
    http: &reqwest::Client,
    fixture: &Fixture,
    scope: &str,
    resource: &str,
) -> String {
    let (id, secret) = fixture.confidential_client();
    let answer = http
        .post(format!("{}/token", fixture.issuer()))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("resource", resource),
        ])
        .send()
        .await;
    match answer {
        Ok(response) => Answer::from(response).await.json()["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        Err(_) => String::new(),
    }
}

/// Sends `PUT path` to `address` with `length` bytes of body in chunks (no `Content-Length`,
/// so only a cap on the streaming body can stop it), and returns the answer's head, or `None`
/// when the server answered nothing.
async fn put_chunked(address: &str, path: &str, token: &str, length: usize) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n"
    );
    // The server may answer and close before the body is all sent: what it said counts.
    let mut sent = stream.write_all(head.as_bytes()).await;
    let chunk = [b' '; 4096];
    let mut left = length;
    while left > 0 && sent.is_ok() {
        let piece = chunk.get(..left.min(chunk.len())).unwrap_or_default();
        left -= piece.len();
        let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
        framed.extend_from_slice(piece);
        framed.extend_from_slice(b"\r\n");
        sent = stream.write_all(&framed).await;
    }
    if sent.is_ok() {
        let _ = stream.write_all(b"0\r\n\r\n").await;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    (!answer.is_empty()).then(|| answer.lines().next().unwrap_or_default().to_owned())
}

/// Largest body the protected endpoint of [`run_resource_server`] accepts.
pub const PROTECTED_MAX_BODY_BYTES: usize = 64 * 1024;

/// An HTTP client that reads redirects instead of following them: every "no `Location`"
/// check depends on it, so a client that cannot be built so stops the suite (a silently
/// redirect-following default would turn those checks green).
///
/// # Panics
///
/// When the TLS backend cannot be initialised.
#[allow(clippy::expect_used, reason = "the suite cannot run without it")]
pub(crate) fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client that does not follow redirects")
}

/// The protection every adapter's test puts in front of `/mcp` for [`run_resource_server`]:
/// resource `{base}/mcp`, issuer `base`, scope `mcp` required, the tool `admin_report` needing
/// `admin` as well, the tool `user_report` a user behind the token, bodies up to
/// [`PROTECTED_MAX_BODY_BYTES`].
#[must_use]
pub fn protected_mcp_config(base: &str) -> mcpauth_http::ResourceServerConfig {
    let mut config = mcpauth_http::ResourceServerConfig::new(
        format!("{base}/mcp"),
        base,
        format!("{base}/jwks.json"),
    )
    .tool_requires("admin_report", &["admin"])
    .tool_requires_user("user_report");
    config.required_scopes = vec!["mcp".into()];
    config.max_body_bytes = PROTECTED_MAX_BODY_BYTES;
    config
}

/// [`protected_mcp_config`] with [`require_user`](mcpauth_http::ResourceServerConfig::require_user)
/// on: the protection every adapter's test puts in front of `/mcp/people`, where every request
/// needs a user behind its token.
#[must_use]
pub fn people_only_mcp_config(base: &str) -> mcpauth_http::ResourceServerConfig {
    let mut config = protected_mcp_config(base);
    config.require_user = true;
    config
}

/// Checks a protected MCP endpoint mounted at `base` the way every adapter's test mounts it:
/// the authorization server of `fixture` at the root (issuer = `base`), `POST /mcp` protected
/// by [`protected_mcp_config`] and answering the token's subject followed by a newline and the
/// request body when there is one (the same for `PUT /mcp`), `POST /mcp/admin` requiring `mcp admin`, `POST /mcp/user`
/// requiring a user with the adapter's `requiring_user`, `POST /mcp/people` protected by
/// [`people_only_mcp_config`], and the RFC 9728
/// document at its well-known URLs. Panics listing every mismatch.
///
/// # Panics
///
/// When any answer differs from what the suite expects.
pub async fn run_resource_server(base: &str, fixture: &Fixture) {
    // Redirects are read, not followed (the authorization code comes back in one).
    let http = no_redirects();
    let resource = format!("{base}/mcp");
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource/mcp");
    let suite = Suite {
        http: http.clone(),
        base,
        fixture,
        issuer_path: String::new(),
    };
    let mut check = Check::new("RFC 6750 §3 / RFC 9728 §5.1 / MCP step-up: a protected endpoint");

    let anonymous = suite.send(http.post(&resource)).await;
    check.status(&anonymous, StatusCode::UNAUTHORIZED);
    check.header(
        &anonymous,
        "www-authenticate",
        &format!("Bearer resource_metadata=\"{metadata_url}\", scope=\"mcp\""),
    );
    check.header(&anonymous, "access-control-allow-origin", "*");
    check.header(
        &anonymous,
        "access-control-expose-headers",
        "www-authenticate",
    );

    let basic = client_credentials_token(&http, fixture, "mcp", &resource).await;
    let allowed = suite.send(http.post(&resource).bearer_auth(&basic)).await;
    check.status(&allowed, StatusCode::OK);
    check.expect(
        allowed.text == fixture.confidential_client().0,
        format!(
            "the handler sees the verified subject, got {:?}",
            allowed.text
        ),
    );

    // RFC 9700 §4.3 and OAuth 2.1 §5.1: a token in the URI ends up in logs and histories;
    // only the Authorization header is read (RFC 6750's query and form methods are gone).
    let in_query = suite
        .send(http.post(format!("{resource}?access_token={basic}")))
        .await;
    check.status(&in_query, StatusCode::UNAUTHORIZED);
    let in_form = suite
        .send(
            http.post(&resource)
                .form(&[("access_token", basic.as_str())]),
        )
        .await;
    check.status(&in_form, StatusCode::UNAUTHORIZED);

    let short = suite
        .send(http.post(format!("{resource}/admin")).bearer_auth(&basic))
        .await;
    check.status(&short, StatusCode::FORBIDDEN);
    let challenge = short.header("www-authenticate").unwrap_or_default();
    check.expect(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"mcp admin\"")
            && challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        format!("insufficient_scope naming every scope needed: {challenge}"),
    );

    let stepped_up = client_credentials_token(&http, fixture, "mcp admin", &resource).await;
    let admin = suite
        .send(
            http.post(format!("{resource}/admin"))
                .bearer_auth(&stepped_up),
        )
        .await;
    check.status(&admin, StatusCode::OK);

    // Step-up for a tool: the JSON-RPC body names a tool that needs more than the route.
    let call = |tool: &str| {
        serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": { "name": tool, "arguments": {} },
        })
        .to_string()
    };
    let post_json = |token: &str, body: String| {
        http.post(&resource)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
    };
    let echo = suite.send(post_json(&basic, call("echo"))).await;
    check.status(&echo, StatusCode::OK);
    check.expect(
        echo.text == format!("{}\n{}", fixture.confidential_client().0, call("echo")),
        format!(
            "the handler gets the body the protection read, got {:?}",
            echo.text
        ),
    );
    let tool_short = suite.send(post_json(&basic, call("admin_report"))).await;
    check.status(&tool_short, StatusCode::FORBIDDEN);
    let challenge = tool_short.header("www-authenticate").unwrap_or_default();
    check.expect(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"mcp admin\""),
        format!("a call of a tool needing more names the scopes held and needed: {challenge}"),
    );
    let tool_allowed = suite
        .send(post_json(&stepped_up, call("admin_report")))
        .await;
    check.status(&tool_allowed, StatusCode::OK);
    let batch = format!("[{},{}]", call("echo"), call("admin_report"));
    let batch_short = suite.send(post_json(&basic, batch)).await;
    check.status(&batch_short, StatusCode::FORBIDDEN);
    let too_large = suite
        .send(post_json(&basic, " ".repeat(PROTECTED_MAX_BODY_BYTES + 1)))
        .await;
    check.status(&too_large, StatusCode::PAYLOAD_TOO_LARGE);
    check.expect(
        too_large.json()["error"] == "invalid_request",
        format!("413 in the JSON error shape: {}", too_large.text),
    );

    // A body the protection does not read (a PUT here: only POSTs carry tool calls) streams
    // through, cut off at the limit when it does not declare its length.
    let address = base.trim_start_matches("http://");
    let under = put_chunked(address, "/mcp", &basic, PROTECTED_MAX_BODY_BYTES).await;
    check.expect(
        under
            .as_deref()
            .is_some_and(|r| r.starts_with("HTTP/1.1 200")),
        format!("a chunked body within the limit streams through: {under:?}"),
    );
    let over = put_chunked(address, "/mcp", &basic, PROTECTED_MAX_BODY_BYTES + 1).await;
    check.expect(
        over.as_deref()
            .is_some_and(|r| r.starts_with("HTTP/1.1 413")),
        format!("a chunked body past the limit is cut off with 413: {over:?}"),
    );

    // A tool that needs a user refuses a client's own token, whatever its scope (RFC 9470).
    let machine_call = suite
        .send(post_json(&stepped_up, call("user_report")))
        .await;
    check.status(&machine_call, StatusCode::UNAUTHORIZED);
    check.expect(
        machine_call
            .header("www-authenticate")
            .is_some_and(|c| c.contains("error=\"insufficient_user_authentication\"")),
        format!(
            "a user-only tool refuses a client_credentials token: {:?}",
            machine_call.header("www-authenticate")
        ),
    );
    let user = suite.user_token("mcp", &resource).await;
    let user_call = suite.send(post_json(&user, call("user_report"))).await;
    check.status(&user_call, StatusCode::OK);

    // Routes where every request needs a user: the adapter's per-route `requiring_user`, and
    // a protection whose configuration says `require_user`.
    for route in ["/mcp/user", "/mcp/people"] {
        let url = format!("{base}{route}");
        let machine = suite.send(http.post(&url).bearer_auth(&stepped_up)).await;
        check.status(&machine, StatusCode::UNAUTHORIZED);
        check.expect(
            machine
                .header("www-authenticate")
                .is_some_and(|c| c.contains("error=\"insufficient_user_authentication\"")),
            format!(
                "{route} refuses a client_credentials token: {:?}",
                machine.header("www-authenticate")
            ),
        );
        let person = suite.send(http.post(&url).bearer_auth(&user)).await;
        check.status(&person, StatusCode::OK);
    }

    // A body the check cannot read is refused, not waved through to a parser that might read
    // it (a lone surrogate JavaScript's JSON.parse takes, a byte-order mark Python takes).
    for body in [
        call("user_report").replace("{}", r#"{"x":"\ud800"}"#),
        format!("\u{feff}{}", call("admin_report")),
    ] {
        let unread = suite.send(post_json(&stepped_up, body.clone())).await;
        check.status(&unread, StatusCode::BAD_REQUEST);
        check.expect(
            unread.json()["error"]["code"] == -32700,
            format!(
                "an unreadable body is a JSON-RPC parse error: {body} -> {}",
                unread.text
            ),
        );
    }
    let compressed = suite
        .send(post_json(&stepped_up, call("user_report")).header("content-encoding", "gzip"))
        .await;
    check.status(&compressed, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // RFC 6750 §3.1: the Bearer scheme with no token is a malformed request.
    let empty = suite
        .send(http.post(&resource).header("authorization", "Bearer"))
        .await;
    check.status(&empty, StatusCode::BAD_REQUEST);
    check.expect(
        empty
            .header("www-authenticate")
            .is_some_and(|c| c.contains("error=\"invalid_request\"")),
        "Authorization: Bearer with no token is invalid_request",
    );

    let garbage = suite
        .send(http.post(&resource).bearer_auth("not.a.jwt"))
        .await;
    check.status(&garbage, StatusCode::UNAUTHORIZED);
    check.expect(
        garbage
            .header("www-authenticate")
            .is_some_and(|c| c.contains("error=\"invalid_token\"")),
        "a bad token is invalid_token",
    );
    let other_audience =
        client_credentials_token(&http, fixture, "mcp", "http://127.0.0.1:1/other").await;
    let refused = suite
        .send(http.post(&resource).bearer_auth(&other_audience))
        .await;
    check.status(&refused, StatusCode::UNAUTHORIZED);

    for url in [
        metadata_url.clone(),
        format!("{base}/.well-known/oauth-protected-resource"),
    ] {
        let document = suite.send(http.get(&url)).await;
        check.status(&document, StatusCode::OK);
        check.header(&document, "access-control-allow-origin", "*");
        let json = document.json();
        check.expect(
            json["resource"] == resource.as_str()
                && json["authorization_servers"][0] == fixture.issuer(),
            format!("RFC 9728 document at {url}: {json}"),
        );
    }
    assert_passed("conformance failures", [check]);
}

/// Runs every check against the server mounted at `base` (scheme, host and port; the issuer's
/// path comes from the fixture) and panics listing every mismatch.
///
/// # Panics
///
/// When any answer differs from what the suite expects.
pub async fn run(base: &str, fixture: &Fixture) {
    let issuer_path = url::Url::parse(&fixture.issuer)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let suite = Suite {
        http: no_redirects(),
        base,
        fixture,
        issuer_path,
    };
    let checks = [
        suite.metadata().await,
        suite.jwks().await,
        suite.token_preflight_and_methods().await,
        suite.token_errors().await,
        suite.client_credentials().await,
        suite.authorization_code().await,
        suite.authorization_errors().await,
        suite.registration().await,
        suite.revocation_and_introspection().await,
        suite.safe_defaults().await,
        suite.unknown_client_config_path().await,
    ];
    assert_passed("conformance failures", checks);
}

/// Panics listing every failure of `checks`, counted as `what`.
fn assert_passed(what: &str, checks: impl IntoIterator<Item = Check>) {
    let failures: Vec<String> = checks.into_iter().flat_map(|c| c.failures).collect();
    assert!(
        failures.is_empty(),
        "{} {what}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
