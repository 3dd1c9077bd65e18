//! Two `mcpauth-server`s, one as the enterprise identity provider and one as the MCP server's
//! authorization server (draft-ietf-oauth-identity-assertion-authz-grant), with the axum
//! example MCP server: a person signs in once, at the provider, in headless Chromium; the
//! agent exchanges the refresh token of that sign-in for an ID-JAG at the provider and
//! presents it, through `mcpauth-client`, at the MCP authorization server, which issues the
//! user's token with no sign-in or consent page of its own; the MCP server takes it. A
//! replayed ID-JAG, and one addressed to another authorization server, are refused.
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
            "allowed_clients": [agent_at_as.client_id],
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
            "url": idp.authorize_url(&agent_at_idp.client_id, &redirect_uri, "sso"),
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
    let exchange = |audience: String| {
        let idp_issuer = idp_issuer.clone();
        let (id, secret, refresh, resource) = (
            agent_at_idp.client_id.clone(),
            idp_secret.clone(),
            refresh_token.clone(),
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
                    ("subject_token", refresh.as_str()),
                    (
                        "subject_token_type",
                        "urn:ietf:params:oauth:token-type:refresh_token",
                    ),
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

    pages::assert_png(&shots.join("login.png"));
    drop((idp, mcp_as));
    let _ = mcp_server.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}
