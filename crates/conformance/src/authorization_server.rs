//! The authorization server's checks: metadata, JWKS, every grant, errors, registration,
//! revocation and introspection, the safe defaults.

use reqwest::StatusCode;

use crate::check::{Answer, Check, assert_passed, no_redirects};
use crate::fixture::{CHALLENGE, VERIFIER};
use crate::{Fixture, REDIRECT, RESOURCE};

pub(crate) struct Suite<'a> {
    pub(crate) http: reqwest::Client,
    pub(crate) base: &'a str,
    pub(crate) fixture: &'a Fixture,
    pub(crate) issuer_path: String,
}

impl Suite<'_> {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}{path}", self.base, self.issuer_path)
    }

    pub(crate) fn authorize_url(&self, pairs: &[(&str, &str)]) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        format!("{}?{query}", self.url("/authorize"))
    }

    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        Answer::of(request).await
    }

    pub(crate) async fn metadata(&self) -> Check {
        let mut check = Check::new("RFC 8414 §3: metadata at the path-inserted well-known URL");
        let url = format!(
            "{}/.well-known/oauth-authorization-server{}",
            self.base, self.issuer_path
        );
        let answer = self.send(self.http.get(&url)).await;
        check.status(&answer, StatusCode::OK);
        check.common_headers(&answer, true);
        let metadata = answer.json();
        check.expect(
            metadata["issuer"] == self.fixture.issuer.as_str(),
            format!(
                "issuer {} (expected {})",
                metadata["issuer"], self.fixture.issuer
            ),
        );
        check.expect(
            metadata["token_endpoint"] == self.url("/token").as_str(),
            format!("token_endpoint {}", metadata["token_endpoint"]),
        );
        check.expect(
            metadata["code_challenge_methods_supported"] == serde_json::json!(["S256"]),
            "code_challenge_methods_supported is exactly [\"S256\"]",
        );
        let head = self.send(self.http.head(&url)).await;
        check.status(&head, StatusCode::OK);
        check.expect(head.text.is_empty(), "HEAD has no body");
        let preflight = self
            .send(
                self.http
                    .request(reqwest::Method::OPTIONS, &url)
                    .header("origin", "http://localhost:6274")
                    .header("access-control-request-method", "GET"),
            )
            .await;
        check.status(&preflight, StatusCode::NO_CONTENT);
        check.header(&preflight, "access-control-allow-origin", "*");
        check
    }

    pub(crate) async fn jwks(&self) -> Check {
        let mut check = Check::new("RFC 7517: the JWK Set publishes the signing key");
        let answer = self.send(self.http.get(self.url("/jwks.json"))).await;
        check.status(&answer, StatusCode::OK);
        check.common_headers(&answer, true);
        let keys = answer.json()["keys"].clone();
        check.expect(
            keys.as_array()
                .is_some_and(|k| k.len() == 1 && k[0]["d"].is_null()),
            format!("one public key, no private part: {keys}"),
        );
        check
    }

    pub(crate) async fn token_preflight_and_methods(&self) -> Check {
        let mut check = Check::new("CORS preflight and methods of the token endpoint");
        let preflight = self
            .send(
                self.http
                    .request(reqwest::Method::OPTIONS, self.url("/token"))
                    .header("origin", "http://localhost:6274")
                    .header("access-control-request-method", "POST"),
            )
            .await;
        check.status(&preflight, StatusCode::NO_CONTENT);
        check.header(&preflight, "access-control-allow-origin", "*");
        check.header(&preflight, "access-control-allow-methods", "POST, OPTIONS");
        let get = self.send(self.http.get(self.url("/token"))).await;
        check.json_error(&get, StatusCode::METHOD_NOT_ALLOWED, "invalid_request");
        check.header(&get, "allow", "POST");
        check
    }

    pub(crate) async fn token_errors(&self) -> Check {
        let mut check = Check::new("RFC 6749 §5.2: token endpoint errors");
        let unsupported = self
            .send(self.http.post(self.url("/token")).form(&[
                ("grant_type", "password"),
                ("client_id", &self.fixture.public_client),
            ]))
            .await;
        check.json_error(
            &unsupported,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        );
        check.common_headers(&unsupported, true);
        let (id, _) = &self.fixture.confidential_client;
        let wrong_secret = self
            .send(
                self.http
                    .post(self.url("/token"))
                    .basic_auth(id, Some("not-the-secret"))
                    .form(&[("grant_type", "client_credentials")]),
            )
            .await;
        check.json_error(&wrong_secret, StatusCode::UNAUTHORIZED, "invalid_client");
        check.expect(
            wrong_secret
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Basic")),
            "a failed Basic authentication is challenged (RFC 6749 §5.2)",
        );
        let repeated = self
            .send(
                self.http
                    .post(self.url("/token"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials&grant_type=client_credentials"),
            )
            .await;
        check.json_error(&repeated, StatusCode::BAD_REQUEST, "invalid_request");
        let too_large = self
            .send(
                self.http
                    .post(self.url("/token"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!(
                        "grant_type=client_credentials&scope={}",
                        "a".repeat(mcpauth_http::MAX_BODY_BYTES + 1)
                    )),
            )
            .await;
        check.json_error(&too_large, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
        check
    }

    pub(crate) async fn client_credentials(&self) -> Check {
        let mut check = Check::new("RFC 6749 §4.4: client credentials");
        let (id, secret) = &self.fixture.confidential_client;
        let answer = self
            .send(
                self.http
                    .post(self.url("/token"))
                    .basic_auth(id, Some(secret))
                    .form(&[("grant_type", "client_credentials"), ("resource", RESOURCE)]),
            )
            .await;
        check.status(&answer, StatusCode::OK);
        check.header(&answer, "cache-control", "no-store");
        check.common_headers(&answer, true);
        let body = answer.json();
        check.expect(
            body["token_type"] == "Bearer",
            format!("token_type {}", body["token_type"]),
        );
        check.expect(body["access_token"].is_string(), "an access token");
        check.expect(
            body["refresh_token"].is_null(),
            "no refresh token for client credentials",
        );
        check
    }

    pub(crate) async fn authorization_code(&self) -> Check {
        let mut check = Check::new("RFC 6749 §4.1 + RFC 7636 + RFC 9207: authorization code");
        let client_id = &self.fixture.public_client;
        let authorize = self
            .send(self.http.get(self.authorize_url(&[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", REDIRECT),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("state", "xyz"),
                ("resource", RESOURCE),
            ])))
            .await;
        check.status(&authorize, StatusCode::SEE_OTHER);
        let location = authorize
            .header("location")
            .and_then(|l| url::Url::parse(&l).ok());
        let params: Vec<(String, String)> = location
            .map(|l| l.query_pairs().into_owned().collect())
            .unwrap_or_default();
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        check.expect(param("state").as_deref() == Some("xyz"), "state comes back");
        check.expect(
            param("iss").as_deref() == Some(self.fixture.issuer.as_str()),
            format!("iss {:?} (RFC 9207)", param("iss")),
        );
        let code = param("code").unwrap_or_default();
        let redeem = [
            ("grant_type", "authorization_code"),
            ("client_id", client_id.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ];
        let wrong_verifier = self
            .send(self.http.post(self.url("/token")).form(&[
                ("grant_type", "authorization_code"),
                ("client_id", client_id.as_str()),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &"x".repeat(43)),
            ]))
            .await;
        check.json_error(&wrong_verifier, StatusCode::BAD_REQUEST, "invalid_grant");
        let tokens = self
            .send(self.http.post(self.url("/token")).form(&redeem))
            .await;
        check.status(&tokens, StatusCode::OK);
        check.header(&tokens, "cache-control", "no-store");
        check.expect(
            tokens.json()["refresh_token"].is_string(),
            "a refresh token",
        );
        let replay = self
            .send(self.http.post(self.url("/token")).form(&redeem))
            .await;
        check.json_error(&replay, StatusCode::BAD_REQUEST, "invalid_grant");
        let refresh_token = tokens.json()["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let refreshed = self
            .send(self.http.post(self.url("/token")).form(&[
                ("grant_type", "refresh_token"),
                ("client_id", client_id.as_str()),
                ("refresh_token", refresh_token.as_str()),
            ]))
            .await;
        check.json_error(&refreshed, StatusCode::BAD_REQUEST, "invalid_grant");
        check
    }

    pub(crate) async fn authorization_errors(&self) -> Check {
        let mut check =
            Check::new("RFC 6749 §4.1.2.1: errors before redirect validation are shown");
        let answer = self
            .send(self.http.get(self.authorize_url(&[
                ("response_type", "code"),
                ("client_id", self.fixture.public_client.as_str()),
                ("redirect_uri", "https://evil.example/cb"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
            ])))
            .await;
        check.status(&answer, StatusCode::BAD_REQUEST);
        check.expect(answer.header("location").is_none(), "never redirected");
        check.expect(
            answer
                .header("content-type")
                .is_some_and(|c| c.starts_with("text/html")),
            "an HTML page",
        );
        check.expect(!answer.text.contains("<script"), "escaped");
        let redirected = self
            .send(self.http.get(self.authorize_url(&[
                ("response_type", "code"),
                ("client_id", self.fixture.public_client.as_str()),
                ("redirect_uri", REDIRECT),
                ("state", "s"),
            ])))
            .await;
        check.status(&redirected, StatusCode::SEE_OTHER);
        check.expect(
            redirected
                .header("location")
                .is_some_and(|l| l.starts_with(REDIRECT) && l.contains("error=invalid_request")),
            format!(
                "PKCE missing: redirected with invalid_request, got {:?}",
                redirected.header("location")
            ),
        );
        check
    }

    pub(crate) async fn registration(&self) -> Check {
        let mut check = Check::new("RFC 7591 / RFC 7592: registration and its management");
        let created = self
            .send(
                self.http
                    .post(self.url("/register"))
                    .json(&serde_json::json!({
                        "redirect_uris": [REDIRECT],
                        "client_name": "conformance",
                        "token_endpoint_auth_method": "none",
                    })),
            )
            .await;
        check.status(&created, StatusCode::CREATED);
        check.header(&created, "cache-control", "no-store");
        check.common_headers(&created, true);
        let client = created.json();
        let (Some(uri), Some(token)) = (
            client["registration_client_uri"].as_str(),
            client["registration_access_token"].as_str(),
        ) else {
            check.expect(false, format!("management fields missing: {client}"));
            return check;
        };
        let read = self.send(self.http.get(uri).bearer_auth(token)).await;
        check.status(&read, StatusCode::OK);
        check.expect(
            read.json()["client_id"] == client["client_id"],
            "reads itself",
        );
        let wrong = self.send(self.http.get(uri).bearer_auth("wrong")).await;
        check.status(&wrong, StatusCode::UNAUTHORIZED);
        let deleted = self.send(self.http.delete(uri).bearer_auth(token)).await;
        check.status(&deleted, StatusCode::NO_CONTENT);
        let bad = self
            .send(
                self.http
                    .post(self.url("/register"))
                    .json(&serde_json::json!({
                        "redirect_uris": ["javascript:alert(1)"],
                    })),
            )
            .await;
        check.json_error(&bad, StatusCode::BAD_REQUEST, "invalid_redirect_uri");
        check
    }

    pub(crate) async fn revocation_and_introspection(&self) -> Check {
        let mut check = Check::new("RFC 7009 / RFC 7662: revocation and introspection");
        let (id, secret) = &self.fixture.confidential_client;
        let token = self
            .send(
                self.http
                    .post(self.url("/token"))
                    .basic_auth(id, Some(secret))
                    .form(&[("grant_type", "client_credentials"), ("resource", RESOURCE)]),
            )
            .await
            .json()["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let introspect = |token: String| {
            self.http
                .post(self.url("/introspect"))
                .basic_auth(id, Some(secret))
                .form(&[("token", token)])
        };
        let active = self.send(introspect(token.clone())).await;
        check.status(&active, StatusCode::OK);
        check.expect(
            active.json()["active"] == true,
            format!("active: {}", active.text),
        );
        let unknown = self.send(introspect("nonsense".into())).await;
        check.expect(
            unknown.json()["active"] == false,
            "unknown tokens are inactive",
        );
        let anonymous = self
            .send(
                self.http
                    .post(self.url("/introspect"))
                    .form(&[("token", token.as_str())]),
            )
            .await;
        check.status(&anonymous, StatusCode::UNAUTHORIZED);
        let revoked = self
            .send(
                self.http
                    .post(self.url("/revoke"))
                    .basic_auth(id, Some(secret))
                    .form(&[("token", "not-a-token")]),
            )
            .await;
        check.status(&revoked, StatusCode::OK);
        check
    }

    /// A user's access token for `scope` at `resource`, through the authorization code flow
    /// of the public client (the fixture approves as `alice`); empty when the flow fails.
    pub(crate) async fn user_token(&self, scope: &str, resource: &str) -> String {
        let authorize = self
            .send(self.http.get(self.authorize_url(&[
                ("response_type", "code"),
                ("client_id", self.fixture.public_client.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("scope", scope),
                ("resource", resource),
            ])))
            .await;
        let code = authorize
            .header("location")
            .and_then(|l| url::Url::parse(&l).ok())
            .and_then(|l| {
                l.query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
            })
            .unwrap_or_default();
        self.send(self.http.post(self.url("/token")).form(&[
            ("grant_type", "authorization_code"),
            ("client_id", self.fixture.public_client.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ]))
        .await
        .json()["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The issue-21 rules every adapter must carry to the wire unchanged.
    pub(crate) async fn safe_defaults(&self) -> Check {
        let mut check = Check::new("DESIGN §3c: what an anonymous or unprivileged caller gets");
        // A self-registered client gets user-delegated grants only.
        let machine = self
            .send(
                self.http
                    .post(self.url("/register"))
                    .json(&serde_json::json!({
                        "grant_types": ["client_credentials"],
                        "token_endpoint_auth_method": "client_secret_post",
                        "scope": "mcp admin",
                    })),
            )
            .await;
        check.json_error(&machine, StatusCode::BAD_REQUEST, "invalid_client_metadata");
        // RFC 7591 §3.2.2: a registration nested beyond client metadata's needs is refused.
        let mut nested = serde_json::json!("leaf");
        for _ in 0..40 {
            nested = serde_json::json!({ "a": nested });
        }
        let deep = self
            .send(
                self.http
                    .post(self.url("/register"))
                    .json(&serde_json::json!({
                        "redirect_uris": [REDIRECT],
                        "x-deep": nested,
                    })),
            )
            .await;
        check.json_error(&deep, StatusCode::BAD_REQUEST, "invalid_client_metadata");
        // RFC 6749 §5.2: a malformed Basic header is a failed Basic authentication.
        for value in ["Basic", "Basic !!!not-base64", "Basic bm8tY29sb24="] {
            let answer = self
                .send(
                    self.http
                        .post(self.url("/token"))
                        .header("authorization", value)
                        .form(&[("grant_type", "client_credentials")]),
                )
                .await;
            check.json_error(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
            check.expect(
                answer
                    .header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Basic")),
                format!("`{value}` is challenged with WWW-Authenticate: Basic"),
            );
        }
        // An unsupported response_mode is refused before any code is issued.
        let fragment = self
            .send(self.http.get(self.authorize_url(&[
                ("response_type", "code"),
                ("client_id", self.fixture.public_client.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("response_mode", "fragment"),
                ("resource", RESOURCE),
            ])))
            .await;
        check.status(&fragment, StatusCode::SEE_OTHER);
        let location = fragment.header("location").unwrap_or_default();
        check.expect(
            location.contains("error=invalid_request") && !location.contains("code="),
            format!("response_mode=fragment: an error and no code, got {location}"),
        );
        // RFC 7662 §4: only resource servers introspect; others learn nothing.
        let (id, secret) = &self.fixture.confidential_client;
        let token = self
            .send(
                self.http
                    .post(self.url("/token"))
                    .basic_auth(id, Some(secret))
                    .form(&[("grant_type", "client_credentials"), ("resource", RESOURCE)]),
            )
            .await
            .json()["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (bystander, bystander_secret) = &self.fixture.bystander;
        let nosy = self
            .send(
                self.http
                    .post(self.url("/introspect"))
                    .basic_auth(bystander, Some(bystander_secret))
                    .form(&[("token", token.as_str())]),
            )
            .await;
        check.json_error(&nosy, StatusCode::FORBIDDEN, "unauthorized_client");
        check.expect(
            nosy.json().get("active").is_none(),
            "a refused introspection says nothing about the token",
        );
        // Tokens say whether a user stands behind them.
        let described = self
            .send(
                self.http
                    .post(self.url("/introspect"))
                    .basic_auth(id, Some(secret))
                    .form(&[("token", token.as_str())]),
            )
            .await;
        check.expect(
            described.json()["sub_type"] == "client",
            format!(
                "a client_credentials token is sub_type client: {}",
                described.text
            ),
        );
        let user = self.user_token("mcp", RESOURCE).await;
        let described = self
            .send(
                self.http
                    .post(self.url("/introspect"))
                    .basic_auth(id, Some(secret))
                    .form(&[("token", user.as_str())]),
            )
            .await;
        check.expect(
            described.json()["sub_type"] == "user",
            format!("a user's token is sub_type user: {}", described.text),
        );
        check
    }

    pub(crate) async fn unknown_client_config_path(&self) -> Check {
        let mut check = Check::new("RFC 7592: unknown registrations look like a wrong token");
        let answer = self
            .send(
                self.http
                    .get(self.url("/register/nobody"))
                    .bearer_auth("whatever"),
            )
            .await;
        check.status(&answer, StatusCode::UNAUTHORIZED);
        check
    }
}

/// A `client_credentials` access token for the fixture's confidential client, for `scope`
/// (empty: the default) and `resource`; empty when none comes back.
pub async fn client_credentials_token(
    http: &reqwest::Client,
    fixture: &Fixture,
    scope: &str,
    resource: &str,
) -> String {
    let (id, secret) = fixture.confidential_client();
    let answer = http
        .post(format!("{}/token", fixture.issuer()))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("resource", resource),
        ])
        .send()
        .await;
    match answer {
        Ok(response) => Answer::from(response).await.json()["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        Err(_) => String::new(),
    }
}

/// Runs every check against the server mounted at `base` (scheme, host and port; the issuer's
/// path comes from the fixture) and panics listing every mismatch.
///
/// # Panics
///
/// When any answer differs from what the suite expects.
pub async fn run(base: &str, fixture: &Fixture) {
    let issuer_path = url::Url::parse(&fixture.issuer)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let suite = Suite {
        http: no_redirects(),
        base,
        fixture,
        issuer_path,
    };
    let checks = [
        suite.metadata().await,
        suite.jwks().await,
        suite.token_preflight_and_methods().await,
        suite.token_errors().await,
        suite.client_credentials().await,
        suite.authorization_code().await,
        suite.authorization_errors().await,
        suite.registration().await,
        suite.revocation_and_introspection().await,
        suite.safe_defaults().await,
        suite.unknown_client_config_path().await,
    ];
    assert_passed("conformance failures", checks);
}
