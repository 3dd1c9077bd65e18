#![allow(clippy::unwrap_used, reason = "tests")]
//! The shared HTTP conformance suite against the authorization server mounted in axum.

async fn serve_and_check(issuer_path: &str) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fixture = mcpauth_conformance::Fixture::new(&format!("{base}{issuer_path}")).await;
    let app = mcpauth_adapter_axum::router(fixture.server());
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    mcpauth_conformance::run(&base, &fixture).await;
    server.abort();
}

#[tokio::test]
async fn axum_adapter_passes_the_conformance_suite_at_the_root() {
    serve_and_check("").await;
}

#[tokio::test]
async fn axum_adapter_passes_the_conformance_suite_with_an_issuer_path() {
    serve_and_check("/tenant/a").await;
}
