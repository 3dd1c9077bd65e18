//! Each provider preset against its documented behaviour: the authorization request it
//! builds, the token request it sends, and the token, userinfo and user-API responses of
//! `tests/recorded/` (the providers' documented examples; the real providers cannot be
//! reached from here, so a recording transport stands in for them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use mcpauth_token_engine::UnixTime;
use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use mcpauth_proxy::id_token::{self, IdTokenError};
use mcpauth_proxy::upstream::{self, Callback, CallbackError, ProxyError, TransportError};
use mcpauth_proxy::{ClaimMapping, Preset, Provider, ProviderConfig, Transport};
use mcpauth_token_engine::{PendingAuthorization, RandomError, SecureRandom, SigningKey};
use serde_json::{Value, json};
use sha2::Digest as _;
use url::Url;

const NOW: u64 = 1_800_000_000;

fn recorded(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/recorded/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A recorded answer: status, content type, body.
type Answer = (u16, &'static str, Vec<u8>);

/// Answers with recorded responses by URL and keeps every request it was sent.
#[derive(Debug, Default)]
struct Recording {
    responses: Mutex<HashMap<String, Answer>>,
    requests: Mutex<Vec<http::Request<Vec<u8>>>>,
}

impl Recording {
    fn answer(&self, url: &str, status: u16, content_type: &'static str, body: Vec<u8>) {
        self.responses
            .lock()
            .unwrap()
            .insert(url.to_owned(), (status, content_type, body));
    }

    fn sent(&self, url: &str) -> http::Request<Vec<u8>> {
        let requests = self.requests.lock().unwrap();
        let request = requests
            .iter()
            .find(|r| *r.uri() == *url)
            .unwrap_or_else(|| panic!("nothing was sent to {url}"));
        let mut copy = http::Request::builder()
            .method(request.method())
            .uri(request.uri());
        for (name, value) in request.headers() {
            copy = copy.header(name, value);
        }
        copy.body(request.body().clone()).unwrap()
    }
}

#[async_trait::async_trait]
impl Transport for Recording {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        let url = request.uri().to_string();
        self.requests.lock().unwrap().push(request);
        let Some((status, content_type, body)) = self.responses.lock().unwrap().get(&url).cloned()
        else {
            return Err(TransportError(format!("no recorded response for {url}")));
        };
        Ok(http::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(body)
            .unwrap())
    }
}

/// Counts up: distinct, predictable values.
#[derive(Debug, Default)]
struct Counting(Mutex<u8>);

impl SecureRandom for Counting {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        let mut next = self.0.lock().unwrap();
        for byte in dest {
            *next = next.wrapping_add(1);
            *byte = *next;
        }
        Ok(())
    }
}

fn pending() -> PendingAuthorization {
    serde_json::from_value(json!({
        "client_id": "mcp-client",
        "client_name": "An MCP client",
        "client_identity": "SelfRegistered",
        "redirect_uri": "http://127.0.0.1:53682/callback",
        "redirect_uri_in_request": true,
        "scope": "mcp:tools",
        "resources": ["https://mcp.example.com/mcp"],
        "state": "client-state",
        "code_challenge": "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc"
    }))
    .unwrap()
}

fn callback_url(provider: &str) -> Url {
    Url::parse(&format!(
        "https://auth.example.com/upstream/{provider}/callback"
    ))
    .unwrap()
}

fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn preset(id: &str, preset: Preset) -> Provider {
    Provider::from_config(
        &ProviderConfig::new(id, preset, "our-client-id").client_secret("our-client-secret"),
    )
    .unwrap()
}

/// An RS256 key (the throwaway key of `tests/recorded/`) and its JWK Set.
fn rsa_key() -> (jsonwebtoken::EncodingKey, String, Vec<u8>) {
    let der = recorded("test_rsa_pkcs1.der");
    let signing = SigningKey::rs256_from_pkcs1_der(&der).unwrap();
    let jwks = serde_json::to_vec(&json!({ "keys": [signing.public_jwk().unwrap()] })).unwrap();
    (
        jsonwebtoken::EncodingKey::from_rsa_der(&der),
        signing.kid().to_owned(),
        jwks,
    )
}

fn sign(
    key: &jsonwebtoken::EncodingKey,
    kid: &str,
    alg: jsonwebtoken::Algorithm,
    claims: &Value,
) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn id_claims(iss: &str, nonce: &str) -> Value {
    json!({
        "iss": iss, "sub": "110169484474386276334", "aud": "our-client-id",
        "azp": "our-client-id", "iat": NOW - 5, "exp": NOW + 3600, "nonce": nonce,
        "email": "jane.doe@gmail.com", "email_verified": true, "name": "Jane Doe"
    })
}

