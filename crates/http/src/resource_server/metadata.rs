//! RFC 9728: the protected-resource metadata document, at the path-inserted URL and the root.

use bytes::Bytes;
use http::{HeaderValue, header};
use mcpauth_metadata::ProtectedResourceMetadata;

use super::config::ROOT_METADATA_PATH;
use crate::{HttpResponse, ResourceServer};

impl ResourceServer {
    /// The RFC 9728 document.
    #[must_use]
    pub fn metadata(&self) -> ProtectedResourceMetadata {
        let mut metadata = ProtectedResourceMetadata::new(
            self.config.resource.clone(),
            self.config.issuer.clone(),
        );
        metadata
            .scopes_supported
            .clone_from(&self.config.scopes_supported);
        metadata
            .resource_name
            .clone_from(&self.config.resource_name);
        metadata
    }

    /// The URL of the metadata document (what `resource_metadata` in challenges points to).
    #[must_use]
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// The paths to serve [`metadata_response`](Self::metadata_response) at: the
    /// path-inserted well-known URL (RFC 9728 §3.1) and the root well-known URL that older
    /// clients try.
    #[must_use]
    pub fn metadata_paths(&self) -> Vec<String> {
        let mut paths = vec![self.metadata_path.clone()];
        if self.metadata_path != ROOT_METADATA_PATH {
            paths.push(ROOT_METADATA_PATH.to_owned());
        }
        paths
    }

    /// The RFC 9728 document as a response: public, cacheable, readable cross-origin.
    #[must_use]
    pub fn metadata_response(&self) -> HttpResponse {
        let body = serde_json::to_vec(&self.metadata()).unwrap_or_default();
        let mut response = http::Response::new(Bytes::from(body));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
        response
    }
}
