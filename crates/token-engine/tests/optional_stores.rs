//! A model that keeps neither device authorizations nor opaque access tokens compiles, and the
//! engine over it neither advertises nor serves what those stores would back.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, StatusCode};
use mcpauth_oauth_types::ClientMetadata;
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{
    AccessTokenFormat, AuthorizationCodeRecord, ClientId, ClientRecord, ClientStore, CodeStore,
    ConsumeCode, EngineConfig, GrantId, GrantRecord, GrantStore, MemoryModel, ModelBase,
    RateLimitKey, RateLimitStore, RefreshTokenRecord, RefreshTokenStore, ReplayStore,
    RotateRefresh, SecretHash, SigningKey, TokenEngine, UnixTime,
};

const NOW: UnixTime = UnixTime(1_800_000_000);

/// The required stores only, kept by a memory model it does not expose.
struct Minimal(MemoryModel);

impl ModelBase for Minimal {
    type Error = <MemoryModel as ModelBase>::Error;
}

#[async_trait]
impl ClientStore for Minimal {
    async fn find_client(&self, id: &ClientId) -> Result<Option<ClientRecord>, Self::Error> {
        self.0.find_client(id).await
    }
    async fn insert_client(&self, client: ClientRecord) -> Result<(), Self::Error> {
        self.0.insert_client(client).await
    }
    async fn update_client(&self, client: ClientRecord) -> Result<bool, Self::Error> {
        self.0.update_client(client).await
    }
    async fn delete_client(&self, id: &ClientId) -> Result<bool, Self::Error> {
        self.0.delete_client(id).await
    }
    async fn count_clients(&self) -> Result<u64, Self::Error> {
        self.0.count_clients().await
    }
}

#[async_trait]
impl GrantStore for Minimal {
    async fn insert_grant(&self, grant: GrantRecord) -> Result<(), Self::Error> {
        self.0.insert_grant(grant).await
    }
    async fn find_grant(&self, id: &GrantId) -> Result<Option<GrantRecord>, Self::Error> {
        self.0.find_grant(id).await
    }
    async fn revoke_grant(&self, id: &GrantId, now: UnixTime) -> Result<(), Self::Error> {
        self.0.revoke_grant(id, now).await
    }
    async fn revoke_client_grants(&self, id: &ClientId, now: UnixTime) -> Result<(), Self::Error> {
        self.0.revoke_client_grants(id, now).await
    }
}

