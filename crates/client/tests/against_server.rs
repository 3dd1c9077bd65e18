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

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use mcpauth_adapter_axum::{BearerLayer, MetadataRouter};
use mcpauth_client::http::HttpClient;
use mcpauth_client::{
    BearerChallenge, Browser, Error, MemoryStore, OAuthClient, ReqwestClient, TokenStore,
};
use serde_json::Value;
use url::Url;

const EMAIL: &str = "alice@example.com";
const PASSWORD: &str = "correct horse battery";

struct Servers {
    issuer: String,
    resource: String,
    _stop: Vec<tokio::sync::oneshot::Sender<()>>,
}

async fn start(dir: &std::path::Path) -> Servers {
    let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", as_listener.local_addr().unwrap());
    let mcp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", mcp_listener.local_addr().unwrap());

    let mut config = mcpauth_server::Config::default();
    config.listen = as_listener.local_addr().unwrap();
    config.issuer = Some(issuer.clone());
    config.database_url = format!("sqlite://{}", dir.join("as.db").display());
    config.scopes_supported = vec!["mcp:tools".into(), "mcp:admin".into()];
    config.resources = vec![resource.clone()];
    let server = mcpauth_server::build(&config).await.unwrap();
    mcpauth_server::add_user(&server.store, EMAIL, PASSWORD)
        .await
        .unwrap();
    let (stop_as, stopped_as) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mcpauth_server::serve_on(as_listener, server, async {
        let _ = stopped_as.await;
    }));

    let protection = Arc::new(mcpauth_examples::protection(&resource, &issuer).unwrap());
    let app = axum::Router::new()
        .nest_service(
            "/mcp",
            mcpauth_examples::mcp_service(protection.clone(), &resource),
        )
        .layer(BearerLayer::new(protection.clone()))
        .merge(protection.metadata_router());
    let (stop_mcp, stopped_mcp) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(mcp_listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped_mcp.await;
            })
            .await
    });
    Servers {
        issuer,
        resource,
        _stop: vec![stop_as, stop_mcp],
    }
}

/// A person at a browser, over HTTP: signs in if asked, approves the consent page, and
/// follows the redirect to the client's loopback listener. Keeps its cookies between
/// authorizations, like a browser.
#[derive(Default)]
struct FormFillingBrowser {
    cookies: Mutex<HashMap<String, String>>,
    visits: AtomicUsize,
    sign_ins: AtomicUsize,
}

impl FormFillingBrowser {
    fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&self, response: &reqwest::Response) {
        let mut jar = self.cookies.lock().unwrap();
        for value in response.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    async fn go(
        &self,
        http: &reqwest::Client,
        request: reqwest::RequestBuilder,
    ) -> reqwest::Response {
        let response = request
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        let _ = http;
        response
    }

    async fn walk(&self, start: Url) {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let origin = format!("{}://{}", start.scheme(), start.host_str().unwrap())
            + &start.port().map(|p| format!(":{p}")).unwrap_or_default();
        let mut url = start.to_string();
        for _ in 0..10 {
            let response = self.go(&http, http.get(&url)).await;
            if response.status().is_redirection() {
                let location = response.headers()["location"].to_str().unwrap().to_owned();
                url = if location.starts_with('/') {
                    format!("{origin}{location}")
                } else {
                    location
                };
                continue;
            }
            let page = response.text().await.unwrap();
            let next = if page.contains("type=\"password\"") {
                let csrf = field(&page, "csrf_token");
                self.sign_ins.fetch_add(1, Ordering::SeqCst);
                self.go(
                    &http,
                    http.post(format!("{url}/login")).form(&[
                        ("csrf_token", csrf.as_str()),
                        ("email", EMAIL),
                        ("password", PASSWORD),
                    ]),
                )
                .await
            } else if page.contains("value=\"approve\"") {
                let csrf = field(&page, "csrf_token");
                self.go(
                    &http,
                    http.post(format!("{url}/consent"))
                        .form(&[("csrf_token", csrf.as_str()), ("decision", "approve")]),
                )
                .await
            } else {
                // The client's loopback page: done.
                assert!(page.contains("You can close this window"), "{page}");
                return;
            };
            let location = next.headers()["location"].to_str().unwrap().to_owned();
            url = if location.starts_with('/') {
                format!("{origin}{location}")
            } else {
                location
            };
        }
        panic!("the browser went round in circles");
    }
}

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

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

fn claims(jwt: &str) -> Value {
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

/// Calls `tool` at the MCP server with `token`: initialize, then the call in that session.
/// Returns the status of the first refused step, or of the call.
async fn call_tool(resource: &str, token: &str, tool: &str) -> reqwest::Response {
    let http = reqwest::Client::new();
    let post = |body: Value, session: Option<&str>| {
        let mut request = http
            .post(resource)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        request.send()
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
        Some(&session),
    )
    .await
    .unwrap();
    post(
        serde_json::json!({
            "jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": { "name": tool, "arguments": {} }
        }),
        Some(&session),
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
    let whoami = call_tool(&servers.resource, &token, "whoami").await;
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
    let refused = call_tool(&servers.resource, &tokens[0], "admin_report").await;
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
        call_tool(&servers.resource, &stepped, "admin_report")
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
    client.logout().await.unwrap();
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

impl FormFillingBrowser {
    /// A person at another device: opens the verification URI, signs in, approves the code.
    async fn approve_device_code(&self, verification_uri_complete: String) {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let start = Url::parse(&verification_uri_complete).unwrap();
        let origin = start.origin().ascii_serialization();
        let user_code = start
            .query_pairs()
            .find(|(k, _)| k == "user_code")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        let mut page = self
            .go(&http, http.get(start.as_str()))
            .await
            .text()
            .await
            .unwrap();
        if page.contains("type=\"password\"") {
            self.sign_ins.fetch_add(1, Ordering::SeqCst);
            let signed_in = self
                .go(
                    &http,
                    http.post(format!("{origin}/sign-in")).form(&[
                        ("csrf_token", field(&page, "csrf_token").as_str()),
                        ("next", "device"),
                        ("user_code", user_code.as_str()),
                        ("email", EMAIL),
                        ("password", PASSWORD),
                    ]),
                )
                .await;
            let location = signed_in.headers()["location"].to_str().unwrap().to_owned();
            page = self
                .go(&http, http.get(format!("{origin}{location}")))
                .await
                .text()
                .await
                .unwrap();
        }
        assert!(page.contains(&user_code), "{page}");
        let done = self
            .go(
                &http,
                http.post(format!("{origin}/device")).form(&[
                    ("csrf_token", field(&page, "csrf_token").as_str()),
                    ("user_code", user_code.as_str()),
                    ("decision", "approve"),
                ]),
            )
            .await
            .text()
            .await
            .unwrap();
        assert!(done.contains("Device connected"), "{done}");
    }
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
