//! The JWT bearer grant at `mcpauth-server` with trusted issuers whose JWK Set it fetches over
//! real HTTPS on loopback (a self-signed certificate the test trusts): a workload token for the
//! configured subject gets tokens that the example MCP server (axum, the real binary) accepts,
//! through mcpauth's client reading the token from a file, as `mcpauth auth --workload-token`
//! does; any other subject, audience or an expired token gets nothing. An enterprise identity
//! provider's ID-JAG for an allowed client gets the user's token (a local account created for
//! the provider's user), once; a mis-audienced one gets nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "tests"
)]

mod support;

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::{Example, serve_document_over_https, tempdir};

const CI: &str = "https://ci.example.com";
const IDP: &str = "https://idp.example.com";

struct IssuerKey {
    pkcs8: Vec<u8>,
    jwk: Value,
}

fn issuer_key(kid: &str) -> IssuerKey {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    IssuerKey {
        jwk: json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }),
        pkcs8: pkcs8.as_ref().to_vec(),
    }
}

fn sign(key: &IssuerKey, typ: Option<&str>, claims: &Value) -> String {
    // A hand-made ES256 JWS: the test depends on no JWT library of its own.
    let mut header = json!({ "alg": "ES256", "kid": key.jwk["kid"] });
    if let Some(typ) = typ {
        header["typ"] = json!(typ);
    }
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.pkcs8).unwrap();
    let signature = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

fn now() -> u64 {
    mcpauth_oauth_types::now().0
}

