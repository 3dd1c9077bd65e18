//! Several `mcpauth-server` processes on one PostgreSQL database, as behind a load balancer:
//! whatever one instance does, the others see; races between instances are decided by the
//! database; an outage of the database fails requests cleanly and heals by itself; a killed
//! instance leaves nothing half-written.
//!
//! Each test starts its own throwaway PostgreSQL cluster (`mcpauth-test-postgres`) and real
//! server processes (the `mcpauth-server` binary), all on loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcpauth_test_postgres::TempPostgres;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::Value;

const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";
const REDIRECT: &str = "http://127.0.0.1:53682/callback";
const RESOURCE: &str = "http://127.0.0.1:3000/mcp";
const ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const EMAIL: &str = "alice@example.com";
const PASSWORD: &str = "correct horse battery";

/// One `mcpauth-server` process; killed (SIGKILL) when dropped.
struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL cluster with `count` server instances sharing one database and one issuer
/// (the first instance's address stands for the load balancer's).
struct Deployment {
    instances: Vec<Instance>,
    /// Configuration every instance gets on top of the shared settings.
    extra_env: Vec<(&'static str, String)>,
    issuer: String,
    database_url: String,
    http: reqwest::Client,
    // Dropped last: the instances go first.
    pg: TempPostgres,
}

impl Deployment {
    async fn start(name: &str, count: usize) -> Self {
        Self::start_with(name, count, Vec::new()).await
    }

