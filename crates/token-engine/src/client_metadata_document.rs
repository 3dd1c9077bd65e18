//! Client ID Metadata Documents (MCP authorization 2025-11-25, draft-ietf-oauth-client-id-
//! metadata-document): a client whose `client_id` is an `https` URL publishes its metadata at
//! that URL.
//!
//! The engine stays sans-IO. [`TokenEngine::authorize`] answers
//! [`AuthorizeOutcome::NeedsClientMetadata`](crate::AuthorizeOutcome::NeedsClientMetadata)
//! with the URL; the caller fetches it (SSRF-safe: https only, no private or loopback
//! addresses, no redirects, small size cap, short timeout), hands the bytes to
//! [`TokenEngine::accept_client_metadata_document`], and calls `authorize` again. The
//! validated document is cached as a client record until `cache_until`.
//!
//! Validation: the document's `client_id` equals the URL exactly; redirect URIs follow the
//! registration policy; only `none` and `private_key_jwt` authenticate (a document is public,
//! so it cannot carry a secret); at most 5 KB.

use mcpauth_oauth_types::{ClientMetadata, OAuthError, RegistrationErrorCode};
use serde_json::Value;
use url::Url;

use crate::TokenEngine;
use crate::error::{RegistrationError, internal};
use crate::model::{ClientRecord, OAuthServerModel, TokenEndpointAuthMethod};
use crate::time::UnixTime;

/// Largest metadata document accepted, in bytes.
pub const MAX_CLIENT_METADATA_DOCUMENT_BYTES: usize = 5 * 1024;

/// Whether `client_id` has the shape of a Client ID Metadata Document URL: `https`, a host,
/// a path other than `/`, no fragment, no userinfo, no dot segments.
#[must_use]
pub fn is_client_metadata_document_url(client_id: &str) -> bool {
    let Ok(url) = Url::parse(client_id) else {
        return false;
    };
    url.scheme() == "https"
        && url.host().is_some()
        && url.path() != "/"
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
        && !client_id.split('/').any(|segment| segment == "." || segment == "..")
        // The URL must be used exactly as published: reject anything `url` would normalise.
        && url.as_str() == client_id
}

fn refuse(description: impl Into<std::borrow::Cow<'static, str>>) -> RegistrationError {
    OAuthError::new(RegistrationErrorCode::InvalidClientMetadata, description)
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// Validates a fetched Client ID Metadata Document for `client_id` and caches it as a
    /// client until `cache_until` (derive it from the response's caching headers, bounded).
    ///
    /// # Errors
    ///
    /// `invalid_client_metadata` (or `invalid_redirect_uri`) saying what is wrong; nothing is
    /// stored. `server_error` on storage failure.
    pub async fn accept_client_metadata_document(
        &self,
        client_id: &str,
        document: &[u8],
        now: UnixTime,
        cache_until: UnixTime,
    ) -> Result<(), RegistrationError> {
        if !self.config.client_metadata_documents {
            return Err(refuse(
                "this server does not accept Client ID Metadata Documents",
            ));
        }
        if !is_client_metadata_document_url(client_id) {
            return Err(refuse(
                "a metadata-document client_id must be an https URL with a path",
            ));
        }
        if document.len() > MAX_CLIENT_METADATA_DOCUMENT_BYTES {
            return Err(refuse("the client metadata document is larger than 5 KB"));
        }
        let raw: Value = serde_json::from_slice(document)
            .map_err(|_| refuse("the client metadata document is not JSON"))?;
        if raw.get("client_id").and_then(Value::as_str) != Some(client_id) {
            return Err(refuse(
                "the document's client_id must equal the URL it was fetched from",
            ));
        }
        if raw.get("client_secret").is_some() || raw.get("client_secret_expires_at").is_some() {
            return Err(refuse(
                "a client metadata document is public and must not contain a client secret",
            ));
        }
        let metadata = ClientMetadata::from_json(document).map_err(|e| refuse(e.to_string()))?;
        if !matches!(
            metadata.token_endpoint_auth_method.as_deref(),
            None | Some("none" | "private_key_jwt")
        ) {
            return Err(refuse(
                "a metadata-document client authenticates with none or private_key_jwt",
            ));
        }
        let (method, metadata) = self.validate_client_metadata(metadata)?;
        // Anyone can publish a document: it gets user-delegated grants only, never vouched.
        self.check_self_registered_grants(&metadata, false)?;
        let mut record = ClientRecord::new(client_id.to_owned(), method, metadata, now);
        debug_assert!(matches!(
            method,
            TokenEndpointAuthMethod::None | TokenEndpointAuthMethod::PrivateKeyJwt
        ));
        record.document_expires_at = Some(cache_until.max(now));
        let stored = match self
            .model
            .update_client(record.clone())
            .await
            .map_err(|e| internal("storage failure", e))?
        {
            true => Ok(()),
            false => self.model.insert_client(record).await,
        };
        stored.map_err(|e| internal("storage failure", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_metadata_document_urls() {
        assert!(is_client_metadata_document_url(
            "https://app.example.com/oauth/client.json"
        ));
        for not in [
            "https://app.example.com",
            "https://app.example.com/",
            "http://app.example.com/client.json",
            "https://app.example.com/client.json#x",
            "https://user@app.example.com/client.json",
            "https://app.example.com/a/../client.json",
            "https://APP.example.com/client.json",
            "my-client-id",
        ] {
            assert!(!is_client_metadata_document_url(not), "{not}");
        }
    }
}
