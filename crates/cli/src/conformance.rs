//! `mcpauth conformance URL`: the client under test of the official MCP conformance suite
//! (`@modelcontextprotocol/conformance`). The suite starts an MCP server and an
//! authorization server per scenario, and runs this with the server's URL; its
//! authorization endpoint approves at once, so the "browser" only follows redirects.

use std::sync::Arc;

use mcpauth_client::{MemoryStore, OAuthClient};
use serde::Deserialize;

use crate::FollowRedirects;
use mcpauth_client::said;

/// What the suite passes in `MCP_CONFORMANCE_CONTEXT` for some scenarios.
#[derive(Debug, Default, Deserialize)]
struct Context {
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    private_key_pem: Option<String>,
    #[serde(default)]
    signing_algorithm: Option<String>,
    /// Enterprise-managed authorization (SEP-990): the identity provider's token endpoint,
    /// this client's id there, and the user's ID token from signing in there.
    #[serde(default)]
    idp_token_endpoint: Option<String>,
    #[serde(default)]
    idp_client_id: Option<String>,
    #[serde(default)]
    idp_id_token: Option<String>,
    /// Workload identity (SEP-1933): the workload's token. (The suite also hands out a token
    /// for another audience and an expired one, which a workload would not present.)
    #[serde(default)]
    valid_jwt: Option<String>,
}

pub(crate) async fn run(url: &str, metadata_document: Option<&str>) -> Result<(), String> {
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    let context: Context = std::env::var("MCP_CONFORMANCE_CONTEXT")
        .ok()
        .map(|c| serde_json::from_str(&c).map_err(|e| format!("MCP_CONFORMANCE_CONTEXT: {e}")))
        .transpose()?
        .unwrap_or_default();
    eprintln!("conformance scenario `{scenario}` at {url}");
    let start = || {
        OAuthClient::builder(url)
            .client_name("mcpauth conformance client")
            .allow_loopback_http()
            .store(Arc::new(MemoryStore::default()))
            .browser(Arc::new(FollowRedirects))
    };
    let mut builder = start();
    if let Some(client_id) = &context.client_id {
        // The suite's credentials are for the authorization server it started: the one
        // its MCP server names, bound before they are used.
        let issuer = start()
            .build()
            .map_err(|e| said(&e))?
            .discover()
            .await
            .map_err(|e| format!("discovering the authorization server: {}", said(&e)))?
            .issuer()
            .to_owned();
        builder = match &context.private_key_pem {
            Some(pem) => builder.private_key_jwt(
                &issuer,
                client_id,
                pem,
                context.signing_algorithm.as_deref().unwrap_or("ES256"),
            ),
            None => builder.pre_registered(&issuer, client_id, context.client_secret.as_deref()),
        };
    }
    // The suite's machine-client scenarios (the client-credentials extension, SEP-1046).
    if scenario.starts_with("auth/client-credentials") {
        builder = builder.client_credentials();
    }
    if let (Some(endpoint), Some(idp_client), Some(id_token)) = (
        &context.idp_token_endpoint,
        &context.idp_client_id,
        &context.idp_id_token,
    ) {
        builder = builder.assertion(mcpauth_client::assertion::AssertionSource::EnterpriseIdp(
            mcpauth_client::assertion::EnterpriseIdp::with_id_token(
                endpoint, idp_client, None, id_token,
            ),
        ));
    }
    if let Some(workload_token) = &context.valid_jwt {
        builder = builder.assertion(mcpauth_client::assertion::AssertionSource::WorkloadToken(
            workload_token.clone(),
        ));
    }
    if let Some(document) = metadata_document {
        builder = builder.metadata_document(document);
    }
    let auth = Arc::new(builder.build().map_err(|e| said(&e))?);
    // `server/discover` first (2026-07-28), `initialize` for the older revisions' servers.
    let client = mcpauth_client::rmcp::connect((), auth)
        .await
        .map_err(|e| format!("connecting: {}", said(&e)))?;
    let tools = client
        .list_all_tools()
        .await
        .map_err(|e| format!("listing tools: {}", said(&e)))?;
    for tool in tools {
        let result = client
            .call_tool(rmcp::model::CallToolRequestParams::new(tool.name.clone()))
            .await;
        eprintln!(
            "called {}: {}",
            tool.name,
            if result.is_ok() { "ok" } else { "failed" }
        );
    }
    let _ = client.cancel().await;
    Ok(())
}