#[async_trait]
impl CodeStore for Minimal {
    async fn insert_code(&self, code: AuthorizationCodeRecord) -> Result<(), Self::Error> {
        self.0.insert_code(code).await
    }
    async fn find_code(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<AuthorizationCodeRecord>, Self::Error> {
        self.0.find_code(hash).await
    }
    async fn consume_code(
        &self,
        hash: &SecretHash,
        now: UnixTime,
        refresh: Option<RefreshTokenRecord>,
    ) -> Result<ConsumeCode, Self::Error> {
        self.0.consume_code(hash, now, refresh).await
    }
}

#[async_trait]
impl RefreshTokenStore for Minimal {
    async fn insert_refresh(&self, token: RefreshTokenRecord) -> Result<(), Self::Error> {
        self.0.insert_refresh(token).await
    }
    async fn find_refresh(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<RefreshTokenRecord>, Self::Error> {
        self.0.find_refresh(hash).await
    }
    async fn rotate_refresh(
        &self,
        old: &SecretHash,
        new: RefreshTokenRecord,
        sealed_successor: Option<String>,
        now: UnixTime,
    ) -> Result<RotateRefresh, Self::Error> {
        self.0.rotate_refresh(old, new, sealed_successor, now).await
    }
}

#[async_trait]
impl RateLimitStore for Minimal {
    async fn hit(
        &self,
        key: &RateLimitKey,
        now: UnixTime,
        window: u64,
    ) -> Result<u32, Self::Error> {
        self.0.hit(key, now, window).await
    }
}

#[async_trait]
impl ReplayStore for Minimal {
    async fn remember_once(
        &self,
        key: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, Self::Error> {
        self.0.remember_once(key, expires_at, now).await
    }
}

fn engine(configure: impl FnOnce(&mut EngineConfig)) -> TokenEngine<Minimal> {
    let mut config = EngineConfig::new("https://auth.example.com".parse().unwrap()).unwrap();
    configure(&mut config);
    TokenEngine::new(
        config,
        Arc::new(Minimal(MemoryModel::new())),
        SigningKey::hs256(&[7; 32]).unwrap(),
        Arc::new(SeededRandom::new(7)),
    )
}

fn form(path: &str, pairs: &[(&str, &str)]) -> Request<Bytes> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Bytes::from(body))
        .unwrap()
}

#[tokio::test]
async fn without_a_device_store_the_device_flow_is_neither_advertised_nor_served() {
    let engine = engine(|_| {});
    assert!(!engine.serves_device_flow());
    let metadata = engine.metadata();
    assert!(metadata.device_authorization_endpoint.is_none());
    assert!(
        !metadata
            .grant_types_supported
            .iter()
            .any(|g| g == mcpauth_token_engine::DEVICE_CODE_GRANT)
    );
    // A grant the engine does not serve is not registered (RFC 7591 §2).
    let mut device_client = ClientMetadata::default();
    device_client.grant_types = vec![mcpauth_token_engine::DEVICE_CODE_GRANT.into()];
    device_client.token_endpoint_auth_method = Some("none".into());
    let refused = engine
        .register_client(device_client, NOW)
        .await
        .unwrap_err();
    assert_eq!(refused.code().as_str(), "invalid_client_metadata");
    let mut client = ClientMetadata::default();
    client.redirect_uris = vec!["http://127.0.0.1/cb".into()];
    client.token_endpoint_auth_method = Some("none".into());
    let client = engine.register_client(client, NOW).await.unwrap();
    let started = engine
        .device_authorization_endpoint(
            form("/device_authorization", &[("client_id", &client.client_id)]),
            NOW,
        )
        .await;
    assert_eq!(started.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = serde_json::from_slice(started.body()).unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
    let polled = engine
        .token_endpoint(
            form(
                "/token",
                &[
                    ("grant_type", mcpauth_token_engine::DEVICE_CODE_GRANT),
                    ("device_code", "anything"),
                    ("client_id", &client.client_id),
                ],
            ),
            NOW,
        )
        .await;
    let body: serde_json::Value = serde_json::from_slice(polled.body()).unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
    assert!(matches!(
        engine.device_lookup("WDJB-MJHT", "page", NOW).await,
        Err(mcpauth_token_engine::DeviceUserError::UnknownCode)
    ));
}

#[tokio::test]
async fn without_an_opaque_token_store_opaque_issuance_fails_and_says_why() {
    let engine = engine(|config| {
        config.access_token_format(AccessTokenFormat::Opaque);
    });
    let mut machine = ClientMetadata::default();
    machine.grant_types = vec!["client_credentials".into()];
    machine.token_endpoint_auth_method = Some("client_secret_post".into());
    let machine = engine.preregister_client(machine, NOW).await.unwrap();
    let secret = machine.client_secret.unwrap();
    let answer = engine
        .token_endpoint(
            form(
                "/token",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &machine.client_id),
                    ("client_secret", secret.as_str()),
                    ("resource", "https://mcp.example.com/mcp"),
                ],
            ),
            NOW,
        )
        .await;
    assert_eq!(
        answer.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        String::from_utf8_lossy(answer.body())
    );
    let cause = answer
        .extensions()
        .get::<mcpauth_token_engine::InternalError>()
        .map(|e| e.cause.clone())
        .unwrap_or_default();
    assert!(cause.contains("AccessTokenStore"), "{cause}");
}
