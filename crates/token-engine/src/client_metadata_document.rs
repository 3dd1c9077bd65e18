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
use crate::UnixTime;
use crate::error::{RegistrationError, internal};
use crate::model::{
    ClientId, ClientRecord, OAuthServerModel, RateLimitKey, TokenEndpointAuthMethod,
};

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

/// A Client ID Metadata Document the caller must fetch before the engine can go on: for an
/// authorization request (with the `redirect_uri` it named, checked against the document
/// before anything is stored), or at the token endpoint for a client whose cached document
/// went stale.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct DocumentFetch {
    url: Url,
    redirect_uri: Option<String>,
    authorization: bool,
}

impl DocumentFetch {
    /// The document's URL (the `client_id`): fetch it SSRF-safely.
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The document of an authorization request for `url` that named `redirect_uri` (the
    /// engine's [`NeedsClientMetadata`](crate::AuthorizeOutcome::NeedsClientMetadata)
    /// carries one; build one yourself only to hand the engine a document fetched ahead).
    pub fn for_authorization(url: Url, redirect_uri: Option<String>) -> Self {
        Self {
            url,
            redirect_uri,
            authorization: true,
        }
    }
}

/// Whether `client_id` names a document on the issuer's own origin, which is never a client
/// (the server would fetch from itself).
pub(crate) fn on_origin_of(client_id: &Url, issuer: &Url) -> bool {
    client_id.origin() == issuer.origin()
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// Validates a fetched Client ID Metadata Document for `fetch` and caches it as a client
    /// until `cache_until` (derive it from the response's caching headers, bounded). For an
    /// authorization request the document must list the `redirect_uri` the request named
    /// (or, when it named none, exactly one): otherwise nothing is stored.
    ///
    /// # Errors
    ///
    /// `invalid_client_metadata` (or `invalid_redirect_uri`) saying what is wrong; nothing is
    /// stored. `server_error` on storage failure.
    pub async fn accept_client_metadata_document(
        &self,
        fetch: &DocumentFetch,
        document: &[u8],
        now: UnixTime,
        cache_until: UnixTime,
    ) -> Result<(), RegistrationError> {
        let client_id = fetch.url.as_str();
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
        if on_origin_of(&fetch.url, &self.config.issuer) {
            return Err(refuse(
                "a client_id on this server's own origin is not a client metadata document",
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
        if fetch.authorization {
            let registered = &metadata.redirect_uris;
            let listed = match fetch.redirect_uri.as_deref() {
                Some(requested) => registered
                    .iter()
                    .any(|r| mcpauth_dcr::redirect_uri_matches(r, requested)),
                None => registered.len() == 1,
            };
            if !listed {
                return Err(OAuthError::new(
                    RegistrationErrorCode::InvalidRedirectUri,
                    "the document does not list the redirect_uri of the authorization request",
                ));
            }
        }
        let mut record = ClientRecord::new(ClientId::from(client_id), method, metadata, now);
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

    /// For the token endpoint (and the others a client authenticates at): the document to
    /// fetch again first, when `client_id` is a metadata-document client whose cached
    /// document has gone stale. Give the fetched bytes to
    /// [`Self::accept_client_metadata_document`]; when the fetch fails, the client's stale
    /// record is refused like an unknown client. Limit the fetches with
    /// [`Self::allow_client_metadata_fetch`] (per caller) and
    /// [`Self::allow_client_metadata_refetch`] (per document). `mcpauth-http` does all of this
    /// before the token and device-authorization endpoints; an adapter that calls the engine's
    /// endpoints directly must do it itself, or stale documents go on being trusted.
    ///
    /// # Errors
    ///
    /// The storage error.
    pub async fn stale_client_metadata_document(
        &self,
        client_id: &str,
        now: UnixTime,
    ) -> Result<Option<DocumentFetch>, M::Error> {
        if !self.config.client_metadata_documents || !is_client_metadata_document_url(client_id) {
            return Ok(None);
        }
        let stale = self
            .model
            .find_client(&ClientId::from(client_id))
            .await?
            .and_then(|c| c.document_expires_at)
            .is_some_and(|until| until <= now);
        Ok(stale
            .then(|| Url::parse(client_id).ok())
            .flatten()
            .map(|url| DocumentFetch {
                url,
                redirect_uri: None,
                authorization: false,
            }))
    }

    /// Counts one document fetch for `caller` (its [`CallerKey`](crate::CallerKey)) and says
    /// whether it is within the per-caller limit: the registration policy's
    /// `per_caller_per_hour`, counted apart from registrations (a fetch makes the server
    /// store a client just as a registration does).
    ///
    /// # Errors
    ///
    /// The storage error.
    pub async fn allow_client_metadata_fetch(
        &self,
        caller: &str,
        now: UnixTime,
    ) -> Result<bool, M::Error> {
        let hits = self
            .model
            .hit(&RateLimitKey::new("document-fetch", caller), now, 3600)
            .await?;
        Ok(hits <= self.config.registration.per_caller_per_hour)
    }

    /// Counts one fetch of the stale document at `url`, asked for by `caller` (its
    /// [`CallerKey`](crate::CallerKey)), and says whether it is within
    /// [`DOCUMENT_REFETCHES_PER_MINUTE`] for the document and the registration policy's
    /// `per_caller_per_hour` for the caller (counted apart from first fetches): a publisher
    /// that hangs or fails leaves its document stale, and without this every request naming
    /// the client would fetch it again.
    ///
    /// # Errors
    ///
    /// The storage error.
    pub async fn allow_client_metadata_refetch(
        &self,
        url: &Url,
        caller: &str,
        now: UnixTime,
    ) -> Result<bool, M::Error> {
        let for_document = self
            .model
            .hit(
                &RateLimitKey::new("document-refetch", url.as_str()),
                now,
                60,
            )
            .await?;
        if for_document > DOCUMENT_REFETCHES_PER_MINUTE {
            return Ok(false);
        }
        let for_caller = self
            .model
            .hit(
                &RateLimitKey::new("document-refetch-caller", caller),
                now,
                3600,
            )
            .await?;
        Ok(for_caller <= self.config.registration.per_caller_per_hour)
    }
}

/// How often one stale Client ID Metadata Document may be fetched again per minute, whoever
/// asks ([`TokenEngine::allow_client_metadata_refetch`]): enough for a client's concurrent
/// requests when its document expires, too few to hammer its publisher.
pub const DOCUMENT_REFETCHES_PER_MINUTE: u32 = 6;

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
