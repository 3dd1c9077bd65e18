//! An MCP server (the official Rust SDK, `rmcp`, over streamable HTTP) protected by mcpauth.
//!
//! Every request to `/mcp` goes through [`BearerLayer`]: without a valid token for this
//! resource the client gets `401` with `WWW-Authenticate: Bearer resource_metadata="…"` and
//! discovers the authorization server from the RFC 9728 document this app also serves.
//! Tools read the verified identity from the request.

use std::sync::Arc;

use mcpauth_adapter_axum::{
    Authenticated, BearerLayer, MetadataRouter, ResourceServer, ResourceServerConfig,
};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};

/// Arguments of the `echo` tool.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct EchoRequest {
    /// Text to send back.
    pub text: String,
}

/// The example MCP server: two tools.
#[derive(Debug, Clone)]
pub struct ExampleServer {
    tool_router: ToolRouter<Self>,
}

impl Default for ExampleServer {
    fn default() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl ExampleServer {
    /// Who the access token says is calling.
    #[tool(
        description = "Tell who is calling: the user (sub), the client and the granted scope, from the verified access token"
    )]
    fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> String {
        match parts.extensions.get::<Authenticated>() {
            Some(Authenticated(token)) => serde_json::json!({
                "sub": token.subject,
                "client_id": token.client_id,
                "scope": token.scope.to_string(),
                "aud": token.audience,
            })
            .to_string(),
            None => "unauthenticated".into(),
        }
    }

    /// Echo.
    #[tool(description = "Send the text back")]
    fn echo(&self, Parameters(EchoRequest { text }): Parameters<EchoRequest>) -> String {
        text
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for ExampleServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("An example MCP server protected by mcpauth")
    }
}

/// The app: `/mcp` behind the bearer layer, plus the protected-resource metadata.
///
/// `resource` is this server's canonical URI (for example `http://127.0.0.1:3000/mcp`),
/// `issuer` the authorization server's issuer and `jwks_uri` its key set.
///
/// # Errors
///
/// When the resource identifier is unusable.
pub fn app(
    resource: &str,
    issuer: &str,
    jwks_uri: &str,
) -> Result<axum::Router, mcpauth_adapter_axum::ResourceServerError> {
    let mut config = ResourceServerConfig::new(resource, issuer, jwks_uri);
    config.resource_name = Some("mcpauth example MCP server".into());
    config.scopes_supported = vec!["mcp:tools".into()];
    let protection = Arc::new(ResourceServer::new(config)?);
    let host = url::Url::parse(resource)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let mcp = StreamableHttpService::new(
        || Ok(ExampleServer::default()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_allowed_hosts([
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            host,
        ]),
    );
    Ok(axum::Router::new()
        .nest_service("/mcp", mcp)
        .layer(BearerLayer::new(protection.clone()))
        .merge(protection.metadata_router()))
}
