//! Two `mcpauth-server`s, one as the enterprise identity provider and one as the MCP server's
//! authorization server (draft-ietf-oauth-identity-assertion-authz-grant), with the axum
//! example MCP server: a person signs in once, at the provider, in headless Chromium; the
//! agent exchanges the refresh token of that sign-in for an ID-JAG at the provider and
//! presents it, through `mcpauth-client`, at the MCP authorization server, which issues the
//! user's token with no sign-in or consent page of its own; the MCP server takes it. A
//! replayed ID-JAG, and one addressed to another authorization server, are refused.
//!
//! A peer does the same with an ID token: the MCP TypeScript SDK's cross-app access
//! (`interop/ts-sdk/cross-app.mjs`, `@modelcontextprotocol/client` from npm) signs the user in
//! at the provider with `openid` (through the real pages, over HTTP), then its
//! `CrossAppAccessProvider` exchanges the ID token for an ID-JAG and reaches the MCP server.
//! Revoking either sign-in at the provider ends its exchanges.
//!
//! The provider speaks plain HTTP on loopback; its JWK Set reaches the MCP authorization
//! server over HTTPS (a self-signed certificate the test trusts), as a TLS proxy in front of
//! it would serve it: trusted issuers' keys are fetched over https only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod support;

#[path = "../../crates/server/tests/support/mod.rs"]
mod pages;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::{Example, serve_document_over_https, tempdir};

const EMAIL: &str = "pat@corp.example";
const PASSWORD: &str = "single sign-on, once";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const OTHER_AS: &str = "https://other-as.example.com";
const REFRESH_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:refresh_token";
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// Where the TypeScript SDK's agent is sent back after signing in (read from the redirect,
/// never listened on).
const TS_REDIRECT: &str = "http://127.0.0.1:53683/callback";

