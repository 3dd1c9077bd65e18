//! The shared HTTP conformance suite against the authorization server mounted in actix-web.
#![allow(clippy::unwrap_used, reason = "tests")]

async fn serve_and_check(issuer_path: &str) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fixture = mcpauth_conformance::Fixture::new(&format!("{base}{issuer_path}")).await;
    let server = fixture.server();
    let running = actix_web::HttpServer::new(move || {
        actix_web::App::new().configure(mcpauth_adapter_actix::authorization_server(server.clone()))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = running.handle();
    actix_web::rt::spawn(running);
    mcpauth_conformance::run(&base, &fixture).await;
    handle.stop(false).await;
}

#[actix_web::test]
async fn actix_adapter_passes_the_conformance_suite_at_the_root() {
    serve_and_check("").await;
}

#[actix_web::test]
async fn actix_adapter_passes_the_conformance_suite_with_an_issuer_path() {
    serve_and_check("/tenant/a").await;
}
