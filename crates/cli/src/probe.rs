//! `mcpauth test`: one MCP request to the server with the token, on the current protocol revision.

use mcpauth_client::said;
use serde_json::json;

/// The revision `mcpauth test` asks for first.
pub(crate) const MODERN_REVISION: &str = "2026-07-28";

/// Asks the MCP server at `url` who it is, with `token`: `server/discover` (2026-07-28),
/// then the `initialize` handshake when the server answers as an older revision would.
/// Returns the HTTP status and the server's name.
pub(crate) async fn probe(url: &str, token: &str) -> Result<(u16, Option<String>), String> {
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
    let (status, body) = post_json(&client, url, token, &discover, Some(MODERN_REVISION)).await?;
    if status == 200 && body.as_ref().is_some_and(|b| b.get("result").is_some()) {
        let name = body.as_ref().and_then(|b| {
            b.pointer("/result/_meta/io.modelcontextprotocol~1serverInfo/name")
                .or_else(|| b.pointer("/result/serverInfo/name"))
                .and_then(|n| n.as_str())
                .map(str::to_owned)
        });
        return Ok((status, name));
    }
    // The token was refused: no point asking again in another revision.
    if status == 401 || status == 403 {
        return Ok((status, None));
    }
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": client_info }
    });
    let (status, body) = post_json(&client, url, token, &initialize, None).await?;
    let name = body.and_then(|v| {
        v.pointer("/result/serverInfo/name")
            .and_then(|n| n.as_str())
            .map(str::to_owned)
    });
    Ok((status, name))
}

/// One JSON-RPC POST with `token`: the status and the JSON answer (plain, or the first
/// server-sent event carrying it).
pub(crate) async fn post_json(
    client: &mcpauth_client::ReqwestClient,
    url: &str,
    token: &str,
    body: &serde_json::Value,
    revision: Option<&str>,
) -> Result<(u16, Option<serde_json::Value>), String> {
    let mut request = http::Request::post(url)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, text/event-stream");
    if let Some(revision) = revision {
        request = request.header("MCP-Protocol-Version", revision);
        if let Some(method) = body.get("method").and_then(|m| m.as_str()) {
            request = request.header("Mcp-Method", method);
        }
    }
    let request = request
        .body(body.to_string().into_bytes())
        .map_err(|e| said(&e))?;
    let response = mcpauth_client::HttpClient::send(client, request)
        .await
        .map_err(|e| said(&e))?;
    let status = response.status().as_u16();
    let text = String::from_utf8_lossy(response.body());
    let json_text = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or(&text);
    Ok((status, serde_json::from_str(json_text.trim()).ok()))
}
