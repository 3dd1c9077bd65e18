//! The MCP server both examples serve (the official Rust MCP SDK, `rmcp`), and the protection
//! they put in front of it. The framework wiring is in `examples/axum_mcp_server.rs` and
//! `examples/actix_mcp_server.rs`:
//!
//! ```text
//! cargo run -p mcpauth-server                       # the authorization server, :8080
//! cargo run --example axum_mcp_server               # or actix_mcp_server; :3000/mcp
//! ```
//!
//! Every request to `/mcp` needs a token for this resource with scope `mcp:tools`; calling the
//! `admin_report` tool needs `mcp:admin` as well, so a client that connected with the first
//! scope steps up: the call is answered `403` with `error="insufficient_scope"` and the
//! client asks the user for more. It also needs a user behind the token: a client's own
//! `client_credentials` token is refused (`401 insufficient_user_authentication`).

pub mod hyper_glue;

use std::sync::Arc;

use mcpauth_http::{ResourceServer, ResourceServerConfig, ResourceServerError, VerifiedToken};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};

/// The scope every request needs.
pub const TOOLS_SCOPE: &str = "mcp:tools";
/// The scope the `admin_report` tool needs as well.
pub const ADMIN_SCOPE: &str = "mcp:admin";

/// Where the example listens and which authorization server it trusts, from the environment:
/// `MCPAUTH_ISSUER` (default `http://127.0.0.1:8080`), `EXAMPLE_LISTEN` (default
/// `127.0.0.1:3000`; port 0 picks a free one) and `EXAMPLE_DPOP_NONCES` (`true`: DPoP proofs
/// must carry this server's nonce, RFC 9449 §9; default off).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The authorization server's issuer.
    pub issuer: String,
    /// The address to listen on.
    pub listen: String,
    /// The authorization server's JWK Set URL, from its metadata
    /// ([`Settings::check_authorization_server`]); else `{issuer}/jwks.json`.
    pub jwks_uri: Option<String>,
    /// Whether DPoP proofs must carry a nonce this server issued (RFC 9449 §9).
    pub dpop_nonces: bool,
    /// This MCP server's client id and secret at the authorization server (a resource server
    /// the operator added): with them it receives revocations from the authorization
    /// server's Shared Signals stream (`EXAMPLE_REVOCATION_CLIENT_ID`,
    /// `EXAMPLE_REVOCATION_CLIENT_SECRET`).
    pub revocation_client: Option<(String, String)>,
    /// With a revocation client: have the authorization server push events to
    /// `/ssf/push` on this server (RFC 8935) instead of polling for them
    /// (`EXAMPLE_REVOCATION_PUSH=true`; the authorization server must list this server's
    /// origin in `ssf_push_origins`).
    pub revocation_push: bool,
}

/// Whether the environment variable `name` says true, 1, yes or on.
fn switched_on(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| {
        ["true", "1", "yes", "on"]
            .iter()
            .any(|on| v.trim().eq_ignore_ascii_case(on))
    })
}

/// How long the check at start waits for the authorization server's metadata.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