fn claims_of(jwt: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn sqlite(dir: &std::path::Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signed_in_at_one_mcpauth_uses_an_mcp_server_behind_another_with_no_second_consent()
{
    let chromium = pages::chromium();
    pages::ensure_npm("browser", "playwright-core").await;
    let dir = tempdir("enterprise-idp");
    let shots = pages::screenshots("enterprise-idp-screenshots");
    let (redirect_uri, mut callbacks) = pages::callback_listener().await;

    // The MCP authorization server and its MCP server; the agent registered there by its
    // operator (a confidential client with the JWT bearer grant).
    let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mcp_issuer = format!("http://{}", as_listener.local_addr().unwrap());
    let (mut mcp_server, resource) = Example::Axum.start(&mcp_issuer).await;
    let mut mcp_config = mcpauth_server::Config::default();
    mcp_config.listen = as_listener.local_addr().unwrap();
    mcp_config.issuer = Some(mcp_issuer.clone());
    mcp_config.database_url = sqlite(&dir, "mcp-as.db");
    mcp_config.resources = vec![resource.clone()];
    let first = mcpauth_server::build(&mcp_config).await.unwrap();
    let mut agent = mcpauth_server::admin::NewClient::new("Corp agent");
    agent.grant_types = vec![JWT_BEARER.into()];
    let agent_at_as = mcpauth_server::admin::add_client(&first.engine, agent)
        .await
        .unwrap();
    // The TypeScript SDK's agent there (client_secret_basic, the SDK's default).
    let mut ts_agent = mcpauth_server::admin::NewClient::new("Corp agent (TypeScript SDK)");
    ts_agent.grant_types = vec![JWT_BEARER.into()];
    let ts_agent_at_as = mcpauth_server::admin::add_client(&first.engine, ts_agent)
        .await
        .unwrap();
    first.store.close().await;

    // The identity provider: the user, the same agent registered there (sign-in and token
    // exchange), and the policy that lets it have ID-JAGs for the MCP authorization server.
    let idp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp_issuer = format!("http://{}", idp_listener.local_addr().unwrap());
    let mut idp_config = mcpauth_server::Config::default();
    idp_config.listen = idp_listener.local_addr().unwrap();
    idp_config.issuer = Some(idp_issuer.clone());
    idp_config.database_url = sqlite(&dir, "idp.db");
    // Nonces at the provider: the agent's exchange carries a DPoP proof (binding the ID-JAG
    // to its key) and must answer the provider's use_dpop_nonce first.
    idp_config.dpop_nonces = true;
    let first = mcpauth_server::build(&idp_config).await.unwrap();
    mcpauth_server::add_user(&first.store, EMAIL, PASSWORD)
        .await
        .unwrap();
    let mut agent = mcpauth_server::admin::NewClient::new("Corp agent");
    agent.redirect_uris = vec![redirect_uri.clone()];
    agent.grant_types = vec![
        "authorization_code".into(),
        "refresh_token".into(),
        TOKEN_EXCHANGE.into(),
    ];
    let agent_at_idp = mcpauth_server::admin::add_client(&first.engine, agent)
        .await
        .unwrap();
    // The TypeScript SDK's agent at the provider: it sends its secret in the body.
    let mut ts_agent = mcpauth_server::admin::NewClient::new("Corp agent (TypeScript SDK)");
    ts_agent.redirect_uris = vec![TS_REDIRECT.into()];
    ts_agent.secret_in_body = true;
    ts_agent.grant_types = vec![
        "authorization_code".into(),
        "refresh_token".into(),
        TOKEN_EXCHANGE.into(),
    ];
    let ts_agent_at_idp = mcpauth_server::admin::add_client(&first.engine, ts_agent)
        .await
        .unwrap();
    // A public client has no secret to send in the body: refused, not ignored.
    let mut confused = mcpauth_server::admin::NewClient::new("Confused");
    confused.public = true;
    confused.secret_in_body = true;
    assert!(
        mcpauth_server::admin::add_client(&first.engine, confused)
            .await
            .is_err()
    );
    first.store.close().await;
    // Two audiences: the MCP authorization server, and another the agent also works with
    // (whose ID-JAGs must be worthless at the first).
    let audience = |issuer: &str| {
        serde_json::from_value::<mcpauth_server::AssertionAudienceConfig>(json!({
            "issuer": issuer,
            "resources": [resource],
            "scope": ["mcp:tools"],
            "clients": [{
                "client_id": agent_at_idp.client_id,
                "client_id_there": agent_at_as.client_id,
            }, {
                "client_id": ts_agent_at_idp.client_id,
                "client_id_there": ts_agent_at_as.client_id,
            }],
        }))
        .unwrap()
    };
    idp_config.identity_assertion_audiences = vec![audience(&mcp_issuer), audience(OTHER_AS)];
    let idp = pages::serve(
        idp_listener,
        mcpauth_server::build(&idp_config).await.unwrap(),
    );
    let idp_metadata: Value = reqwest::get(format!(
        "{idp_issuer}/.well-known/oauth-authorization-server"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        idp_metadata["identity_chaining_requested_token_types_supported"],
        json!(["urn:ietf:params:oauth:token-type:id-jag"])
    );

    // The MCP authorization server trusts the provider for the agent; the provider's keys
    // over HTTPS.
    let idp_keys: Value = reqwest::get(idp_metadata["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (jwks_uri, certificate) = serve_document_over_https(move |_| idp_keys).await;
    let mut policy = mcpauth_fetch::FetchPolicy::default();
    policy.insecure_allow_loopback = true;
    policy.root_certificates_only = vec![certificate];
    mcp_config.trusted_issuers = vec![
        serde_json::from_value(json!({
            "issuer": idp_issuer, "jwks_uri": jwks_uri, "kind": "identity_provider",
            "allowed_clients": [agent_at_as.client_id, ts_agent_at_as.client_id],
        }))
        .unwrap(),
    ];
    let mcp_as = pages::serve(
        as_listener,
        mcpauth_server::build_with(
            &mcp_config,
            mcpauth_server::BuildOptions::default().fetch_policy(policy),
        )
        .await
        .unwrap(),
    );
    let as_metadata: Value = reqwest::get(format!(
        "{mcp_issuer}/.well-known/oauth-authorization-server"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        as_metadata["authorization_grant_profiles_supported"],
        json!(["urn:ietf:params:oauth:grant-profile:id-jag"])
    );

    // The one sign-in and consent, at the provider, in Chromium.
    let seen = pages::browse(
        "authorize",
        json!({
            // An OpenID Connect sign-in: scope openid, with a nonce.
            "url": idp
                .authorize_url(&agent_at_idp.client_id, &redirect_uri, "sso")
                .replace("scope=mcp%3Atools", "scope=openid&nonce=n-0S6_WzA2Mj"),
            "redirect_uri": redirect_uri, "approve": true, "remember": false,
            "email": EMAIL, "password": PASSWORD, "profile": dir.join("profile"),
            "chromium": chromium, "screenshots": shots,
        }),
    )
    .await;
    assert_eq!(seen["signedIn"], true, "{seen}");
    let callback = callbacks.recv().await.unwrap();
    assert_eq!(pages::param(&callback, "state"), Some("sso"));
    let idp_secret = agent_at_idp.client_secret.clone().unwrap();
    let sign_in = idp
        .redeem_as(
            &agent_at_idp.client_id,
            Some(&idp_secret),
            &redirect_uri,
            pages::param(&callback, "code").unwrap(),
        )
        .await;
    let refresh_token = sign_in["refresh_token"].as_str().unwrap().to_owned();
    let id_token = sign_in["id_token"].as_str().unwrap().to_owned();
    let identity = claims_of(&id_token);
    assert_eq!(identity["iss"], idp_issuer.as_str());
    assert_eq!(identity["aud"], agent_at_idp.client_id.as_str());
    assert_eq!(identity["nonce"], "n-0S6_WzA2Mj");

    // The agent, through mcpauth-client: the exchange at the provider, the grant at the MCP
    // authorization server, the MCP server. No browser from here on.
    let as_secret = agent_at_as.client_secret.clone().unwrap();
    let client = Arc::new(
        mcpauth_client::OAuthClient::builder(&resource)
            .allow_loopback_http()
            .pre_registered(&mcp_issuer, &agent_at_as.client_id, Some(&as_secret))
            .assertion(mcpauth_client::assertion::AssertionSource::EnterpriseIdp(
                mcpauth_client::assertion::EnterpriseIdp::with_refresh_token(
                    &format!("{idp_issuer}/token"),
                    &agent_at_idp.client_id,
                    Some(&idp_secret),
                    &refresh_token,
                ),
            ))
            .non_interactive()
            .build()
            .unwrap(),
    );
    let mcp = mcpauth_client::rmcp::connect((), client.clone())
        .await
        .expect("the agent connects with the user's token");
    assert!(!mcp.list_all_tools().await.unwrap().is_empty());
    let _ = mcp.cancel().await;
    let held = client.held_tokens().await.unwrap().unwrap();
    let access = claims_of(&held.access_token);
    assert_eq!(access["sub_type"], "user");
    assert_eq!(access["client_id"], agent_at_as.client_id.as_str());
    assert!(
        access["sub"].as_str().unwrap().starts_with("user_"),
        "the provider's user, linked to a local account: {access}"
    );

    // An ID-JAG straight from the provider, by hand: used once, then refused; one for
    // another authorization server refused here.
    let exchange_with = |audience: String, subject_type: &'static str, subject: &str| {
        let idp_issuer = idp_issuer.clone();
        let (id, secret, subject, resource) = (
            agent_at_idp.client_id.clone(),
            idp_secret.clone(),
            subject.to_owned(),
            resource.clone(),
        );
        async move {
            let answer: Value = reqwest::Client::new()
                .post(format!("{idp_issuer}/token"))
                .basic_auth(id, Some(secret))
                .form(&[
                    ("grant_type", TOKEN_EXCHANGE),
                    (
                        "requested_token_type",
                        "urn:ietf:params:oauth:token-type:id-jag",
                    ),
                    ("subject_token", subject.as_str()),
                    ("subject_token_type", subject_type),
                    ("audience", audience.as_str()),
                    ("resource", resource.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer
        }
    };
    let exchange = |audience: String| exchange_with(audience, REFRESH_TOKEN_TYPE, &refresh_token);
    let present = |assertion: String| {
        let mcp_issuer = mcp_issuer.clone();
        let (id, secret) = (agent_at_as.client_id.clone(), as_secret.clone());
        async move {
            let response = reqwest::Client::new()
                .post(format!("{mcp_issuer}/token"))
                .basic_auth(id, Some(secret))
                .form(&[
                    ("grant_type", JWT_BEARER),
                    ("assertion", assertion.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let answer = exchange(mcp_issuer.clone()).await;
    assert_eq!(answer["token_type"], "N_A", "{answer}");
    let id_jag = answer["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&id_jag)["aud"], mcp_issuer.as_str());
    let (status, token) = present(id_jag.clone()).await;
    assert_eq!(status, 200, "{token}");
    let (status, replay) = present(id_jag).await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (400, Some("invalid_grant")),
        "replayed"
    );
    // An ID-JAG the provider issued for the other authorization server: refused here.
    let elsewhere = exchange(OTHER_AS.into()).await;
    let mis_audienced = elsewhere["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims_of(&mis_audienced)["aud"], OTHER_AS);
    let (status, refused) = present(mis_audienced).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_grant")),
        "mis-audienced: {refused}"
    );
    // The provider issues nothing for an authorization server it has no policy for.
    let unknown = exchange("https://unknown-as.example.com".into()).await;
    assert_eq!(unknown["error"], "invalid_target", "{unknown}");

    // The sign-in's ID token is a subject token too (the draft's §4.3).
    let by_id_token = exchange_with(mcp_issuer.clone(), ID_TOKEN_TYPE, &id_token).await;
    assert_eq!(by_id_token["token_type"], "N_A", "{by_id_token}");
    let (status, token) = present(by_id_token["access_token"].as_str().unwrap().into()).await;
    assert_eq!(status, 200, "{token}");

    // The MCP TypeScript SDK's cross-app access, with the ID token of its own sign-in.
    pages::ensure_npm("ts-sdk", "@modelcontextprotocol/client").await;
    let ts_secret_at_idp = ts_agent_at_idp.client_secret.clone().unwrap();
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg("cross-app.mjs")
            .current_dir(pages::interop_dir("ts-sdk"))
            .env("MCP_URL", &resource)
            .env("MCP_ISSUER", &mcp_issuer)
            .env("IDP_ISSUER", &idp_issuer)
            .env("IDP_RESOURCE", pages::RESOURCE)
            .env("USER_EMAIL", EMAIL)
            .env("USER_PASSWORD", PASSWORD)
            .env("IDP_CLIENT_ID", &ts_agent_at_idp.client_id)
            .env("IDP_CLIENT_SECRET", &ts_secret_at_idp)
            .env("IDP_REDIRECT_URI", TS_REDIRECT)
            .env("AS_CLIENT_ID", &ts_agent_at_as.client_id)
            .env(
                "AS_CLIENT_SECRET",
                ts_agent_at_as.client_secret.as_deref().unwrap(),
            )
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the TypeScript SDK run took over two minutes")
    .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cross-app.mjs failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The peer's steps; its last line holds tokens, not printed.
    for step in stdout.lines().filter(|l| l.starts_with("ok - ")) {
        println!("{step}");
    }
    let ts: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(!ts["tools"].as_array().unwrap().is_empty(), "{ts}");
    let ts_access = claims_of(ts["access_token"].as_str().unwrap());
    assert_eq!(ts_access["client_id"], ts_agent_at_as.client_id.as_str());
    assert_eq!(
        ts_access["sub"], access["sub"],
        "the same person, whichever agent asked"
    );
    // Its sign-in revoked at the provider: its ID token gets no more ID-JAGs.
    let ts_exchange = || {
        reqwest::Client::new()
            .post(format!("{idp_issuer}/token"))
            .form(&[
                ("grant_type", TOKEN_EXCHANGE),
                (
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:id-jag",
                ),
                ("subject_token", ts["id_token"].as_str().unwrap()),
                ("subject_token_type", ID_TOKEN_TYPE),
                ("audience", mcp_issuer.as_str()),
                ("client_id", ts_agent_at_idp.client_id.as_str()),
                ("client_secret", ts_secret_at_idp.as_str()),
            ])
            .send()
    };
    assert_eq!(ts_exchange().await.unwrap().status(), 200);
    let revoked = reqwest::Client::new()
        .post(format!("{idp_issuer}/revoke"))
        .form(&[
            ("token", ts["refresh_token"].as_str().unwrap()),
            ("client_id", ts_agent_at_idp.client_id.as_str()),
            ("client_secret", ts_secret_at_idp.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let refused: Value = ts_exchange().await.unwrap().json().await.unwrap();
    assert_eq!(refused["error"], "invalid_grant", "{refused}");

    // Revoking the user's sign-in at the provider ends the exchanges.
    let revoked = reqwest::Client::new()
        .post(format!("{idp_issuer}/revoke"))
        .basic_auth(&agent_at_idp.client_id, Some(&idp_secret))
        .form(&[("token", refresh_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let after = exchange(mcp_issuer.clone()).await;
    assert_eq!(after["error"], "invalid_grant", "{after}");
    let after = exchange_with(mcp_issuer.clone(), ID_TOKEN_TYPE, &id_token).await;
    assert_eq!(after["error"], "invalid_grant", "the ID token too: {after}");

    pages::assert_png(&shots.join("login.png"));
    drop((idp, mcp_as));
    let _ = mcp_server.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}
