//! The client against an authorization server no one here wrote: panva's `oidc-provider`
//! from npm (`interop/oidc-provider/as.mjs`: dynamic registration, PKCE, RFC 8707 resource
//! indicators with RFC 9068 JWT access tokens, refresh tokens, revocation) protecting the
//! example MCP server (rmcp behind mcpauth's bearer layer). Debian's headless Chromium signs
//! in and consents on oidc-provider's own pages; an rmcp client on the wrapper lists and
//! calls tools; the token is refreshed at oidc-provider; logout revokes there.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), `node` and `npm`; `.ci/run` installs them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mcpauth_adapter_axum::{BearerLayer, MetadataRouter};
use mcpauth_client::{Browser, Error, OAuthClient, TokenStore};
use serde_json::json;
use tokio::io::AsyncBufReadExt as _;
use url::Url;

#[path = "../../server/tests/support/mod.rs"]
mod browser_support;
use browser_support::{browse, chromium, ensure_npm, interop_dir, screenshots};

/// Chromium, walking oidc-provider's pages until it reaches the client's redirect URI.
struct Chromium {
    profile: std::path::PathBuf,
    opened: AtomicUsize,
}

#[async_trait::async_trait]
impl Browser for Chromium {
    async fn open(&self, url: &Url) -> Result<(), Error> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        let until = url
            .query_pairs()
            .find(|(k, _)| k == "redirect_uri")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        let input = json!({
            "url": url.as_str(), "until": until, "login": "grace",
            "profile": self.profile, "chromium": chromium(),
            "screenshots": screenshots("oidc-provider-client-screenshots"),
        });
        tokio::spawn(async move { browse("walk", input).await });
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_and_rmcp_work_with_oidc_provider_as_the_authorization_server() {
    ensure_npm("browser", "playwright-core").await;
    ensure_npm("oidc-provider", "oidc-provider").await;
    let dir = std::env::temp_dir().join(format!("mcpauth-client-oidc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // The MCP server's address first: the authorization server must know the resource.
    let mcp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", mcp_listener.local_addr().unwrap());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut authorization_server = tokio::process::Command::new("node")
        .arg("as.mjs")
        .arg(json!({ "port": port, "resource": resource }).to_string())
        .current_dir(interop_dir("oidc-provider"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(authorization_server.stdout.take().unwrap()).lines();
    let issuer = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .strip_prefix("ready ")
        .unwrap()
        .to_owned();
    // oidc-provider logs to stdout; keep reading so it never dies of a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let protection = Arc::new(mcpauth_examples::protection(&resource, &issuer).unwrap());
    let app = axum::Router::new()
        .nest_service(
            "/mcp",
            mcpauth_examples::mcp_service(protection.clone(), &resource),
        )
        .layer(BearerLayer::new(protection.clone()))
        .merge(protection.metadata_router());
    tokio::spawn(async move { axum::serve(mcp_listener, app).await });

    let browser = Arc::new(Chromium {
        profile: dir.join("profile"),
        opened: AtomicUsize::new(0),
    });
    let store = Arc::new(mcpauth_client::MemoryStore::default());
    let auth = Arc::new(
        OAuthClient::builder(&resource)
            .client_name("mcpauth client against oidc-provider")
            .allow_loopback_http()
            .store(store.clone())
            .browser(browser.clone())
            .authorization_timeout(Duration::from_secs(90))
            .build()
            .unwrap(),
    );

    // rmcp on the wrapper: the first request's 401 leads to oidc-provider and back.
    let client = mcpauth_client::rmcp::connect((), auth.clone())
        .await
        .unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "whoami"), "{tools:?}");
    let whoami = client
        .call_tool(rmcp::model::CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    let text = serde_json::to_string(&whoami.content).unwrap();
    assert!(text.contains("grace"), "the user at oidc-provider: {text}");
    assert_eq!(browser.opened.load(Ordering::SeqCst), 1);

    let discovered = auth.discover().await.unwrap();
    assert_eq!(discovered.issuer(), issuer);
    assert!(
        discovered
            .authorization_server
            .registration_endpoint
            .is_some(),
        "oidc-provider's own metadata"
    );

    // Refresh at oidc-provider: an expiring token is replaced without the browser.
    let held = store
        .load_tokens(&issuer, &resource)
        .await
        .unwrap()
        .unwrap();
    let mut expiring = held.clone();
    expiring.expires_at = Some(0);
    store
        .save_tokens(&issuer, &resource, &expiring)
        .await
        .unwrap();
    let fresh = auth.get_valid_token().await.unwrap();
    assert_ne!(fresh, held.access_token);
    assert_eq!(
        browser.opened.load(Ordering::SeqCst),
        1,
        "refreshed, not re-authorized"
    );
    client.cancel().await.unwrap();

    // Logout revokes at oidc-provider (RFC 7009): the refresh token is refused afterwards.
    let refresh_token = store
        .load_tokens(&issuer, &resource)
        .await
        .unwrap()
        .unwrap()
        .refresh_token
        .unwrap();
    let client_id = store
        .load_credentials(&issuer)
        .await
        .unwrap()
        .unwrap()
        .client_id;
    auth.logout().await.unwrap();
    let refused = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    drop(authorization_server);
    let _ = std::fs::remove_dir_all(&dir);
}