impl Settings {
    /// Reads the environment.
    #[must_use]
    pub fn from_env() -> Self {
        Self {
            issuer: std::env::var("MCPAUTH_ISSUER")
                .unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
            listen: std::env::var("EXAMPLE_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into()),
            jwks_uri: None,
            dpop_nonces: switched_on("EXAMPLE_DPOP_NONCES"),
            revocation_client: std::env::var("EXAMPLE_REVOCATION_CLIENT_ID")
                .ok()
                .zip(std::env::var("EXAMPLE_REVOCATION_CLIENT_SECRET").ok()),
            revocation_push: switched_on("EXAMPLE_REVOCATION_PUSH"),
        }
    }

    /// Asks the authorization server `MCPAUTH_ISSUER` names for its RFC 8414 metadata
    /// before serving, so a wrong setting is named at once rather than as refused tokens
    /// later: an answer that is not an authorization server's, or one that names another
    /// issuer (tokens from it would be refused: RFC 8414 §3.3, the mix-up defence), is an
    /// error naming the variable. One that does not answer yet (started first) is a warning:
    /// the server starts, answers `503` to tokens until the keys can be fetched, and tries
    /// again within seconds. Keeps the metadata's `jwks_uri`.
    ///
    /// # Errors
    ///
    /// What to print, naming `MCPAUTH_ISSUER`.
    pub async fn check_authorization_server(&mut self) -> Result<(), String> {
        let issuer = self.issuer.trim_end_matches('/').to_owned();
        let metadata_url = match url::Url::parse(&issuer) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {
                // RFC 8414 §3.1: the well-known segment goes between the host and the path.
                let path = parsed.path().trim_end_matches('/');
                format!(
                    "{}/.well-known/oauth-authorization-server{path}",
                    parsed.origin().ascii_serialization()
                )
            }
            _ => {
                return Err(format!(
                    "MCPAUTH_ISSUER={issuer} is not an http(s) URL: set it to the authorization \
                     server's issuer, as mcpauth-server prints it at start (for example \
                     http://127.0.0.1:8080)"
                ));
            }
        };
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(CHECK_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        let response = match http.get(&metadata_url).send().await {
            Ok(response) => response,
            Err(e) if e.is_connect() || e.is_timeout() => {
                // On stderr whatever the log filter: this is what a newcomer needs to see.
                eprintln!(
                    "warning: the authorization server MCPAUTH_ISSUER={issuer} does not answer yet \
                     ({metadata_url}: {}). Tokens are answered 503 until it does; start it \
                     (cargo run -p mcpauth-server), or set MCPAUTH_ISSUER to its issuer",
                    mcpauth_oauth_types::said(&e)
                );
                return Ok(());
            }
            Err(e) => {
                return Err(format!(
                    "MCPAUTH_ISSUER={issuer}: fetching {metadata_url} failed: {}. Set \
                     MCPAUTH_ISSUER to the authorization server's issuer",
                    mcpauth_oauth_types::said(&e)
                ));
            }
        };
        let status = response.status();
        let document: Option<serde_json::Value> = if status == reqwest::StatusCode::OK {
            response.json().await.ok()
        } else {
            None
        };
        let Some(document) = document else {
            return Err(format!(
                "MCPAUTH_ISSUER={issuer} is not an OAuth authorization server: {metadata_url} \
                 answered HTTP {} without RFC 8414 metadata. Set MCPAUTH_ISSUER to the \
                 authorization server's issuer, as mcpauth-server prints it at start",
                status.as_u16()
            ));
        };
        let named = document.get("issuer").and_then(serde_json::Value::as_str);
        if named != Some(issuer.as_str()) {
            return Err(format!(
                "MCPAUTH_ISSUER={issuer}, but the authorization server there calls itself {}: \
                 tokens it issues name that issuer, and a resource server refuses tokens from an \
                 issuer it was not told to trust. Set MCPAUTH_ISSUER={}",
                named.unwrap_or("nothing (its metadata has no issuer)"),
                named.unwrap_or("its issuer")
            ));
        }
        match document.get("jwks_uri").and_then(serde_json::Value::as_str) {
            Some(jwks_uri) => self.jwks_uri = Some(jwks_uri.to_owned()),
            None => {
                return Err(format!(
                    "the authorization server MCPAUTH_ISSUER={issuer} publishes no jwks_uri: \
                     this example checks JWT access tokens against its keys"
                ));
            }
        }
        tracing::info!(%issuer, "the authorization server answers");
        Ok(())
    }
}

/// Binds `settings.listen` and builds the protection of the MCP server there, whose resource
/// identifier is its own URL (`http://{address}/mcp`, what tokens must name as their
/// audience): what each example does first.
///
/// # Errors
///
/// What to print: the address cannot be bound, or the protection cannot be built.
pub fn listen(
    settings: &Settings,
) -> Result<(std::net::TcpListener, String, Arc<ResourceServer>), String> {
    let listener = std::net::TcpListener::bind(&settings.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let resource = format!("http://{address}/mcp");
    let nonces = if settings.dpop_nonces {
        // One instance: a secret of its own (instances behind one URL would share one).
        let secret = mcpauth_token_engine::random_token(&mcpauth_token_engine::OsRandom)
            .map_err(|e| format!("no randomness for DPoP nonces: {e}"))?;
        Some(mcpauth_dpop::NonceSource::new(secret.as_bytes(), 60))
    } else {
        None
    };
    let revocation = settings.revocation_client.as_ref().map(|(id, secret)| {
        let stream =
            mcpauth_http::RevocationStream::new(settings.issuer.trim_end_matches('/'), id, secret);
        if settings.revocation_push {
            stream.push_to(&format!("http://{address}/ssf/push"))
        } else {
            stream
        }
    });
    let protection = protection_with_keys(
        &resource,
        &settings.issuer,
        settings.jwks_uri.clone(),
        nonces,
        revocation,
    )
    .map_err(|e| e.to_string())?;
    Ok((listener, resource, Arc::new(protection)))
}

/// [`listen`] for servers on tokio (axum, hyper): the listener as tokio's. Call it inside the
/// runtime.
///
/// # Errors
///
/// As [`listen`].
pub fn listen_tokio(
    settings: &Settings,
) -> Result<(tokio::net::TcpListener, String, Arc<ResourceServer>), String> {
    let (listener, resource, protection) = listen(settings)?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    Ok((listener, resource, protection))
}

/// The protection of the MCP server at `resource` (its canonical URI, such as
/// `http://127.0.0.1:3000/mcp`) by the authorization server `issuer`.
///
/// # Errors
///
/// When `resource` is not an https or loopback http URL.
pub fn protection(resource: &str, issuer: &str) -> Result<ResourceServer, ResourceServerError> {
    protection_with_keys(resource, issuer, None, None, None)
}

fn protection_with_keys(
    resource: &str,
    issuer: &str,
    jwks_uri: Option<String>,
    dpop_nonces: Option<mcpauth_dpop::NonceSource>,
    revocation: Option<mcpauth_http::RevocationStream>,
) -> Result<ResourceServer, ResourceServerError> {
    let issuer = issuer.trim_end_matches('/');
    let jwks_uri = jwks_uri.unwrap_or_else(|| format!("{issuer}/jwks.json"));
    let mut config = ResourceServerConfig::new(resource, issuer, jwks_uri)
        .tool_requires("admin_report", &[ADMIN_SCOPE])
        // An administrator's report is for a person who signed in and agreed, never for a
        // client's own (client_credentials) token, whatever its scope.
        .tool_requires_user("admin_report");
    config.required_scopes = vec![TOOLS_SCOPE.into()];
    config.dpop_nonces = dpop_nonces;
    config.revocation_stream = revocation;
    config.scopes_supported = vec![TOOLS_SCOPE.into(), ADMIN_SCOPE.into()];
    config.resource_name = Some("mcpauth example MCP server".into());
    ResourceServer::new(config)
}

/// The streamable-HTTP MCP service for the tools below, answering requests for `resource`'s
/// host (rmcp refuses other `Host` headers, against DNS rebinding).
#[must_use]
pub fn mcp_service(
    protection: Arc<ResourceServer>,
    resource: &str,
) -> StreamableHttpService<ExampleServer, LocalSessionManager> {
    let host = url::Url::parse(resource)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    StreamableHttpService::new(
        move || Ok(ExampleServer::new(protection.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_allowed_hosts([
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            host,
        ]),
    )
}

/// Arguments of the `echo` tool.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct EchoRequest {
    /// Text to send back.
    pub text: String,
}

/// The example MCP server: three tools.
#[derive(Debug, Clone)]
pub struct ExampleServer {
    protection: Arc<ResourceServer>,
    tool_router: ToolRouter<Self>,
}

impl ExampleServer {
    /// The server, checking tokens with `protection`.
    #[must_use]
    pub fn new(protection: Arc<ResourceServer>) -> Self {
        Self {
            protection,
            tool_router: Self::tool_router(),
        }
    }
}

/// The token the bearer layer or guard verified, from the HTTP request rmcp hands the tool.
fn token(parts: &http::request::Parts) -> Option<&VerifiedToken> {
    parts.extensions.get::<VerifiedToken>()
}

#[tool_router]
impl ExampleServer {
    /// Who the access token says is calling.
    #[tool(
        description = "Tell who is calling: the user (sub), the client and the granted scope, from the verified access token"
    )]
    fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> String {
        match token(&parts) {
            Some(token) => serde_json::json!({
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

    /// A tool that needs more than the connection's scope.
    #[tool(description = "An administrator's report; needs the mcp:admin scope")]
    fn admin_report(&self, Extension(parts): Extension<http::request::Parts>) -> CallToolResult {
        // The layer already refused calls without the scope (403, so the client steps up);
        // the tool checks again, because only it knows for sure which tool runs.
        match token(&parts) {
            Some(token) if token.scope.contains(ADMIN_SCOPE) && token.has_user() => {
                CallToolResult::success(vec![ContentBlock::text(format!(
                    "report for {}: all systems nominal",
                    token.subject
                ))])
            }
            _ => {
                let asked = self
                    .protection
                    .tool_authorization_required(&[ADMIN_SCOPE], "this tool needs mcp:admin");
                serde_json::from_value(asked).unwrap_or_else(|_| {
                    CallToolResult::error(vec![ContentBlock::text("this tool needs mcp:admin")])
                })
            }
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for ExampleServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("An example MCP server protected by mcpauth")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use super::*;

    fn server() -> ExampleServer {
        let protection = protection("http://127.0.0.1:3000/mcp", "http://127.0.0.1:8080").unwrap();
        ExampleServer::new(Arc::new(protection))
    }

    // Defence in depth: should a call reach the tool without the scope (a body the layer could
    // not read), the tool itself asks for it, in the tool result's `_meta`.
    #[test]
    fn admin_report_without_the_admin_scope_asks_for_it_in_the_result() {
        let (parts, ()) = http::Request::new(()).into_parts();
        let result = server().admin_report(Extension(parts));
        assert_eq!(result.is_error, Some(true));
        let value = serde_json::to_value(&result).unwrap();
        let challenge = value["_meta"]["mcp/www_authenticate"][0].as_str().unwrap();
        assert!(
            challenge.contains("error=\"insufficient_scope\"")
                && challenge.contains("scope=\"mcp:admin\"")
                && challenge.contains(
                    "resource_metadata=\"http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp\""
                ),
            "{challenge}"
        );
    }
}

/// The guides in `docs/`, whose Rust blocks run as this crate's doc tests
/// (`cargo test --doc -p mcpauth-examples`), so the code they show keeps compiling.
#[cfg(doctest)]
pub mod guides {
    #[doc = include_str!("../../docs/getting-started.md")]
    pub struct GettingStarted;
    #[doc = include_str!("../../docs/embedding.md")]
    pub struct Embedding;
    #[doc = include_str!("../../docs/custom-model.md")]
    pub struct CustomModel;
}
