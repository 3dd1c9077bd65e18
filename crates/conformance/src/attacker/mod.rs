//! The attacker's suite: a black-box run against a deployed authorization server (the real
//! `mcpauth-server` in this project's tests) and a resource server that trusts it, over HTTP,
//! the way someone without credentials, or with a self-registered client, would try it.
//!
//! Each check asks what the least-privileged caller who can reach an endpoint gets, and
//! whether a resource server accepts it: open registration abuse, scope and resource
//! escalation, redirect-URI variants, PKCE downgrade, code and refresh replay (inside and
//! after the grace window), consent and CSRF bypasses, and token confusion at the resource
//! server. A run panics listing every finding.

mod authorization;
mod browser;
mod registration;
mod replay;
mod resource;

use serde_json::{Value, json};

use super::Answer;
use crate::fixture::{CHALLENGE, VERIFIER};
use browser::{Browser, field, query_param};

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

struct Attacker<'a> {
    target: &'a AttackTarget,
    http: reqwest::Client,
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
}
