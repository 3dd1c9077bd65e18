//! The server every suite runs against: an engine on the memory model with its clients, and
//! an interaction that approves at once.

use std::sync::Arc;

use bytes::Bytes;
use mcpauth_http::{AuthorizationServer, HttpResponse, Interaction, now};
use mcpauth_oauth_types::ClientMetadata;
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{
    AccessTokenFormat, EngineConfig, MemoryModel, PendingAuthorization, SigningKey, TokenEngine,
};

/// The redirect URI of the fixture's clients.
pub const REDIRECT: &str = "http://127.0.0.1:53682/callback";
/// The resource tokens are asked for.
pub const RESOURCE: &str = "http://127.0.0.1:3000/mcp";
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub(crate) const CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";

/// Approves every authorization as user `alice`, at once: the suite tests the HTTP surface,
/// not pages.
pub(crate) struct ApproveAsAlice(Arc<TokenEngine<MemoryModel>>);

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
    pub(crate) server: Arc<AuthorizationServer>,
    pub(crate) issuer: String,
    pub(crate) public_client: String,
    pub(crate) confidential_client: (String, String),
    /// A confidential client that is not a resource server.
    pub(crate) bystander: (String, String),
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
    pub(crate) async fn build(issuer: &str, format: AccessTokenFormat) -> Self {
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
                .find_client(&mcpauth_token_engine::ClientId::from(
                    confidential.client_id.as_str(),
                ))
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
    pub fn server(&self) -> Arc<AuthorizationServer> {
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
