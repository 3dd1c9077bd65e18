//! Federated sign-in end to end, against an OpenID Connect provider no one here wrote:
//! panva's `oidc-provider` from npm (`interop/oidc-provider/upstream.mjs`), on loopback, as
//! the upstream identity provider; Debian's headless Chromium as the user's browser.
//!
//! The test plays the MCP client: it registers, listens for its redirect on loopback, and
//! opens its authorization request. The person approves the request on mcpauth's chooser
//! (consent before anyone is sent upstream), signs in and consents on oidc-provider's own
//! pages, and comes back through `/upstream/test-idp/callback`; the client redeems mcpauth's
//! code and gets mcpauth's tokens, whose `sub` is the local user the server's mapper linked
//! to the upstream account. Then: the upstream callback replayed is refused; the same browser
//! asks again and sees mcpauth's consent page without going upstream (its session); a
//! device code is approved on the device page by a browser that signs in upstream; two more
//! instances on the same database, asked at once, hand the application the kept upstream
//! tokens, refreshed once at oidc-provider, and they work at its userinfo endpoint. Screenshots land in
//! `target/tmp/federated-screenshots/`.
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), `node` and `npm`; `.ci/run` installs them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::Path;

use base64::Engine as _;
use serde_json::{Value, json};

mod support;
use support::*;