fn workload_config(jwks_uri: &str, client_id: &str) -> mcpauth_server::TrustedIssuerConfig {
    serde_json::from_value(json!({
        "issuer": CI,
        "jwks_uri": jwks_uri,
        "kind": "workloads",
        "workloads": [{
            "subject": "system:serviceaccount:prod:agent",
            "client_id": client_id,
            "scope": ["mcp:tools"],
        }],
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_issuers_keys_come_over_https_and_only_their_exact_tokens_get_tokens() {
    let ci = issuer_key("ci-1");
    let idp = issuer_key("idp-1");
    let keys = json!({ "keys": [ci.jwk.clone(), idp.jwk.clone()] });
    let (jwks_uri, certificate) = serve_document_over_https(move |_| keys).await;
    let mut policy = mcpauth_fetch::FetchPolicy::default();
    policy.insecure_allow_loopback = true;
    policy.root_certificates_only = vec![certificate];

    let dir = tempdir("trusted-issuers");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let (mut mcp_server, resource) = Example::Axum.start(&issuer).await;
    let mut config = mcpauth_server::Config::default();
    config.listen = listener.local_addr().unwrap();
    config.issuer = Some(issuer.clone());
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    config.resources = vec![resource.clone()];
    // The clients are added first, as an operator would: the identity provider's entry and
    // the workload rule name them.
    let first = mcpauth_server::build(&config).await.unwrap();
    let mut enterprise = mcpauth_server::admin::NewClient::new("Enterprise agent");
    enterprise.grant_types = vec!["urn:ietf:params:oauth:grant-type:jwt-bearer".into()];
    let enterprise = mcpauth_server::admin::add_client(&first.engine, enterprise)
        .await
        .unwrap();
    let mut agent = mcpauth_server::admin::NewClient::new("Production agent");
    agent.grant_types = vec!["urn:ietf:params:oauth:grant-type:jwt-bearer".into()];
    let agent = mcpauth_server::admin::add_client(&first.engine, agent)
        .await
        .unwrap();
    first.store.close().await;
    let mut idp_entry: mcpauth_server::TrustedIssuerConfig = serde_json::from_value(json!({
        "issuer": IDP, "jwks_uri": jwks_uri, "kind": "identity_provider",
        "allowed_clients": [enterprise.client_id],
    }))
    .unwrap();
    idp_entry.max_lifetime = Some(300);
    config.trusted_issuers = vec![workload_config(&jwks_uri, &agent.client_id), idp_entry];
    let server = mcpauth_server::build_with(
        &config,
        mcpauth_server::BuildOptions::default().fetch_policy(policy),
    )
    .await
    .unwrap();
    tokio::spawn(mcpauth_server::serve_on(
        listener,
        server,
        std::future::pending(),
    ));
    let metadata: Value = reqwest::get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        metadata["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("urn:ietf:params:oauth:grant-type:jwt-bearer"))
    );

    // The workload, through mcpauth's client: the token file, the grant, the MCP server.
    let workload = |sub: &str, aud: &str, exp: u64| {
        sign(
            &ci,
            None,
            &json!({
                "iss": CI, "sub": sub, "aud": aud, "iat": now(), "exp": exp,
                "jti": mcpauth_client::authorize::random_value().unwrap(),
            }),
        )
    };
    let token_file = dir.join("workload-token");
    std::fs::write(
        &token_file,
        workload("system:serviceaccount:prod:agent", &issuer, now() + 600),
    )
    .unwrap();
    let client = Arc::new(
        mcpauth_client::OAuthClient::builder(&resource)
            .allow_loopback_http()
            .assertion(mcpauth_client::assertion::AssertionSource::WorkloadTokenFile(token_file))
            .build()
            .unwrap(),
    );
    let mcp = mcpauth_client::rmcp::connect((), client.clone())
        .await
        .expect("the workload connects");
    let tools = mcp.list_all_tools().await.unwrap();
    assert!(!tools.is_empty());
    let _ = mcp.cancel().await;
    let held = client.held_tokens().await.unwrap().unwrap();
    assert!(
        held.is_dpop_bound(),
        "the server takes DPoP: the workload's token is bound too"
    );

    let token_endpoint = format!("{issuer}/token");
    let present = |assertion: String, basic: Option<(String, String)>| {
        let token_endpoint = token_endpoint.clone();
        let resource = resource.clone();
        async move {
            let mut request = reqwest::Client::new().post(token_endpoint).form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
                ("resource", resource.as_str()),
            ]);
            if let Some((id, secret)) = basic {
                request = request.basic_auth(id, Some(secret));
            }
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    for (what, assertion) in [
        (
            "another subject",
            workload("system:serviceaccount:prod:other", &issuer, now() + 600),
        ),
        (
            "another audience",
            workload(
                "system:serviceaccount:prod:agent",
                "https://elsewhere.example.com",
                now() + 600,
            ),
        ),
        (
            "expired",
            workload("system:serviceaccount:prod:agent", &issuer, now() - 120),
        ),
    ] {
        let (status, body) = present(assertion, None).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{what}");
    }

    // The enterprise user's ID-JAG, presented by the client it names.
    let id_jag = |aud: &str| {
        sign(
            &idp,
            Some("oauth-id-jag+jwt"),
            &json!({
                "iss": IDP, "sub": "u-1001", "email": "pat@corp.example", "aud": aud,
                "client_id": enterprise.client_id, "resource": resource, "scope": "mcp:tools",
                "iat": now(), "exp": now() + 240,
                "jti": mcpauth_client::authorize::random_value().unwrap(),
            }),
        )
    };
    let basic = Some((
        enterprise.client_id.clone(),
        enterprise.client_secret.clone().unwrap(),
    ));
    let assertion = id_jag(&issuer);
    let (status, body) = present(assertion.clone(), basic.clone()).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(access.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(claims["sub"].as_str().unwrap().starts_with("user_"));
    assert_eq!(claims["sub_type"], "user");
    let called = reqwest::Client::new()
        .post(&resource)
        .bearer_auth(access)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": { "protocolVersion": "2025-11-25", "capabilities": {},
                        "clientInfo": { "name": "enterprise", "version": "1" } }
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        called.status(),
        200,
        "the MCP server takes the user's token"
    );
    let (status, body) = present(assertion, basic.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "replayed"
    );
    let (status, body) = present(id_jag("https://other-as.example.com"), basic).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "mis-audienced"
    );
    let _ = mcp_server.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}
