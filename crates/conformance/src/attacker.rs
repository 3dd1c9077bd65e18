//! The attacker's suite: a black-box run against a deployed authorization server (the real
//! `mcpauth-server` in this project's tests) and a resource server that trusts it, over HTTP,
//! the way someone without credentials, or with a self-registered client, would try it.
//!
//! Each check asks what the least-privileged caller who can reach an endpoint gets, and
//! whether a resource server accepts it: open registration abuse, scope and resource
//! escalation, redirect-URI variants, PKCE downgrade, code and refresh replay (inside and
//! after the grace window), consent and CSRF bypasses, and token confusion at the resource
//! server. A run panics listing every finding.

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::fixture::{CHALLENGE, VERIFIER};
use super::{Answer, Check};

/// What the suite attacks.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AttackTarget {
    /// The authorization server's issuer (no path).
    pub issuer: String,
    /// A protected MCP endpoint trusting the issuer: it requires `required_scope`, and a
    /// `tools/call` of `user_only_tool` needs a user behind the token.
    pub resource: String,
    /// A resource the authorization server serves that is *not* `resource`.
    pub other_resource: String,
    /// The scope `resource` requires.
    pub required_scope: String,
    /// A tool of `resource` that a client's own token may not call.
    pub user_only_tool: String,
    /// A user's email and password.
    pub user: (String, String),
    /// A confidential `client_credentials` client the operator registered: id and secret.
    pub machine_client: (String, String),
    /// The server's refresh-reuse grace window in seconds (`refresh_reuse_grace`).
    pub refresh_reuse_grace: u64,
}

impl AttackTarget {
    /// A target at `issuer` guarding `resource`; the rest as the caller sets it.
    #[must_use]
    pub fn new(
        issuer: &str,
        resource: &str,
        other_resource: &str,
        user: (&str, &str),
        machine_client: (&str, &str),
    ) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            resource: resource.to_owned(),
            other_resource: other_resource.to_owned(),
            required_scope: "mcp:tools".into(),
            user_only_tool: "admin_report".into(),
            user: (user.0.to_owned(), user.1.to_owned()),
            machine_client: (machine_client.0.to_owned(), machine_client.1.to_owned()),
            refresh_reuse_grace: 10,
        }
    }
}

/// The redirect URI of the attacker's own clients.
const REDIRECT: &str = "http://127.0.0.1:53683/callback";

/// A browser with a cookie jar that reads redirects instead of following them.
struct Browser {
    http: reqwest::Client,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: crate::no_redirects(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn absorb(&mut self, headers: &reqwest::header::HeaderMap) {
        for value in headers.get_all("set-cookie") {
            let Some((pair, attributes)) = value
                .to_str()
                .ok()
                .map(|v| v.split_once(';').unwrap_or((v, "")))
            else {
                continue;
            };
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            self.cookies.retain(|(k, _)| k != name);
            if !attributes.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let request = if self.cookies.is_empty() {
            request
        } else {
            request.header("cookie", self.cookie_header())
        };
        let answer = Answer::of(request).await;
        self.absorb(&answer.headers);
        answer
    }

    async fn get(&mut self, url: &str) -> Answer {
        let request = self.http.get(url);
        self.send(request).await
    }

    async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Answer {
        let request = self.http.post(url).form(form);
        self.send(request).await
    }
}

/// The value of the hidden field `name` of a page's form.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    html.find(&marker)
        .and_then(|at| html.get(at + marker.len()..))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

fn query_param(location: &str, name: &str) -> Option<String> {
    url::Url::parse(location).ok().and_then(|url| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    })
}

struct Attacker<'a> {
    target: &'a AttackTarget,
    http: reqwest::Client,
}