    async fn start_with(name: &str, count: usize, extra_env: Vec<(&'static str, String)>) -> Self {
        let pg = TempPostgres::start().unwrap();
        let database_url = pg.create_database(name).unwrap();
        let ports: Vec<u16> = (0..count).map(|_| free_port()).collect();
        let issuer = format!("http://127.0.0.1:{}", ports[0]);
        // The user, created through the library on the shared database.
        let mut config = mcpauth_server::Config::default();
        config.database_url = database_url.clone();
        let store = mcpauth_server::open_store(&config).await.unwrap();
        mcpauth_server::add_user(&store, EMAIL, PASSWORD)
            .await
            .unwrap();
        store.close().await;
        let mut deployment = Self {
            instances: Vec::new(),
            extra_env,
            issuer,
            database_url,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            pg,
        };
        // Started together: they race to create the first signing key and must agree.
        let children: Vec<Instance> = ports
            .iter()
            .enumerate()
            .map(|(i, port)| deployment.spawn(i, *port))
            .collect();
        for instance in &children {
            deployment.wait_ready(&instance.base).await;
        }
        deployment.instances = children;
        deployment
    }

    fn spawn(&self, index: usize, port: u16) -> Instance {
        let log = std::fs::File::create(log_path(self.pg.directory(), index)).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mcpauth-server"))
            .current_dir(self.pg.directory())
            .env("MCPAUTH_LISTEN", format!("127.0.0.1:{port}"))
            .env("MCPAUTH_ISSUER", &self.issuer)
            .env("MCPAUTH_DATABASE_URL", &self.database_url)
            .env("MCPAUTH_SIGNING_KEY_ENCRYPTION_KEY", ENCRYPTION_KEY)
            .env("MCPAUTH_DATABASE_TIMEOUT", "2")
            .env("MCPAUTH_LOG", "info")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Instance {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn wait_ready(&self, base: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(response) = self.http.get(format!("{base}/health")).send().await
                && response.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "instance {base} did not come up: {}",
            std::fs::read_to_string(log_path(self.pg.directory(), 0)).unwrap_or_default()
        );
    }

    fn base(&self, i: usize) -> &str {
        &self.instances[i % self.instances.len()].base
    }

    async fn ready(&self, on: usize) -> StatusCode {
        self.http
            .get(format!("{}/ready", self.base(on)))
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn database(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.database_url).await.unwrap()
    }

    async fn register(&self, on: usize, metadata: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/register", self.base(on)))
            .json(&metadata)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    /// `mcpauth-server client add --resource-server` on the shared database: its id and
    /// secret as JSON, like a registration response.
    fn add_resource_server(&self) -> Value {
        let output = Command::new(env!("CARGO_BIN_EXE_mcpauth-server"))
            .current_dir(self.pg.directory())
            .args([
                "client",
                "add",
                "--name",
                "resource server",
                "--resource-server",
            ])
            .env("MCPAUTH_ISSUER", &self.issuer)
            .env("MCPAUTH_DATABASE_URL", &self.database_url)
            .env("MCPAUTH_SIGNING_KEY_ENCRYPTION_KEY", ENCRYPTION_KEY)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let field = |name: &str| {
            stdout
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .map(|value| value.trim().to_owned())
                .unwrap_or_else(|| panic!("no {name} in {stdout}"))
        };
        serde_json::json!({
            "client_id": field("client_id:"),
            "client_secret": field("client_secret:"),
        })
    }

    async fn register_public_client(&self, on: usize) -> String {
        let client = self
            .register(
                on,
                serde_json::json!({
                    "redirect_uris": [REDIRECT],
                    "client_name": "multi-instance test",
                    "token_endpoint_auth_method": "none",
                    "grant_types": ["authorization_code", "refresh_token"],
                }),
            )
            .await;
        client["client_id"].as_str().unwrap().to_owned()
    }

    /// Runs an authorization through the pages, each step on the next instance in `on`;
    /// signs in unless `session` already holds a session cookie. Returns the code.
    async fn authorize(&self, client_id: &str, on: [usize; 3], session: &mut String) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", REDIRECT),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("state", "s1"),
                ("resource", RESOURCE),
            ])
            .finish();
        let response = self
            .http
            .get(format!("{}/authorize?{query}", self.base(on[0])))
            .header("cookie", session.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let interaction = response.headers()[LOCATION].to_str().unwrap().to_owned();
        let mut cookie = join_cookies(session, response.headers());
        let page = self.page(on[1], &interaction, &cookie).await;
        if page.contains("name=\"password\"") {
            let login = self
                .http
                .post(format!("{}{interaction}/login", self.base(on[1])))
                .header("cookie", &cookie)
                .form(&[
                    ("csrf_token", field(&page, "csrf_token").as_str()),
                    ("email", EMAIL),
                    ("password", PASSWORD),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(login.status(), StatusCode::SEE_OTHER, "login");
            *session = join_cookies("", login.headers());
            cookie = join_cookies(&cookie, login.headers());
        }
        let consent_page = self.page(on[2], &interaction, &cookie).await;
        let approved = self
            .http
            .post(format!("{}{interaction}/consent", self.base(on[2])))
            .header("cookie", &cookie)
            .form(&[
                ("csrf_token", field(&consent_page, "csrf_token").as_str()),
                ("decision", "approve"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(approved.status(), StatusCode::SEE_OTHER, "consent");
        let location = url::Url::parse(approved.headers()[LOCATION].to_str().unwrap()).unwrap();
        let params: Vec<(String, String)> = location.query_pairs().into_owned().collect();
        assert!(params.contains(&("iss".into(), self.issuer.clone())));
        params
            .into_iter()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v)
            .unwrap()
    }

    async fn page(&self, on: usize, path: &str, cookie: &str) -> String {
        let response = self
            .http
            .get(format!("{}{path}", self.base(on)))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.text().await.unwrap()
    }

    async fn token(&self, on: usize, form: &[(&str, &str)]) -> Result<(StatusCode, Value), String> {
        token_request(&self.http, self.base(on), form).await
    }

    async fn redeem(&self, on: usize, client_id: &str, code: &str) -> (StatusCode, Value) {
        self.token(on, &redeem_form(client_id, code)).await.unwrap()
    }

    async fn refresh(&self, on: usize, client_id: &str, token: &str) -> (StatusCode, Value) {
        self.token(on, &refresh_form(client_id, token))
            .await
            .unwrap()
    }
}

fn log_path(dir: &Path, index: usize) -> std::path::PathBuf {
    dir.join(format!("instance-{index}.log"))
}

fn redeem_form<'a>(client_id: &'a str, code: &'a str) -> [(&'a str, &'a str); 6] {
    [
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("resource", RESOURCE),
    ]
}

fn refresh_form<'a>(client_id: &'a str, token: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", token),
    ]
}

/// A token request; `Err` when no HTTP answer came back (connection refused or cut).
async fn token_request(
    http: &reqwest::Client,
    base: &str,
    form: &[(&str, &str)],
) -> Result<(StatusCode, Value), String> {
    let response = http
        .post(format!("{base}/token"))
        .form(form)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    assert_eq!(
        response.headers()["cache-control"],
        "no-store",
        "every token response is no-store"
    );
    let body = response.text().await.map_err(|e| e.to_string())?;
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|_| panic!("token endpoint answered {status} without JSON: {body}"));
    Ok((status, json))
}

fn join_cookies(existing: &str, headers: &HeaderMap) -> String {
    let mut parts: Vec<String> = existing
        .split("; ")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    parts.extend(
        headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .map(str::to_owned),
    );
    parts.join("; ")
}

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Rows that would mean something was half-written. Each query counts offenders.
const INCONSISTENCIES: [(&str, &str); 3] = [
    (
        "a grant with more than one live refresh token",
        "SELECT COUNT(*) FROM (SELECT grant_id FROM refresh_tokens WHERE rotated_at IS NULL \
         GROUP BY grant_id HAVING COUNT(*) > 1) AS families",
    ),
    (
        "a rotated refresh token without its successor",
        "SELECT COUNT(*) FROM refresh_tokens old WHERE old.rotated_at IS NOT NULL AND NOT EXISTS \
         (SELECT 1 FROM refresh_tokens new WHERE new.grant_id = old.grant_id \
          AND new.token_hash <> old.token_hash AND new.issued_at >= old.rotated_at)",
    ),
    (
        "a consumed code with no refresh token issued from it",
        "SELECT COUNT(*) FROM authorization_codes code WHERE code.consumed_at IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.grant_id = code.grant_id)",
    ),
];

async fn assert_consistent(deployment: &Deployment) {
    let db = deployment.database().await;
    for (what, sql) in INCONSISTENCIES {
        let count: i64 = sqlx::query_scalar(sql).fetch_one(&db).await.unwrap();
        assert_eq!(count, 0, "found {what}");
    }
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_share_registration_authorization_refresh_and_revocation() {
    let deployment = Deployment::start("shared", 3).await;
    // One signing key for the deployment, although the instances started at once.
    let mut kids = Vec::new();
    for i in 0..3 {
        let jwks: Value = deployment
            .http
            .get(format!("{}/jwks.json", deployment.base(i)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
        kids.push(jwks["keys"][0]["kid"].clone());
    }
    assert!(kids.iter().all(|k| *k == kids[0]), "{kids:?}");

    // Registered on the first, authorized across the second and third, redeemed on the first,
    // refreshed on the third.
    let client_id = deployment.register_public_client(0).await;
    let mut session = String::new();
    let code = deployment
        .authorize(&client_id, [1, 2, 1], &mut session)
        .await;
    let (status, tokens) = deployment.redeem(0, &client_id, &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, refreshed) = deployment
        .refresh(2, &client_id, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");

    // Parallel refreshes of one token, spread across the instances: one rotates it, and the
    // others, retries inside the grace window, get the same successor (one chain, never two
    // live families).
    let current = refreshed["refresh_token"].as_str().unwrap().to_owned();
    let attempts = (0..12).map(|i| {
        let http = deployment.http.clone();
        let base = deployment.base(i).to_owned();
        let client_id = client_id.clone();
        let current = current.clone();
        tokio::spawn(async move {
            token_request(&http, &base, &refresh_form(&client_id, &current))
                .await
                .unwrap()
        })
    });
    let mut winners = Vec::new();
    for attempt in futures::future::join_all(attempts).await {
        let (status, body) = attempt.unwrap();
        match status {
            StatusCode::OK => winners.push(body),
            StatusCode::BAD_REQUEST => assert_eq!(body["error"], "invalid_grant", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let successors: std::collections::BTreeSet<&str> = winners
        .iter()
        .map(|body| body["refresh_token"].as_str().unwrap())
        .collect();
    assert_eq!(
        successors.len(),
        1,
        "every parallel refresh of one token gets the same successor: {winners:?}"
    );
    assert_consistent(&deployment).await;
    let latest = winners[0]["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = deployment.refresh(1, &client_id, &latest).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the winner's token is the live one: {body}"
    );
    let access_token = body["access_token"].as_str().unwrap().to_owned();
    let latest = body["refresh_token"].as_str().unwrap().to_owned();

    // A resource server, added by the operator, introspects on every instance.
    let resource_server = deployment.add_resource_server();
    let introspect = |on: usize, token: String| {
        let http = deployment.http.clone();
        let base = deployment.base(on).to_owned();
        let id = resource_server["client_id"].as_str().unwrap().to_owned();
        let secret = resource_server["client_secret"]
            .as_str()
            .unwrap()
            .to_owned();
        async move {
            let response = http
                .post(format!("{base}/introspect"))
                .basic_auth(id, Some(secret))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()["active"].clone()
        }
    };
    for on in 0..3 {
        assert_eq!(introspect(on, access_token.clone()).await, true);
    }
    // Revoked on the first instance (RFC 7009: the refresh token takes its grant's access
    // tokens with it) ...
    let revoked = deployment
        .http
        .post(format!("{}/revoke", deployment.base(0)))
        .form(&[
            ("client_id", client_id.as_str()),
            ("token", latest.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    // ... refused by introspection and refresh on the others.
    for on in [1, 2] {
        assert_eq!(
            introspect(on, access_token.clone()).await,
            false,
            "instance {on}"
        );
    }
    let (status, body) = deployment.refresh(2, &client_id, &latest).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    // A code replayed on another instance is refused, and the tokens issued from it die
    // everywhere (RFC 6749 §4.1.2).
    let code = deployment
        .authorize(&client_id, [2, 0, 1], &mut session)
        .await;
    let (status, tokens) = deployment.redeem(0, &client_id, &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, replay) = deployment.redeem(2, &client_id, &code).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a code is used once, on any instance"
    );
    assert_eq!(replay["error"], "invalid_grant");
    let (status, body) = deployment
        .refresh(1, &client_id, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_consistent(&deployment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_fails_requests_cleanly_and_heals_without_restart() {
    let deployment = Deployment::start("outage", 2).await;
    let client_id = deployment.register_public_client(0).await;
    let mut session = String::new();
    let first_code = deployment
        .authorize(&client_id, [0, 1, 0], &mut session)
        .await;
    let (status, tokens) = deployment.redeem(1, &client_id, &first_code).await;
    assert_eq!(status, StatusCode::OK);
    let mut refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let pending_code = deployment
        .authorize(&client_id, [1, 0, 1], &mut session)
        .await;

    // A stream of refreshes runs through the outage, following the chain as it rotates.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refresher = {
        let http = deployment.http.clone();
        let bases: Vec<String> = (0..2).map(|i| deployment.base(i).to_owned()).collect();
        let client_id = client_id.clone();
        let stop = stop.clone();
        let mut token = refresh_token.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed, mut lost) = (0u32, 0u32, 0u32);
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let (status, body) =
                    token_request(&http, &bases[i % 2], &refresh_form(&client_id, &token))
                        .await
                        .unwrap();
                match status {
                    StatusCode::OK => {
                        ok += 1;
                        token = body["refresh_token"].as_str().unwrap().to_owned();
                    }
                    StatusCode::INTERNAL_SERVER_ERROR => {
                        assert_eq!(body["error"], "server_error", "{body}");
                        failed += 1;
                    }
                    // A rotation that committed as the database went away, whose answer was
                    // lost: the chain ends here (checked for consistency below).
                    StatusCode::BAD_REQUEST if body["error"] == "invalid_grant" => {
                        lost += 1;
                        break;
                    }
                    other => panic!("unexpected {other}: {body}"),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, failed, lost, token)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    deployment.pg.stop().unwrap();
    // Requests in between fail fast with a spec-shaped error that reveals nothing.
    for on in 0..2 {
        let started = Instant::now();
        let (status, body) = deployment.redeem(on, &client_id, &pending_code).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(body["error"], "server_error");
        let text = body.to_string().to_lowercase();
        for leak in ["postgres", "sql", "connection", "127.0.0.1", "pool"] {
            assert!(!text.contains(leak), "the error reveals `{leak}`: {body}");
        }
        // Within one `database_timeout` (2 s here), rate limits on as by default: the
        // per-address counter and the endpoint do not each wait it out.
        assert!(
            started.elapsed() < Duration::from_millis(3500),
            "a request during the outage took {:?}",
            started.elapsed()
        );
    }
    let registration = deployment
        .http
        .post(format!("{}/register", deployment.base(1)))
        .json(&serde_json::json!({ "redirect_uris": [REDIRECT] }))
        .send()
        .await
        .unwrap();
    assert_eq!(registration.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(deployment.ready(0).await, StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(Duration::from_millis(500)).await;

    deployment.pg.start_again().unwrap();
    // The same processes recover by themselves.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, tokens) = loop {
        let (status, body) = deployment.redeem(0, &client_id, &pending_code).await;
        if status != StatusCode::INTERNAL_SERVER_ERROR || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        status,
        StatusCode::OK,
        "the code whose redemptions failed during the outage is still unused: {tokens}"
    );
    assert_eq!(deployment.ready(1).await, StatusCode::OK);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed, lost, last) = refresher.await.unwrap();
    assert!(ok > 0, "refreshes succeeded before the outage");
    assert!(failed > 0, "refreshes failed during the outage");
    if lost == 0 {
        // The chain survived: its latest token still works, on either instance.
        refresh_token = last;
        let (status, body) = deployment.refresh(1, &client_id, &refresh_token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_consistent(&deployment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_killed_mid_burst_loses_no_committed_grant() {
    let mut deployment = Deployment::start("crash", 2).await;
    let client_id = deployment.register_public_client(1).await;
    let mut session = String::new();
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(
            deployment
                .authorize(&client_id, [1, 1, 1], &mut session)
                .await,
        );
    }

    // A burst against the first instance: each task redeems codes and refreshes each grant
    // a few times, until its requests stop being answered.
    let victim = deployment.base(0).to_owned();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let tasks: Vec<_> = codes
        .chunks(3)
        .map(|chunk| {
            let http = deployment.http.clone();
            let victim = victim.clone();
            let client_id = client_id.clone();
            let chunk = chunk.to_vec();
            let answered = answered.clone();
            tokio::spawn(async move {
                // What each code came to: Ok(latest refresh token) or Err(code) when the
                // answer was lost.
                let mut outcomes: Vec<Result<String, (String, Option<String>)>> = Vec::new();
                for code in chunk {
                    let Ok((status, body)) =
                        token_request(&http, &victim, &redeem_form(&client_id, &code)).await
                    else {
                        outcomes.push(Err((code, None)));
                        continue;
                    };
                    assert_eq!(status, StatusCode::OK, "{body}");
                    answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let mut token = body["refresh_token"].as_str().unwrap().to_owned();
                    let mut lost = false;
                    for _ in 0..50 {
                        match token_request(&http, &victim, &refresh_form(&client_id, &token)).await
                        {
                            Ok((StatusCode::OK, body)) => {
                                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                token = body["refresh_token"].as_str().unwrap().to_owned();
                            }
                            Ok((status, body)) => panic!("unexpected {status}: {body}"),
                            Err(_) => {
                                lost = true;
                                break;
                            }
                        }
                    }
                    outcomes.push(if lost {
                        Err((code, Some(token)))
                    } else {
                        Ok(token)
                    });
                }
                outcomes
            })
        })
        .collect();
    // Mid-burst: once a few dozen of the ~600 requests have been answered.
    while answered.load(std::sync::atomic::Ordering::Relaxed) < 40 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // SIGKILL: no graceful shutdown, in-flight transactions are cut.
    let killed = deployment.instances.remove(0);
    drop(killed);

    let mut completed = 0;
    let mut interrupted = 0;
    for task in tasks {
        for outcome in task.await.unwrap() {
            match outcome {
                // Answered before the kill: the grant must be intact on the survivor.
                Ok(token) => {
                    completed += 1;
                    let (status, body) = deployment.refresh(0, &client_id, &token).await;
                    assert_eq!(status, StatusCode::OK, "a committed grant was lost: {body}");
                }
                // Cut mid-request: either nothing happened (the survivor accepts the same
                // request) or it committed and only the answer was lost (the survivor refuses
                // the replay as already used).
                Err((code, token)) => {
                    interrupted += 1;
                    let (status, body) = match &token {
                        Some(token) => deployment.refresh(0, &client_id, token).await,
                        None => deployment.redeem(0, &client_id, &code).await,
                    };
                    assert!(
                        status == StatusCode::OK
                            || (status == StatusCode::BAD_REQUEST
                                && body["error"] == "invalid_grant"),
                        "{status}: {body}"
                    );
                }
            }
        }
    }
    assert!(
        interrupted > 0,
        "the kill landed after the burst ({completed} done)"
    );
    assert_consistent(&deployment).await;
}

// Keys shared through a database server must not sit there in plain text.
#[tokio::test]
async fn postgres_requires_a_signing_key_encryption_key() {
    let pg = TempPostgres::start().unwrap();
    let mut config = mcpauth_server::Config::default();
    config.database_url = pg.create_database("nokey").unwrap();
    let error = mcpauth_server::build(&config).await.unwrap_err();
    assert!(
        error.to_string().contains("signing_key_encryption_key"),
        "{error}"
    );
    config.signing_key_encryption_key = Some(ENCRYPTION_KEY.into());
    mcpauth_server::build(&config).await.unwrap();
}

/// Requests from one address (a loopback one: `from`), sent to every instance in turn within
/// one minute window:
/// (admitted, refused). `None` if a window boundary passed during them (the counts restart).
async fn token_requests_in_one_window(
    deployment: &Deployment,
    from: std::net::IpAddr,
    count: usize,
) -> Option<(usize, usize)> {
    let http = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let minute = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 60
    };
    let started = minute();
    let (mut admitted, mut refused) = (0, 0);
    for i in 0..count {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", "nobody"),
        ];
        let (status, body) = token_request(&http, deployment.base(i), &form)
            .await
            .unwrap();
        match status {
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["error"], "temporarily_unavailable", "{body}");
                refused += 1;
            }
            // The limiter let it through; the endpoint refused the unknown client.
            StatusCode::UNAUTHORIZED => admitted += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    (minute() == started).then_some((admitted, refused))
}

// The per-address token limit is counted in each instance and added to the shared counter now
// and then (docs/configuration.md): a small limit is still exact across instances (every
// request adds), and a larger one holds within a tenth of the limit per instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_address_token_limit_holds_across_instances() {
    for (limit, requests, tolerance) in [(4, 12, 0), (40, 120, 2 * 4)] {
        let deployment = Deployment::start_with(
            &format!("limits{limit}"),
            2,
            vec![(
                "MCPAUTH_TOKEN_REQUESTS_PER_IP_PER_MINUTE",
                limit.to_string(),
            )],
        )
        .await;
        let mut counted = None;
        // At most one retry, from a fresh address: a minute boundary can fall inside one run,
        // not inside two.
        for from in [[127, 0, 0, 2], [127, 0, 0, 3]] {
            counted = token_requests_in_one_window(&deployment, from.into(), requests).await;
            if counted.is_some() {
                break;
            }
        }
        let (admitted, refused) = counted.expect("two runs each crossed a minute boundary");
        assert!(
            (limit..=limit + tolerance).contains(&admitted),
            "limit {limit}: {admitted} admitted, {refused} refused"
        );
        assert_eq!(admitted + refused, requests);
    }
}
