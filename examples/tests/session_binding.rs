//! MCP security best practices, "Session Hijacking": an MCP session serves only the user and
//! client whose token opened it. Against the real example binaries (rmcp's streamable-HTTP
//! server and its session manager, in axum and in actix-web) protected by mcpauth-server: a
//! second client with a valid token of its own cannot use the first one's `Mcp-Session-Id`;
//! the owner can, until it ends the session. Each example also answers browser clients'
//! CORS preflights and exposes the session header to them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test"
)]

use serde_json::{Value, json};

mod support;
use support::{Example, REGISTRATION_TOKEN, machine_token, tempdir};

const PROTOCOL_VERSION: &str = "2025-06-18";

/// A JSON-RPC message to the MCP endpoint, in a session when `session` is given.
async fn mcp(
    http: &reqwest::Client,
    resource: &str,
    token: &str,
    session: Option<&str>,
    message: &Value,
) -> reqwest::Response {
    let mut request = http
        .post(resource)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .json(message);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request.send().await.unwrap()
}

async fn a_session_serves_only_its_owner(example: Example) {
    let dir = tempdir(&format!("sessions-{example:?}"));
    let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", as_listener.local_addr().unwrap());
    let (mut mcp_server, resource) = example.start(&issuer).await;
    let mut config = mcpauth_server::Config::default();
    config.listen = as_listener.local_addr().unwrap();
    config.issuer = Some(issuer.clone());
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    config.resources = vec![resource.clone()];
    config.scopes_supported = vec!["mcp:tools".into(), "mcp:admin".into()];
    config.registration_token = Some(REGISTRATION_TOKEN.into());
    config.vouched_registration_grant_types = vec!["client_credentials".into()];
    config.vouched_client_scope = vec!["mcp:tools".into()];
    let server = mcpauth_server::build(&config).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let as_task = tokio::spawn(mcpauth_server::serve_on(as_listener, server, async {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::new();
    let owner = machine_token(&http, &issuer, &resource).await;
    let intruder = machine_token(&http, &issuer, &resource).await;

    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "session-test", "version": "1"}
        }
    });
    let opened = mcp(&http, &resource, &owner, None, &initialize).await;
    assert_eq!(opened.status(), 200, "{example:?}: initialize");
    // A browser-based client (the MCP Inspector connecting directly) reads the answer and
    // its session header, after preflights of the MCP route and of the metadata document.
    assert_eq!(opened.headers()["access-control-allow-origin"], "*");
    assert!(
        opened.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("mcp-session-id")
    );
    let metadata = resource.replacen("/mcp", "/.well-known/oauth-protected-resource/mcp", 1);
    for url in [&resource, &metadata] {
        let preflight = http
            .request(reqwest::Method::OPTIONS, url.as_str())
            .header("origin", "http://localhost:6274")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, mcp-protocol-version",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), 204, "{example:?}: preflight of {url}");
        assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    }
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    drop(opened.text().await);
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let acknowledged = mcp(&http, &resource, &owner, Some(&session), &initialized).await;
    assert_eq!(acknowledged.status(), 202, "{example:?}: initialized");

    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let hijack = mcp(&http, &resource, &intruder, Some(&session), &list).await;
    assert_eq!(
        hijack.status(),
        404,
        "{example:?}: another client's valid token must not reach this session"
    );
    assert_eq!(hijack.text().await.unwrap(), "Not Found: Session not found");

    let listed = mcp(&http, &resource, &owner, Some(&session), &list).await;
    assert_eq!(
        listed.status(),
        200,
        "{example:?}: the owner keeps its session"
    );
    assert!(listed.text().await.unwrap().contains("whoami"));

    // The intruder's own session works for the intruder.
    let own = mcp(&http, &resource, &intruder, None, &initialize).await;
    assert_eq!(own.status(), 200);
    assert_ne!(own.headers()["mcp-session-id"].to_str().unwrap(), session);

    // Ending the session: rmcp forgets it, and so does the binding.
    let ended = http
        .delete(&resource)
        .bearer_auth(&owner)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", PROTOCOL_VERSION)
        .send()
        .await
        .unwrap();
    assert!(
        ended.status().is_success(),
        "{example:?}: DELETE {}",
        ended.status()
    );
    let after = mcp(&http, &resource, &owner, Some(&session), &list).await;
    assert_eq!(after.status(), 404, "{example:?}: an ended session is gone");

    let _ = stop.send(());
    let _ = mcp_server.kill().await;
    let _ = as_task.await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_session_serves_only_the_client_that_opened_it_in_axum() {
    a_session_serves_only_its_owner(Example::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_session_serves_only_the_client_that_opened_it_in_actix() {
    a_session_serves_only_its_owner(Example::Actix).await;
}