// The presets resolve to the endpoints each provider documents, https only.
#[test]
fn every_preset_resolves_to_the_documented_endpoints() {
    let cases = [
        (
            preset("google", Preset::Google),
            "https://accounts.google.com/o/oauth2/v2/auth",
            "https://oauth2.googleapis.com/token",
        ),
        (
            preset("github", Preset::GitHub),
            "https://github.com/login/oauth/authorize",
            "https://github.com/login/oauth/access_token",
        ),
        (
            preset("azure", Preset::Azure),
            "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
            "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        ),
        (
            preset("gitlab", Preset::GitLab),
            "https://gitlab.com/oauth/authorize",
            "https://gitlab.com/oauth/token",
        ),
        (
            preset("slack", Preset::Slack),
            "https://slack.com/openid/connect/authorize",
            "https://slack.com/api/openid.connect.token",
        ),
        (
            preset("discord", Preset::Discord),
            "https://discord.com/oauth2/authorize",
            "https://discord.com/api/oauth2/token",
        ),
    ];
    for (provider, authorization, token) in cases {
        assert_eq!(
            provider.authorization_endpoint.as_str(),
            authorization,
            "{}",
            provider.id
        );
        assert_eq!(provider.token_endpoint.as_str(), token, "{}", provider.id);
    }
    let tenant = Provider::from_config(
        &ProviderConfig::new("entra", Preset::Azure, "id")
            .client_secret("s")
            .tenant("contoso.onmicrosoft.com"),
    )
    .unwrap();
    assert_eq!(
        tenant.issuer.as_deref(),
        Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0")
    );
    let self_hosted = Provider::from_config(
        &ProviderConfig::new("gl", Preset::GitLab, "id")
            .base_url(Url::parse("https://gitlab.example.com/").unwrap()),
    )
    .unwrap();
    assert_eq!(
        self_hosted.issuer.as_deref(),
        Some("https://gitlab.example.com")
    );
    assert_eq!(
        self_hosted.jwks_uri.unwrap().as_str(),
        "https://gitlab.example.com/oauth/discovery/keys"
    );
}

// Configuration mistakes are refused with what to fix.
#[test]
fn bad_provider_configurations_say_what_to_fix() {
    let bad_id = Provider::from_config(&ProviderConfig::new("Google!", Preset::Google, "id"));
    assert!(bad_id.unwrap_err().to_string().contains("a-z, 0-9"));
    let no_endpoints = Provider::from_config(&ProviderConfig::new("corp", Preset::OAuth2, "id"));
    assert!(
        no_endpoints
            .unwrap_err()
            .to_string()
            .contains("token_endpoint")
    );
    let plain_http = Provider::from_config(
        &ProviderConfig::new("corp", Preset::OAuth2, "id").oauth2_endpoints(
            Url::parse("http://idp.example.com/authorize").unwrap(),
            Url::parse("https://idp.example.com/token").unwrap(),
            Url::parse("https://idp.example.com/me").unwrap(),
            ClaimMapping::new("id"),
        ),
    );
    assert!(
        plain_http
            .unwrap_err()
            .to_string()
            .contains("must be https")
    );
    let bad_tenant = Provider::from_config(
        &ProviderConfig::new("azure", Preset::Azure, "id")
            .client_secret("s")
            .tenant("../evil"),
    );
    assert!(bad_tenant.is_err());
    let oidc = Provider::from_config(&ProviderConfig::new("corp", Preset::Oidc, "id"));
    assert!(oidc.unwrap_err().to_string().contains("discovery"));
    // Google, GitHub, Microsoft, Slack and Discord refuse a token request without the
    // client's secret: refused at start, named.
    for preset in [
        Preset::Google,
        Preset::GitHub,
        Preset::Azure,
        Preset::Slack,
        Preset::Discord,
    ] {
        let error = Provider::from_config(&ProviderConfig::new("idp", preset, "id"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("client_secret is required"),
            "{preset:?}: {error}"
        );
    }
    assert!(
        Provider::from_config(&ProviderConfig::new("gitlab", Preset::GitLab, "id")).is_ok(),
        "GitLab takes public clients"
    );
}

// The upstream request carries our own fresh state, a nonce (OpenID Connect) and an S256
// challenge (where the provider supports PKCE), never the MCP client's values.
#[test]
fn the_upstream_request_carries_our_state_nonce_and_s256_challenge() {
    let rng = Counting::default();
    let google = preset("google", Preset::Google);
    let started = upstream::start(
        &google,
        &callback_url("google"),
        pending(),
        &rng,
        UnixTime(NOW),
        600,
    )
    .unwrap();
    let q = query(&started.location);
    assert_eq!(started.location.host_str(), Some("accounts.google.com"));
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "our-client-id");
    assert_eq!(
        q["redirect_uri"],
        "https://auth.example.com/upstream/google/callback"
    );
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["state"], started.state);
    assert_ne!(q["state"], "client-state");
    assert_eq!(Some(&q["nonce"]), started.record.nonce.as_ref());
    assert_eq!(q["code_challenge_method"], "S256");
    let verifier = started.record.pkce_verifier.as_ref().unwrap();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    assert_eq!(q["code_challenge"], challenge);
    // The upstream challenge is our own, never the MCP client's.
    assert_ne!(
        q["code_challenge"],
        "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc"
    );
    assert!(!started.location.as_str().contains("our-client-secret"));
    assert_eq!(started.record.expires_at, NOW + 600);
    assert_eq!(
        started.record.browser_binding_hash,
        mcpauth_token_engine::SecretHash::of(&started.browser_binding).into_string()
    );
    // The state, nonce, verifier and binding are four distinct values.
    let values = [
        started.state.clone(),
        started.browser_binding.clone(),
        started.record.nonce.clone().unwrap(),
        verifier.clone(),
    ];
    for (i, a) in values.iter().enumerate() {
        assert_eq!(a.len(), 43);
        assert!(values.iter().skip(i + 1).all(|b| a != b));
    }

    let github = preset("github", Preset::GitHub);
    let started = upstream::start(
        &github,
        &callback_url("github"),
        pending(),
        &rng,
        UnixTime(NOW),
        600,
    )
    .unwrap();
    let q = query(&started.location);
    assert_eq!(q["scope"], "read:user user:email");
    assert!(!q.contains_key("nonce"), "GitHub is not OpenID Connect");
    assert_eq!(q["code_challenge_method"], "S256");

    let slack = preset("slack", Preset::Slack);
    let started = upstream::start(
        &slack,
        &callback_url("slack"),
        pending(),
        &rng,
        UnixTime(NOW),
        600,
    )
    .unwrap();
    let q = query(&started.location);
    assert!(q.contains_key("nonce"));
    assert!(
        !q.contains_key("code_challenge"),
        "Sign in with Slack documents no PKCE"
    );
}

