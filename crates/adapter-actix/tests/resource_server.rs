//! A protected MCP endpoint in actix-web, checked by the shared resource-server conformance
//! suite.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;

use actix_web::web;
use mcpauth_adapter_actix::{
    Authenticated, BearerGuard, ResourceServer, authorization_server, protected_resource_metadata,
};

#[actix_web::test]
async fn routes_require_their_scopes_and_challenge_for_step_up() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fixture = mcpauth_conformance::Fixture::new(&base).await;
    let config = mcpauth_conformance::protected_mcp_config(&base);
    let protection = Arc::new(ResourceServer::new(config).unwrap());
    let people =
        Arc::new(ResourceServer::new(mcpauth_conformance::people_only_mcp_config(&base)).unwrap());
    let server = fixture.server();
    let running = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .configure(authorization_server(server.clone()))
            .configure(protected_resource_metadata(protection.clone()))
            .service(
                web::resource("/mcp/admin")
                    .wrap(BearerGuard::new(protection.clone()).requiring(&["mcp", "admin"]))
                    .route(web::post().to(|| async { "admin" })),
            )
            .service(
                web::resource("/mcp/user")
                    .wrap(BearerGuard::new(protection.clone()).requiring_user())
                    .route(web::post().to(|| async { "user" })),
            )
            .service(
                web::resource("/mcp/people")
                    .wrap(BearerGuard::new(people.clone()))
                    .route(web::post().to(|| async { "people" })),
            )
            .service(
                web::resource("/mcp")
                    .wrap(BearerGuard::new(protection.clone()))
                    .route(web::post().to(echo))
                    .route(web::put().to(echo)),
            )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = running.handle();
    actix_web::rt::spawn(running);
    mcpauth_conformance::run_resource_server(&base, &fixture).await;
    handle.stop(false).await;
}

async fn echo(Authenticated(token): Authenticated, body: String) -> String {
    if body.is_empty() {
        token.subject
    } else {
        format!("{}\n{body}", token.subject)
    }
}
