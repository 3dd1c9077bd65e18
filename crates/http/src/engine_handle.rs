//! The engine as the HTTP service calls it, without its model type: adapters and embedders
//! hold an `AuthorizationServer`, never an `AuthorizationServer<SqlStore>`.

use bytes::Bytes;
use mcpauth_token_engine::{
    AuthorizeOutcome, DocumentFetch, OAuthServerModel, RegistrationError, TokenEngine, UnixTime,
};
use url::Url;

use crate::response::HttpResponse;

/// A storage failure, with the model's own error inside.
pub(crate) type StorageError = Box<dyn std::error::Error + Send + Sync>;

/// Every engine call the service makes, object safe.
#[async_trait::async_trait]
pub(crate) trait EngineHandle: Send + Sync {
    fn issuer_path(&self) -> String;
    fn serves_device_flow(&self) -> bool;
    fn metadata_endpoint(&self) -> HttpResponse;
    fn jwks_endpoint(&self) -> HttpResponse;
    async fn token_endpoint(&self, request: http::Request<Bytes>, now: UnixTime) -> HttpResponse;
    async fn registration_endpoint(
        &self,
        request: http::Request<Bytes>,
        now: UnixTime,
    ) -> HttpResponse;
    async fn client_configuration_endpoint(
        &self,
        request: http::Request<Bytes>,
        client_id: &str,
        now: UnixTime,
    ) -> HttpResponse;
    async fn revocation_endpoint(
        &self,
        request: http::Request<Bytes>,
        now: UnixTime,
    ) -> HttpResponse;
    async fn introspection_endpoint(
        &self,
        request: http::Request<Bytes>,
        now: UnixTime,
    ) -> HttpResponse;
    async fn device_authorization_endpoint(
        &self,
        request: http::Request<Bytes>,
        now: UnixTime,
    ) -> HttpResponse;
    async fn authorize(&self, query: &[u8], now: UnixTime) -> AuthorizeOutcome;
    async fn allow_client_metadata_fetch(
        &self,
        caller: &str,
        now: UnixTime,
    ) -> Result<bool, StorageError>;
    async fn allow_client_metadata_refetch(
        &self,
        url: &Url,
        caller: &str,
        now: UnixTime,
    ) -> Result<bool, StorageError>;
    async fn stale_client_metadata_document(
        &self,
        client_id: &str,
        now: UnixTime,
    ) -> Result<Option<DocumentFetch>, StorageError>;
    async fn accept_client_metadata_document(
        &self,
        fetch: &DocumentFetch,
        document: &[u8],
        now: UnixTime,
        cache_until: UnixTime,
    ) -> Result<(), RegistrationError>;
}

#[async_trait::async_trait]
impl<M: OAuthServerModel + ?Sized + 'static> EngineHandle for TokenEngine<M> {
    fn issuer_path(&self) -> String {
        self.config()
            .issuer()
            .path()
            .trim_end_matches('/')
            .to_owned()
    }
    fn serves_device_flow(&self) -> bool {
        TokenEngine::serves_device_flow(self)
    }
    fn metadata_endpoint(&self) -> HttpResponse {
        TokenEngine::metadata_endpoint(self)
    }
    fn jwks_endpoint(&self) -> HttpResponse {
        TokenEngine::jwks_endpoint(self)
    }
    async fn token_endpoint(&self, request: http::Request<Bytes>, now: UnixTime) -> HttpResponse {
        TokenEngine::token_endpoint(self, request, now).await
    }
    async fn registration_endpoint(
        &self,
        request: http::Request<Bytes>,
        now: UnixTime,
    ) -> HttpResponse {
        TokenEngine::registration_endpoint(self, request, now).await
    }
    async fn client_configuration_endpoint(
        &self,
        request: http::Request<Bytes>,
        client_id: &str,
        now: UnixTime,
    ) -> HttpResponse {
        TokenEngine::client_configuration_endpoint(self, request, client_id, now).await
    }
    async fn revocation_endpoint(
        &self,
        request: http::Request<Bytes>,
        now: UnixTime,
    ) -> HttpResponse {
        TokenEngine::revocation_endpoint(self, request, now).await
    }
    async fn introspection_endpoint(
        &self,
        request: http::Request<Bytes>,
        now: UnixTime,
    ) -> HttpResponse {
        TokenEngine::introspection_endpoint(self, request, now).await
    }
    async fn device_authorization_endpoint(
        &self,
        request: http::Request<Bytes>,
        now: UnixTime,
    ) -> HttpResponse {
        TokenEngine::device_authorization_endpoint(self, request, now).await
    }
    async fn authorize(&self, query: &[u8], now: UnixTime) -> AuthorizeOutcome {
        TokenEngine::authorize(self, query, now).await
    }
    async fn allow_client_metadata_fetch(
        &self,
        caller: &str,
        now: UnixTime,
    ) -> Result<bool, StorageError> {
        Ok(TokenEngine::allow_client_metadata_fetch(self, caller, now).await?)
    }
    async fn allow_client_metadata_refetch(
        &self,
        url: &Url,
        caller: &str,
        now: UnixTime,
    ) -> Result<bool, StorageError> {
        Ok(TokenEngine::allow_client_metadata_refetch(self, url, caller, now).await?)
    }
    async fn stale_client_metadata_document(
        &self,
        client_id: &str,
        now: UnixTime,
    ) -> Result<Option<DocumentFetch>, StorageError> {
        Ok(TokenEngine::stale_client_metadata_document(self, client_id, now).await?)
    }
    async fn accept_client_metadata_document(
        &self,
        fetch: &DocumentFetch,
        document: &[u8],
        now: UnixTime,
        cache_until: UnixTime,
    ) -> Result<(), RegistrationError> {
        TokenEngine::accept_client_metadata_document(self, fetch, document, now, cache_until).await
    }
}