// GitHub: the code exchange asks for JSON; a form-encoded answer (what GitHub sends without
// `Accept: application/json`) is read too; an error answered with 200 is an error.
#[tokio::test]
async fn github_token_exchange_handles_json_form_and_errors_sent_with_200() {
    let github = preset("github", Preset::GitHub);
    let token_url = "https://github.com/login/oauth/access_token";
    let transport = Recording::default();
    transport.answer(
        token_url,
        200,
        "application/json; charset=utf-8",
        recorded("github_token.json"),
    );
    let tokens = upstream::exchange_code(
        &github,
        &callback_url("github"),
        "the-upstream-code",
        Some("the-verifier-of-forty-three-characters-xxxxx"),
        &transport,
    )
    .await
    .unwrap();
    assert_eq!(
        tokens.access_token,
        "gho_16C7e42F292c6912E7710c838347Ae178B4a"
    );
    assert!(tokens.id_token.is_none());
    let sent = transport.sent(token_url);
    assert_eq!(sent.method(), http::Method::POST);
    assert_eq!(sent.headers()["accept"], "application/json");
    let body = form(sent.body());
    assert_eq!(body["grant_type"], "authorization_code");
    assert_eq!(body["code"], "the-upstream-code");
    assert_eq!(
        body["redirect_uri"],
        "https://auth.example.com/upstream/github/callback"
    );
    assert_eq!(
        body["code_verifier"],
        "the-verifier-of-forty-three-characters-xxxxx"
    );
    assert_eq!(body["client_id"], "our-client-id");
    assert_eq!(body["client_secret"], "our-client-secret");
    assert!(!sent.headers().contains_key("authorization"));

    let transport = Recording::default();
    transport.answer(
        token_url,
        200,
        "application/x-www-form-urlencoded",
        recorded("github_token.form"),
    );
    let tokens = upstream::exchange_code(&github, &callback_url("github"), "c", None, &transport)
        .await
        .unwrap();
    assert_eq!(
        tokens.access_token,
        "gho_16C7e42F292c6912E7710c838347Ae178B4a"
    );

    let transport = Recording::default();
    transport.answer(
        token_url,
        200,
        "application/json",
        recorded("github_token_error.json"),
    );
    let refused = upstream::exchange_code(&github, &callback_url("github"), "c", None, &transport)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, ProxyError::Token(reason) if reason.contains("bad_verification_code")),
        "{refused}"
    );
}

// GitHub: the user is the numeric id; the email is the verified primary from /user/emails,
// not /user's public profile address.
#[tokio::test]
async fn github_identity_is_the_numeric_id_with_the_verified_primary_email() {
    let github = preset("github", Preset::GitHub);
    let transport = Recording::default();
    transport.answer(
        "https://api.github.com/user",
        200,
        "application/json",
        recorded("github_user.json"),
    );
    transport.answer(
        "https://api.github.com/user/emails",
        200,
        "application/json",
        recorded("github_emails.json"),
    );
    let tokens = github_tokens(&transport, &github).await;
    let identity = upstream::fetch_identity(&github, &tokens, None, &transport)
        .await
        .unwrap();
    assert_eq!(identity.subject, "1");
    assert_eq!(identity.username.as_deref(), Some("octocat"));
    assert_eq!(identity.name.as_deref(), Some("monalisa octocat"));
    assert_eq!(identity.email.as_deref(), Some("octocat@github.com"));
    assert!(identity.email_verified);
    let sent = transport.sent("https://api.github.com/user");
    assert_eq!(sent.headers()["accept"], "application/vnd.github+json");
    assert_eq!(sent.headers()["x-github-api-version"], "2022-11-28");
    assert_eq!(
        sent.headers()["authorization"],
        "Bearer gho_16C7e42F292c6912E7710c838347Ae178B4a"
    );

    // Without the user:email scope the emails API answers 404: the public address stays,
    // unverified.
    let transport = Recording::default();
    transport.answer(
        "https://api.github.com/user",
        200,
        "application/json",
        recorded("github_user.json"),
    );
    transport.answer(
        "https://api.github.com/user/emails",
        404,
        "application/json",
        b"{}".to_vec(),
    );
    let tokens = github_tokens(&transport, &github).await;
    let identity = upstream::fetch_identity(&github, &tokens, None, &transport)
        .await
        .unwrap();
    assert_eq!(identity.email.as_deref(), Some("octocat@github.com"));
    assert!(!identity.email_verified);
}

