//! RFC 9728: the protected-resource metadata document, at the path-inserted URL and the root.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
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
        // DPoP-bound tokens are taken with a proof by one of these (RFC 9449 §7).
        metadata.dpop_signing_alg_values_supported = self
            .dpop_policy
            .algorithm_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
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

/// Headers a browser-based MCP client reads from responses (MCP streamable HTTP, RFC 6750).
const EXPOSED_HEADERS: &str = "mcp-session-id, mcp-protocol-version, www-authenticate, dpop-nonce";
/// What a preflight may ask for when it names nothing (`Access-Control-Request-Headers`).
const ALLOWED_HEADERS: &str = "authorization, dpop, content-type, accept, mcp-protocol-version, mcp-session-id, last-event-id";

impl ResourceServer {
    /// The answer to a CORS preflight (`OPTIONS`) on a protected route or a metadata path:
    /// `204`, any origin, the methods of MCP's streamable HTTP transport, and the headers the
    /// preflight asks for (no credentials ride on them: tokens are sent explicitly, never as
    /// cookies). Adapters answer preflights with it when
    /// [`cors`](crate::ResourceServerConfig::cors) is on.
    #[must_use]
    pub fn preflight_response(&self, request_headers: &HeaderMap) -> HttpResponse {
        let mut response = http::Response::new(Bytes::new());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let asked = request_headers
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .filter(|v| v.len() <= 1024)
            .cloned()
            .unwrap_or(HeaderValue::from_static(ALLOWED_HEADERS));
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
        );
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        response
    }

    /// Makes a response of the protected MCP server readable from any origin, exposing its
    /// session, revision and challenge headers, when [`cors`](crate::ResourceServerConfig::cors)
    /// is on; headers the application set itself are kept.
    pub fn add_cors_headers(&self, headers: &mut HeaderMap) {
        if !self.config.cors {
            return;
        }
        headers
            .entry(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .or_insert(HeaderValue::from_static("*"));
        headers
            .entry(header::ACCESS_CONTROL_EXPOSE_HEADERS)
            .or_insert(HeaderValue::from_static(EXPOSED_HEADERS));
    }
}
