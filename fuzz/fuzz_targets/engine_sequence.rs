//! Arbitrary sequences of requests through the engine on the memory model, checking the
//! invariants that matter: nothing panics, a code yields tokens at most once, and a refresh
//! token that was reused after the grace window never works again.
#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{AuthorizeOutcome, EngineConfig, MemoryModel, SigningKey, TokenEngine, UnixTime};

const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";

#[derive(Arbitrary, Debug)]
enum Operation {
    /// A raw authorization query.
    AuthorizeRaw(Vec<u8>),
    /// A well-formed authorization request, approved.
    AuthorizeAndApprove { loopback_port: u16, state: String },
    /// A raw token request body.
    TokenRaw(Vec<u8>),
    /// Redeem the n-th code seen so far.
    Redeem(u8),
    /// Refresh with the n-th refresh token seen so far.
    Refresh(u8),
    /// Revoke the n-th token seen so far.
    Revoke(u8),
    /// Let time pass.
    Wait(u16),
    /// A raw registration body.
    RegisterRaw(Vec<u8>),
}

fn key_der() -> &'static [u8] {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &aws_lc_rs::rand::SystemRandom::new())
            .map(|d| d.as_ref().to_vec())
            .unwrap_or_default()
    })
}

fn form_request(path: &str, content_type: &str, body: Vec<u8>) -> http::Request<Bytes> {
    let mut request = http::Request::new(Bytes::from(body));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = path.parse().unwrap_or_default();
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        request.headers_mut().insert(http::header::CONTENT_TYPE, value);
    }
    request
}

fn encode(pairs: &[(&str, &str)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish().into_bytes()
}

fuzz_target!(|operations: Vec<Operation>| {
    let Ok(key) = SigningKey::es256_from_pkcs8_der(key_der()) else { return };
    let Ok(issuer) = "https://auth.example.com".parse() else { return };
    let Ok(mut config) = EngineConfig::new(issuer) else { return };
    config.refresh_reuse_grace(5);
    let engine = TokenEngine::new(config, Arc::new(MemoryModel::new()), key, Arc::new(SeededRandom::new(3)));
    futures::executor::block_on(async {
        let mut now = UnixTime(1_800_000_000);
        let mut metadata = mcpauth_oauth_types::ClientMetadata::default();
        metadata.redirect_uris = vec!["http://127.0.0.1/cb".into()];
        let Ok(client) = engine.register_client(metadata, now).await else { return };
        let client_id = client.client_id;
        let mut codes: Vec<(String, bool)> = Vec::new();
        let mut refresh_tokens: Vec<String> = Vec::new();
        let mut dead_refresh: Vec<String> = Vec::new();
        for operation in operations.into_iter().take(64) {
            match operation {
                Operation::AuthorizeRaw(query) => {
                    let _ = engine.authorize(&query, now).await;
                }
                Operation::AuthorizeAndApprove { loopback_port, state } => {
                    let redirect = format!("http://127.0.0.1:{loopback_port}/cb");
                    let query = encode(&[
                        ("response_type", "code"),
                        ("client_id", &client_id),
                        ("redirect_uri", &redirect),
                        ("code_challenge", CHALLENGE),
                        ("code_challenge_method", "S256"),
                        ("resource", "https://mcp.example.com/mcp"),
                        ("state", &state),
                    ]);
                    if let AuthorizeOutcome::NeedsConsent(pending) = engine.authorize(&query, now).await {
                        if let Ok(redirect) = engine.approve(pending, "user", now).await {
                            let code = url::Url::parse(&redirect.location)
                                .ok()
                                .and_then(|u| u.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()));
                            if let Some(code) = code {
                                codes.push((format!("{redirect}|{code}", redirect = redirect_of(&redirect.location)), false));
                            }
                        }
                    }
                }
                Operation::TokenRaw(body) => {
                    let _ = engine.token_endpoint(form_request("/token", "application/x-www-form-urlencoded", body), now).await;
                }
                Operation::Redeem(n) => {
                    let index = usize::from(n) % codes.len().max(1);
                    let Some(entry) = codes.get_mut(index) else { continue };
                    let Some((redirect, code)) = entry.0.split_once('|') else { continue };
                    let body = encode(&[
                        ("grant_type", "authorization_code"),
                        ("code", code),
                        ("redirect_uri", redirect),
                        ("code_verifier", VERIFIER),
                        ("client_id", &client_id),
                    ]);
                    let response = engine.token_endpoint(form_request("/token", "application/x-www-form-urlencoded", body), now).await;
                    if response.status() == http::StatusCode::OK {
                        assert!(!entry.1, "an authorization code yielded tokens twice");
                        entry.1 = true;
                        if let Ok(json) = serde_json::from_slice::<serde_json::Value>(response.body()) {
                            if let Some(token) = json.get("refresh_token").and_then(|t| t.as_str()) {
                                refresh_tokens.push(token.to_owned());
                            }
                        }
                    }
                }
                Operation::Refresh(n) => {
                    let Some(token) = refresh_tokens.get(usize::from(n) % refresh_tokens.len().max(1)).cloned() else { continue };
                    let body = encode(&[("grant_type", "refresh_token"), ("refresh_token", &token), ("client_id", &client_id)]);
                    let response = engine.token_endpoint(form_request("/token", "application/x-www-form-urlencoded", body), now).await;
                    if response.status() == http::StatusCode::OK {
                        assert!(!dead_refresh.contains(&token), "a refresh token from a revoked family worked again");
                        if let Ok(json) = serde_json::from_slice::<serde_json::Value>(response.body()) {
                            if let Some(token) = json.get("refresh_token").and_then(|t| t.as_str()) {
                                refresh_tokens.push(token.to_owned());
                            }
                        }
                    }
                }
                Operation::Revoke(n) => {
                    let Some(token) = refresh_tokens.get(usize::from(n) % refresh_tokens.len().max(1)).cloned() else { continue };
                    let body = encode(&[("token", &token), ("client_id", &client_id)]);
                    let response = engine.revocation_endpoint(form_request("/revoke", "application/x-www-form-urlencoded", body), now).await;
                    assert_eq!(response.status(), http::StatusCode::OK);
                    dead_refresh.push(token);
                }
                Operation::Wait(seconds) => now = now.plus(u64::from(seconds)),
                Operation::RegisterRaw(body) => {
                    let _ = engine.registration_endpoint(form_request("/register", "application/json", body), now).await;
                }
            }
        }
    });
});

fn redirect_of(location: &str) -> String {
    location.split('?').next().unwrap_or_default().to_owned()
}