async fn github_tokens(transport: &Recording, github: &Provider) -> upstream::UpstreamTokens {
    transport.answer(
        "https://github.com/login/oauth/access_token",
        200,
        "application/json",
        recorded("github_token.json"),
    );
    upstream::exchange_code(github, &callback_url("github"), "c", None, transport)
        .await
        .unwrap()
}

// Discord: /users/@me, `verified` says whether the email is.
#[tokio::test]
async fn discord_identity_comes_from_users_me() {
    let discord = preset("discord", Preset::Discord);
    let transport = Recording::default();
    transport.answer(
        "https://discord.com/api/oauth2/token",
        200,
        "application/json",
        recorded("discord_token.json"),
    );
    transport.answer(
        "https://discord.com/api/users/@me",
        200,
        "application/json",
        recorded("discord_me.json"),
    );
    let tokens = upstream::exchange_code(
        &discord,
        &callback_url("discord"),
        "c",
        Some(&"v".repeat(43)),
        &transport,
    )
    .await
    .unwrap();
    assert_eq!(
        tokens.refresh_token.as_deref(),
        Some("D43f5y0ahjqew82jZ4NViEr2YafMKhue")
    );
    assert_eq!(tokens.expires_in, Some(604_800));
    let identity = upstream::fetch_identity(&discord, &tokens, None, &transport)
        .await
        .unwrap();
    assert_eq!(identity.subject, "80351110224678912");
    assert_eq!(identity.name.as_deref(), Some("Nelly"));
    assert_eq!(identity.username.as_deref(), Some("nelly"));
    assert!(identity.email_verified);
}

// Slack: errors come as `200` with `"ok": false`, at the token endpoint and at userinfo.
#[tokio::test]
async fn slack_errors_sent_with_200_and_ok_false_are_errors() {
    let slack = preset("slack", Preset::Slack);
    let transport = Recording::default();
    transport.answer(
        "https://slack.com/api/openid.connect.token",
        200,
        "application/json; charset=utf-8",
        recorded("slack_token_error.json"),
    );
    let refused = upstream::exchange_code(&slack, &callback_url("slack"), "c", None, &transport)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, ProxyError::Token(r) if r.contains("invalid_code")),
        "{refused}"
    );
    let sent = transport.sent("https://slack.com/api/openid.connect.token");
    assert!(!form(sent.body()).contains_key("code_verifier"));
}

/// Runs an OpenID Connect preset end to end over the recording: exchange, ID token, userinfo.
async fn oidc_sign_in(
    provider: &Provider,
    token_file: &str,
    userinfo: Option<(&str, Vec<u8>)>,
    id_token: &str,
    jwks: &[u8],
    nonce: &str,
) -> Result<mcpauth_proxy::UpstreamIdentity, ProxyError> {
    let transport = Recording::default();
    let body = String::from_utf8(recorded(token_file))
        .unwrap()
        .replace("ID_TOKEN", id_token);
    transport.answer(
        provider.token_endpoint.as_str(),
        200,
        "application/json",
        body.into_bytes(),
    );
    if let Some((url, body)) = userinfo {
        transport.answer(url, 200, "application/json", body);
    }
    let tokens = upstream::exchange_code(
        provider,
        &callback_url(&provider.id),
        "c",
        Some(&"v".repeat(43)),
        &transport,
    )
    .await?;
    let claims = id_token::validate(
        provider,
        jwks,
        tokens.id_token.as_deref().unwrap(),
        nonce,
        UnixTime(NOW),
    )?;
    upstream::fetch_identity(provider, &tokens, Some(&claims), &transport).await
}

// Google: RS256 ID tokens whose `iss` is either of the two values Google documents.
#[tokio::test]
async fn google_accepts_both_documented_issuers_and_merges_userinfo() {
    let google = preset("google", Preset::Google);
    let (key, kid, jwks) = rsa_key();
    for iss in ["https://accounts.google.com", "accounts.google.com"] {
        let token = sign(
            &key,
            &kid,
            jsonwebtoken::Algorithm::RS256,
            &id_claims(iss, "n-1"),
        );
        let identity = oidc_sign_in(
            &google,
            "google_token.json",
            Some((
                "https://openidconnect.googleapis.com/v1/userinfo",
                recorded("google_userinfo.json"),
            )),
            &token,
            &jwks,
            "n-1",
        )
        .await
        .unwrap();
        assert_eq!(identity.subject, "110169484474386276334");
        assert_eq!(identity.email.as_deref(), Some("jane.doe@gmail.com"));
        assert!(identity.email_verified);
        assert_eq!(
            identity.claims["locale"], "en",
            "userinfo completes the claims"
        );
    }
    let token = sign(
        &key,
        &kid,
        jsonwebtoken::Algorithm::RS256,
        &id_claims("https://evil.example", "n-1"),
    );
    let refused = oidc_sign_in(&google, "google_token.json", None, &token, &jwks, "n-1").await;
    assert!(matches!(
        refused,
        Err(ProxyError::IdToken(IdTokenError::WrongIssuer(_)))
    ));
}

