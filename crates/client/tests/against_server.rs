//! The client against mcpauth-server and the example MCP server (the official Rust MCP SDK,
//! `rmcp`, behind mcpauth's bearer layer), in one process on loopback. The browser step is
//! done over HTTP: the test's `Browser` reads the sign-in and consent pages and posts them,
//! as a person would, then follows the redirect to the client's loopback listener.
//!
//! Proves: discovery from the 401, dynamic registration, PKCE through the loopback listener,
//! the token's audience and scope, calling the MCP server; 100 concurrent
//! `get_valid_token()` calls on an expiring token make exactly one refresh request; step-up
//! on `insufficient_scope` asks for the union of scopes; logout revokes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcpauth_client::http::HttpClient;
use mcpauth_client::{
    BearerChallenge, Browser, Error, MemoryStore, OAuthClient, ReqwestClient, TokenStore,
};
use serde_json::Value;
use url::Url;

mod support;
use support::*;

struct SharedBrowser(Arc<FormFillingBrowser>);

#[async_trait::async_trait]
impl Browser for SharedBrowser {
    async fn open(&self, url: &Url) -> Result<(), Error> {
        self.0.visits.fetch_add(1, Ordering::SeqCst);
        let browser = self.0.clone();
        let url = url.clone();
        tokio::spawn(async move { browser.walk(url).await });
        Ok(())
    }
}

/// Counts refresh requests on their way to the token endpoint.
struct Counting {
    inner: ReqwestClient,
    refreshes: AtomicUsize,
}

