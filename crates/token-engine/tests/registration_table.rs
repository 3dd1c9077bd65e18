//! Table-driven RFC 7591 registration cases: each request, accepted or rejected with its
//! RFC 7591 §3.2.2 error code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod common;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use serde_json::{Value, json};

/// `Ok(())` for 201 Created, `Err(code)` for a 400 with that RFC 7591 error.
async fn outcome(h: &Harness, body: &Value) -> Result<(), String> {
    let request = Request::post("/register")
        .header("content-type", "application/json")
        .body(Bytes::from(serde_json::to_vec(body).unwrap()))
        .unwrap();
    let response = h.engine.registration_endpoint(request, NOW).await;
    let parsed: Value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
    match response.status() {
        StatusCode::CREATED => Ok(()),
        StatusCode::BAD_REQUEST => Err(parsed["error"].as_str().unwrap_or("").to_owned()),
        other => Err(format!("status {other}")),
    }
}

fn uris(list: &[&str]) -> Value {
    json!({ "redirect_uris": list, "token_endpoint_auth_method": "none" })
}

#[tokio::test]
async fn redirect_uri_table() {
    let h = harness().await;
    let ok: Result<(), &str> = Ok(());
    let bad = Err("invalid_redirect_uri");
    let table: &[(&str, Result<(), &str>)] = &[
        ("https://app.example.com/callback", ok),
        ("https://app.example.com/cb?tenant=7", ok),
        ("http://127.0.0.1/callback", ok),
        ("http://127.0.0.1:33418/callback", ok),
        ("http://[::1]:8080/cb", ok),
        ("http://localhost:6274/oauth/callback", ok),
        ("com.example.app:/oauth2redirect", ok),
        ("cursor://anysphere.cursor-retrieval/oauth/callback", bad),
        ("http://app.example.com/callback", bad),
        ("http://10.0.0.5/callback", bad),
        ("https://app.example.com/cb#fragment", bad),
        ("https://user:pass@app.example.com/cb", bad),
        ("https://*.example.com/cb", bad),
        ("javascript:alert(document.cookie)", bad),
        ("data:text/html,<script>alert(1)</script>", bad),
        ("file:///etc/passwd", bad),
        ("myapp:/cb", bad),
        ("/relative/path", bad),
        ("https:///no-host", bad),
        ("https:\\\\evil.example.com/cb", bad),
        ("https:evil.example.com/cb", bad),
        ("https://app.example.com/c b", bad),
    ];
    for (uri, expected) in table {
        let got = outcome(&h, &uris(&[uri])).await;
        assert_eq!(
            got.as_ref().map_err(String::as_str),
            expected.as_ref().map_err(|e| *e),
            "{uri}"
        );
    }
}

#[tokio::test]
async fn client_metadata_table() {
    let h = harness().await;
    let r = [REDIRECT];
    let table: Vec<(&str, Value, Result<(), &str>)> = vec![
        (
            "minimal public client",
            json!({ "redirect_uris": r }),
            Ok(()),
        ),
        (
            "confidential, basic",
            json!({ "redirect_uris": r, "token_endpoint_auth_method": "client_secret_basic" }),
            Ok(()),
        ),
        (
            "anonymous machine client",
            json!({ "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post" }),
            Err("invalid_client_metadata"),
        ),
        (
            "anonymous token exchange",
            json!({ "redirect_uris": r, "grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:token-exchange"], "token_endpoint_auth_method": "client_secret_post" }),
            Err("invalid_client_metadata"),
        ),
        (
            "device client",
            json!({ "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"], "token_endpoint_auth_method": "none" }),
            Ok(()),
        ),
        (
            "no redirect uris",
            json!({ "token_endpoint_auth_method": "none" }),
            Err("invalid_redirect_uri"),
        ),
        (
            "implicit grant",
            json!({ "redirect_uris": r, "grant_types": ["implicit"] }),
            Err("invalid_client_metadata"),
        ),
        (
            "password grant",
            json!({ "redirect_uris": r, "grant_types": ["password"] }),
            Err("invalid_client_metadata"),
        ),
        (
            "token response type",
            json!({ "redirect_uris": r, "response_types": ["token"] }),
            Err("invalid_client_metadata"),
        ),
        (
            "code without authorization_code",
            json!({ "grant_types": ["client_credentials"], "response_types": ["code"], "token_endpoint_auth_method": "client_secret_post" }),
            Err("invalid_client_metadata"),
        ),
        (
            "refresh alone",
            json!({ "grant_types": ["refresh_token"], "token_endpoint_auth_method": "client_secret_post" }),
            Err("invalid_client_metadata"),
        ),
        (
            "public machine client",
            json!({ "grant_types": ["client_credentials"], "token_endpoint_auth_method": "none" }),
            Err("invalid_client_metadata"),
        ),
        (
            "unknown auth method",
            json!({ "redirect_uris": r, "token_endpoint_auth_method": "tls_client_auth" }),
            Err("invalid_client_metadata"),
        ),
        (
            "jwks and jwks_uri",
            json!({ "redirect_uris": r, "jwks": { "keys": [] }, "jwks_uri": "https://a.example/jwks" }),
            Err("invalid_client_metadata"),
        ),
        (
            "bad scope syntax",
            json!({ "redirect_uris": r, "scope": "a  b" }),
            Err("invalid_client_metadata"),
        ),
        (
            "client_uri not a URL",
            json!({ "redirect_uris": r, "client_uri": "not a url" }),
            Err("invalid_client_metadata"),
        ),
        (
            "logo_uri javascript",
            json!({ "redirect_uris": r, "logo_uri": "javascript:alert(1)" }),
            Err("invalid_client_metadata"),
        ),
        (
            "name too long",
            json!({ "redirect_uris": r, "client_name": "n".repeat(201) }),
            Err("invalid_client_metadata"),
        ),
        (
            "wrong JSON type",
            json!({ "redirect_uris": "https://a.example/cb" }),
            Err("invalid_client_metadata"),
        ),
        (
            "too many redirect uris",
            json!({ "redirect_uris": vec![REDIRECT; 17] }),
            Err("invalid_redirect_uri"),
        ),
        (
            "unknown members ignored",
            json!({ "redirect_uris": r, "x-vendor": { "anything": true } }),
            Ok(()),
        ),
    ];
    for (name, body, expected) in table {
        let got = outcome(&h, &body).await;
        assert_eq!(
            got.as_ref().map_err(String::as_str),
            expected.as_ref().map_err(|e| *e),
            "{name}"
        );
    }
}
