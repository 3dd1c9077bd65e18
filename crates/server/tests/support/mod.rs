//! Helpers shared by the tests that drive mcpauth-server through real peers: headless
//! Chromium (playwright-core, `interop/browser`), npm packages, the MCP client's loopback
//! redirect listener, the client's side of the authorization code flow, and fresh scratch
//! directories and ports for servers the tests start as processes.
#![allow(dead_code, unreachable_pub, reason = "each test file uses part of it")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::mpsc;

pub const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";
pub const RESOURCE: &str = "http://127.0.0.1:3000/mcp";
const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "analytical engine 1843";

pub fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&path).exists(),
        "the browser test needs Chromium at {path} (Debian: apt-get install chromium; or set CHROMIUM)"
    );
    path
}

/// `interop/{folder}` of the workspace (this file serves tests of several crates).
pub fn interop_dir(folder: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("interop"))
        .find(|dir| dir.is_dir())
        .expect("the workspace's interop folder")
        .join(folder)
}

fn driver_dir() -> PathBuf {
    interop_dir("browser")
}

/// `npm ci` in `interop/{folder}` unless `package` is installed there already.
///
/// One install at a time: the tests of a file run in parallel, and a second `npm ci` in a
/// folder being installed removes what the first is writing (as on a clean clone in CI).
pub async fn ensure_npm(folder: &str, package: &str) {
    static INSTALLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = INSTALLING.lock().await;
    let dir = interop_dir(folder);
    if dir.join("node_modules").join(package).exists() {
        return;
    }
    let status = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .await
        .expect("npm must be installed to run this test");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// Runs one browser step; returns what the script saw.
pub async fn browse(command: &str, input: Value) -> Value {
    let started = std::time::Instant::now();
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg("browser.mjs")
            .arg(command)
            .arg(input.to_string())
            .current_dir(driver_dir())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser step took over two minutes")
    .expect("node must be installed to run the browser test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!(
        "browser step `{command}`: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        output.status.success(),
        "browser step `{command}` failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("browser step printed no JSON ({e}): {stdout}"))
}

/// The MCP client's loopback redirect listener: answers "you can close this window" and
/// passes on each callback's query.
pub async fn callback_listener() -> (String, mpsc::UnboundedReceiver<Vec<(String, String)>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect_uri = format!("http://{}/callback", listener.local_addr().unwrap());
    let (sender, received) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/callback",
        axum::routing::get(move |uri: axum::http::Uri| {
            let sender = sender.clone();
            async move {
                let query = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
                let _ = sender.send(query);
                "Signed in. You can close this window."
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (redirect_uri, received)
}

pub fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A server under test, served on loopback until dropped.
pub struct Server {
    pub issuer: String,
    pub http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Serves `server` on `listener` until the returned [`Server`] is dropped.
pub fn serve(listener: tokio::net::TcpListener, server: mcpauth_server::Server) -> Server {
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mcpauth_server::serve_on(listener, server, async {
        let _ = stopped.await;
    }));
    Server {
        issuer: format!("http://{addr}"),
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Server {
    pub async fn register(&self, body: Value) -> String {
        let response: Value = self
            .http
            .post(format!("{}/register", self.issuer))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        response["client_id"].as_str().unwrap().to_owned()
    }

    pub fn authorize_url(&self, client_id: &str, redirect_uri: &str, state: &str) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("state", state),
                ("scope", "mcp:tools"),
                ("resource", RESOURCE),
            ])
            .finish();
        format!("{}/authorize?{query}", self.issuer)
    }

    /// Registers a public device client named `name` and starts a device authorization
    /// (RFC 8628 §3.1) for `mcp:tools` at [`RESOURCE`]: the client id and the response.
    pub async fn device_authorization(&self, name: &str) -> (String, Value) {
        let client_id = self
            .register(serde_json::json!({
                "client_name": name,
                "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"],
                "token_endpoint_auth_method": "none",
            }))
            .await;
        let device = self
            .http
            .post(format!("{}/device_authorization", self.issuer))
            .form(&[
                ("client_id", client_id.as_str()),
                ("scope", "mcp:tools"),
                ("resource", RESOURCE),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (client_id, device)
    }

    /// The device's token request (RFC 8628 §3.4) for `device`, once approved.
    pub async fn device_token(&self, client_id: &str, device: &Value) -> Value {
        self.http
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device["device_code"].as_str().unwrap()),
                ("client_id", client_id),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn redeem(&self, client_id: &str, redirect_uri: &str, code: &str) -> Value {
        self.redeem_as(client_id, None, redirect_uri, code).await
    }

    /// Registers `body`; returns the whole registration response (with any secret).
    #[allow(dead_code, reason = "not every test binary uses every helper")]
    pub async fn register_full(&self, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/register", self.issuer))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// Redeems `code`, authenticating with `secret` (HTTP Basic) when given.
    pub async fn redeem_as(
        &self,
        client_id: &str,
        secret: Option<&str>,
        redirect_uri: &str,
        code: &str,
    ) -> Value {
        let mut request = self.http.post(format!("{}/token", self.issuer));
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", VERIFIER),
            ("resource", RESOURCE),
        ];
        match secret {
            Some(secret) => request = request.basic_auth(client_id, Some(secret)),
            None => form.push(("client_id", client_id)),
        }
        let response = request.form(&form).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

/// The screenshots folder, emptied.
pub fn screenshots(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
        "{} is not a screenshot",
        path.display()
    );
}

/// oidc-provider on loopback until dropped.
pub struct Upstream {
    pub issuer: String,
    _process: tokio::process::Child,
}

/// Starts panva's oidc-provider (`interop/oidc-provider/upstream.mjs`) on a free loopback
/// port with one confidential client.
pub async fn start_upstream(client_id: &str, client_secret: &str, redirect_uri: &str) -> Upstream {
    ensure_npm("oidc-provider", "oidc-provider").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let input = serde_json::json!({
        "port": port, "client_id": client_id, "client_secret": client_secret,
        "redirect_uri": redirect_uri,
    });
    let mut process = tokio::process::Command::new("node")
        .arg("upstream.mjs")
        .arg(input.to_string())
        .current_dir(interop_dir("oidc-provider"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node must be installed to run this test");
    let mut lines = tokio::io::BufReader::new(process.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("oidc-provider did not start within 30 s")
        .unwrap()
        .expect("oidc-provider exited");
    let issuer = line.strip_prefix("ready ").unwrap().to_owned();
    // Keep reading: oidc-provider logs to stdout, and dies of EPIPE when nobody listens.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Upstream {
        issuer,
        _process: process,
    }
}

/// An empty scratch directory for the test `tag` of this process.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcpauth-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A loopback port free a moment ago, for a server started as a process (which must then
/// notice if another took it first).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