#[async_trait::async_trait]
impl HttpClient for Counting {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, Error> {
        if String::from_utf8_lossy(request.body()).contains("grant_type=refresh_token") {
            self.refreshes.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.send(request).await
    }
}

/// Calls `tool` at the MCP server with `token` as `client` presents it (a DPoP-bound token
/// with a fresh proof on each request): initialize, then the call in that session. Returns
/// the status of the first refused step, or of the call.
async fn call_tool(
    client: &OAuthClient,
    resource: &str,
    token: &str,
    tool: &str,
) -> reqwest::Response {
    let http = &reqwest::Client::new();
    let post = |body: Value, session: Option<String>| async move {
        let mut headers = http::HeaderMap::new();
        client
            .resource_authorization(token, "POST", resource)
            .await
            .unwrap()
            .apply(&mut headers)
            .unwrap();
        let mut request = http
            .post(resource)
            .headers(headers)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        request.send().await
    };
    let initialized = post(
        serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": { "name": "client-test", "version": "1" }
            }
        }),
        None,
    )
    .await
    .unwrap();
    if !initialized.status().is_success() {
        return initialized;
    }
    let session = initialized.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    post(
        serde_json::json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }),
        Some(session.clone()),
    )
    .await
    .unwrap();
    post(
        serde_json::json!({
            "jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": { "name": tool, "arguments": {} }
        }),
        Some(session),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_discovers_registers_authorizes_refreshes_once_steps_up_and_logs_out() {
    let dir = std::env::temp_dir().join(format!("mcpauth-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let servers = start(&dir).await;
    let person = Arc::new(FormFillingBrowser::default());
    let http = Arc::new(Counting {
        inner: ReqwestClient::new().unwrap(),
        refreshes: AtomicUsize::new(0),
    });
    let store = Arc::new(MemoryStore::default());
    let client = Arc::new(
        OAuthClient::builder(&servers.resource)
            .client_name("Client Test")
            .allow_loopback_http()
            .http(http.clone())
            .store(store.clone())
            .browser(Arc::new(SharedBrowser(person.clone())))
            .build()
            .unwrap(),
    );

    // Discovery from the 401: the example server's metadata, mcpauth's issuer, its scope.
    let discovered = client.discover().await.unwrap();
    assert_eq!(discovered.issuer(), servers.issuer);
    assert_eq!(discovered.resource, servers.resource);
    assert_eq!(discovered.scope.as_deref(), Some("mcp:tools"));

    // First token: registration, the browser, the loopback listener, the code exchange.
    let token = client.get_valid_token().await.unwrap();
    assert_eq!(person.visits.load(Ordering::SeqCst), 1);
    assert_eq!(person.sign_ins.load(Ordering::SeqCst), 1);
    let access = claims(&token);
    assert_eq!(access["aud"], servers.resource.as_str());
    assert_eq!(access["scope"], "mcp:tools");
    let credentials = store
        .load_credentials(&servers.issuer)
        .await
        .unwrap()
        .expect("the registration is kept per authorization server");
    assert_eq!(credentials.token_endpoint_auth_method, "none");
    assert_eq!(
        client.get_valid_token().await.unwrap(),
        token,
        "held, not refreshed"
    );
    let whoami = call_tool(&client, &servers.resource, &token, "whoami").await;
    assert_eq!(whoami.status(), 200);

    // The token is about to expire: 100 callers at once make exactly one refresh.
    let mut held = store
        .load_tokens(&servers.issuer, &servers.resource)
        .await
        .unwrap()
        .unwrap();
    held.expires_at = Some(0);
    store
        .save_tokens(&servers.issuer, &servers.resource, &held)
        .await
        .unwrap();
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get_valid_token().await.unwrap() })
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        tokens.push(caller.await.unwrap());
    }
    assert_eq!(
        http.refreshes.load(Ordering::SeqCst),
        1,
        "one refresh for 100 callers"
    );
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_ne!(tokens[0], token);
    assert_eq!(
        person.visits.load(Ordering::SeqCst),
        1,
        "no new authorization"
    );

    // Step-up: the admin tool needs mcp:admin; the client asks for the union.
    let refused = call_tool(&client, &servers.resource, &tokens[0], "admin_report").await;
    assert_eq!(refused.status(), 403);
    let challenge = BearerChallenge::from_headers(
        refused
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap()),
    )
    .unwrap();
    assert!(challenge.is_insufficient_scope());
    let stepped = client.step_up(&challenge).await.unwrap();
    let scopes = claims(&stepped)["scope"].as_str().unwrap().to_owned();
    assert!(
        scopes.contains("mcp:tools") && scopes.contains("mcp:admin"),
        "{scopes}"
    );
    assert_eq!(
        person.sign_ins.load(Ordering::SeqCst),
        1,
        "the browser session was kept"
    );
    assert_eq!(
        call_tool(&client, &servers.resource, &stepped, "admin_report")
            .await
            .status(),
        200
    );

    // Logout revokes: the old refresh token no longer works, and nothing is held.
    let before_logout = store
        .load_tokens(&servers.issuer, &servers.resource)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        client.logout().await.unwrap(),
        mcpauth_client::LoggedOut::Revoked
    );
    // Said once: a second logout has nothing to revoke.
    assert_eq!(
        client.logout().await.unwrap(),
        mcpauth_client::LoggedOut::NothingHeld
    );
    assert!(
        store
            .load_tokens(&servers.issuer, &servers.resource)
            .await
            .unwrap()
            .is_none()
    );
    let refused = reqwest::Client::new()
        .post(format!("{}/token", servers.issuer))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                before_logout.refresh_token.as_deref().unwrap(),
            ),
            ("client_id", credentials.client_id.as_str()),
            ("resource", servers.resource.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");

    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child side of the multi-process test: one `get_valid_token()` on the shared store,
/// printing the token and how many refresh requests this process sent.
async fn child(store_dir: &str, resource: &str) {
    let http = Arc::new(Counting {
        inner: ReqwestClient::new().unwrap(),
        refreshes: AtomicUsize::new(0),
    });
    let client = OAuthClient::builder(resource)
        .allow_loopback_http()
        .http(http.clone())
        .store(Arc::new(
            mcpauth_client::FileStore::open(store_dir, mcpauth_client::KeySource::Key([9; 32]))
                .unwrap(),
        ))
        .browser(Arc::new(NoBrowser))
        .build()
        .unwrap();
    let token = client.get_valid_token().await.unwrap();
    // On lines of their own: libtest prints the test's name first.
    println!("\nTOKEN={token}");
    println!("REFRESHES={}", http.refreshes.load(Ordering::SeqCst));
}

struct NoBrowser;

#[async_trait::async_trait]
impl Browser for NoBrowser {
    async fn open(&self, url: &Url) -> Result<(), Error> {
        panic!("a child process must not need the browser: {url}");
    }
}

// Several processes sharing one encrypted file store, each asking for a token that is about
// to expire: exactly one refresh request in all (the store's per-entry lock), and every
// process ends with the same fresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_file_store_refresh_once() {
    if let (Ok(dir), Ok(resource)) = (
        std::env::var("MCPAUTH_CLIENT_TEST_CHILD_STORE"),
        std::env::var("MCPAUTH_CLIENT_TEST_CHILD_RESOURCE"),
    ) {
        child(&dir, &resource).await;
        return;
    }
    let dir = std::env::temp_dir().join(format!("mcpauth-client-procs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let servers = start(&dir).await;
    let store_dir = dir.join("store");
    let store = Arc::new(
        mcpauth_client::FileStore::open(&store_dir, mcpauth_client::KeySource::Key([9; 32]))
            .unwrap(),
    );
    let person = Arc::new(FormFillingBrowser::default());
    let client = OAuthClient::builder(&servers.resource)
        .allow_loopback_http()
        .store(store.clone())
        .browser(Arc::new(SharedBrowser(person)))
        .build()
        .unwrap();
    let first = client.get_valid_token().await.unwrap();
    let mut held = store
        .load_tokens(&servers.issuer, &servers.resource)
        .await
        .unwrap()
        .unwrap();
    held.expires_at = Some(0);
    store
        .save_tokens(&servers.issuer, &servers.resource, &held)
        .await
        .unwrap();

    let children: Vec<_> = (0..4)
        .map(|_| {
            tokio::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "processes_sharing_a_file_store_refresh_once",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("MCPAUTH_CLIENT_TEST_CHILD_STORE", &store_dir)
                .env("MCPAUTH_CLIENT_TEST_CHILD_RESOURCE", &servers.resource)
                .kill_on_drop(true)
                .output()
        })
        .collect();
    let mut tokens = Vec::new();
    let mut refreshes = 0;
    let mut outputs = Vec::new();
    for child in children {
        let output = child.await.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        outputs.push(format!(
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        for line in stdout.lines() {
            if let Some(token) = line.strip_prefix("TOKEN=") {
                tokens.push(token.to_owned());
            }
            if let Some(n) = line.strip_prefix("REFRESHES=") {
                refreshes += n.parse::<usize>().unwrap();
            }
        }
    }
    assert_eq!(tokens.len(), 4, "{outputs:?}");
    assert_eq!(refreshes, 1, "one refresh across four processes");
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    assert_ne!(tokens[0], first);
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}

// RFC 8628 end to end: the client shows the code, a person approves it on the device page,
// the client's polling gets tokens for the resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_flow_gets_tokens_once_the_code_is_approved() {
    let dir = std::env::temp_dir().join(format!("mcpauth-client-device-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let servers = start(&dir).await;
    let person = Arc::new(FormFillingBrowser::default());
    let client = OAuthClient::builder(&servers.resource)
        .client_name("Device Test")
        .allow_loopback_http()
        .browser(Arc::new(NoBrowser))
        .build()
        .unwrap();
    let shown = Arc::new(Mutex::new(None));
    let show = {
        let person = person.clone();
        let shown = shown.clone();
        move |code: &mcpauth_client::device::DeviceCode| {
            *shown.lock().unwrap() = Some(code.user_code.clone());
            let complete = code.verification_uri_complete.clone().unwrap();
            let person = person.clone();
            tokio::spawn(async move { person.approve_device_code(complete).await });
        }
    };
    let tokens = client.authorize_device(None, &show).await.unwrap();
    assert!(shown.lock().unwrap().is_some());
    let access = claims(&tokens.access_token);
    assert_eq!(access["aud"], servers.resource.as_str());
    assert_eq!(access["scope"], "mcp:tools");
    assert!(tokens.refresh_token.is_some());
    // Held now: no further authorization needed.
    assert_eq!(client.get_valid_token().await.unwrap(), tokens.access_token);
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A machine with no browser (no display): the code goes to a person elsewhere.
struct Headless(Arc<FormFillingBrowser>);

#[async_trait::async_trait]
impl Browser for Headless {
    async fn open(&self, url: &Url) -> Result<(), Error> {
        panic!("a headless machine opened {url}");
    }

    fn opens_on_this_machine(&self) -> bool {
        false
    }

    fn show_device_code(&self, code: &mcpauth_client::device::DeviceCode) {
        let complete = code.verification_uri_complete.clone().unwrap();
        let person = self.0.clone();
        tokio::spawn(async move { person.approve_device_code(complete).await });
    }
}

// Where no browser can open on this machine, `get_valid_token` does not wait for a redirect
// that cannot come: it uses the device flow the server offers, and shows its code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_browser_here_the_client_falls_back_to_the_device_flow() {
    let dir = std::env::temp_dir().join(format!("mcpauth-client-headless-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let servers = start(&dir).await;
    let person = Arc::new(FormFillingBrowser::default());
    let client = OAuthClient::builder(&servers.resource)
        .client_name("Headless Test")
        .allow_loopback_http()
        .browser(Arc::new(Headless(person.clone())))
        .authorization_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let token = tokio::time::timeout(Duration::from_secs(60), client.get_valid_token())
        .await
        .expect("the client waited without showing a code")
        .unwrap();
    assert_eq!(claims(&token)["aud"], servers.resource.as_str());
    assert_eq!(person.sign_ins.load(Ordering::SeqCst), 1);
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}

// The official Rust MCP SDK's client on mcpauth's tokens: it connects (the first request
// authorizes), lists the tools, and calling the admin tool steps up by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rmcp_client_connects_and_steps_up_through_the_wrapper() {
    let dir = std::env::temp_dir().join(format!("mcpauth-client-rmcp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let servers = start(&dir).await;
    let person = Arc::new(FormFillingBrowser::default());
    let auth = Arc::new(
        OAuthClient::builder(&servers.resource)
            .client_name("rmcp over mcpauth")
            .allow_loopback_http()
            .browser(Arc::new(SharedBrowser(person.clone())))
            .build()
            .unwrap(),
    );
    let client = mcpauth_client::rmcp::connect((), auth.clone())
        .await
        .unwrap();
    // The example server (rmcp) speaks the stateless revision: no `initialize` fallback.
    assert_eq!(
        client.peer_info().unwrap().protocol_version,
        rmcp::model::ProtocolVersion::V_2026_07_28
    );
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "admin_report"), "{tools:?}");
    assert_eq!(person.visits.load(Ordering::SeqCst), 1);
    let report = client
        .call_tool(rmcp::model::CallToolRequestParams::new("admin_report"))
        .await
        .unwrap();
    assert_ne!(report.is_error, Some(true), "{report:?}");
    assert_eq!(person.visits.load(Ordering::SeqCst), 2, "one step-up");
    let scope = auth.held_tokens().await.unwrap().unwrap().scope.unwrap();
    assert!(
        scope.contains("mcp:admin") && scope.contains("mcp:tools"),
        "{scope}"
    );
    client.cancel().await.unwrap();
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends an MCP `initialize` to `resource` with exactly these headers; the status.
async fn initialize_with(resource: &str, headers: http::HeaderMap) -> u16 {
    reqwest::Client::new()
        .post(resource)
        .headers(headers)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": { "name": "client-test", "version": "1" }
            }
        }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

// RFC 9449 end to end between mcpauth's client, mcpauth-server and an MCP server behind
// mcpauth-http: the client binds its tokens by default because the server advertises DPoP, the
// MCP server accepts the token only with a fresh proof by that key, and a thief holding the
// token (as Bearer, with a proof of their own, or with a captured proof) gets nothing. With
// `dpop(false)` the same client gets a bearer token, accepted as Bearer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_bound_token_works_only_with_proofs_by_its_key() {
    let dir = std::env::temp_dir().join(format!("mcpauth-client-dpop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let servers = start(&dir).await;
    for dpop in [true, false] {
        let store = Arc::new(MemoryStore::default());
        let client = OAuthClient::builder(&servers.resource)
            .allow_loopback_http()
            .store(store.clone())
            .browser(Arc::new(SharedBrowser(Arc::new(
                FormFillingBrowser::default(),
            ))))
            .dpop(dpop)
            .build()
            .unwrap();
        let token = client.get_valid_token().await.unwrap();
        let held = store
            .load_tokens(&servers.issuer, &servers.resource)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(held.is_dpop_bound(), dpop);
        assert_eq!(held.token_type, if dpop { "DPoP" } else { "Bearer" });
        assert_eq!(claims(&token)["cnf"]["jkt"].is_string(), dpop);

        let presented = client
            .resource_authorization(&token, "POST", &servers.resource)
            .await
            .unwrap();
        let mut headers = http::HeaderMap::new();
        presented.apply(&mut headers).unwrap();
        assert_eq!(
            initialize_with(&servers.resource, headers.clone()).await,
            200
        );
        let mut as_bearer = http::HeaderMap::new();
        as_bearer.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        assert_eq!(
            initialize_with(&servers.resource, as_bearer).await,
            if dpop { 401 } else { 200 },
            "a bound token presented as Bearer is refused (RFC 9449 §7.2)"
        );
        if !dpop {
            continue;
        }
        // The captured proof, sent again: a replay.
        assert_eq!(
            initialize_with(&servers.resource, headers.clone()).await,
            401,
            "a proof is good for one request"
        );
        // The thief's own key: the token is not bound to it.
        let thief = mcpauth_client::dpop::DpopKeyMaterial::generate()
            .unwrap()
            .key()
            .unwrap();
        let mut forged = http::HeaderMap::new();
        forged.insert(
            http::header::AUTHORIZATION,
            format!("DPoP {token}").parse().unwrap(),
        );
        forged.insert(
            "dpop",
            mcpauth_client::dpop::proof(&thief, "POST", &servers.resource, None, Some(&token))
                .unwrap()
                .parse()
                .unwrap(),
        );
        assert_eq!(initialize_with(&servers.resource, forged).await, 401);
        // The refresh token is bound too (a public client): refreshing without the key fails.
        let refused = reqwest::Client::new()
            .post(format!("{}/token", servers.issuer))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", held.refresh_token.as_deref().unwrap()),
                (
                    "client_id",
                    store
                        .load_credentials(&servers.issuer)
                        .await
                        .unwrap()
                        .unwrap()
                        .client_id
                        .as_str(),
                ),
                ("resource", servers.resource.as_str()),
            ])
            .send()
            .await
            .unwrap();
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"], "invalid_dpop_proof");
        // The holder refreshes with its key, and the new token is bound to the same key.
        client.expire_access_token().await.unwrap();
        let fresh = client.get_valid_token().await.unwrap();
        assert_ne!(fresh, token);
        assert_eq!(claims(&fresh)["cnf"], claims(&token)["cnf"]);
    }
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}