// OpenID Connect Core §5.3.2: a userinfo response for another `sub` is refused.
#[tokio::test]
async fn a_userinfo_response_for_another_user_is_refused() {
    let google = preset("google", Preset::Google);
    let (key, kid, jwks) = rsa_key();
    let mut claims = id_claims("https://accounts.google.com", "n");
    claims["sub"] = json!("someone-else");
    let token = sign(&key, &kid, jsonwebtoken::Algorithm::RS256, &claims);
    let refused = oidc_sign_in(
        &google,
        "google_token.json",
        Some((
            "https://openidconnect.googleapis.com/v1/userinfo",
            recorded("google_userinfo.json"),
        )),
        &token,
        &jwks,
        "n",
    )
    .await;
    assert!(matches!(
        refused,
        Err(ProxyError::Identity(
            mcpauth_proxy::identity::IdentityError::SubjectMismatch
        ))
    ));
}

// Azure `common`: the issuer is the token's own tenant (`tid`); Azure's `email` claim is not
// verified, so the identity says so.
#[tokio::test]
async fn azure_common_accepts_the_tokens_own_tenant_issuer_and_no_other() {
    let azure = preset("azure", Preset::Azure);
    let (key, kid, jwks) = rsa_key();
    let tid = "9188040d-6c67-4c5b-b112-36a304b66dad";
    let mut claims = id_claims(
        &format!("https://login.microsoftonline.com/{tid}/v2.0"),
        "n",
    );
    claims["tid"] = json!(tid);
    claims["email_verified"] = Value::Null;
    let token = sign(&key, &kid, jsonwebtoken::Algorithm::RS256, &claims);
    let identity = oidc_sign_in(&azure, "azure_token.json", None, &token, &jwks, "n")
        .await
        .unwrap();
    assert!(
        !identity.email_verified,
        "Azure's email claim is unverified"
    );
    claims["tid"] = json!("72f988bf-86f1-41af-91ab-2d7cd011db47");
    let token = sign(&key, &kid, jsonwebtoken::Algorithm::RS256, &claims);
    let refused = oidc_sign_in(&azure, "azure_token.json", None, &token, &jwks, "n").await;
    assert!(matches!(
        refused,
        Err(ProxyError::IdToken(IdTokenError::WrongIssuer(_)))
    ));
}

// GitLab self-hosted: the issuer is the instance's base URL; userinfo adds the username.
#[tokio::test]
async fn gitlab_self_hosted_issuer_is_the_instance() {
    let gitlab = Provider::from_config(
        &ProviderConfig::new("gitlab", Preset::GitLab, "our-client-id")
            .client_secret("s")
            .base_url(Url::parse("https://gitlab.example.com").unwrap()),
    )
    .unwrap();
    let (key, kid, jwks) = rsa_key();
    let mut claims = id_claims("https://gitlab.example.com", "n");
    claims["sub"] = json!("1");
    let token = sign(&key, &kid, jsonwebtoken::Algorithm::RS256, &claims);
    let identity = oidc_sign_in(
        &gitlab,
        "gitlab_token.json",
        Some((
            "https://gitlab.example.com/oauth/userinfo",
            recorded("gitlab_userinfo.json"),
        )),
        &token,
        &jwks,
        "n",
    )
    .await
    .unwrap();
    assert_eq!(identity.subject, "1");
    assert_eq!(identity.username.as_deref(), Some("root"));
}

// Slack: OpenID Connect with `https://slack.com` as the issuer, userinfo with `ok: true`.
#[tokio::test]
async fn slack_signs_in_with_its_openid_flavour() {
    let slack = preset("slack", Preset::Slack);
    let (key, kid, jwks) = rsa_key();
    let mut claims = id_claims("https://slack.com", "n");
    claims["sub"] = json!("U0R7JM");
    let token = sign(&key, &kid, jsonwebtoken::Algorithm::RS256, &claims);
    let identity = oidc_sign_in(
        &slack,
        "slack_token.json",
        Some((
            "https://slack.com/api/openid.connect.userInfo",
            recorded("slack_userinfo.json"),
        )),
        &token,
        &jwks,
        "n",
    )
    .await
    .unwrap();
    assert_eq!(identity.subject, "U0R7JM");
    assert_eq!(identity.claims["https://slack.com/team_id"], "T0R7GR");
}