impl Attacker<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.target.issuer)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        Answer::of(request).await
    }

    async fn register(&self, body: Value) -> Answer {
        self.send(self.http.post(self.url("/register")).json(&body))
            .await
    }

    /// A public client of the attacker's, registered at the open endpoint.
    async fn public_client(&self, redirect_uris: &[&str]) -> String {
        self.register(json!({
            "redirect_uris": redirect_uris,
            "client_name": "Attacker's client",
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .await
        .json()["client_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn authorize_url(&self, pairs: &[(&str, &str)]) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        format!("{}/authorize?{query}", self.target.issuer)
    }

    fn code_request<'p>(
        client_id: &'p str,
        redirect_uri: &'p str,
        scope: &'p str,
        resource: &'p str,
    ) -> Vec<(&'p str, &'p str)> {
        vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("state", "attacker-state"),
            ("scope", scope),
            ("resource", resource),
        ]
    }

    /// The user signs in and approves `request` in `browser`: the redirect's location.
    async fn consent(&self, browser: &mut Browser, request: &[(&str, &str)]) -> String {
        let started = browser.get(&self.authorize_url(request)).await;
        let Some(location) = started.header("location") else {
            return String::new();
        };
        if location.starts_with("http") {
            return location;
        }
        let interaction = self.url(&location);
        let mut page = browser.get(&interaction).await;
        if page.text.contains("name=\"password\"") {
            let csrf = field(&page.text, "csrf_token");
            browser
                .post_form(
                    &format!("{interaction}/login"),
                    &[
                        ("csrf_token", &csrf),
                        ("email", &self.target.user.0),
                        ("password", &self.target.user.1),
                    ],
                )
                .await;
            page = browser.get(&interaction).await;
        }
        if let Some(location) = page.header("location") {
            return location;
        }
        let csrf = field(&page.text, "csrf_token");
        browser
            .post_form(
                &format!("{interaction}/consent"),
                &[("csrf_token", &csrf), ("decision", "approve")],
            )
            .await
            .header("location")
            .unwrap_or_default()
    }

    async fn redeem(&self, client_id: &str, code: &str, extra: &[(&str, &str)]) -> Answer {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ];
        form.extend_from_slice(extra);
        self.send(self.http.post(self.url("/token")).form(&form))
            .await
    }

    async fn refresh(&self, client_id: &str, token: &str, extra: &[(&str, &str)]) -> Answer {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", token),
        ];
        form.extend_from_slice(extra);
        self.send(self.http.post(self.url("/token")).form(&form))
            .await
    }

    /// A user's tokens for the attacker's public client: (client id, token response).
    async fn user_tokens(&self, scope: &str) -> (String, Value) {
        let client_id = self.public_client(&[REDIRECT]).await;
        let mut browser = Browser::new();
        let location = self
            .consent(
                &mut browser,
                &Self::code_request(&client_id, REDIRECT, scope, &self.target.resource),
            )
            .await;
        let code = query_param(&location, "code").unwrap_or_default();
        let tokens = self.redeem(&client_id, &code, &[]).await.json();
        (client_id, tokens)
    }

    async fn machine_token(&self, scope: &str, resource: &str) -> String {
        let (id, secret) = &self.target.machine_client;
        self.send(
            self.http
                .post(self.url("/token"))
                .basic_auth(id, Some(secret))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", scope),
                    ("resource", resource),
                ]),
        )
        .await
        .json()["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn call_resource(&self, token: &str, tool: &str) -> Answer {
        let body = json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": { "name": tool, "arguments": {} },
        });
        self.send(
            self.http
                .post(&self.target.resource)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(body.to_string()),
        )
        .await
    }

    /// Open registration can mint no authority of its own.
    async fn open_registration_abuse(&self) -> Check {
        let mut check = Check::new("open registration abuse");
        for grants in [
            json!(["client_credentials"]),
            json!([
                "authorization_code",
                "urn:ietf:params:oauth:grant-type:token-exchange"
            ]),
        ] {
            let answer = self
                .register(json!({
                    "redirect_uris": [REDIRECT],
                    "grant_types": grants,
                    "token_endpoint_auth_method": "client_secret_post",
                    "scope": "mcp:tools mcp:admin",
                }))
                .await;
            check.json_error(&answer, StatusCode::BAD_REQUEST, "invalid_client_metadata");
        }
        // A confidential self-registered client with the admin scope in its registration
        // still cannot obtain a token for itself.
        let registered = self
            .register(json!({
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "client_secret_post",
                "scope": "mcp:tools mcp:admin",
            }))
            .await
            .json();
        check.expect(
            registered["client_secret"].is_string(),
            format!("a confidential client registers (user-delegated grants): {registered}"),
        );
        let answer = self
            .send(self.http.post(self.url("/token")).form(&[
                ("grant_type", "client_credentials"),
                (
                    "client_id",
                    registered["client_id"].as_str().unwrap_or_default(),
                ),
                (
                    "client_secret",
                    registered["client_secret"].as_str().unwrap_or_default(),
                ),
                ("scope", "mcp:tools mcp:admin"),
                ("resource", &self.target.resource),
            ]))
            .await;
        check.expect(
            answer.status == StatusCode::BAD_REQUEST
                && answer.json()["error"] == "unauthorized_client"
                && answer.json()["access_token"].is_null(),
            format!(
                "a self-registered client asked for a token for itself: {}",
                answer.text
            ),
        );
        for uris in [
            json!(["javascript:alert(1)"]),
            json!(["http://evil.example/cb"]),
            json!(["https://evil.example/cb#fragment"]),
        ] {
            let answer = self
                .register(json!({ "redirect_uris": uris, "token_endpoint_auth_method": "none" }))
                .await;
            check.json_error(&answer, StatusCode::BAD_REQUEST, "invalid_redirect_uri");
        }
        let mut nested = json!(1);
        for _ in 0..64 {
            nested = json!([nested]);
        }
        let answer = self
            .register(json!({ "redirect_uris": [REDIRECT], "x": nested }))
            .await;
        check.json_error(&answer, StatusCode::BAD_REQUEST, "invalid_client_metadata");
        let answer = self
            .send(
                self.http
                    .post(self.url("/register"))
                    .header("content-type", "application/json")
                    .body(format!(
                        "{{\"redirect_uris\":[\"{REDIRECT}\"],\"client_name\":\"{}\"}}",
                        "x".repeat(100_000)
                    )),
            )
            .await;
        check.expect(
            matches!(
                answer.status,
                StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE
            ),
            format!("an oversized registration: {}", answer.status),
        );
        check
    }

    /// Scopes and resources only narrow.
    async fn scope_and_resource_escalation(&self) -> Check {
        let mut check = Check::new("scope and resource escalation");
        let client_id = self.public_client(&[REDIRECT]).await;
        let mut browser = Browser::new();
        let unknown_resource = self
            .consent(
                &mut browser,
                &Self::code_request(
                    &client_id,
                    REDIRECT,
                    &self.target.required_scope,
                    "https://evil.example/mcp",
                ),
            )
            .await;
        check.expect(
            query_param(&unknown_resource, "error").as_deref() == Some("invalid_target"),
            format!("a resource this server does not serve: {unknown_resource}"),
        );
        let location = self
            .consent(
                &mut browser,
                &Self::code_request(
                    &client_id,
                    REDIRECT,
                    &self.target.required_scope,
                    &self.target.resource,
                ),
            )
            .await;
        let code = query_param(&location, "code").unwrap_or_default();
        let other = self
            .redeem(
                &client_id,
                &code,
                &[("resource", &self.target.other_resource)],
            )
            .await;
        check.json_error(&other, StatusCode::BAD_REQUEST, "invalid_target");
        let tokens = self.redeem(&client_id, &code, &[]).await;
        check.status(&tokens, StatusCode::OK);
        let refresh = tokens.json()["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let wider = self
            .refresh(&client_id, &refresh, &[("scope", "mcp:tools mcp:admin")])
            .await;
        check.json_error(&wider, StatusCode::BAD_REQUEST, "invalid_scope");
        let elsewhere = self
            .refresh(
                &client_id,
                &refresh,
                &[("resource", &self.target.other_resource)],
            )
            .await;
        check.json_error(&elsewhere, StatusCode::BAD_REQUEST, "invalid_target");
        check
    }

    /// Only the registered redirect URI, exactly (the port of a loopback one may vary).
    async fn redirect_uri_variants(&self) -> Check {
        let mut check = Check::new("redirect-URI variants");
        let client_id = self.public_client(&[REDIRECT]).await;
        for variant in [
            "http://127.0.0.1:53683/callback/",
            "http://127.0.0.1:53683/Callback",
            "http://127.0.0.1:53683/callback?extra=1",
            "http://127.0.0.1:53683/callback/../callback",
            "http://evil@127.0.0.1:53683/callback",
            "http://127.0.0.1.evil.example:53683/callback",
            "https://127.0.0.1:53683/callback",
            "http://127.0.0.1:53683/callback#x",
            "https://evil.example/callback",
        ] {
            let answer = self
                .send(self.http.get(self.authorize_url(&Self::code_request(
                    &client_id,
                    variant,
                    &self.target.required_scope,
                    &self.target.resource,
                ))))
                .await;
            check.expect(
                answer.status == StatusCode::BAD_REQUEST && answer.header("location").is_none(),
                format!(
                    "`{variant}`: {} {:?} (an error page, never a redirect)",
                    answer.status,
                    answer.header("location")
                ),
            );
        }
        let other_port = self
            .send(self.http.get(self.authorize_url(&Self::code_request(
                &client_id,
                "http://127.0.0.1:61999/callback",
                &self.target.required_scope,
                &self.target.resource,
            ))))
            .await;
        check.expect(
            other_port.status == StatusCode::SEE_OTHER,
            "a loopback redirect on another port is accepted (RFC 8252 §7.3)",
        );
        check
    }

    /// PKCE cannot be skipped, weakened, or guessed.
    async fn pkce_downgrade(&self) -> Check {
        let mut check = Check::new("PKCE downgrade");
        let client_id = self.public_client(&[REDIRECT]).await;
        let base = |method: Option<&'static str>, challenge: Option<&'static str>| {
            let mut pairs = vec![
                ("response_type", "code"),
                ("client_id", client_id.as_str()),
                ("redirect_uri", REDIRECT),
                ("state", "s"),
                ("resource", self.target.resource.as_str()),
            ];
            if let Some(challenge) = challenge {
                pairs.push(("code_challenge", challenge));
            }
            if let Some(method) = method {
                pairs.push(("code_challenge_method", method));
            }
            self.authorize_url(&pairs)
        };
        for (what, url) in [
            ("no challenge", base(None, None)),
            ("plain", base(Some("plain"), Some(VERIFIER))),
            ("no method", base(None, Some(CHALLENGE))),
        ] {
            let answer = self.send(self.http.get(url)).await;
            let location = answer.header("location").unwrap_or_default();
            check.expect(
                location.contains("error=invalid_request") && !location.contains("code="),
                format!("{what}: {location}"),
            );
        }
        let mut browser = Browser::new();
        let location = self
            .consent(
                &mut browser,
                &Self::code_request(
                    &client_id,
                    REDIRECT,
                    &self.target.required_scope,
                    &self.target.resource,
                ),
            )
            .await;
        let code = query_param(&location, "code").unwrap_or_default();
        let no_verifier = self
            .send(self.http.post(self.url("/token")).form(&[
                ("grant_type", "authorization_code"),
                ("client_id", client_id.as_str()),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
            ]))
            .await;
        check.json_error(&no_verifier, StatusCode::BAD_REQUEST, "invalid_request");
        let wrong = self
            .send(self.http.post(self.url("/token")).form(&[
                ("grant_type", "authorization_code"),
                ("client_id", client_id.as_str()),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &"A".repeat(43)),
            ]))
            .await;
        check.json_error(&wrong, StatusCode::BAD_REQUEST, "invalid_grant");
        let right = self.redeem(&client_id, &code, &[]).await;
        check.expect(
            right.status == StatusCode::OK,
            "failed attempts leave the code usable for the right verifier",
        );
        check
    }

    /// A code is used once; its replay revokes what it gave.
    async fn code_replay(&self) -> Check {
        let mut check = Check::new("code replay");
        let client_id = self.public_client(&[REDIRECT]).await;
        let mut browser = Browser::new();
        let location = self
            .consent(
                &mut browser,
                &Self::code_request(
                    &client_id,
                    REDIRECT,
                    &self.target.required_scope,
                    &self.target.resource,
                ),
            )
            .await;
        let code = query_param(&location, "code").unwrap_or_default();
        let first = self.redeem(&client_id, &code, &[]).await;
        check.status(&first, StatusCode::OK);
        let replay = self.redeem(&client_id, &code, &[]).await;
        check.json_error(&replay, StatusCode::BAD_REQUEST, "invalid_grant");
        let refresh = first.json()["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let after = self.refresh(&client_id, &refresh, &[]).await;
        check.json_error(&after, StatusCode::BAD_REQUEST, "invalid_grant");
        check
    }

    /// Refresh replays: a retry inside the window gets the same successor; any other replay
    /// revokes the family.
    async fn refresh_replay(&self) -> Check {
        let mut check = Check::new("refresh replay");
        let (client_id, tokens) = self.user_tokens(&self.target.required_scope).await;
        let old = tokens["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let rotated = self.refresh(&client_id, &old, &[]).await;
        check.status(&rotated, StatusCode::OK);
        let successor = rotated.json()["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let replay = self.refresh(&client_id, &old, &[]).await;
        if self.target.refresh_reuse_grace > 0 {
            check.expect(
                replay.status == StatusCode::OK
                    && replay.json()["refresh_token"] == successor.as_str(),
                format!(
                    "a retry inside the window gets the same successor: {}",
                    replay.text
                ),
            );
            // The successor moves on; the old token is no longer the one just rotated.
            let next = self.refresh(&client_id, &successor, &[]).await;
            check.status(&next, StatusCode::OK);
            let late = self.refresh(&client_id, &old, &[]).await;
            check.json_error(&late, StatusCode::BAD_REQUEST, "invalid_grant");
            let family = self
                .refresh(
                    &client_id,
                    next.json()["refresh_token"].as_str().unwrap_or_default(),
                    &[],
                )
                .await;
            check.json_error(&family, StatusCode::BAD_REQUEST, "invalid_grant");
        } else {
            check.json_error(&replay, StatusCode::BAD_REQUEST, "invalid_grant");
            let family = self.refresh(&client_id, &successor, &[]).await;
            check.json_error(&family, StatusCode::BAD_REQUEST, "invalid_grant");
        }
        // Another client cannot use the user's refresh token at all.
        let (_, tokens) = self.user_tokens(&self.target.required_scope).await;
        let other = self.public_client(&[REDIRECT]).await;
        let stolen = self
            .refresh(
                &other,
                tokens["refresh_token"].as_str().unwrap_or_default(),
                &[],
            )
            .await;
        check.json_error(&stolen, StatusCode::BAD_REQUEST, "invalid_grant");
        check
    }

    /// Consent is the signed-in user's, in their browser, once.
    async fn consent_and_csrf_bypasses(&self) -> Check {
        let mut check = Check::new("consent and CSRF bypasses");
        let client_id = self.public_client(&[REDIRECT]).await;
        let request = Self::code_request(
            &client_id,
            REDIRECT,
            &self.target.required_scope,
            &self.target.resource,
        );
        // The victim signs in and reaches the consent page.
        let mut victim = Browser::new();
        let started = victim.get(&self.authorize_url(&request)).await;
        let interaction = self.url(&started.header("location").unwrap_or_default());
        let login = victim.get(&interaction).await;
        victim
            .post_form(
                &format!("{interaction}/login"),
                &[
                    ("csrf_token", &field(&login.text, "csrf_token")),
                    ("email", &self.target.user.0),
                    ("password", &self.target.user.1),
                ],
            )
            .await;
        let consent = victim.get(&interaction).await;
        let csrf = field(&consent.text, "csrf_token");
        // Another site posts the approval from the victim's session, without the interaction's
        // CSRF cookie (SameSite) or with a guessed token.
        let mut cross_site = Browser::new();
        cross_site.cookies = victim
            .cookies
            .iter()
            .filter(|(name, _)| !name.contains("csrf"))
            .cloned()
            .collect();
        let forged = cross_site
            .post_form(
                &format!("{interaction}/consent"),
                &[("csrf_token", &csrf), ("decision", "approve")],
            )
            .await;
        check.expect(
            forged.status == StatusCode::FORBIDDEN && forged.header("location").is_none(),
            format!(
                "a consent posted without the browser's CSRF cookie: {}",
                forged.status
            ),
        );
        let guessed = victim
            .post_form(
                &format!("{interaction}/consent"),
                &[("csrf_token", "guessed"), ("decision", "approve")],
            )
            .await;
        check.expect(
            guessed.status == StatusCode::FORBIDDEN && guessed.header("location").is_none(),
            format!("a consent with a guessed CSRF token: {}", guessed.status),
        );
        // Approving without a signed-in user issues nothing.
        let mut anonymous = Browser::new();
        let started = anonymous.get(&self.authorize_url(&request)).await;
        let anonymous_interaction = self.url(&started.header("location").unwrap_or_default());
        let page = anonymous.get(&anonymous_interaction).await;
        let approve = anonymous
            .post_form(
                &format!("{anonymous_interaction}/consent"),
                &[
                    ("csrf_token", &field(&page.text, "csrf_token")),
                    ("decision", "approve"),
                ],
            )
            .await;
        check.expect(
            !approve
                .header("location")
                .is_some_and(|l| l.contains("code=")),
            "approving without a user issues no code",
        );
        // The victim's real approval works once; a second post finds the interaction gone.
        let approved = victim
            .post_form(
                &format!("{interaction}/consent"),
                &[("csrf_token", &csrf), ("decision", "approve")],
            )
            .await;
        check.expect(
            approved
                .header("location")
                .is_some_and(|l| l.contains("code=")),
            format!("the victim's own approval: {}", approved.status),
        );
        let again = victim
            .post_form(
                &format!("{interaction}/consent"),
                &[("csrf_token", &csrf), ("decision", "approve")],
            )
            .await;
        check.expect(
            again.header("location").is_none(),
            "a decision is taken once",
        );
        // The device page's forms need the form token too.
        let device = victim
            .post_form(
                &self.url("/device/code"),
                &[("csrf_token", "forged"), ("user_code", "BCDF-GHJK")],
            )
            .await;
        check.status(&device, StatusCode::FORBIDDEN);
        check
    }

    /// Tokens the resource server must refuse.
    async fn token_confusion(&self) -> Check {
        let mut check = Check::new("token confusion at the resource server");
        let (_, tokens) = self.user_tokens(&self.target.required_scope).await;
        let access = tokens["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let refresh = tokens["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let accepted = self.call_resource(&access, "echo").await;
        check.expect(
            accepted.status.is_success(),
            format!("the user's own token works: {}", accepted.status),
        );
        let refused = |answer: &Answer| answer.status == StatusCode::UNAUTHORIZED;
        let as_refresh = self.call_resource(&refresh, "echo").await;
        check.expect(refused(&as_refresh), "a refresh token presented as bearer");
        let elsewhere = self
            .machine_token(&self.target.required_scope, &self.target.other_resource)
            .await;
        check.expect(
            !elsewhere.is_empty(),
            "the operator's machine client gets a token for the other resource",
        );
        let wrong_audience = self.call_resource(&elsewhere, "echo").await;
        check.expect(
            refused(&wrong_audience),
            format!("a token for another resource: {}", wrong_audience.status),
        );
        // A client's own token, whatever its scope, is not a user's.
        let machine = self
            .machine_token(
                &format!("{} mcp:admin", self.target.required_scope),
                &self.target.resource,
            )
            .await;
        check.expect(
            !machine.is_empty(),
            "the operator's machine client gets a token with the admin scope",
        );
        let user_only = self
            .call_resource(&machine, &self.target.user_only_tool)
            .await;
        check.expect(
            refused(&user_only)
                && user_only
                    .header("www-authenticate")
                    .is_some_and(|c| c.contains("insufficient_user_authentication")),
            format!(
                "a client_credentials token at a user-only tool: {} {:?}",
                user_only.status,
                user_only.header("www-authenticate")
            ),
        );
        // Forgeries of the user's own token: unsigned (alg none), and an edited payload under
        // its signature. (A validly signed token of another `typ` needs the server's key: the
        // verifier's own tests cover it, `rejects_id_tokens_and_other_jwt_types`.)
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let payload: Value = access
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null);
        let header: Value = access
            .split('.')
            .next()
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null);
        let signature = access.split('.').nth(2).unwrap_or_default();
        check.expect(
            header["typ"] == "at+jwt" && payload["sub"].is_string() && !signature.is_empty(),
            format!("the user's access token is a signed JWT to forge from: {header}"),
        );
        let mut none_header = header.clone();
        none_header["alg"] = "none".into();
        let mut escalated = payload.clone();
        escalated["scope"] = format!("{} mcp:admin", self.target.required_scope).into();
        for (what, forged) in [
            (
                "alg none",
                format!("{}.{}.", b64(&none_header), b64(&payload)),
            ),
            (
                "an edited scope",
                format!("{}.{}.{signature}", b64(&header), b64(&escalated)),
            ),
        ] {
            let answer = self.call_resource(&forged, "echo").await;
            check.expect(refused(&answer), format!("{what}: {}", answer.status));
        }
        let empty = self
            .send(
                self.http
                    .post(&self.target.resource)
                    .header("authorization", "Bearer"),
            )
            .await;
        check.status(&empty, StatusCode::BAD_REQUEST);
        check
    }

    /// Introspection and revocation: only for those allowed, only for their own tokens.
    async fn introspection_and_revocation(&self) -> Check {
        let mut check = Check::new("introspection and revocation");
        let (client_id, tokens) = self.user_tokens(&self.target.required_scope).await;
        let access = tokens["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let anonymous = self
            .send(
                self.http
                    .post(self.url("/introspect"))
                    .form(&[("token", access.as_str())]),
            )
            .await;
        check.status(&anonymous, StatusCode::UNAUTHORIZED);
        let nosy = self
            .register(json!({
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "client_secret_basic",
            }))
            .await
            .json();
        let answer = self
            .send(
                self.http
                    .post(self.url("/introspect"))
                    .basic_auth(
                        nosy["client_id"].as_str().unwrap_or_default(),
                        nosy["client_secret"].as_str(),
                    )
                    .form(&[("token", access.as_str())]),
            )
            .await;
        check.expect(
            answer.status == StatusCode::FORBIDDEN && answer.json().get("active").is_none(),
            format!(
                "a self-registered client introspects: {} {}",
                answer.status, answer.text
            ),
        );
        // Another client cannot revoke the user's tokens.
        let other = self.public_client(&[REDIRECT]).await;
        let revoked = self
            .send(self.http.post(self.url("/revoke")).form(&[
                ("client_id", other.as_str()),
                (
                    "token",
                    tokens["refresh_token"].as_str().unwrap_or_default(),
                ),
            ]))
            .await;
        check.expect(
            revoked.status == StatusCode::BAD_REQUEST
                && revoked.json()["error"] == "unauthorized_client",
            format!(
                "another client revoking: {} {}",
                revoked.status, revoked.text
            ),
        );
        let still = self
            .refresh(
                &client_id,
                tokens["refresh_token"].as_str().unwrap_or_default(),
                &[],
            )
            .await;
        check.status(&still, StatusCode::OK);
        check
    }
}

/// Runs every check against `target` and panics listing every finding.
///
/// # Panics
///
/// When the target lets an attacker through anywhere.
pub async fn run_attacker_suite(target: &AttackTarget) {
    let attacker = Attacker {
        target,
        http: crate::no_redirects(),
    };
    let checks = [
        attacker.open_registration_abuse().await,
        attacker.scope_and_resource_escalation().await,
        attacker.redirect_uri_variants().await,
        attacker.pkce_downgrade().await,
        attacker.code_replay().await,
        attacker.refresh_replay().await,
        attacker.consent_and_csrf_bypasses().await,
        attacker.token_confusion().await,
        attacker.introspection_and_revocation().await,
    ];
    crate::assert_passed("findings", checks);
}

/// Runs only the refresh-replay checks (for a second deployment with another
/// `refresh_reuse_grace`).
///
/// # Panics
///
/// As [`run_attacker_suite`].
pub async fn run_refresh_replay_checks(target: &AttackTarget) {
    let attacker = Attacker {
        target,
        http: crate::no_redirects(),
    };
    crate::assert_passed("findings", [attacker.refresh_replay().await]);
}
