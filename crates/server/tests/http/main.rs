//! mcpauth-server over real HTTP on loopback: pages, CSRF, cookies, headers, metadata, the
//! binary itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mcpauth_token_engine::{Clock, ManualClock, SystemClock, UnixTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::Value;

mod admin_console;
mod audit;
mod backup;
#[path = "../support/certificates.rs"]
mod certificates;
mod consent;
mod endpoints;
mod grants;
mod operations;
mod shared_signals;
mod sign_in;
mod tls;

const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";
const REDIRECT: &str = "http://127.0.0.1:53682/callback";
const RESOURCE: &str = "http://127.0.0.1:3000/mcp";

/// A login form ready to post.
struct LoginForm {
    action: String,
    csrf: String,
    cookie: String,
}

struct Running {
    base: String,
    issuer: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    dir: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mcpauth-http-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn start_with(issuer_path: &str, dir: PathBuf) -> Running {
    start_configured(issuer_path, dir, |_| {}).await
}

async fn start_configured(
    issuer_path: &str,
    dir: PathBuf,
    configure: impl FnOnce(&mut mcpauth_server::Config),
) -> Running {
    start_timed(issuer_path, dir, Arc::new(SystemClock), configure).await
}

/// A server reading the time from `clock`: tests step a `ManualClock` past locks, windows
/// and polling intervals instead of sleeping.
async fn start_timed(
    issuer_path: &str,
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    configure: impl FnOnce(&mut mcpauth_server::Config),
) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let issuer = format!("{base}{issuer_path}");
    let mut config = mcpauth_server::Config::default();
    config.listen = addr;
    config.issuer = Some(issuer.clone());
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    configure(&mut config);
    let server = mcpauth_server::build_with(
        &config,
        mcpauth_server::BuildOptions::default().clock(clock),
    )
    .await
    .unwrap();
    if server
        .store
        .find_user_by_email("alice@example.com")
        .await
        .unwrap()
        .is_none()
    {
        mcpauth_server::add_user(&server.store, "alice@example.com", "correct horse battery")
            .await
            .unwrap();
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mcpauth_server::serve_on(listener, server, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Running {
        base,
        issuer,
        http,
        stop: Some(stop),
        dir,
    }
}

async fn start() -> Running {
    start_with("", temp_dir("server")).await
}

fn cookies(headers: &HeaderMap) -> String {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

impl Running {
    async fn register(&self) -> String {
        let response = self
            .http
            .post(format!("{}/register", self.issuer))
            .json(&serde_json::json!({ "redirect_uris": [REDIRECT], "client_name": "<b>Evil</b> & Co" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json::<Value>().await.unwrap()["client_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn authorize_url(&self, client_id: &str) -> String {
        self.authorize_url_with(client_id, "s1", None)
    }

    fn authorize_url_with(&self, client_id: &str, state: &str, scope: Option<&str>) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", REDIRECT),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("state", state),
                ("resource", RESOURCE),
            ])
            .extend_pairs(scope.map(|scope| ("scope", scope)))
            .finish();
        format!("{}/authorize?{query}", self.issuer)
    }

    /// Starts an interaction; returns (interaction URL, csrf cookie header).
    async fn begin(&self) -> (String, String) {
        let client_id = self.register().await;
        let response = self
            .http
            .get(self.authorize_url(&client_id))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
        (
            format!("{}{location}", self.base),
            cookies(response.headers()),
        )
    }

    /// A fresh interaction's login form: where it posts, its CSRF token and cookie.
    async fn login_form(&self) -> LoginForm {
        let (interaction, cookie) = self.begin().await;
        let page = self.get(&interaction, &cookie).await.text().await.unwrap();
        LoginForm {
            action: format!("{interaction}/login"),
            csrf: field(&page, "csrf_token"),
            cookie,
        }
    }

    /// Posts `email` and `password` to `form`.
    async fn attempt_sign_in(
        &self,
        form: &LoginForm,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        self.post_form(
            &form.action,
            &form.cookie,
            &[
                ("csrf_token", form.csrf.as_str()),
                ("email", email),
                ("password", password),
            ],
        )
        .await
    }

    async fn get(&self, url: &str, cookie: &str) -> reqwest::Response {
        self.http
            .get(url)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
    }

    async fn post_form(&self, url: &str, cookie: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(url)
            .header("cookie", cookie)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Signs in; returns the cookie header for the rest of the interaction.
    async fn sign_in(&self, interaction: &str, csrf_cookie: &str) -> String {
        let page = self
            .get(interaction, csrf_cookie)
            .await
            .text()
            .await
            .unwrap();
        let csrf = field(&page, "csrf_token");
        let response = self
            .post_form(
                &format!("{interaction}/login"),
                csrf_cookie,
                &[
                    ("csrf_token", &csrf),
                    ("email", "Alice@Example.com"),
                    ("password", "correct horse battery"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        format!("{csrf_cookie}; {}", cookies(response.headers()))
    }
}

impl Running {
    async fn jwks_kid(&self) -> Value {
        let jwks: Value = self
            .http
            .get(format!("{}/jwks.json", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        jwks["keys"][0]["kid"].clone()
    }

    fn stop_keeping_data(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.dir = PathBuf::new();
    }
}

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_mcpauth-server")
}

/// The value of cookie `name` in a `cookie` header.
fn cookie_named(cookie: &str, name: &str) -> String {
    cookie
        .split("; ")
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {cookie}"))
        .to_owned()
}

impl Running {
    /// Starts an authorization for `url` in a browser holding `cookie`; returns the
    /// response to the authorization request and the cookie header extended with what it set.
    async fn start_authorization(&self, url: &str, cookie: &str) -> (reqwest::Response, String) {
        let response = self.get(url, cookie).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = format!("{cookie}; {}", cookies(response.headers()));
        (response, cookie)
    }
}

fn location(response: &reqwest::Response) -> String {
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

impl Running {
    /// A confidential client (its identity is assured: consent may be remembered) with
    /// `redirect_uris`.
    async fn register_confidential(&self, redirect_uris: &[&str]) -> String {
        let response = self
            .http
            .post(format!("{}/register", self.issuer))
            .json(&serde_json::json!({
                "redirect_uris": redirect_uris,
                "client_name": "Confidential app",
                "token_endpoint_auth_method": "client_secret_basic",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json::<Value>().await.unwrap()["client_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn authorize_url_for(
        &self,
        client_id: &str,
        redirect_uri: &str,
        resource: &str,
        scope: &str,
    ) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("state", "s1"),
                ("resource", resource),
                ("scope", scope),
            ])
            .finish();
        format!("{}/authorize?{query}", self.issuer)
    }

    /// Opens `url` with `session`: `Ok(location)` when the consent page was skipped,
    /// `Err((consent page html, cookie))` when it is shown.
    async fn open_with_session(
        &self,
        url: &str,
        session: &str,
    ) -> Result<String, (String, String)> {
        let (first, cookie) = self.start_authorization(url, session).await;
        let interaction = format!("{}{}", self.base, location(&first));
        let page = self.get(&interaction, &cookie).await;
        if page.status() == StatusCode::SEE_OTHER {
            return Ok(location(&page));
        }
        let html = page.text().await.unwrap();
        assert!(html.contains("name=\"decision\""), "{html}");
        Err((format!("{interaction}|{html}"), cookie))
    }

    /// Approves the consent page `shown` (from [`Self::open_with_session`]), remembering it
    /// when `remember`.
    async fn approve_shown(&self, shown: (String, String), remember: bool) -> String {
        let (page, cookie) = shown;
        let (interaction, html) = page.split_once('|').unwrap();
        let mut form = vec![
            ("csrf_token", field(html, "csrf_token")),
            ("decision", "approve".to_owned()),
        ];
        if remember {
            form.push(("remember", "yes".to_owned()));
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let approved = self
            .post_form(&format!("{interaction}/consent"), &cookie, &form)
            .await;
        assert_eq!(approved.status(), StatusCode::SEE_OTHER);
        location(&approved)
    }
}

/// An ES256 JWT over `claims`, signed with the PKCS#8 key `der` (JWS compact form).
fn es256_jwt(der: &[u8], kid: &str, claims: &Value) -> String {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": kid });
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).unwrap();
    let signature = key
        .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
        .unwrap();
    format!("{input}.{}", b64(signature.as_ref()))
}

/// Runs `mcpauth-server ARGS` on `server`'s database, as the operator would.
fn cli(server: &Running, args: &[&str]) -> (bool, String, String) {
    cli_on(
        &format!("sqlite://{}", server.dir.join("mcpauth.db").display()),
        args,
    )
}

/// Runs `mcpauth-server ARGS` on the database `url`.
fn cli_on(url: &str, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mcpauth-server"))
        .args(args)
        .env("MCPAUTH_DATABASE_URL", url)
        .env("MCPAUTH_LOG", "warn")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

impl Running {
    /// The tokens `client_id` (a public client) gets for `code` from [`Running::fresh_code`].
    async fn redeem_code(&self, client_id: &str, code: &str) -> Value {
        self.http
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("client_id", client_id),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `client_id` (a public client) refreshes with `refresh_token`.
    async fn refresh(&self, client_id: &str, refresh_token: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", client_id),
            ])
            .send()
            .await
            .unwrap()
    }
}