// OpenID Connect Core §3.1.3.7: every check of the ID token.
#[test]
fn id_tokens_failing_any_check_are_refused() {
    let google = preset("google", Preset::Google);
    let (key, kid, jwks) = rsa_key();
    let good = id_claims("https://accounts.google.com", "nonce");
    let check = |claims: &Value| {
        let token = sign(&key, &kid, jsonwebtoken::Algorithm::RS256, claims);
        id_token::validate(&google, &jwks, &token, "nonce", UnixTime(NOW))
    };
    assert!(check(&good).is_ok());
    let with = |field: &str, value: Value| {
        let mut claims = good.clone();
        claims[field] = value;
        claims
    };
    assert_eq!(
        check(&with("nonce", json!("other"))),
        Err(IdTokenError::WrongNonce)
    );
    let mut no_nonce = good.clone();
    no_nonce.as_object_mut().unwrap().remove("nonce");
    assert_eq!(check(&no_nonce), Err(IdTokenError::WrongNonce));
    assert_eq!(
        check(&with("aud", json!("another-client"))),
        Err(IdTokenError::WrongAudience)
    );
    assert_eq!(
        check(&with("azp", json!("another-client"))),
        Err(IdTokenError::WrongAudience)
    );
    let mut two_audiences = with("aud", json!(["our-client-id", "another"]));
    two_audiences.as_object_mut().unwrap().remove("azp");
    assert_eq!(check(&two_audiences), Err(IdTokenError::WrongAudience));
    assert_eq!(
        check(&with("exp", json!(NOW - 61))),
        Err(IdTokenError::Expired)
    );
    assert!(
        check(&with("exp", json!(NOW - 30))).is_ok(),
        "60 s of leeway"
    );
    assert!(matches!(
        check(&with("exp", json!("1900000000"))),
        Err(IdTokenError::Malformed(_))
    ));
    assert_eq!(
        check(&with("iat", json!(NOW + 120))),
        Err(IdTokenError::IssuedInTheFuture)
    );

    // Tampered payload: the signature no longer verifies.
    let token = sign(&key, &kid, jsonwebtoken::Algorithm::RS256, &good);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&with("sub", json!("admin"))).unwrap());
    assert_eq!(
        id_token::validate(&google, &jwks, &parts.join("."), "nonce", UnixTime(NOW)),
        Err(IdTokenError::BadSignature)
    );
    // An unknown key id, HS256 with the public key as secret, and `alg: none`.
    let token = sign(&key, "rotated-away", jsonwebtoken::Algorithm::RS256, &good);
    assert_eq!(
        id_token::validate(&google, &jwks, &token, "nonce", UnixTime(NOW)),
        Err(IdTokenError::UnknownKey)
    );
    let hs = sign(
        &jsonwebtoken::EncodingKey::from_secret(&jwks),
        &kid,
        jsonwebtoken::Algorithm::HS256,
        &good,
    );
    assert_eq!(
        id_token::validate(&google, &jwks, &hs, "nonce", UnixTime(NOW)),
        Err(IdTokenError::AlgorithmNotAllowed)
    );
    let none = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        parts[1]
    );
    assert!(id_token::validate(&google, &jwks, &none, "nonce", UnixTime(NOW)).is_err());
}

fn discovery(issuer: &str, extra: Value) -> Vec<u8> {
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/me"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256", "HS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "authorization_response_iss_parameter_supported": true
    });
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    serde_json::to_vec(&doc).unwrap()
}

// A generic OpenID Connect provider takes its endpoints, algorithms, PKCE support, client
// authentication and RFC 9207 promise from its discovery document, whose issuer must be
// the configured one.
#[test]
fn a_generic_openid_provider_is_read_from_its_discovery_document() {
    let config = ProviderConfig::new("corp", Preset::Oidc, "our-client-id")
        .client_secret("s")
        .issuer(Url::parse("https://idp.example.com").unwrap());
    assert_eq!(
        Provider::discovery_url(config.issuer.as_ref().unwrap()),
        "https://idp.example.com/.well-known/openid-configuration"
    );
    let provider =
        Provider::from_discovery(&config, &discovery("https://idp.example.com", json!({})))
            .unwrap();
    assert_eq!(
        provider.token_endpoint.as_str(),
        "https://idp.example.com/token"
    );
    assert!(provider.pkce && provider.basic_auth && provider.requires_iss);
    assert_eq!(
        provider.id_token_algorithms,
        vec![
            jsonwebtoken::Algorithm::ES256,
            jsonwebtoken::Algorithm::RS256
        ],
        "HS256 is never accepted"
    );
    let impostor =
        Provider::from_discovery(&config, &discovery("https://evil.example.com", json!({})));
    assert!(
        impostor
            .unwrap_err()
            .to_string()
            .contains("is not the configured")
    );
    let only_hmac = Provider::from_discovery(
        &config,
        &discovery(
            "https://idp.example.com",
            json!({ "id_token_signing_alg_values_supported": ["HS256"] }),
        ),
    );
    assert!(only_hmac.is_err());
    let no_pkce = Provider::from_discovery(
        &config,
        &discovery(
            "https://idp.example.com",
            json!({ "code_challenge_methods_supported": ["plain"] }),
        ),
    )
    .unwrap();
    assert!(!no_pkce.pkce);
}

// The token request authenticates with HTTP Basic when the provider only takes
// client_secret_basic.
#[tokio::test]
async fn client_secret_basic_providers_get_basic_authentication() {
    let config = ProviderConfig::new("corp", Preset::Oidc, "our-client-id")
        .client_secret("our secret")
        .issuer(Url::parse("https://idp.example.com").unwrap());
    let provider =
        Provider::from_discovery(&config, &discovery("https://idp.example.com", json!({})))
            .unwrap();
    let transport = Recording::default();
    transport.answer(
        "https://idp.example.com/token",
        400,
        "application/json",
        br#"{"error":"invalid_grant"}"#.to_vec(),
    );
    let refused = upstream::exchange_code(&provider, &callback_url("corp"), "c", None, &transport)
        .await
        .unwrap_err();
    assert!(matches!(&refused, ProxyError::Token(r) if r.contains("invalid_grant")));
    let sent = transport.sent("https://idp.example.com/token");
    let basic = sent.headers()["authorization"].to_str().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.strip_prefix("Basic ").unwrap())
        .unwrap();
    assert_eq!(
        decoded, b"our-client-id:our+secret",
        "RFC 6749 §2.3.1 form-encodes first"
    );
    assert!(!form(sent.body()).contains_key("client_secret"));
}