const UPSTREAM_CLIENT_ID: &str = "mcpauth";
const UPSTREAM_CLIENT_SECRET: &str = "a-client-secret-for-the-loopback-test-idp";
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The operator's configuration: the provider in the TOML file, its secret and the key
/// encryption key from the environment.
fn config(
    listener: &tokio::net::TcpListener,
    dir: &Path,
    upstream: &str,
) -> mcpauth_server::Config {
    let addr = listener.local_addr().unwrap();
    let toml = format!(
        r#"
listen = "{addr}"
issuer = "http://{addr}"
database_url = "sqlite://{database}"
scopes_supported = ["mcp:tools"]
password_login = false
federated_email_domains = ["example.com"]
keep_upstream_tokens = true

[[providers]]
id = "test-idp"
preset = "oidc"
display_name = "Test IdP"
client_id = "{UPSTREAM_CLIENT_ID}"
issuer = "{upstream}"
scopes = ["openid", "email"]
"#,
        database = dir.join("mcpauth.db").display(),
    );
    let path = dir.join("mcpauth.toml");
    std::fs::write(&path, toml).unwrap();
    let config = mcpauth_server::Config::load(Some(&path), |name| match name {
        "MCPAUTH_PROVIDER_TEST_IDP_CLIENT_SECRET" => Some(UPSTREAM_CLIENT_SECRET.to_owned()),
        "MCPAUTH_SIGNING_KEY_ENCRYPTION_KEY" => Some(KEY.to_owned()),
        _ => None,
    })
    .unwrap();
    assert_eq!(
        config.providers[0].client_secret.as_deref(),
        Some(UPSTREAM_CLIENT_SECRET)
    );
    config
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_at_a_real_openid_provider_and_the_mcp_client_gets_mcpauth_tokens() {
    let chromium = chromium();
    ensure_npm("browser", "playwright-core").await;
    let dir = std::env::temp_dir().join(format!("mcpauth-federated-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let shots = screenshots("federated-screenshots");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let callback = format!(
        "http://{}/upstream/test-idp/callback",
        listener.local_addr().unwrap()
    );
    let upstream = start_upstream(UPSTREAM_CLIENT_ID, UPSTREAM_CLIENT_SECRET, &callback).await;
    let config = config(&listener, &dir, &upstream.issuer);
    let built = mcpauth_server::build(&config).await.unwrap();
    let store = built.store.clone();
    let server = serve(listener, built);

    let (redirect_uri, mut callbacks) = callback_listener().await;
    let client_id = server
        .register(json!({
            "client_name": "Federated Test Client",
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let profile = dir.join("profile");
    let url = server.authorize_url(&client_id, &redirect_uri, "first");
    let seen = browse(
        "federated",
        json!({
            "url": url, "redirect_uri": redirect_uri, "provider": "Test IdP",
            "upstream_login": "alice", "profile": profile, "chromium": chromium,
            "screenshots": shots,
        }),
    )
    .await;

    // The chooser asked for consent to this client before sending anyone upstream, and
    // offered no password form (password_login is off).
    let chooser = seen["pages"][0]["text"].as_str().unwrap();
    assert!(
        chooser.contains("Authorize Federated Test Client?"),
        "{chooser}"
    );
    assert!(chooser.contains(RESOURCE), "{chooser}");
    assert!(chooser.contains("Continue with Test IdP"), "{chooser}");
    assert!(!chooser.contains("Password"), "{chooser}");
    assert_png(&shots.join("chooser.png"));
    assert_png(&shots.join("upstream-0.png"));

    // Back at the client with mcpauth's code (RFC 9207 `iss` is mcpauth, not the upstream).
    let query = callbacks.recv().await.unwrap();
    assert_eq!(param(&query, "state"), Some("first"), "{seen}");
    assert_eq!(param(&query, "iss"), Some(server.issuer.as_str()));
    let tokens = server
        .redeem(&client_id, &redirect_uri, param(&query, "code").unwrap())
        .await;
    assert!(
        tokens.get("id_token").is_none(),
        "no upstream token passes through"
    );
    let access = claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["iss"], server.issuer.as_str());
    assert_eq!(access["aud"], RESOURCE);

    // The `sub` is the local user the mapper linked to the upstream account `alice`.
    let identity = store
        .find_federated_identity("test-idp", "alice")
        .await
        .unwrap()
        .expect("the upstream account is linked");
    assert_eq!(access["sub"], identity.user_id.as_str());
    assert_ne!(access["sub"], "alice");
    let user = store
        .find_user_by_id(&identity.user_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        user.email, "alice@example.com",
        "the verified upstream email"
    );
    let sealed = identity.upstream_tokens.expect("tokens kept");
    assert!(sealed.starts_with("v1."), "sealed, not plain");

    // The upstream callback, replayed (by an attacker holding the URL, or the back button):
    // refused, no redirect, nothing issued.
    let callback_url = seen["callback_url"]
        .as_str()
        .expect("the callback was seen");
    assert!(
        callback_url.contains("iss="),
        "oidc-provider sends RFC 9207 iss"
    );
    let replayed = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(callback_url)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 400);
    assert!(replayed.headers().get("location").is_none());
    assert!(
        replayed
            .text()
            .await
            .unwrap()
            .contains("This sign-in cannot be completed")
    );

    // The same browser asks again: its mcpauth session skips the upstream, and mcpauth's
    // own consent page is shown.
    let seen = browse(
        "authorize",
        json!({
            "url": server.authorize_url(&client_id, &redirect_uri, "second"),
            "redirect_uri": redirect_uri, "approve": true, "remember": false,
            "email": "", "password": "", "profile": profile, "chromium": chromium,
            "screenshots": shots, "prefix": "second-",
        }),
    )
    .await;
    assert_eq!(seen["signedIn"], false, "{seen}");
    assert_eq!(seen["consent"], true, "{seen}");
    let query = callbacks.recv().await.unwrap();
    assert_eq!(param(&query, "state"), Some("second"));
    let tokens = server
        .redeem(&client_id, &redirect_uri, param(&query, "code").unwrap())
        .await;
    assert_eq!(
        claims(tokens["access_token"].as_str().unwrap())["sub"],
        identity.user_id.as_str()
    );

    // The device flow on a server without passwords: the device page offers the provider,
    // the person signs in there (a browser with no session), comes back to the same code,
    // and approves it; the device gets tokens for the same local user.
    let (device_client, device) = server.device_authorization("Kitchen Display").await;
    let seen = browse(
        "device-federated",
        json!({
            "url": device["verification_uri_complete"],
            "return_to": format!("{}/device", server.issuer), "provider": "Test IdP",
            "upstream_login": "alice", "profile": dir.join("device-profile"),
            "chromium": chromium, "screenshots": shots,
        }),
    )
    .await;
    let sign_in = seen["pages"][0]["text"].as_str().unwrap();
    assert!(sign_in.contains("Continue with Test IdP"), "{sign_in}");
    assert!(!sign_in.contains("Password"), "{sign_in}");
    let confirm = seen["pages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["text"].as_str().unwrap().contains("Kitchen Display"))
        .expect("the confirmation page names the device's client");
    assert!(
        confirm["text"]
            .as_str()
            .unwrap()
            .contains(device["user_code"].as_str().unwrap()),
        "{confirm}"
    );
    let tokens = server.device_token(&device_client, &device).await;
    assert_eq!(
        claims(tokens["access_token"].as_str().unwrap())["sub"],
        identity.user_id.as_str(),
        "{tokens}"
    );
    assert_png(&shots.join("device-federated-done.png"));

    // The application's side: another instance on the same database opens the kept upstream
    // tokens. They live 5 s at oidc-provider, so they are refreshed there first, and the
    // fresh access token works at its userinfo endpoint.
    // Two instances asking at once refresh once: oidc-provider rotates refresh tokens, so a
    // second refresh with the same one would fail (and revoke the family).
    let second_instance = mcpauth_server::build(&config).await.unwrap();
    let third_instance = mcpauth_server::build(&config).await.unwrap();
    let (kept, also) = tokio::join!(
        second_instance.upstream_tokens(&identity.user_id, "test-idp"),
        third_instance.upstream_tokens(&identity.user_id, "test-idp"),
    );
    let kept = kept.unwrap().expect("kept tokens");
    let also = also.unwrap().expect("kept tokens");
    assert_eq!(kept.access_token, also.access_token, "one refresh, shared");
    let resealed = store
        .find_federated_identity("test-idp", "alice")
        .await
        .unwrap()
        .unwrap()
        .upstream_tokens
        .unwrap();
    assert_ne!(resealed, sealed, "the refreshed tokens were stored");
    let discovery: Value = reqwest::get(format!(
        "{}/.well-known/openid-configuration",
        upstream.issuer
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let userinfo = reqwest::Client::new()
        .get(discovery["userinfo_endpoint"].as_str().unwrap())
        .bearer_auth(&kept.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.status(), 200);
    let userinfo: Value = userinfo.json().await.unwrap();
    assert_eq!(userinfo["sub"], "alice");
    // A user who never signed in there has none.
    assert!(
        second_instance
            .upstream_tokens("user_nobody", "test-idp")
            .await
            .unwrap()
            .is_none()
    );

    drop(server);
    drop(upstream);
    let _ = std::fs::remove_dir_all(&dir);
}
