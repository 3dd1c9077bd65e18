//! A protected MCP endpoint in axum, checked by the shared resource-server conformance suite.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

use std::sync::Arc;

use axum::routing::post;
use mcpauth_adapter_axum::{
    Authenticated, BearerLayer, MetadataRouter, ResourceServer, ResourceServerConfig,
};
use mcpauth_conformance::client_credentials_token;

#[tokio::test]
async fn routes_require_their_scopes_and_challenge_for_step_up() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fixture = mcpauth_conformance::Fixture::new(&base).await;
    let config = mcpauth_conformance::protected_mcp_config(&base);
    let protection = Arc::new(ResourceServer::new(config).unwrap());
    let app = mcpauth_adapter_axum::router(fixture.server())
        .route(
            "/mcp",
            post(echo)
                .put(echo)
                .layer(BearerLayer::new(protection.clone())),
        )
        .route(
            "/mcp/admin",
            post(|| async { "admin" })
                .layer(BearerLayer::new(protection.clone()).requiring(&["mcp", "admin"])),
        )
        .route(
            "/mcp/user",
            post(|| async { "user" }).layer(BearerLayer::new(protection.clone()).requiring_user()),
        )
        .route(
            "/mcp/people",
            post(|| async { "people" }).layer(BearerLayer::new(Arc::new(
                ResourceServer::new(mcpauth_conformance::people_only_mcp_config(&base)).unwrap(),
            ))),
        )
        .merge(protection.metadata_router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    mcpauth_conformance::run_resource_server(&base, &fixture).await;
}

async fn echo(Authenticated(token): Authenticated, body: String) -> String {
    if body.is_empty() {
        token.subject
    } else {
        format!("{}\n{body}", token.subject)
    }
}

async fn serve_opaque(
    cache_ttl: u64,
    introspection_endpoint: Option<&str>,
) -> (String, mcpauth_conformance::Fixture) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fixture = mcpauth_conformance::Fixture::with_opaque_tokens(&base).await;
    let (id, secret) = fixture.confidential_client();
    let mut config =
        ResourceServerConfig::new(format!("{base}/mcp"), &base, format!("{base}/jwks.json"))
            .with_introspection(
                introspection_endpoint.map_or_else(|| format!("{base}/introspect"), str::to_owned),
                id,
                secret,
            );
    config.introspection_cache_ttl = cache_ttl;
    let protection = Arc::new(ResourceServer::new(config).unwrap());
    let app = mcpauth_adapter_axum::router(fixture.server()).route(
        "/mcp",
        post(|Authenticated(token): Authenticated| async move { token.client_id })
            .layer(BearerLayer::new(protection)),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, fixture)
}

// RFC 7662 for opaque tokens: accepted while active for this resource, refused once revoked
// (at once without a cache), 503 rather than a challenge when the server cannot be asked.
#[tokio::test]
async fn opaque_tokens_are_checked_by_introspection() {
    let http = reqwest::Client::new();
    let (base, fixture) = serve_opaque(0, None).await;
    let resource = format!("{base}/mcp");
    let token = client_credentials_token(&http, &fixture, "", &resource).await;
    assert!(!token.contains('.'), "an opaque token");
    let call = |token: String| http.post(&resource).bearer_auth(token).send();
    let accepted = call(token.clone()).await.unwrap();
    assert_eq!(accepted.status(), 200);
    assert_eq!(
        accepted.text().await.unwrap(),
        fixture.confidential_client().0
    );

    let elsewhere = client_credentials_token(&http, &fixture, "", "http://127.0.0.1:1/other").await;
    let refused = call(elsewhere).await.unwrap();
    assert_eq!(refused.status(), 401, "a token for another resource");

    let (id, secret) = fixture.confidential_client();
    let revoked = http
        .post(format!("{base}/revoke"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let after = call(token).await.unwrap();
    assert_eq!(after.status(), 401);
    assert!(
        after.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}/introspect", closed.local_addr().unwrap());
    drop(closed);
    let (base, fixture) = serve_opaque(30, Some(&nowhere)).await;
    let token = client_credentials_token(&http, &fixture, "", &format!("{base}/mcp")).await;
    let unavailable = http
        .post(format!("{base}/mcp"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(unavailable.status(), 503);
    assert_eq!(unavailable.headers()["retry-after"], "5");
    assert!(
        unavailable.headers().get("www-authenticate").is_none(),
        "no reason to re-authorize"
    );
}

// A cached answer is reused until its time is up: within the cache time a revocation is not
// seen yet (the documented trade-off), so the cache must stay short.
#[tokio::test]
async fn introspection_answers_are_cached_for_the_configured_time() {
    let http = reqwest::Client::new();
    let (base, fixture) = serve_opaque(30, None).await;
    let resource = format!("{base}/mcp");
    let token = client_credentials_token(&http, &fixture, "", &resource).await;
    assert_eq!(
        http.post(&resource)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (id, secret) = fixture.confidential_client();
    http.post(format!("{base}/revoke"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        http.post(&resource)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "served from the cache"
    );
}
