//! Asking a URL whether it is an MCP server: `auth` first (without a token: is there
//! anything to authorize?), and `test` (with the token: does it answer MCP?).

use mcpauth_client::{BearerChallenge, said};
use serde_json::{Value, json};

/// The revision `mcpauth test` asks for first.
pub(crate) const MODERN_REVISION: &str = "2026-07-28";

/// What one MCP request got back.
pub(crate) struct Answer {
    pub(crate) status: u16,
    /// The JSON-RPC 2.0 response, if the body was one (plain JSON or a server-sent event).
    pub(crate) json_rpc: Option<Value>,
    /// The `Bearer` challenge of a `401`/`403` (RFC 6750 §3), if any.
    pub(crate) challenge: Option<BearerChallenge>,
    /// The response's media type, for saying what came back instead of MCP.
    pub(crate) content_type: Option<String>,
}

impl Answer {
    /// The server's name from a `server/discover` or `initialize` result.
    pub(crate) fn server_name(&self) -> Option<String> {
        self.json_rpc.as_ref().and_then(|b| {
            b.pointer("/result/_meta/io.modelcontextprotocol~1serverInfo/name")
                .or_else(|| b.pointer("/result/serverInfo/name"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
    }

    /// Whether this is an MCP (JSON-RPC 2.0) answer: a result or an error for our request.
    pub(crate) fn is_mcp(&self) -> bool {
        self.json_rpc.as_ref().is_some_and(|b| {
            b.get("jsonrpc").and_then(Value::as_str) == Some("2.0")
                && (b.get("result").is_some() || b.get("error").is_some())
        })
    }

    /// What came back, for a message: `HTTP 200 (text/html)`.
    pub(crate) fn described(&self) -> String {
        match &self.content_type {
            Some(kind) => format!("HTTP {} ({kind})", self.status),
            None => format!("HTTP {}", self.status),
        }
    }

    /// A refusal's reason as the server gave it (RFC 6750 §3.1), for a message.
    pub(crate) fn refusal(&self) -> String {
        match &self.challenge {
            Some(c) => match (&c.error, &c.error_description) {
                (Some(error), Some(description)) => format!("{error}: {description}"),
                (Some(error), None) => error.clone(),
                (None, _) => "a Bearer challenge without an error".into(),
            },
            None => "no Bearer challenge".into(),
        }
    }
}

/// Asks the MCP server at `url` who it is, with `token` if given: `server/discover`
/// (2026-07-28), then the `initialize` handshake when the server answers as an older revision
/// would.
pub(crate) async fn probe(url: &str, token: Option<Presented<'_>>) -> Result<Answer, String> {
    let client = mcpauth_client::ReqwestClient::new().map_err(|e| said(&e))?;
    let client_info = json!({ "name": "mcpauth", "version": env!("CARGO_PKG_VERSION") });
    let discover = json!({
        "jsonrpc": "2.0", "id": 1, "method": "server/discover",
        "params": { "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN_REVISION,
            "io.modelcontextprotocol/clientInfo": client_info,
            "io.modelcontextprotocol/clientCapabilities": {}
        } }
    });
    let answer = post_json(&client, url, token, &discover, Some(MODERN_REVISION)).await?;
    if (answer.status == 200 && answer.json_rpc.as_ref().is_some_and(|b| b.get("result").is_some()))
        // Refused, or not there at all: no point asking again in another revision.
        || matches!(answer.status, 401 | 403 | 404)
    {
        return Ok(answer);
    }
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": client_info }
    });
    post_json(&client, url, token, &initialize, None).await
}

/// Whether `url` publishes RFC 9728 protected-resource metadata (path-inserted, then at the
/// root), as an MCP server that needs authorization does.
pub(crate) async fn has_resource_metadata(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    let Ok(client) = mcpauth_client::ReqwestClient::new() else {
        return false;
    };
    // The places discovery looks, in its order (path-inserted, then the root).
    for candidate in mcpauth_client::discovery::protected_resource_candidates(&parsed, None) {
        let Ok(request) = http::Request::get(candidate.as_str()).body(Vec::new()) else {
            continue;
        };
        if let Ok(response) = mcpauth_client::HttpClient::send(&client, request).await
            && response.status() == http::StatusCode::OK
            && serde_json::from_slice::<Value>(response.body())
                .is_ok_and(|v| v.get("resource").and_then(Value::as_str).is_some())
        {
            return true;
        }
    }
    false
}

/// One JSON-RPC POST, with `token` if given: the status, the JSON answer (plain, or the
/// first server-sent event carrying it) and any Bearer challenge.
/// A token held by `client`, presented as it says (`Bearer`, or `DPoP` with a proof).
pub(crate) type Presented<'a> = (&'a mcpauth_client::OAuthClient, &'a str);

pub(crate) async fn post_json(
    client: &mcpauth_client::ReqwestClient,
    url: &str,
    token: Option<Presented<'_>>,
    body: &Value,
    revision: Option<&str>,
) -> Result<Answer, String> {
    let mut nonce_asked = false;
    let response = loop {
        let mut request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream");
        if let Some(revision) = revision {
            request = request.header("MCP-Protocol-Version", revision);
            if let Some(method) = body.get("method").and_then(|m| m.as_str()) {
                request = request.header("Mcp-Method", method);
            }
        }
        let mut request = request
            .body(body.to_string().into_bytes())
            .map_err(|e| said(&e))?;
        if let Some((auth, token)) = token {
            auth.resource_authorization(token, "POST", url)
                .await
                .and_then(|a| a.apply(request.headers_mut()))
                .map_err(|e| said(&e))?;
        }
        let response = mcpauth_client::HttpClient::send(client, request)
            .await
            .map_err(|e| said(&e))?;
        // RFC 9449 §9: a resource server that wants a nonce in proofs names it; once.
        let nonce = response
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            // A nonce is an opaque short string (RFC 9449 §8.1); a huge one is not kept.
            .filter(|v| !v.is_empty() && v.len() <= 512)
            .map(str::to_owned);
        match (token, nonce) {
            (Some((auth, _)), Some(nonce)) => {
                auth.set_resource_nonce(Some(nonce));
                let wants_nonce = BearerChallenge::from_headers(
                    response
                        .headers()
                        .get_all(http::header::WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok()),
                )
                .is_some_and(|c| c.is_use_dpop_nonce());
                if wants_nonce && !nonce_asked {
                    nonce_asked = true;
                    continue;
                }
                break response;
            }
            _ => break response,
        }
    };
    let status = response.status().as_u16();
    let challenge = BearerChallenge::from_headers(
        response
            .headers()
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
    let text = String::from_utf8_lossy(response.body());
    let json_text = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or(&text);
    Ok(Answer {
        status,
        json_rpc: serde_json::from_str(json_text.trim()).ok(),
        challenge,
        content_type,
    })
}

/// Before anyone signs in: is there an MCP server at `url` that wants authorization? It is
/// when an unauthenticated MCP request gets `401` with a `Bearer` challenge (MCP
/// authorization; RFC 9728 §5.1), or when the URL publishes protected-resource metadata.
pub(crate) async fn check_is_protected_mcp_server(url: &str) -> Result<(), String> {
    let answer = probe(url, None).await?;
    if answer.status == 401 && answer.challenge.is_some() {
        return Ok(());
    }
    if has_resource_metadata(url).await {
        return Ok(());
    }
    if answer.is_mcp() {
        return Err(format!(
            "{url} is an MCP server that asks for no authorization: it answered an MCP request \
             without a token, and publishes no protected-resource metadata. Use it without \
             `mcpauth auth`"
        ));
    }
    Err(format!(
        "{url} is not an MCP server that needs authorization: an MCP request without a token \
         got {}, not 401 with a Bearer challenge, and no protected-resource metadata \
         (RFC 9728) is published for it. Check the URL: it is the MCP endpoint itself, often \
         ending in /mcp",
        answer.described()
    ))
}
