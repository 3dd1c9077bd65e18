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

// RFC 6749 §4.1.2.1: errors before the redirect URI is validated are shown, never redirected.
#[tokio::test]
async fn authorization_errors_before_redirect_validation_render_a_page() {
    let server = start().await;
    let client_id = server.register().await;
    let url = server
        .authorize_url(&client_id)
        .replace("53682", "53683")
        .replace("callback", "evil");
    let response = server.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get(LOCATION).is_none());
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let unknown = server
        .http
        .get(format!(
            "{}/authorize?client_id=nobody&redirect_uri=https://evil.example/cb",
            server.issuer
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(unknown.headers().get(LOCATION).is_none());
}

// CSRF: the form token must match the cookie scoped to this interaction.
#[tokio::test]
async fn login_form_requires_the_interactions_csrf_cookie_and_token() {
    let server = start().await;
    let (interaction, csrf_cookie) = server.begin().await;
    let page = server
        .get(&interaction, &csrf_cookie)
        .await
        .text()
        .await
        .unwrap();
    let csrf = field(&page, "csrf_token");
    let login = format!("{interaction}/login");
    let form = [
        ("csrf_token", csrf.as_str()),
        ("email", "alice@example.com"),
        ("password", "correct horse battery"),
    ];
    assert_eq!(
        server.post_form(&login, "", &form).await.status(),
        StatusCode::FORBIDDEN,
        "no cookie: another browser"
    );
    let wrong = [
        ("csrf_token", "forged"),
        ("email", "alice@example.com"),
        ("password", "correct horse battery"),
    ];
    assert_eq!(
        server
            .post_form(&login, &csrf_cookie, &wrong)
            .await
            .status(),
        StatusCode::FORBIDDEN,
        "wrong form token"
    );
    assert_eq!(
        server.post_form(&login, &csrf_cookie, &form).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let server = start().await;
    let (interaction, csrf_cookie) = server.begin().await;
    let page = server
        .get(&interaction, &csrf_cookie)
        .await
        .text()
        .await
        .unwrap();
    let csrf = field(&page, "csrf_token");
    let login = format!("{interaction}/login");
    let a = server
        .post_form(
            &login,
            &csrf_cookie,
            &[
                ("csrf_token", &csrf),
                ("email", "alice@example.com"),
                ("password", "wrong password"),
            ],
        )
        .await;
    let b = server
        .post_form(
            &login,
            &csrf_cookie,
            &[
                ("csrf_token", &csrf),
                ("email", "bob@example.com"),
                ("password", "wrong password"),
            ],
        )
        .await;
    assert_eq!(
        (a.status(), b.status()),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    let (a, b) = (a.text().await.unwrap(), b.text().await.unwrap());
    assert!(a.contains("Wrong email or password.") && b.contains("Wrong email or password."));
}

// Sign-in attempts per address are counted in the shared store: over the configured limit
// (`sign_in_attempts_per_ip_per_hour`), even the right password is refused until the window
// ends, with a Retry-After. Each attempt names another account, as a password-spraying caller
// would.
#[tokio::test]
async fn repeated_sign_in_attempts_from_one_address_are_refused_for_a_while() {
    // Counters use fixed one-hour windows: start ten minutes into one.
    let hour = SystemClock.now().0 / 3600 * 3600;
    let clock = Arc::new(ManualClock::new(UnixTime(hour + 600)));
    let server = start_timed("", temp_dir("spray"), clock.clone(), |config| {
        config.sign_in_attempts_per_ip_per_hour = 20;
    })
    .await;
    let form = server.login_form().await;
    for n in 0..20 {
        assert_eq!(
            server
                .attempt_sign_in(&form, &format!("user{n}@example.com"), "wrong password")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let refused = server
        .attempt_sign_in(&form, "alice@example.com", "correct horse battery")
        .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry_after, 3000, "until the window ends");
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Too many sign-in attempts")
    );
    // The next window counts afresh (on a new form: the old one expired meanwhile).
    clock.advance(3000);
    let form = server.login_form().await;
    let next_window = server
        .attempt_sign_in(&form, "alice@example.com", "correct horse battery")
        .await;
    assert_eq!(next_window.status(), StatusCode::SEE_OTHER);
}

// The lockout is per account and address, so one account guessed from many addresses meets
// the account's own lock (`login_lockout_account_after` wrong passwords in a row, from any
// address), for each value: at 5, the fifth wrong password from the fifth address locks the
// account for everyone, the owner's right password included; at the default, the same spread
// of wrong passwords leaves the owner free to sign in.
#[tokio::test]
async fn guessing_one_account_from_many_addresses_locks_it_for_everyone() {
    async fn attempts(server: &Running, lock_expected: bool) {
        let form = server.login_form().await;
        for n in 1..=4 {
            let wrong =
                sign_in_from(server, &form, &format!("198.51.100.{n}"), "wrong password").await;
            assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
        }
        let fifth = sign_in_from(server, &form, "198.51.100.5", "wrong password").await;
        let owner = sign_in_from(server, &form, "203.0.113.9", "correct horse battery").await;
        if lock_expected {
            assert_eq!(fifth.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(owner.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(
                owner
                    .text()
                    .await
                    .unwrap()
                    .contains("This account is locked")
            );
            let other = server
                .attempt_sign_in(&form, "bob@example.com", "wrong password")
                .await;
            assert_eq!(
                other.status(),
                StatusCode::UNAUTHORIZED,
                "other accounts are not held"
            );
        } else {
            assert_eq!(fifth.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(owner.status(), StatusCode::SEE_OTHER);
        }
    }
    let trusting_loopback = |config: &mut mcpauth_server::Config| {
        config.trusted_proxies = vec!["127.0.0.1".into()];
    };
    let low = start_configured("", temp_dir("account-lock"), |config| {
        trusting_loopback(config);
        config.login_lockout_account_after = 5;
    })
    .await;
    attempts(&low, true).await;
    let default = start_configured("", temp_dir("account-lock-default"), |config| {
        trusting_loopback(config);
        assert_eq!(config.login_lockout_account_after, 100);
    })
    .await;
    attempts(&default, false).await;
}

// Only wrong passwords that were checked count toward the account's own lock: one address,
// locked out after its third, adds nothing more however often it tries, so it cannot lock
// the account for its owner elsewhere.
#[tokio::test]
async fn one_address_cannot_lock_an_account_for_everyone() {
    let server = start_configured("", temp_dir("account-lock-one"), |config| {
        config.trusted_proxies = vec!["127.0.0.1".into()];
        config.login_lockout_after = 3;
        config.login_lockout_account_after = 5;
    })
    .await;
    let form = server.login_form().await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(
            sign_in_from(&server, &form, "198.51.100.66", "wrong password")
                .await
                .status(),
        );
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count(),
        2,
        "two wrong passwords, the third locks this address out: {statuses:?}"
    );
    let owner = sign_in_from(&server, &form, "203.0.113.9", "correct horse battery").await;
    assert_eq!(owner.status(), StatusCode::SEE_OTHER);
}

/// A sign-in for alice@example.com as if from `address` (behind a trusted proxy).
async fn sign_in_from(
    server: &Running,
    form: &LoginForm,
    address: &str,
    password: &str,
) -> reqwest::Response {
    server
        .http
        .post(&form.action)
        .header("cookie", &form.cookie)
        .header("x-forwarded-for", address)
        .form(&[
            ("csrf_token", form.csrf.as_str()),
            ("email", "alice@example.com"),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

// Per-account lockout with progressive backoff: the sixth wrong password in a row locks the
// account (429 + Retry-After, even for the right password, which is not checked), the lock
// expires, the next lock lasts twice as long, and a success starts afresh.
#[tokio::test]
async fn the_sixth_wrong_password_locks_the_account_until_the_lock_expires() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let server = start_timed("", temp_dir("lockout"), clock.clone(), |c| {
        c.login_lockout_seconds = 2;
        c.login_lockout_max_seconds = 60;
    })
    .await;
    let form = server.login_form().await;
    let attempt = |email: &'static str, password: &'static str| {
        server.attempt_sign_in(&form, email, password)
    };
    let retry_after = |response: &reqwest::Response| -> u64 {
        response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    for _ in 0..5 {
        let wrong = attempt("alice@example.com", "wrong password").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let sixth = attempt("alice@example.com", "wrong password").await;
    assert_eq!(sixth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&sixth), 2);
    assert!(
        sixth
            .text()
            .await
            .unwrap()
            .contains("This account is locked")
    );
    let right_while_locked = attempt("alice@example.com", "correct horse battery").await;
    assert_eq!(right_while_locked.status(), StatusCode::TOO_MANY_REQUESTS);
    // Unknown accounts lock the same way: the answer does not reveal which emails exist.
    for _ in 0..5 {
        let unknown = attempt("nobody@example.com", "wrong password").await;
        assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    }
    let unknown_sixth = attempt("nobody@example.com", "wrong password").await;
    assert_eq!(unknown_sixth.status(), StatusCode::TOO_MANY_REQUESTS);

    // The lock expires; six more wrong passwords lock again, for twice as long.
    clock.advance(2);
    for _ in 0..5 {
        let wrong = attempt("alice@example.com", "wrong password").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let second_lock = attempt("alice@example.com", "wrong password").await;
    assert_eq!(second_lock.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&second_lock), 4, "{:?}", second_lock.headers());
    clock.advance(3);
    let still_locked = attempt("alice@example.com", "correct horse battery").await;
    assert_eq!(still_locked.status(), StatusCode::TOO_MANY_REQUESTS);
    clock.advance(1);
    let signed_in = attempt("alice@example.com", "correct horse battery").await;
    assert_eq!(
        signed_in.status(),
        StatusCode::SEE_OTHER,
        "the lock has expired"
    );
}

// The consent page escapes what the client registered, and a decision is taken once.
#[tokio::test]
async fn consent_escapes_client_metadata_and_decides_once() {
    let server = start().await;
    let (interaction, csrf_cookie) = server.begin().await;
    let cookie = server.sign_in(&interaction, &csrf_cookie).await;
    let page = server.get(&interaction, &cookie).await;
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("&#60;b&#62;Evil&#60;/b&#62; &#38; Co")
            || html.contains("&lt;b&gt;Evil&lt;/b&gt; &amp; Co"),
        "{html}"
    );
    assert!(!html.contains("<b>Evil</b>"));
    assert!(
        html.contains("unverified: it registered itself"),
        "a self-registered client is labelled unverified"
    );
    let csrf = field(&html, "csrf_token");
    let consent = format!("{interaction}/consent");
    let approved = server
        .post_form(
            &consent,
            &cookie,
            &[("csrf_token", &csrf), ("decision", "approve")],
        )
        .await;
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    let location = url::Url::parse(approved.headers()[LOCATION].to_str().unwrap()).unwrap();
    let params: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    assert!(params.iter().any(|(k, _)| k == "code"));
    assert!(params.contains(&("state".into(), "s1".into())));
    assert!(params.contains(&("iss".into(), server.issuer.clone())));
    let again = server
        .post_form(
            &consent,
            &cookie,
            &[("csrf_token", &csrf), ("decision", "approve")],
        )
        .await;
    assert_eq!(
        again.status(),
        StatusCode::BAD_REQUEST,
        "a decided interaction is gone"
    );
}

#[tokio::test]
async fn denying_redirects_with_access_denied() {
    let server = start().await;
    let (interaction, csrf_cookie) = server.begin().await;
    let cookie = server.sign_in(&interaction, &csrf_cookie).await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    let csrf = field(&html, "csrf_token");
    let denied = server
        .post_form(
            &format!("{interaction}/consent"),
            &cookie,
            &[("csrf_token", &csrf), ("decision", "deny")],
        )
        .await;
    let location = denied.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(REDIRECT)
            && location.contains("error=access_denied")
            && location.contains("state=s1"),
        "{location}"
    );
}

// Login session cookie: HttpOnly, SameSite=Lax (Secure only for https issuers).
#[tokio::test]
async fn session_cookie_is_httponly_and_samesite_lax() {
    let server = start().await;
    let (interaction, csrf_cookie) = server.begin().await;
    let page = server
        .get(&interaction, &csrf_cookie)
        .await
        .text()
        .await
        .unwrap();
    let csrf = field(&page, "csrf_token");
    let response = server
        .post_form(
            &format!("{interaction}/login"),
            &csrf_cookie,
            &[
                ("csrf_token", &csrf),
                ("email", "alice@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("mcpauth_session="), "{set_cookie}");
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Lax")
            && set_cookie.contains("Path=/"),
        "{set_cookie}"
    );
}

// A signed-in browser skips the login form on the next authorization, but still sees consent.
#[tokio::test]
async fn a_session_skips_login_but_not_consent() {
    let server = start().await;
    let (interaction, csrf_cookie) = server.begin().await;
    let cookie = server.sign_in(&interaction, &csrf_cookie).await;
    let session = cookie
        .split("; ")
        .find(|c| c.starts_with("mcpauth_session="))
        .unwrap()
        .to_owned();
    let client_id = server.register().await;
    let response = server
        .get(&server.authorize_url(&client_id), &session)
        .await;
    let second = format!(
        "{}{}",
        server.base,
        response.headers()[LOCATION].to_str().unwrap()
    );
    let html = server
        .get(
            &second,
            &format!("{session}; {}", cookies(response.headers())),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("decision"), "consent page expected: {html}");
    assert!(
        !html.contains("name=\"password\""),
        "no login form when signed in"
    );
}

// RFC 8414 §3.1: an issuer with a path publishes its metadata at the path-inserted URL, and
// the endpoints live under the issuer's path.
#[tokio::test]
async fn issuer_with_a_path_uses_path_inserted_metadata() {
    let server = start_with("/tenant1", temp_dir("tenant")).await;
    let response = server
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server/tenant1",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let metadata: Value = response.json().await.unwrap();
    assert_eq!(metadata["issuer"], server.issuer.as_str());
    assert_eq!(
        metadata["token_endpoint"],
        format!("{}/token", server.issuer)
    );
    assert_eq!(
        server
            .http
            .get(format!("{}/jwks.json", server.issuer))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

// RFC 6749 §5.1: Cache-Control: no-store on token responses, over HTTP.
#[tokio::test]
async fn token_endpoint_answers_no_store_and_json_errors() {
    let server = start().await;
    let response = server
        .http
        .post(format!("{}/token", server.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("client_id", "nobody"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    let wrong_type = server
        .http
        .post(format!("{}/token", server.issuer))
        .json(&serde_json::json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), StatusCode::BAD_REQUEST);
}

// The signing key is generated once and persisted.
#[tokio::test]
async fn signing_key_survives_a_restart() {
    let dir = temp_dir("restart");
    let first = start_with("", dir.clone()).await;
    let kid = first.jwks_kid().await;
    first.stop_keeping_data();
    let second = start_with("", dir).await;
    assert_eq!(second.jwks_kid().await, kid);
}

// Signing keys at rest: once an encryption key is configured, a key stored in plain text is
// sealed in place (same key, same kid); without the encryption key it cannot be loaded.
#[tokio::test]
async fn stored_signing_keys_are_encrypted_once_an_encryption_key_is_set() {
    let dir = temp_dir("sealed");
    let first = start_with("", dir.clone()).await;
    let kid = first.jwks_kid().await;
    first.stop_keeping_data();
    let url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    let stored = |url: String| async move {
        let store = mcpauth_store_sql::SqlStore::connect(&url).await.unwrap();
        let keys = store.signing_keys().await.unwrap();
        store.close().await;
        keys
    };
    let plain = stored(url.clone()).await;
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0].material[0], 0x30, "PKCS#8 DER in plain text");

    let sealed_config = |key: Option<&str>| {
        let mut config = mcpauth_server::Config::default();
        config.database_url = url.clone();
        config.signing_key_encryption_key = key.map(Into::into);
        config
    };
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    mcpauth_server::build(&sealed_config(Some(key)))
        .await
        .unwrap();
    let sealed = stored(url.clone()).await;
    assert_eq!(sealed[0].kid, plain[0].kid);
    assert_ne!(sealed[0].material, plain[0].material);
    assert!(
        !sealed[0]
            .material
            .windows(plain[0].material.len())
            .any(|w| w == plain[0].material.as_slice()),
        "the plain key is gone from the database"
    );
    let second = start_configured("", dir.clone(), |c| {
        c.signing_key_encryption_key = Some(key.into());
    })
    .await;
    assert_eq!(second.jwks_kid().await, kid, "same key after sealing");
    second.stop_keeping_data();

    let without = mcpauth_server::build(&sealed_config(None))
        .await
        .unwrap_err();
    assert!(
        without.to_string().contains("signing_key_encryption_key"),
        "{without}"
    );
    let wrong = mcpauth_server::build(&sealed_config(Some(
        "BwECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    )))
    .await
    .unwrap_err();
    assert!(wrong.to_string().contains("cannot decrypt"), "{wrong}");
    let short = mcpauth_server::build(&sealed_config(Some("c2hvcnQ=")))
        .await
        .unwrap_err();
    assert!(short.to_string().contains("32 random bytes"), "{short}");
    let _ = std::fs::remove_dir_all(&dir);
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

// `mcpauth-server user add <email>` reads the password from stdin when it is not a terminal.
#[tokio::test]
async fn user_add_reads_the_password_from_stdin() {
    use tokio::io::AsyncWriteExt;
    let dir = temp_dir("cli");
    let add = || {
        let mut child = tokio::process::Command::new(binary())
            .args(["user", "add", "Carol@Example.com"])
            .current_dir(&dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        async move {
            stdin.write_all(b"a long enough password\n").await.unwrap();
            drop(stdin);
            child.wait_with_output().await.unwrap()
        }
    };
    let output = add().await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("added carol@example.com as user_"));
    assert!(
        dir.join("mcpauth.db").exists(),
        "the default database is ./mcpauth.db"
    );
    let again = add().await;
    assert!(!again.status.success(), "a taken email must fail");
    let _ = std::fs::remove_dir_all(&dir);
}

// `mcpauth-server` with no arguments serves on its SQLite default in the working directory.
#[tokio::test]
async fn binary_serves_with_no_arguments() {
    let dir = temp_dir("bin");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(binary())
        .current_dir(&dir)
        .env("MCPAUTH_LISTEN", format!("127.0.0.1:{port}"))
        .kill_on_drop(true)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/.well-known/oauth-authorization-server");
    let mut metadata = None;
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(&url).await {
            metadata = Some(response.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill().await;
    let metadata = metadata.expect("the server did not come up");
    assert_eq!(metadata["issuer"], format!("http://127.0.0.1:{port}"));
    assert!(dir.join("mcpauth.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

// RFC 7592 over HTTP: the registration_client_uri answers GET with the registration token and
// DELETE removes the client.
#[tokio::test]
async fn registration_management_is_served_at_the_registration_client_uri() {
    let server = start().await;
    let registered: Value = server
        .http
        .post(format!("{}/register", server.issuer))
        .json(&serde_json::json!({ "redirect_uris": [REDIRECT], "client_name": "Managed" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uri = registered["registration_client_uri"].as_str().unwrap();
    let token = registered["registration_access_token"].as_str().unwrap();
    let read = server
        .http
        .get(uri)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(
        read.json::<Value>().await.unwrap()["client_name"],
        "Managed"
    );
    assert_eq!(
        server.http.get(uri).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server
            .http
            .delete(uri)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        server
            .http
            .get(uri)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

// Registration abuse limits over HTTP: the per-IP limit keys on the peer address the server
// sees, and the initial access token is required when configured.
#[tokio::test]
async fn registration_is_limited_per_ip_and_can_require_a_token() {
    let server = start_configured("", temp_dir("limits"), |c| {
        c.registrations_per_ip_per_hour = 1;
    })
    .await;
    let body = serde_json::json!({ "redirect_uris": [REDIRECT] });
    let register = || {
        server
            .http
            .post(format!("{}/register", server.issuer))
            .json(&body)
            .send()
    };
    assert_eq!(register().await.unwrap().status(), StatusCode::CREATED);
    let limited = register().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get("retry-after").is_some());

    let protected = start_configured("", temp_dir("iat"), |c| {
        c.registration_token = Some("operator-issued".into());
    })
    .await;
    let url = format!("{}/register", protected.issuer);
    assert_eq!(
        protected
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        protected
            .http
            .post(&url)
            .bearer_auth("operator-issued")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
}

// Client ID Metadata Documents: advertised, and a document URL that points inside the network
// is refused by the SSRF-safe fetcher with an error page, never a redirect.
#[tokio::test]
async fn metadata_document_urls_pointing_inside_the_network_are_refused() {
    let server = start().await;
    let metadata: Value = server
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            server.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    for client_id in [
        "https://127.0.0.1:9/client.json",
        "https://169.254.169.254/latest/client.json",
        "https://10.0.0.7/client.json",
    ] {
        let response = server
            .http
            .get(server.authorize_url(client_id))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{client_id}");
        assert!(response.headers().get(LOCATION).is_none());
        let html = response.text().await.unwrap();
        assert!(
            html.contains("private, loopback or reserved address"),
            "{html}"
        );
    }
}

// RFC 6797: an https issuer's responses tell browsers to stay on https; a loopback http
// development issuer's do not (HSTS there would break other local servers on that host).
#[tokio::test]
async fn https_issuers_send_strict_transport_security() {
    let https = start_configured("", temp_dir("hsts"), |c| {
        c.issuer = Some("https://auth.example.test".into());
    })
    .await;
    for path in ["/health", "/.well-known/oauth-authorization-server"] {
        let response = https
            .http
            .get(format!("{}{path}", https.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000",
            "{path}"
        );
    }
    let http = start().await;
    let response = http
        .http
        .get(format!("{}/health", http.base))
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
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

// RFC 8252 §8.6: remembered consent covers exactly what the user saw: the redirect URI, and
// per resource the scopes approved for it. Anything else asks again.
#[tokio::test]
async fn remembered_consent_covers_exactly_what_the_user_saw() {
    const OTHER_REDIRECT: &str = "http://127.0.0.1:53682/other";
    const OTHER_RESOURCE: &str = "http://127.0.0.1:3001/mcp";
    let server = start().await;
    let (interaction, cookie) = server.begin().await;
    let session = cookie_named(
        &server.sign_in(&interaction, &cookie).await,
        "mcpauth_session",
    );
    let client_id = server
        .register_confidential(&[REDIRECT, OTHER_REDIRECT])
        .await;
    let url = |redirect: &str, resource: &str, scope: &str| {
        server.authorize_url_for(&client_id, redirect, resource, scope)
    };
    // Approved and remembered: mcp:tools at RESOURCE, mcp:admin at OTHER_RESOURCE.
    let shown = server
        .open_with_session(&url(REDIRECT, RESOURCE, "mcp:tools"), &session)
        .await
        .unwrap_err();
    server.approve_shown(shown, true).await;
    let shown = server
        .open_with_session(&url(REDIRECT, OTHER_RESOURCE, "mcp:admin"), &session)
        .await
        .unwrap_err();
    server.approve_shown(shown, true).await;

    // The same request, or a narrower one, skips the page.
    assert!(
        server
            .open_with_session(&url(REDIRECT, RESOURCE, "mcp:tools"), &session)
            .await
            .is_ok_and(|back| back.starts_with(REDIRECT) && back.contains("code="))
    );
    // mcp:admin was approved for the other resource only: no union across resources.
    assert!(
        server
            .open_with_session(&url(REDIRECT, RESOURCE, "mcp:admin"), &session)
            .await
            .is_err(),
        "a scope approved for another resource asks again"
    );
    // Another redirect URI than the one approved asks again.
    assert!(
        server
            .open_with_session(&url(OTHER_REDIRECT, RESOURCE, "mcp:tools"), &session)
            .await
            .is_err(),
        "another redirect URI asks again"
    );
}

// RFC 8252 §8.6: a public client whose redirect is a loopback URI cannot prove who it is; it
// is asked every time, the page does not offer to remember, and says plainly where the answer
// goes. A signed-in user still approves with one click.
#[tokio::test]
async fn a_public_loopback_client_is_asked_every_time() {
    let server = start().await;
    let client_id = server.register().await;
    let (interaction, cookie) = server.begin().await;
    let session = cookie_named(
        &server.sign_in(&interaction, &cookie).await,
        "mcpauth_session",
    );
    let url = server.authorize_url(&client_id);
    let shown = server.open_with_session(&url, &session).await.unwrap_err();
    assert!(!shown.0.contains("name=\"remember\""), "{}", shown.0);
    assert!(
        shown.0.contains("a program on this computer (localhost)"),
        "{}",
        shown.0
    );
    // Posting "remember" anyway remembers nothing.
    let back = server.approve_shown(shown, true).await;
    assert!(
        back.starts_with(REDIRECT) && back.contains("code="),
        "{back}"
    );
    assert!(
        server.open_with_session(&url, &session).await.is_err(),
        "asked again"
    );
}

// Remembered consent is per user and client: approving with "remember" skips the consent
// page next time; withdrawing it on the account page asks again.
#[tokio::test]
async fn remembered_consent_skips_the_page_until_it_is_withdrawn() {
    let server = start().await;
    let client_id = server.register_confidential(&[REDIRECT]).await;
    let (first, cookie) = server
        .start_authorization(&server.authorize_url(&client_id), "")
        .await;
    let interaction = format!("{}{}", server.base, location(&first));
    let cookie = server.sign_in(&interaction, &cookie).await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("name=\"remember\""), "{html}");
    let approved = server
        .post_form(
            &format!("{interaction}/consent"),
            &cookie,
            &[
                ("csrf_token", &field(&html, "csrf_token")),
                ("decision", "approve"),
                ("remember", "yes"),
            ],
        )
        .await;
    assert!(location(&approved).starts_with(REDIRECT));
    let session = cookie_named(&cookie, "mcpauth_session");

    // Same user, same client, same request: straight back to the client with a code.
    let (second, cookie) = server
        .start_authorization(&server.authorize_url(&client_id), &session)
        .await;
    let interaction = format!("{}{}", server.base, location(&second));
    let skipped = server.get(&interaction, &cookie).await;
    assert_eq!(skipped.status(), StatusCode::SEE_OTHER);
    let back = location(&skipped);
    assert!(
        back.starts_with(REDIRECT) && back.contains("code=") && back.contains("state=s1"),
        "{back}"
    );

    // Another client is still asked.
    let other = server.register_confidential(&[REDIRECT]).await;
    let (third, cookie) = server
        .start_authorization(&server.authorize_url(&other), &session)
        .await;
    let html = server
        .get(&format!("{}{}", server.base, location(&third)), &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("name=\"decision\""), "{html}");

    // The account page lists the decision; withdrawing it asks again.
    let account = server
        .get(&format!("{}/account", server.base), &session)
        .await;
    let cookie = format!("{session}; {}", cookies(account.headers()));
    let html = account.text().await.unwrap();
    assert!(html.contains(&client_id), "{html}");
    let withdrawn = server
        .post_form(
            &format!("{}/account/withdraw", server.base),
            &cookie,
            &[
                ("csrf_token", &field(&html, "csrf_token")),
                ("client_id", &client_id),
            ],
        )
        .await;
    assert_eq!(withdrawn.status(), StatusCode::SEE_OTHER);
    let html = server
        .get(&format!("{}/account", server.base), &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains(&client_id), "{html}");
    let (fourth, cookie) = server
        .start_authorization(&server.authorize_url(&client_id), &session)
        .await;
    let asked = server
        .get(&format!("{}{}", server.base, location(&fourth)), &cookie)
        .await;
    assert_eq!(asked.status(), StatusCode::OK);
    assert!(asked.text().await.unwrap().contains("name=\"decision\""));
}

// Forms outside an interaction (withdraw, sign-out, device) need the browser's form cookie
// and the matching hidden token.
#[tokio::test]
async fn account_forms_without_the_csrf_token_are_refused() {
    let server = start().await;
    let (interaction, cookie) = server.begin().await;
    let cookie = server.sign_in(&interaction, &cookie).await;
    let session = cookie_named(&cookie, "mcpauth_session");
    for (path, form) in [
        ("/account/withdraw", vec![("client_id", "x")]),
        ("/sign-out", vec![]),
        (
            "/device",
            vec![("user_code", "BCDF-GHJK"), ("decision", "approve")],
        ),
    ] {
        let mut with_token = form.clone();
        with_token.push(("csrf_token", "forged"));
        let refused = server
            .post_form(
                &format!("{}{path}", server.base),
                &format!("{session}; mcpauth_form={}", "A".repeat(43)),
                &with_token,
            )
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{path}");
    }
    // The session survived the forged sign-out.
    let html = server
        .get(&format!("{}/account", server.base), &session)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("alice@example.com"), "{html}");
}

// "Signed in as … / Sign out" on the consent page: signing out ends the session (the cookie
// no longer works) and shows the sign-in form for the same request.
#[tokio::test]
async fn signing_out_from_the_consent_page_ends_the_session() {
    let server = start().await;
    let (interaction, cookie) = server.begin().await;
    let cookie = server.sign_in(&interaction, &cookie).await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Signed in as <strong>alice@example.com</strong>"),
        "{html}"
    );
    let signed_out = server
        .post_form(
            &format!("{interaction}/sign-out"),
            &cookie,
            &[("csrf_token", &field(&html, "csrf_token"))],
        )
        .await;
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    assert!(
        signed_out.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .starts_with("mcpauth_session=;")
    );
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("name=\"password\""), "{html}");
    let account = server
        .get(
            &format!("{}/account", server.base),
            &cookie_named(&cookie, "mcpauth_session"),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        account.contains("name=\"password\""),
        "the old session is gone"
    );
}

// XSS: `scope` and `client_name` are shown escaped; `state` only ever travels URL-encoded
// in the redirect.
#[tokio::test]
async fn scope_and_state_are_escaped() {
    let server = start_configured("", temp_dir("xss"), |config| {
        config
            .scope_descriptions
            .insert("mcp:tools".into(), "Use <i>all</i> tools".into());
    })
    .await;
    let client_id = server.register().await;
    let state = "\"><script>alert(1)</script>";
    let url = server.authorize_url_with(
        &client_id,
        state,
        Some("<img/src=x/onerror=alert(1)> mcp:tools"),
    );
    let (response, cookie) = server.start_authorization(&url, "").await;
    let interaction = format!("{}{}", server.base, location(&response));
    let cookie = server.sign_in(&interaction, &cookie).await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("<i>all</i>"), "{html}");
    assert!(!html.contains("<script"), "{html}");
    assert!(
        html.contains("&#60;img/src=x/onerror=alert(1)&#62;")
            || html.contains("&lt;img/src=x/onerror=alert(1)&gt;"),
        "{html}"
    );
    let decided = server
        .post_form(
            &format!("{interaction}/consent"),
            &cookie,
            &[
                ("csrf_token", &field(&html, "csrf_token")),
                ("decision", "deny"),
            ],
        )
        .await;
    let back = location(&decided);
    assert!(!back.contains('<') && !back.contains('"'), "{back}");
    let back = url::Url::parse(&back).unwrap();
    assert!(back.query_pairs().any(|(k, v)| k == "state" && v == state));
}

// Pages take their style from one stylesheet on this origin; the CSP allows nothing else.
#[tokio::test]
async fn pages_use_one_stylesheet_from_this_origin() {
    let server = start_with("/tenant", temp_dir("css")).await;
    let css = server
        .get(&format!("{}/static/mcpauth.css", server.issuer), "")
        .await;
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let page = server.get(&format!("{}/device", server.issuer), "").await;
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'; style-src 'self';")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("href=\"/tenant/static/mcpauth.css\""),
        "{html}"
    );
}

// RFC 8628 §3.3: the user opens `verification_uri_complete`, signs in, confirms the code
// and approves; the device's next poll gets tokens. Wrong codes are refused with the form
// shown again.
#[tokio::test]
async fn the_device_page_signs_in_and_approves_a_device_code() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let server = start_timed("", temp_dir("device"), clock.clone(), |_| {}).await;
    let client: Value = server
        .http
        .post(format!("{}/register", server.issuer))
        .json(&serde_json::json!({
            "client_name": "Kitchen <TV>",
            "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let device: Value = server
        .http
        .post(format!("{}/device_authorization", server.issuer))
        .form(&[("client_id", client_id.as_str()), ("resource", RESOURCE)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        device["verification_uri"],
        format!("{}/device", server.issuer)
    );
    let complete = device["verification_uri_complete"].as_str().unwrap();
    let user_code = device["user_code"].as_str().unwrap();

    // Signed out: the sign-in form, carrying the code through.
    let page = server.get(complete, "").await;
    let cookie = cookies(page.headers());
    assert!(cookie.starts_with("mcpauth_form="), "{cookie}");
    let html = page.text().await.unwrap();
    assert_eq!(field(&html, "user_code"), user_code);
    let signed_in = server
        .post_form(
            &format!("{}/sign-in", server.base),
            &cookie,
            &[
                ("csrf_token", &field(&html, "csrf_token")),
                ("next", "device"),
                ("user_code", user_code),
                ("email", "alice@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = format!("{cookie}; {}", cookies(signed_in.headers()));
    let confirm = format!("{}{}", server.base, location(&signed_in));

    // Back with a session: the code-entry form, filled in; nothing looked up yet.
    let entry = server.get(&confirm, &cookie).await;
    assert_eq!(entry.status(), StatusCode::OK);
    let entry = entry.text().await.unwrap();
    assert_eq!(field(&entry, "user_code"), user_code);
    let csrf = field(&entry, "csrf_token");
    let lookup = |code: &str, token: &str| {
        let (code, token) = (code.to_owned(), token.to_owned());
        let cookie = cookie.clone();
        let server = &server;
        async move {
            server
                .post_form(
                    &format!("{}/device/code", server.base),
                    &cookie,
                    &[("csrf_token", &token), ("user_code", &code)],
                )
                .await
        }
    };
    // The code form carries a CSRF token: without it, nothing is looked up.
    let forged = lookup(user_code, "not-the-token").await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    // The confirmation shows the code, the client (escaped) and how verified it is.
    let html = lookup(user_code, &csrf).await.text().await.unwrap();
    assert!(html.contains(user_code), "{html}");
    assert!(html.contains("Kitchen &#60;TV&#62;") || html.contains("Kitchen &lt;TV&gt;"));
    assert!(html.contains("unverified: it registered itself"), "{html}");

    // A mistyped code: the entry form again, with an error.
    let wrong = lookup("BBBB-BBBB", &csrf).await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert!(wrong.text().await.unwrap().contains("not valid"));

    let poll = || {
        server
            .http
            .post(format!("{}/token", server.issuer))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device["device_code"].as_str().unwrap()),
                ("client_id", client_id.as_str()),
            ])
            .send()
    };
    let pending: Value = poll().await.unwrap().json().await.unwrap();
    assert_eq!(pending["error"], "authorization_pending");

    let approved = server
        .post_form(
            &format!("{}/device", server.base),
            &cookie,
            &[
                ("csrf_token", &field(&html, "csrf_token")),
                ("user_code", user_code),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(approved.status(), StatusCode::OK);
    assert!(approved.text().await.unwrap().contains("Device connected"));

    // Polling too soon after the first poll is slow_down; wait out the interval.
    clock.advance(5);
    let tokens = poll().await.unwrap();
    assert_eq!(tokens.status(), StatusCode::OK);
    let tokens: Value = tokens.json().await.unwrap();
    assert!(tokens["access_token"].is_string(), "{tokens}");
}

// Per-address limits on the token and device-authorization endpoints, counted in the
// database: over the limit, 429 with Retry-After and an RFC 6749-shaped JSON error.
#[tokio::test]
async fn token_and_device_requests_are_limited_per_address() {
    let server = start_configured("", temp_dir("limits"), |config| {
        config.token_requests_per_ip_per_minute = 3;
        config.device_authorizations_per_ip_per_minute = 2;
    })
    .await;
    let token = || {
        server
            .http
            .post(format!("{}/token", server.issuer))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
            ])
            .send()
    };
    for _ in 0..3 {
        assert_eq!(token().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let limited = token().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait));
    assert_eq!(limited.headers()["cache-control"], "no-store");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");

    let device = || {
        server
            .http
            .post(format!("{}/device_authorization", server.issuer))
            .form(&[("client_id", "nobody")])
            .send()
    };
    for _ in 0..2 {
        assert_ne!(
            device().await.unwrap().status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    assert_eq!(
        device().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let metrics = server
        .get(&format!("{}/metrics", server.base), "")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mcpauth_rate_limited_total{endpoint=\"token\"} 1"),
        "{metrics}"
    );
}

// /metrics: requests and latencies per endpoint, tokens issued per grant type, OAuth errors
// per error code; behind a bearer token when one is configured.
#[tokio::test]
async fn metrics_count_requests_grants_and_errors() {
    let server = start_configured("", temp_dir("metrics"), |config| {
        config.metrics_token = Some("metrics-secret-of-enough-length-here".into());
        config.registration_token = Some("metrics-test-initial-access-token".into());
        config.vouched_registration_grant_types = vec!["client_credentials".into()];
    })
    .await;
    let client: Value = server
        .http
        .post(format!("{}/register", server.issuer))
        .bearer_auth("metrics-test-initial-access-token")
        .json(&serde_json::json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_post",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issue = |secret: &str| {
        server
            .http
            .post(format!("{}/token", server.issuer))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client["client_id"].as_str().unwrap()),
                ("client_secret", secret),
                ("resource", RESOURCE),
            ])
            .send()
    };
    assert_eq!(
        issue(client["client_secret"].as_str().unwrap())
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        issue("wrong").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let url = format!("{}/metrics", server.base);
    assert_eq!(
        server.get(&url, "").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let response = server
        .http
        .get(&url)
        .bearer_auth("metrics-secret-of-enough-length-here")
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    for expected in [
        "mcpauth_tokens_issued_total{grant_type=\"client_credentials\"} 1",
        "mcpauth_oauth_errors_total{endpoint=\"token\",error=\"invalid_client\"} 1",
        "mcpauth_http_requests_total{endpoint=\"token\",status=\"2xx\"} 1",
        "mcpauth_http_requests_total{endpoint=\"token\",status=\"4xx\"} 1",
        "mcpauth_http_requests_total{endpoint=\"register\",status=\"2xx\"} 1",
        "mcpauth_http_request_duration_seconds_count{endpoint=\"token\"} 2",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    // Nothing secret reaches the metrics.
    assert!(!text.contains(client["client_secret"].as_str().unwrap()));
}

// Production mode refuses to start on an http issuer or without an encryption key, naming
// each problem.
#[tokio::test]
async fn production_mode_refuses_an_unsafe_configuration() {
    let dir = temp_dir("production");
    let mut config = mcpauth_server::Config::default();
    config.production = true;
    config.issuer = Some("http://127.0.0.1:9".into());
    config.database_url = format!("sqlite://{}", dir.join("absent.db").display());
    let error = mcpauth_server::build(&config)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("is not https"), "{error}");
    assert!(error.contains("does not exist"), "{error}");
    assert!(error.contains("signing_key_encryption_key"), "{error}");
    assert!(
        !dir.join("absent.db").exists(),
        "no empty database is created"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// A rotated-in key is published in the JWKS of a running server at once and signs only
// after the lead; tokens signed by the old key keep verifying.
#[tokio::test]
async fn a_rotated_key_is_published_before_it_signs_and_an_unreadable_one_fails_readiness() {
    let dir = temp_dir("rotate");
    let mut config = mcpauth_server::Config::default();
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    let server = mcpauth_server::build(&config).await.unwrap();
    let first = server.engine.keys().current().kid().to_owned();
    let new = server.rotate_key("ES256").await.unwrap();
    assert_eq!(server.engine.keys().current().kid(), first);
    let published: Vec<String> = server.engine.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        published.contains(&new) && published.contains(&first),
        "{published:?}"
    );

    // A stored key this instance cannot read: the keys in use stay, and `/ready` says so.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ready_url = format!("http://{}/ready", listener.local_addr().unwrap());
    let router = server.router.clone();
    let serving = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let ready = || async { reqwest::get(&ready_url).await.unwrap().status() };
    assert_eq!(ready().await, StatusCode::OK);
    server
        .store
        .insert_signing_key("unreadable", "ES256", b"not a key", UnixTime(1))
        .await
        .unwrap();
    assert!(server.reload_keys().await.is_err());
    assert_eq!(server.engine.keys().current().kid(), first);
    assert_eq!(ready().await, StatusCode::SERVICE_UNAVAILABLE);
    assert!(server.store.delete_signing_key("unreadable").await.unwrap());
    server.reload_keys().await.unwrap();
    assert_eq!(ready().await, StatusCode::OK);
    serving.abort();

    server.store.close().await;
    // Another instance (or this one, after the lead) signs with the new key.
    config.key_rotation_lead = 0;
    let later = mcpauth_server::build(&config).await.unwrap();
    assert_eq!(later.engine.keys().current().kid(), new);
    assert!(later.engine.keys().find(&first).is_some());
    later.store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// Logs carry no secrets: a whole flow through the binary at debug level, logging JSON, and
// not one line holds the password, the code, a token, the session or a CSRF token.
#[tokio::test]
async fn debug_logs_in_json_carry_no_passwords_codes_tokens_or_cookies() {
    use tokio::io::AsyncWriteExt;
    let dir = temp_dir("logs");
    let password = "correct horse battery";
    let mut add = tokio::process::Command::new(binary())
        .args(["user", "add", "alice@example.com"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = add.stdin.take().unwrap();
    stdin.write_all(password.as_bytes()).await.unwrap();
    drop(stdin);
    assert!(add.wait().await.unwrap().success());

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log_path = dir.join("server.log");
    let mut child = tokio::process::Command::new(binary())
        .current_dir(&dir)
        .env("MCPAUTH_LISTEN", format!("127.0.0.1:{port}"))
        .env("MCPAUTH_LOG", "debug")
        .env("MCPAUTH_LOG_FORMAT", "json")
        .kill_on_drop(true)
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let server = Running {
        base: base.clone(),
        issuer: base.clone(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        stop: None,
        dir: dir.clone(),
    };
    for _ in 0..100 {
        if reqwest::get(format!("{base}/health")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A wrong password first, then the whole flow.
    let form = server.login_form().await;
    let wrong = server
        .attempt_sign_in(&form, "alice@example.com", "wrong horse battery")
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let client_id = server.register().await;
    let (started, cookie) = server
        .start_authorization(&server.authorize_url(&client_id), "")
        .await;
    let interaction = format!("{base}{}", location(&started));
    let cookie = server.sign_in(&interaction, &cookie).await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    let csrf = field(&html, "csrf_token");
    let approved = server
        .post_form(
            &format!("{interaction}/consent"),
            &cookie,
            &[("csrf_token", &csrf), ("decision", "approve")],
        )
        .await;
    let redirect = url::Url::parse(&location(&approved)).unwrap();
    let code = redirect
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let post_token =
        |form: &[(&str, &str)]| server.http.post(format!("{base}/token")).form(form).send();
    let redeem_code = || {
        post_token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", VERIFIER),
            ("resource", RESOURCE),
        ])
    };
    let tokens: Value = redeem_code().await.unwrap().json().await.unwrap();
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refreshed: Value = post_token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh_token),
        ("client_id", &client_id),
    ])
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let second_refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    // A replayed code (which also revokes the grant) is logged, without the code.
    let replay = redeem_code().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    let session = cookie_named(&cookie, "mcpauth_session");
    let session_value = session.split_once('=').unwrap().1.to_owned();
    let _ = child.kill().await;

    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.lines().count() > 5, "{logs}");
    for line in logs.lines() {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON line: {line}");
    }
    for (what, secret) in [
        ("the password", password),
        ("the wrong password", "wrong horse battery"),
        ("the code", code.as_str()),
        ("the access token", access_token.as_str()),
        ("the refresh token", refresh_token.as_str()),
        ("the rotated refresh token", second_refresh.as_str()),
        ("the session cookie", session_value.as_str()),
        ("the CSRF token", csrf.as_str()),
        ("the code verifier", VERIFIER),
    ] {
        assert!(!logs.contains(secret), "the logs hold {what}");
    }
}

// With providers: the chooser is the consent (before anyone is sent upstream), password
// sign-in can be off, continuing takes the interaction once and sends the browser upstream
// with our own state and PKCE and a cookie binding the callback to it, Deny needs no
// sign-in, and a callback with a forged state is refused with a page, redirecting nowhere.
#[tokio::test]
async fn the_provider_chooser_consents_before_sending_the_user_upstream() {
    let server = start_configured("", temp_dir("chooser"), |config| {
        config.providers = vec![
            mcpauth_proxy::ProviderConfig::new("github", mcpauth_proxy::Preset::GitHub, "gh-id")
                .client_secret("gh-secret"),
        ];
        config.password_login = false;
    })
    .await;
    let (interaction, cookie) = server.begin().await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Authorize &#60;b&#62;Evil&#60;/b&#62; &#38; Co?"),
        "{html}"
    );
    assert!(html.contains("Continue with GitHub"), "{html}");
    assert!(
        !html.contains("type=\"password\""),
        "password sign-in is off: {html}"
    );
    let csrf = field(&html, "csrf_token");

    // Password sign-in is refused outright.
    let refused = server
        .post_form(
            &format!("{interaction}/login"),
            &cookie,
            &[
                ("csrf_token", csrf.as_str()),
                ("email", "alice@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // Without the form's token: refused, nothing taken.
    let forged = server
        .post_form(
            &format!("{interaction}/upstream/github"),
            &cookie,
            &[("csrf_token", "forged")],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let upstream = server
        .post_form(
            &format!("{interaction}/upstream/github"),
            &cookie,
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(upstream.status(), StatusCode::SEE_OTHER);
    let sent_to = url::Url::parse(&location(&upstream)).unwrap();
    assert_eq!(
        sent_to.as_str().split('?').next().unwrap(),
        "https://github.com/login/oauth/authorize"
    );
    let query: std::collections::HashMap<String, String> =
        sent_to.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], "gh-id");
    assert_eq!(
        query["redirect_uri"],
        format!("{}/upstream/github/callback", server.issuer)
    );
    assert_eq!(query["code_challenge_method"], "S256");
    assert_ne!(query["state"], "s1", "our own state, not the client's");
    let binding = upstream
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("mcpauth_upstream_"))
        .expect("a binding cookie");
    assert!(
        binding.contains("Path=/upstream/github/callback") && binding.contains("HttpOnly"),
        "{binding}"
    );

    // The interaction was taken: continuing twice does not start two sign-ins.
    let again = server
        .post_form(
            &format!("{interaction}/upstream/github"),
            &cookie,
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);

    // A callback whose state no sign-in is waiting for: a page, no redirect.
    let forged = server
        .get(
            &format!(
                "{}/upstream/github/callback?code=attacker-code&state=forged",
                server.issuer
            ),
            "",
        )
        .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(forged.headers().get(LOCATION).is_none());
    assert!(
        forged
            .text()
            .await
            .unwrap()
            .contains("This sign-in cannot be completed")
    );

    // Deny on the chooser: the client hears access_denied, nobody signed in.
    let (interaction, cookie) = server.begin().await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    let denied = server
        .post_form(
            &format!("{interaction}/consent"),
            &cookie,
            &[
                ("csrf_token", field(&html, "csrf_token").as_str()),
                ("decision", "deny"),
            ],
        )
        .await;
    let back = location(&denied);
    assert!(
        back.starts_with(REDIRECT) && back.contains("error=access_denied"),
        "{back}"
    );
    // Approving needs a signed-in user: without one it is not an approval.
    let (interaction, cookie) = server.begin().await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    let approve = server
        .post_form(
            &format!("{interaction}/consent"),
            &cookie,
            &[
                ("csrf_token", field(&html, "csrf_token").as_str()),
                ("decision", "approve"),
            ],
        )
        .await;
    assert!(!location(&approve).contains("code="));
}

// Accounts created by federated sign-in have no password: no password opens them, not even
// the one the dummy hash was made from.
#[tokio::test]
async fn a_federated_account_cannot_sign_in_with_a_password() {
    let dir = temp_dir("nopassword");
    let server = start_with("", dir.clone()).await;
    let store = mcpauth_store_sql::SqlStore::connect(&format!(
        "sqlite://{}",
        dir.join("mcpauth.db").display()
    ))
    .await
    .unwrap();
    store
        .create_federated_user(
            "user_fed",
            Some("fed@example.com"),
            "github",
            "42",
            UnixTime(1),
        )
        .await
        .unwrap();
    // The operator names federated users by subject or `provider:upstream-id`.
    store
        .create_federated_user("user_fed2", None, "github", "43", UnixTime(1))
        .await
        .unwrap();
    mcpauth_server::admin::disable_user(&store, "github:43")
        .await
        .unwrap();
    mcpauth_server::admin::enable_user(&store, "user_fed2")
        .await
        .unwrap();
    assert!(
        mcpauth_server::admin::disable_user(&store, "github:44")
            .await
            .is_err()
    );
    for password in ["", "!federated", "dummy-password-never-matches"] {
        let form = server.login_form().await;
        let response = server
            .attempt_sign_in(&form, "fed@example.com", password)
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{password:?}");
    }
}

// On an https issuer every cookie of the pages is a `__Host-` cookie: `Secure`, `Path=/`, no
// `Domain`, so no other host and no plain-http page can set or overwrite it.
#[tokio::test]
async fn on_an_https_issuer_session_and_csrf_cookies_use_the_host_prefix() {
    let server = start_configured("", temp_dir("host-prefix"), |config| {
        config.issuer = Some("https://auth.example.test".into());
    })
    .await;
    let account = server.get(&format!("{}/account", server.base), "").await;
    let form_cookie = account.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        form_cookie.starts_with("__Host-mcpauth_form=")
            && form_cookie.contains("; Path=/;")
            && form_cookie.contains("; Secure")
            && !form_cookie.contains("Domain"),
        "{form_cookie}"
    );
    let html = account.text().await.unwrap();
    let cookie = form_cookie.split(';').next().unwrap().to_owned();
    let signed_in = server
        .post_form(
            &format!("{}/sign-in", server.base),
            &cookie,
            &[
                ("csrf_token", &field(&html, "csrf_token")),
                ("next", "account"),
                ("email", "alice@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let session = signed_in.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        session.starts_with("__Host-mcpauth_session=")
            && session.contains("; Path=/;")
            && session.contains("; Secure"),
        "{session}"
    );
    // The unprefixed name a plain-http page could set is not read.
    let unprefixed = format!("mcpauth_form={}", field(&html, "csrf_token"));
    let refused = server
        .post_form(
            &format!("{}/sign-in", server.base),
            &unprefixed,
            &[
                ("csrf_token", &field(&html, "csrf_token")),
                ("next", "account"),
                ("email", "alice@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // The interaction's CSRF cookie too.
    let client_id = server.register().await;
    let started = server.get(&server.authorize_url(&client_id), "").await;
    let interaction_cookie = started.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        interaction_cookie.starts_with("__Host-mcpauth_csrf_")
            && interaction_cookie.contains("; Path=/;")
            && interaction_cookie.contains("; Secure"),
        "{interaction_cookie}"
    );
}

// Decisions re-check the user: `user disable` ends the user's sign-ins in progress, so a
// consent page left open approves nothing.
#[tokio::test]
async fn disabling_a_user_ends_their_pending_interactions() {
    let dir = temp_dir("disable-pending");
    let database = format!("sqlite://{}", dir.join("mcpauth.db").display());
    let server = start_with("", dir).await;
    let (interaction, cookie) = server.begin().await;
    let cookie = server.sign_in(&interaction, &cookie).await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("name=\"decision\""), "{html}");
    let mut config = mcpauth_server::Config::default();
    config.database_url = database;
    let store = mcpauth_server::open_store(&config).await.unwrap();
    mcpauth_server::admin::disable_user(&store, "alice@example.com")
        .await
        .unwrap();
    store.close().await;
    let approved = server
        .post_form(
            &format!("{interaction}/consent"),
            &cookie,
            &[
                ("csrf_token", &field(&html, "csrf_token")),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(approved.status(), StatusCode::BAD_REQUEST);
    assert!(approved.headers().get(LOCATION).is_none(), "no code");
    assert!(
        approved
            .text()
            .await
            .unwrap()
            .contains("This sign-in request has expired")
    );
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

// Each operator switch mcpauth-server hands to the engine takes effect in the running server
// at the value other than its default (every other test runs the defaults):
// `self_registration_grant_types`, `introspection_clients`, `legacy_assertion_audience` and
// `user_code_attempts_per_ip_per_minute`. Two instances share one database: clients
// registered at the first, on the defaults, meet the second, switched.
#[tokio::test]
async fn the_operator_switches_take_effect_in_the_running_server() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let dir = temp_dir("switches");
    let defaults = start_configured("", dir.clone(), |_| {}).await;
    let register = |server: &Running, body: Value| {
        let request = server
            .http
            .post(format!("{}/register", server.issuer))
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let with_refresh = serde_json::json!({
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_basic",
    });
    let (status, confidential) = register(&defaults, with_refresh.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{confidential}");
    let key = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let signing = mcpauth_token_engine::SigningKey::es256_from_pkcs8_der(key.as_ref()).unwrap();
    let (status, jwt_client) = register(
        &defaults,
        serde_json::json!({
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": { "keys": [signing.public_jwk().unwrap()] },
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{jwt_client}");

    let switched = start_configured("", dir.clone(), |config| {
        config.self_registration_grant_types = vec!["authorization_code".into()];
        config.introspection_clients = vec![confidential["client_id"].as_str().unwrap().into()];
        config.legacy_assertion_audience = true;
        config.user_code_attempts_per_ip_per_minute = 1;
    })
    .await;

    // self_registration_grant_types: refresh_token is no longer on offer.
    let (status, refused) = register(&switched, with_refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["error"], "invalid_client_metadata");

    // introspection_clients: the listed client may introspect there, not at the default.
    let introspect = |server: &Running| {
        server
            .http
            .post(format!("{}/introspect", server.issuer))
            .basic_auth(
                confidential["client_id"].as_str().unwrap(),
                confidential["client_secret"].as_str(),
            )
            .form(&[("token", "not-a-token")])
            .send()
    };
    assert_eq!(
        introspect(&defaults).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let answer = introspect(&switched).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.json::<Value>().await.unwrap()["active"], false);

    // legacy_assertion_audience: an assertion naming the token endpoint authenticates the
    // client only where the switch is on (a bogus refresh token is then invalid_grant).
    let client_id = jwt_client["client_id"].as_str().unwrap();
    let with_assertion = |server: &Running, jti: &str| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let assertion = es256_jwt(
            key.as_ref(),
            signing.kid(),
            &serde_json::json!({
                "iss": client_id, "sub": client_id, "aud": format!("{}/token", server.issuer),
                "jti": jti, "iat": now, "exp": now + 60,
            }),
        );
        server
            .http
            .post(format!("{}/token", server.issuer))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "not-a-refresh-token"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
    };
    let strict = with_assertion(&defaults, "jti-strict").await.unwrap();
    assert_eq!(strict.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        strict.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let legacy = with_assertion(&switched, "jti-legacy").await.unwrap();
    assert_eq!(legacy.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        legacy.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    // user_code_attempts_per_ip_per_minute: one wrong code a minute, then "too many"; the
    // default server takes a second wrong one.
    for (server, second) in [
        (&switched, StatusCode::TOO_MANY_REQUESTS),
        (&defaults, StatusCode::BAD_REQUEST),
    ] {
        let page = server.get(&format!("{}/device", server.issuer), "").await;
        let cookie = cookies(page.headers());
        let html = page.text().await.unwrap();
        let signed_in = server
            .post_form(
                &format!("{}/sign-in", server.base),
                &cookie,
                &[
                    ("csrf_token", &field(&html, "csrf_token")),
                    ("next", "device"),
                    ("user_code", ""),
                    ("email", "alice@example.com"),
                    ("password", "correct horse battery"),
                ],
            )
            .await;
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
        let cookie = format!("{cookie}; {}", cookies(signed_in.headers()));
        let entry = server
            .get(&format!("{}/device", server.issuer), &cookie)
            .await
            .text()
            .await
            .unwrap();
        let csrf = field(&entry, "csrf_token");
        let url = format!("{}/device/code", server.base);
        let form = [("csrf_token", csrf.as_str()), ("user_code", "BCDF-GHJK")];
        let first = server.post_form(&url, &cookie, &form).await;
        assert_eq!(first.status(), StatusCode::BAD_REQUEST);
        let again = server.post_form(&url, &cookie, &form).await;
        assert_eq!(again.status(), second);
    }
}
