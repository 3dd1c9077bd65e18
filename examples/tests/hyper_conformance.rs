//! mcpauth on bare hyper (`mcpauth_examples::hyper_glue`, a framework with no adapter crate)
//! passes the same shared conformance suites as the axum and actix-web adapters: the
//! authorization server's, at the root and below an issuer path, and the protected MCP
//! endpoint's.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use mcpauth_examples::hyper_glue::{Body, Mcp, Mount, Protected, serve};
use mcpauth_http::{ResourceServer, RouteRules, VerifiedToken};

/// The conformance suite's MCP endpoints: `/mcp` echoes the token's subject and the body, the
/// others name themselves.
fn echo() -> Mcp {
    Arc::new(|request: http::Request<Body>| {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let subject = parts
                .extensions
                .get::<VerifiedToken>()
                .map(|token| token.subject.clone())
                .unwrap_or_default();
            let answer = match body.collect().await {
                Err(_) => {
                    let mut refused = http::Response::new(Bytes::new());
                    *refused.status_mut() = http::StatusCode::PAYLOAD_TOO_LARGE;
                    refused
                }
                Ok(body) => http::Response::new(Bytes::from(match parts.uri.path() {
                    "/mcp" => {
                        let body = String::from_utf8_lossy(&body.to_bytes()).into_owned();
                        if body.is_empty() {
                            subject
                        } else {
                            format!("{subject}\n{body}")
                        }
                    }
                    other => other.trim_start_matches("/mcp/").to_owned(),
                })),
            };
            answer.map(|bytes| Full::new(bytes).map_err(|e| match e {}).boxed_unsync())
        })
    })
}

async fn mounted(issuer_path: &str) -> (String, mcpauth_conformance::Fixture) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fixture = mcpauth_conformance::Fixture::new(&format!("{base}{issuer_path}")).await;
    let protection =
        Arc::new(ResourceServer::new(mcpauth_conformance::protected_mcp_config(&base)).unwrap());
    let people =
        Arc::new(ResourceServer::new(mcpauth_conformance::people_only_mcp_config(&base)).unwrap());
    let route = |path: &str, resource: &Arc<ResourceServer>, rules: RouteRules| Protected {
        path: path.to_owned(),
        resource: resource.clone(),
        rules,
    };
    let mount = Arc::new(Mount {
        authorization: Some(fixture.server()),
        protected: vec![
            route("/mcp", &protection, RouteRules::new()),
            route(
                "/mcp/admin",
                &protection,
                RouteRules::new().requiring(&["mcp", "admin"]),
            ),
            route("/mcp/user", &protection, RouteRules::new().requiring_user()),
            route("/mcp/people", &people, RouteRules::new()),
        ],
        mcp: echo(),
    });
    tokio::spawn(serve(listener, mount));
    (base, fixture)
}

#[tokio::test]
async fn bare_hyper_passes_the_conformance_suite_at_the_root() {
    let (base, fixture) = mounted("").await;
    mcpauth_conformance::run(&base, &fixture).await;
}

#[tokio::test]
async fn bare_hyper_passes_the_conformance_suite_with_an_issuer_path() {
    let (base, fixture) = mounted("/tenant/a").await;
    mcpauth_conformance::run(&base, &fixture).await;
}

#[tokio::test]
async fn bare_hyper_routes_require_their_scopes_and_challenge_for_step_up() {
    let (base, fixture) = mounted("").await;
    mcpauth_conformance::run_resource_server(&base, &fixture).await;
}
