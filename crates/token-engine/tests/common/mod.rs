//! Shared harness: an engine on the memory model, pinned time, a seeded random source, and a
//! registered public client.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test helpers"
)]

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, StatusCode};
use mcpauth_oauth_types::ClientMetadata;
use mcpauth_token_engine::ClientStore as _;
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{
    AuthorizeOutcome, EngineConfig, MemoryModel, PendingAuthorization, SigningKey, TokenEngine,
    UnixTime,
};
use serde_json::Value;

pub const NOW: UnixTime = UnixTime(1_800_000_000);
pub const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";
pub const RESOURCE: &str = "https://mcp.example.com/mcp";
pub const REDIRECT: &str = "http://127.0.0.1/callback";

pub fn signing_key() -> SigningKey {
    SigningKey::generate(mcpauth_token_engine::KeyAlgorithm::Es256).unwrap()
}

pub struct Harness {
    pub engine: TokenEngine<MemoryModel>,
    pub client_id: String,
}

pub async fn harness_with(configure: impl FnOnce(&mut EngineConfig)) -> Harness {
    let mut config = EngineConfig::new("https://auth.example.com".parse().unwrap()).unwrap();
    configure(&mut config);
    let engine = TokenEngine::new(
        config,
        Arc::new(MemoryModel::new()),
        signing_key(),
        Arc::new(SeededRandom::new(7)),
    );
    let mut metadata = ClientMetadata::default();
    metadata.redirect_uris = vec![REDIRECT.into(), "https://app.example.com/cb".into()];
    metadata.client_name = Some("Test client".into());
    let registered = engine.register_client(metadata, NOW).await.unwrap();
    Harness {
        engine,
        client_id: registered.client_id,
    }
}

pub async fn harness() -> Harness {
    harness_with(|_| {}).await
}

pub fn query(pairs: &[(&str, &str)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

impl Harness {
    pub fn authorize_query(&self, redirect_uri: &str) -> Vec<(&'static str, String)> {
        vec![
            ("response_type", "code".into()),
            ("client_id", self.client_id.clone()),
            ("redirect_uri", redirect_uri.into()),
            ("code_challenge", CHALLENGE.into()),
            ("code_challenge_method", "S256".into()),
            ("state", "xyz state".into()),
            ("scope", "mcp:tools".into()),
            ("resource", RESOURCE.into()),
        ]
    }

    pub async fn authorize(&self, pairs: &[(&str, String)]) -> AuthorizeOutcome {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.engine.authorize(&query(&pairs), NOW).await
    }

    pub async fn pending(&self) -> PendingAuthorization {
        match self
            .authorize(&self.authorize_query("http://127.0.0.1:49152/callback"))
            .await
        {
            AuthorizeOutcome::NeedsConsent(p) => p,
            other => panic!("expected consent, got {other:?}"),
        }
    }

    pub async fn code(&self) -> String {
        let redirect = self
            .engine
            .approve(self.pending().await, "alice", NOW)
            .await
            .unwrap();
        let url = url::Url::parse(&redirect.location).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned()
    }

    pub async fn token(&self, pairs: &[(&str, &str)]) -> (StatusCode, Value, http::HeaderMap) {
        let request = Request::post("/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Bytes::from(query(pairs)))
            .unwrap();
        let response = self.engine.token_endpoint(request, NOW.plus(1)).await;
        let status = response.status();
        let headers = response.headers().clone();
        (
            status,
            serde_json::from_slice(response.body()).unwrap_or(Value::Null),
            headers,
        )
    }

    pub async fn redeem(&self, code: &str) -> (StatusCode, Value) {
        let (status, body, _) = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", "http://127.0.0.1:49152/callback"),
                ("code_verifier", VERIFIER),
                ("client_id", &self.client_id),
            ])
            .await;
        (status, body)
    }

    pub async fn refresh_at(&self, refresh_token: &str, now: UnixTime) -> (StatusCode, Value) {
        let request = Request::post("/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Bytes::from(query(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", &self.client_id),
            ])))
            .unwrap();
        let response = self.engine.token_endpoint(request, now).await;
        (
            response.status(),
            serde_json::from_slice(response.body()).unwrap_or(Value::Null),
        )
    }
}

pub fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("")
}

pub fn redirect_params(outcome: &AuthorizeOutcome) -> Vec<(String, String)> {
    match outcome {
        AuthorizeOutcome::Redirect(r) => url::Url::parse(&r.location)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect(),
        other => panic!("expected a redirect, got {other:?}"),
    }
}

pub fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// Which endpoint of the engine to post a form to.
#[derive(Clone, Copy, Debug)]
pub enum Endpoint {
    Token,
    Revoke,
    Introspect,
}

impl Harness {
    /// Registers a confidential client (`client_secret_basic`) with these grant types.
    pub async fn confidential_client(
        &self,
        grant_types: &[&str],
        scope: Option<&str>,
    ) -> (String, String) {
        let mut metadata = ClientMetadata::default();
        metadata.token_endpoint_auth_method = Some("client_secret_basic".into());
        metadata.grant_types = grant_types.iter().map(|g| (*g).to_owned()).collect();
        metadata.scope = scope.map(str::to_owned);
        if grant_types.contains(&"authorization_code") {
            metadata.redirect_uris = vec![REDIRECT.into()];
        }
        let registered = self.engine.register_client(metadata, NOW).await.unwrap();
        (registered.client_id, registered.client_secret.unwrap())
    }

    /// A resource server: a confidential client the operator marked as one, so it may
    /// introspect (RFC 7662 §4).
    pub async fn resource_server(&self) -> (String, String) {
        let (id, secret) = self
            .confidential_client(&["client_credentials"], None)
            .await;
        let mut record = self
            .engine
            .model()
            .find_client(&id.as_str().into())
            .await
            .unwrap()
            .unwrap();
        record.resource_server = true;
        assert!(self.engine.model().update_client(record).await.unwrap());
        (id, secret)
    }

    /// Posts a form to an endpoint, with Basic credentials when given.
    pub async fn post(
        &self,
        endpoint: Endpoint,
        pairs: &[(&str, &str)],
        basic: Option<(&str, &str)>,
        now: UnixTime,
    ) -> (StatusCode, Value, http::HeaderMap) {
        let mut request =
            Request::post("/").header("content-type", "application/x-www-form-urlencoded");
        if let Some((id, secret)) = basic {
            request = request.header(
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
                ),
            );
        }
        let request = request.body(Bytes::from(query(pairs))).unwrap();
        let response = match endpoint {
            Endpoint::Token => self.engine.token_endpoint(request, now).await,
            Endpoint::Revoke => self.engine.revocation_endpoint(request, now).await,
            Endpoint::Introspect => self.engine.introspection_endpoint(request, now).await,
        };
        let status = response.status();
        let headers = response.headers().clone();
        (
            status,
            serde_json::from_slice(response.body()).unwrap_or(Value::Null),
            headers,
        )
    }
}

/// The `code` parameter of an authorization redirect.
pub fn code_of(location: &str) -> String {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

impl Harness {
    /// Runs the authorization request for `client_id` (redirect REDIRECT), approves it for
    /// `subject`, and returns the code.
    pub async fn code_for(&self, client_id: &str, subject: &str) -> String {
        let mut q = self.authorize_query(REDIRECT);
        q[1].1 = client_id.to_owned();
        let AuthorizeOutcome::NeedsConsent(pending) = self.authorize(&q).await else {
            panic!("consent expected for {client_id}");
        };
        code_of(
            &self
                .engine
                .approve(pending, subject, NOW)
                .await
                .unwrap()
                .location,
        )
    }
}
