//! A protected MCP endpoint in axum: 401 with `resource_metadata` without a token, 403
//! `insufficient_scope` naming the scopes a route needs (so clients can step up), the verified
//! identity handed to the handler, and the RFC 9728 document at its well-known URL.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

use std::sync::Arc;

use axum::routing::post;
use mcpauth_adapter_axum::{
    Authenticated, BearerLayer, MetadataRouter, ResourceServer, ResourceServerConfig,
};
use reqwest::StatusCode;

async fn token(
    http: &reqwest::Client,
    fixture: &mcpauth_conformance::Fixture,
    scope: &str,
    resource: &str,
) -> String {
    let (id, secret) = fixture.confidential_client();
    let body: serde_json::Value = http
        .post(format!("{}/token", fixture.issuer()))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("resource", resource),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn routes_require_their_scopes_and_challenge_for_step_up() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fixture = mcpauth_conformance::Fixture::new(&base).await;
    let resource = format!("{base}/mcp");
    let mut config = ResourceServerConfig::new(&resource, &base, format!("{base}/jwks.json"));
    config.required_scopes = vec!["mcp".into()];
    let protection = Arc::new(ResourceServer::new(config).unwrap());
    let app = mcpauth_adapter_axum::router(fixture.server())
        .route(
            "/mcp",
            post(|Authenticated(token): Authenticated| async move { token.subject })
                .layer(BearerLayer::new(protection.clone())),
        )
        .route(
            "/mcp/admin",
            post(|| async { "admin" })
                .layer(BearerLayer::new(protection.clone()).requiring(&["mcp", "admin"])),
        )
        .merge(protection.metadata_router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource/mcp");

    let anonymous = http.post(&resource).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        format!("Bearer resource_metadata=\"{metadata_url}\", scope=\"mcp\"").as_str()
    );

    let basic = token(&http, &fixture, "mcp", &resource).await;
    let allowed = http
        .post(&resource)
        .bearer_auth(&basic)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        allowed.text().await.unwrap(),
        fixture.confidential_client().0,
        "the handler sees the verified identity"
    );

    let short = http
        .post(format!("{resource}/admin"))
        .bearer_auth(&basic)
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), StatusCode::FORBIDDEN);
    let challenge = short.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"mcp admin\""),
        "every scope needed: {challenge}"
    );
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );

    let stepped_up = token(&http, &fixture, "mcp admin", &resource).await;
    let admin = http
        .post(format!("{resource}/admin"))
        .bearer_auth(&stepped_up)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), StatusCode::OK);

    let garbage = http
        .post(&resource)
        .bearer_auth("not.a.jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
    assert!(
        garbage.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );

    let document: serde_json::Value = http
        .get(&metadata_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["resource"], resource.as_str());
    assert_eq!(document["authorization_servers"][0], base.as_str());
}
