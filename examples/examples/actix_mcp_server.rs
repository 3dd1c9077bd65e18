//! An MCP server in actix-web, protected by mcpauth.
//!
//! ```text
//! cargo run -p mcpauth-server                  # the authorization server on :8080
//! cargo run --example actix_mcp_server         # this MCP server on http://127.0.0.1:3000/mcp
//! ```
//!
//! `MCPAUTH_ISSUER` names the authorization server (default `http://127.0.0.1:8080`),
//! `EXAMPLE_LISTEN` where to listen (default `127.0.0.1:3000`),
//! `EXAMPLE_REVOCATION_CLIENT_ID` and `EXAMPLE_REVOCATION_CLIENT_SECRET` a resource-server
//! client at the authorization server to receive its revocations with (pushed to `/ssf/push`
//! with `EXAMPLE_REVOCATION_PUSH=true`, else polled). The server prints
//! `listening on <resource>` once it accepts connections.
//!
//! rmcp serves MCP as a tower service over `http` 1 types; actix-web has its own types (and
//! `http` 0.2), so [`mcp`] converts the request, calls rmcp and streams its answer back
//! (server-sent events included).

use std::process::ExitCode;

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use futures::StreamExt;
use http_body_util::BodyExt;
use mcpauth_adapter_actix::{BearerGuard, protected_resource_metadata, revocation_push};
use mcpauth_examples::{ExampleServer, Settings, listen, mcp_service};
use mcpauth_http::VerifiedToken;
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

type Mcp = StreamableHttpService<ExampleServer, LocalSessionManager>;

/// The bridge from actix-web to rmcp's service.
async fn mcp(request: HttpRequest, body: web::Bytes, service: web::Data<Mcp>) -> HttpResponse {
    let mut builder = http::Request::builder()
        .method(request.method().as_str())
        .uri(request.uri().to_string());
    for (name, value) in request.headers() {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    let Ok(mut converted) = builder.body(http_body_util::Full::new(body)) else {
        return HttpResponse::BadRequest().finish();
    };
    // rmcp hands the tools the request's parts: give them the token the guard verified.
    if let Some(token) = request.extensions().get::<VerifiedToken>() {
        converted.extensions_mut().insert(token.clone());
    }
    let (parts, body) = service.handle(converted).await.into_parts();
    let status = actix_web::http::StatusCode::from_u16(parts.status.as_u16())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    for (name, value) in &parts.headers {
        response.append_header((name.as_str(), value.as_bytes()));
    }
    response.streaming(
        body.into_data_stream()
            .map(|chunk| chunk.map_err(|e| match e {})),
    )
}

#[actix_web::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MCPAUTH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut settings = Settings::from_env();
    if let Err(e) = settings.check_authorization_server().await {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let (listener, resource, protection) = match listen(&settings) {
        Ok(bound) => bound,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Revocations from the authorization server's Shared Signals stream, when configured
    // (EXAMPLE_REVOCATION_CLIENT_ID and _SECRET); returns at once otherwise.
    tokio::spawn(protection.clone().receive_revocations());
    // One rmcp service (and its sessions) shared by every actix worker.
    let service = web::Data::new(mcp_service(protection.clone(), &resource));

    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            // The RFC 9728 document MCP clients discover the authorization server from.
            .configure(protected_resource_metadata(protection.clone()))
            // Where the authorization server pushes revocations, if it does.
            .configure(revocation_push(protection.clone()))
            // The revocation receiver's metrics (Prometheus text); restrict it at your proxy.
            .route("/metrics", {
                let protection = protection.clone();
                web::get().to(move || {
                    let text = protection
                        .revocation_metrics()
                        .prometheus(mcpauth_adapter_actix::now().0);
                    async move { text }
                })
            })
            // The MCP endpoint, behind the guard: 401/403 challenges, tool scopes, limits.
            .service(
                web::resource("/mcp")
                    .wrap(BearerGuard::new(protection.clone()))
                    .app_data(service.clone())
                    .app_data(web::PayloadConfig::new(protection.config().max_body_bytes))
                    .route(web::route().to(mcp)),
            )
    })
    .workers(2)
    .listen(listener);
    let server = match server {
        Ok(server) => server.run(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {resource}");
    tracing::info!(%resource, issuer = %settings.issuer, "actix-web MCP server is ready");
    match server.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