// A plain OAuth 2.0 provider: the identity is read through the configured mapping, JSON
// pointers included.
#[tokio::test]
async fn a_plain_oauth2_provider_maps_its_userinfo() {
    let config = ProviderConfig::new("corp", Preset::OAuth2, "our-client-id").oauth2_endpoints(
        Url::parse("https://idp.example.com/authorize").unwrap(),
        Url::parse("https://idp.example.com/token").unwrap(),
        Url::parse("https://idp.example.com/api/me").unwrap(),
        ClaimMapping::new("/data/id")
            .email("/data/mail", Some("/data/mail_confirmed"))
            .name("/data/display")
            .username("/data/handle"),
    );
    let provider = Provider::from_config(&config).unwrap();
    let transport = Recording::default();
    transport.answer(
        "https://idp.example.com/token",
        200,
        "application/json",
        br#"{"access_token":"at","token_type":"bearer"}"#.to_vec(),
    );
    transport.answer(
        "https://idp.example.com/api/me",
        200,
        "application/json",
        br#"{"data":{"id":4242,"mail":"k@example.com","mail_confirmed":"true","display":"Kim","handle":"kim"}}"#.to_vec(),
    );
    let tokens = upstream::exchange_code(
        &provider,
        &callback_url("corp"),
        "c",
        Some(&"v".repeat(43)),
        &transport,
    )
    .await
    .unwrap();
    let identity = upstream::fetch_identity(&provider, &tokens, None, &transport)
        .await
        .unwrap();
    assert_eq!(identity.subject, "4242");
    assert_eq!(identity.email.as_deref(), Some("k@example.com"));
    assert!(identity.email_verified);
    assert_eq!(identity.username.as_deref(), Some("kim"));
}

// The callback: strict parsing, RFC 9207 issuer check, single provider, same browser,
// not expired.
#[test]
fn callbacks_that_are_malformed_mixed_up_or_from_another_browser_are_refused() {
    assert!(matches!(
        upstream::parse_callback("code=a&state=s&iss=https%3A%2F%2Fidp"),
        Ok(Callback::Code { .. })
    ));
    assert!(matches!(
        upstream::parse_callback("error=access_denied&state=s"),
        Ok(Callback::Error { ref error, .. }) if error == "access_denied"
    ));
    for bad in [
        "code=a",
        "state=s",
        "code=a&code=b&state=s",
        "code=a&error=x&state=s",
        "code=&state=s",
    ] {
        assert!(
            matches!(
                upstream::parse_callback(bad),
                Err(CallbackError::Malformed(_))
            ),
            "{bad}"
        );
    }

    let config = ProviderConfig::new("corp", Preset::Oidc, "our-client-id")
        .issuer(Url::parse("https://idp.example.com").unwrap());
    let corp = Provider::from_discovery(&config, &discovery("https://idp.example.com", json!({})))
        .unwrap();
    assert_eq!(
        upstream::check_issuer(&corp, Some("https://idp.example.com")),
        Ok(())
    );
    assert_eq!(
        upstream::check_issuer(&corp, Some("https://other.example.com")),
        Err(CallbackError::WrongIssuer)
    );
    assert_eq!(
        upstream::check_issuer(&corp, None),
        Err(CallbackError::WrongIssuer),
        "promised iss is required"
    );
    let github = preset("github", Preset::GitHub);
    assert_eq!(upstream::check_issuer(&github, None), Ok(()));
    assert_eq!(
        upstream::check_issuer(&github, Some("https://idp.example.com")),
        Err(CallbackError::WrongIssuer)
    );
    let azure = preset("azure", Preset::Azure);
    assert_eq!(
        upstream::check_issuer(
            &azure,
            Some("https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0")
        ),
        Ok(())
    );
    assert_eq!(
        upstream::check_issuer(&azure, Some("https://evil.example/v2.0")),
        Err(CallbackError::WrongIssuer)
    );

    let started = upstream::start(
        &corp,
        &callback_url("corp"),
        pending(),
        &Counting::default(),
        UnixTime(NOW),
        600,
    )
    .unwrap();
    let record = &started.record;
    let binding = Some(started.browser_binding.as_str());
    assert_eq!(
        upstream::check_record(record, &corp, binding, UnixTime(NOW + 1)),
        Ok(())
    );
    assert_eq!(
        upstream::check_record(record, &corp, Some("another browser"), UnixTime(NOW + 1)),
        Err(CallbackError::WrongBrowser)
    );
    assert_eq!(
        upstream::check_record(record, &corp, None, UnixTime(NOW + 1)),
        Err(CallbackError::WrongBrowser)
    );
    assert_eq!(
        upstream::check_record(record, &github, binding, UnixTime(NOW + 1)),
        Err(CallbackError::WrongProvider)
    );
    assert_eq!(
        upstream::check_record(record, &corp, binding, UnixTime(NOW + 600)),
        Err(CallbackError::UnknownState)
    );
}

// Secrets stay out of Debug output.
#[test]
fn debug_output_hides_client_secrets_and_upstream_tokens() {
    let config = ProviderConfig::new("google", Preset::Google, "id").client_secret("top-secret");
    assert!(!format!("{config:?}").contains("top-secret"));
    let provider = Provider::from_config(&config).unwrap();
    assert!(!format!("{provider:?}").contains("top-secret"));
}

