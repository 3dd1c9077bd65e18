//! Shared by the client's and the CLI's end-to-end tests: mcpauth-server and the example
//! MCP server (rmcp behind mcpauth's bearer layer) on loopback, and a person at a browser
//! played over HTTP (reads the sign-in, consent and device pages and posts them).
#![allow(dead_code, unreachable_pub, reason = "each test file uses part of it")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use mcpauth_adapter_axum::{BearerLayer, MetadataRouter};
use serde_json::Value;
use url::Url;

pub const EMAIL: &str = "alice@example.com";
pub const PASSWORD: &str = "correct horse battery";

pub struct Servers {
    pub issuer: String,
    pub resource: String,
    /// The authorization server's configuration (a second instance can be built from it).
    pub config: mcpauth_server::Config,
    _stop: Vec<tokio::sync::oneshot::Sender<()>>,
}

pub async fn start(dir: &std::path::Path) -> Servers {
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

    let stop_mcp = serve_mcp(mcp_listener, &resource, &issuer);
    Servers {
        issuer,
        resource,
        config,
        _stop: vec![stop_as, stop_mcp],
    }
}

/// Serves the example MCP server (rmcp behind mcpauth's bearer layer) on `listener` as
/// `resource`, taking tokens from `issuer`, until the returned sender is dropped.
pub fn serve_mcp(
    listener: tokio::net::TcpListener,
    resource: &str,
    issuer: &str,
) -> tokio::sync::oneshot::Sender<()> {
    let protection = Arc::new(mcpauth_examples::protection(resource, issuer).unwrap());
    let app = axum::Router::new()
        .nest_service(
            "/mcp",
            mcpauth_examples::mcp_service(protection.clone(), resource),
        )
        .layer(BearerLayer::new(protection.clone()))
        .merge(protection.metadata_router());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    stop
}

/// A person at a browser, over HTTP: signs in if asked, approves the consent page, and
/// follows the redirect to the client's loopback listener. Keeps its cookies between
/// authorizations, like a browser.
#[derive(Default)]
pub struct FormFillingBrowser {
    cookies: Mutex<HashMap<String, String>>,
    pub visits: AtomicUsize,
    pub sign_ins: AtomicUsize,
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

    async fn go(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let response = request
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    pub async fn walk(&self, start: Url) {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let origin = format!("{}://{}", start.scheme(), start.host_str().unwrap())
            + &start.port().map(|p| format!(":{p}")).unwrap_or_default();
        let mut url = start.to_string();
        for _ in 0..10 {
            let response = self.go(http.get(&url)).await;
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
                self.go(http.post(format!("{url}/login")).form(&[
                    ("csrf_token", csrf.as_str()),
                    ("email", EMAIL),
                    ("password", PASSWORD),
                ]))
                .await
            } else if page.contains("value=\"approve\"") {
                let csrf = field(&page, "csrf_token");
                self.go(http
                    .post(format!("{url}/consent"))
                    .form(&[("csrf_token", csrf.as_str()), ("decision", "approve")]))
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

pub fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

pub fn claims(jwt: &str) -> Value {
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

impl FormFillingBrowser {
    /// A person at another device: opens the verification URI, signs in, approves the code.
    pub async fn approve_device_code(&self, verification_uri_complete: String) {
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
            .go(http.get(start.as_str()))
            .await
            .text()
            .await
            .unwrap();
        if page.contains("type=\"password\"") {
            self.sign_ins.fetch_add(1, Ordering::SeqCst);
            let signed_in = self
                .go(http.post(format!("{origin}/sign-in")).form(&[
                    ("csrf_token", field(&page, "csrf_token").as_str()),
                    ("next", "device"),
                    ("user_code", user_code.as_str()),
                    ("email", EMAIL),
                    ("password", PASSWORD),
                ]))
                .await;
            let location = signed_in.headers()["location"].to_str().unwrap().to_owned();
            page = self
                .go(http.get(format!("{origin}{location}")))
                .await
                .text()
                .await
                .unwrap();
        }
        // The code-entry form, filled in: continue with it (a POST with the form's token).
        assert!(page.contains(&user_code), "{page}");
        page = self
            .go(http.post(format!("{origin}/device/code")).form(&[
                ("csrf_token", field(&page, "csrf_token").as_str()),
                ("user_code", user_code.as_str()),
            ]))
            .await
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("Connect") && page.contains(&user_code),
            "{page}"
        );
        let done = self
            .go(http.post(format!("{origin}/device")).form(&[
                ("csrf_token", field(&page, "csrf_token").as_str()),
                ("user_code", user_code.as_str()),
                ("decision", "approve"),
            ]))
            .await
            .text()
            .await
            .unwrap();
        assert!(done.contains("Device connected"), "{done}");
    }
}