// Kept upstream tokens are refreshed through the token endpoint (RFC 6749 §6): Google does
// not rotate its refresh token, so the one held is kept; GitHub's expiring user tokens come
// back form-encoded with a new refresh token, which replaces the old one.
#[tokio::test]
async fn kept_tokens_refresh_keeping_or_rotating_the_refresh_token_as_the_provider_does() {
    use mcpauth_proxy::KeptTokens;

    let google = preset("google", Preset::Google);
    let transport = Recording::default();
    let token_url = "https://oauth2.googleapis.com/token";
    transport.answer(
        token_url,
        200,
        "application/json",
        recorded("google_refresh.json"),
    );
    let kept = KeptTokens::new(
        "old-access",
        Some("1//held-refresh"),
        Some(3600),
        None,
        UnixTime(NOW),
    );
    assert!(!kept.needs_refresh(UnixTime(NOW + 3000), 60));
    assert!(kept.needs_refresh(UnixTime(NOW + 3550), 60));
    let fresh = kept
        .refresh(&google, &transport, UnixTime(NOW + 3550))
        .await
        .unwrap();
    assert_eq!(fresh.access_token, "1/fFAGRNJru1FTz70BzhT3Zg");
    assert_eq!(fresh.refresh_token.as_deref(), Some("1//held-refresh"));
    assert_eq!(fresh.expires_at, Some(NOW + 3550 + 3920));
    let sent = transport.sent(token_url);
    let form: HashMap<String, String> = url::form_urlencoded::parse(sent.body())
        .into_owned()
        .collect();
    assert_eq!(form["grant_type"], "refresh_token");
    assert_eq!(form["refresh_token"], "1//held-refresh");
    assert!(!form.contains_key("redirect_uri"));

    let github = preset("github", Preset::GitHub);
    let transport = Recording::default();
    transport.answer(
        "https://github.com/login/oauth/access_token",
        200,
        "application/x-www-form-urlencoded",
        recorded("github_refresh.form"),
    );
    let kept = KeptTokens::new(
        "ghu_old",
        Some("ghr_old"),
        Some(28800),
        Some("repo"),
        UnixTime(NOW),
    );
    let fresh = kept
        .refresh(&github, &transport, UnixTime(NOW))
        .await
        .unwrap();
    assert_eq!(
        fresh.access_token,
        "ghu_16C7e42F292c6912E7710c838347Ae178B4a"
    );
    assert!(
        fresh
            .refresh_token
            .as_deref()
            .unwrap()
            .starts_with("ghr_1B4a")
    );

    // Without a refresh token there is nothing to refresh: the user signs in again.
    let kept = KeptTokens::new("a", None, Some(1), None, UnixTime(NOW));
    assert!(matches!(
        kept.refresh(&github, &transport, UnixTime(NOW)).await,
        Err(ProxyError::Token(_))
    ));
}

// Sealed tokens open only under the same key and for the same account.
#[test]
fn sealed_tokens_open_only_with_their_key_and_account() {
    use mcpauth_proxy::{KeptTokens, TokenVault};
    let tokens = KeptTokens::new(
        "access",
        Some("refresh"),
        Some(60),
        Some("repo"),
        UnixTime(NOW),
    );
    let vault = TokenVault::new(&[1; 32]);
    let sealed = vault
        .seal(&tokens, "github\n1", &Counting::default())
        .unwrap();
    assert!(!sealed.contains("access") && !sealed.contains("refresh"));
    assert_eq!(vault.open(&sealed, "github\n1").unwrap(), tokens);
    assert!(vault.open(&sealed, "github\n2").is_err(), "another account");
    assert!(
        TokenVault::new(&[2; 32])
            .open(&sealed, "github\n1")
            .is_err(),
        "another key"
    );
    let mut damaged = sealed.clone();
    damaged.pop();
    assert!(vault.open(&damaged, "github\n1").is_err(), "damaged");
    assert!(vault.open("v1.", "github\n1").is_err(), "too short");
    assert!(vault.open("", "github\n1").is_err(), "empty");
    assert!(
        format!("{tokens:?}").find("access\"").is_none(),
        "Debug redacts"
    );
}

// A key rotation: the new vault, told the previous key, opens what the old one sealed and
// seals under the new key only.
#[test]
fn a_vault_opens_what_a_previous_key_sealed_and_seals_under_its_own() {
    use mcpauth_proxy::{KeptTokens, TokenVault};
    let tokens = KeptTokens::new("access", None, Some(60), None, UnixTime(NOW));
    let before = TokenVault::new(&[1; 32])
        .seal(&tokens, "github\n1", &Counting::default())
        .unwrap();
    let rotated = TokenVault::new(&[2; 32]).with_previous(&[[1; 32]]);
    assert_eq!(rotated.open(&before, "github\n1").unwrap(), tokens);
    assert!(
        rotated.open(&before, "github\n2").is_err(),
        "still its account only"
    );
    let after = rotated
        .seal(&tokens, "github\n1", &Counting::default())
        .unwrap();
    assert!(TokenVault::new(&[1; 32]).open(&after, "github\n1").is_err());
    assert_eq!(
        TokenVault::new(&[2; 32]).open(&after, "github\n1").unwrap(),
        tokens
    );
}
