//! Native TLS (`tls_certificate`, `tls_private_key`): a client trusting the test's own
//! certificate authority gets the metadata over HTTPS; one that does not, and plain HTTP, get
//! nothing. A renewed certificate written over the files is served after a reload, without a
//! restart; files that do not load keep the pair in use. Callers' addresses reach the audit
//! trail as over plain TCP. Each misconfiguration is refused at start, by name.

use super::*;

use super::certificates::{authority, leaf};

/// A client trusting `ca` (or only the system's roots), over new connections each request.
fn https_client(ca: Option<&[u8]>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_info(true)
        .pool_max_idle_per_host(0);
    if let Some(ca) = ca {
        builder = builder.add_root_certificate(reqwest::Certificate::from_der(ca).unwrap());
    }
    builder.build().unwrap()
}

/// The certificate the server presented for `response`.
fn presented(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn native_tls_serves_https_and_a_renewed_certificate_without_a_restart() {
    let dir = temp_dir("native-tls");
    let (ca, ca_der) = authority();
    let (chain, key, first_der) = leaf(&ca);
    let (chain_path, key_path) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
    std::fs::write(&chain_path, &chain).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let issuer = format!("https://{addr}");
    let mut config = mcpauth_server::Config::default();
    config.listen = addr;
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    config.tls_certificate = Some(chain_path.clone());
    config.tls_private_key = Some(key_path.clone());
    assert_eq!(
        config.issuer(),
        issuer,
        "the default issuer is https with TLS"
    );
    let server = mcpauth_server::build(&config).await.unwrap();
    let certificates = server.tls().unwrap();
    let store = server.store.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mcpauth_server::serve_on(listener, server, async {
        let _ = stopped.await;
    }));
    let metadata = format!("{issuer}/.well-known/oauth-authorization-server");

    let trusting = https_client(Some(&ca_der));
    let response = trusting.get(&metadata).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(presented(&response), first_der);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["issuer"], issuer);
    // A client that does not trust the authority, and plain HTTP, get no answer.
    assert!(https_client(None).get(&metadata).send().await.is_err());
    assert!(
        reqwest::get(format!(
            "http://{addr}/.well-known/oauth-authorization-server"
        ))
        .await
        .is_err()
    );

    // A renewed certificate, written over the files: served after the reload, no restart.
    assert!(
        !certificates.reload().unwrap(),
        "unchanged files: nothing to do"
    );
    let (chain, key, renewed_der) = leaf(&ca);
    std::fs::write(&chain_path, &chain).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    assert!(certificates.reload().unwrap());
    // A new client: a resumed TLS session shows the certificate of the session it resumes.
    let trusting = https_client(Some(&ca_der));
    let response = trusting.get(&metadata).send().await.unwrap();
    assert_eq!(presented(&response), renewed_der);

    // A half-written renewal (a key that is not the certificate's) is refused by name and
    // the pair in use kept.
    let (_, other_key, _) = leaf(&ca);
    std::fs::write(&key_path, &other_key).unwrap();
    let refused = certificates.reload().unwrap_err().to_string();
    assert!(
        refused.contains("privkey.pem") && refused.contains("not the key"),
        "{refused}"
    );
    let trusting = https_client(Some(&ca_der));
    let response = trusting.get(&metadata).send().await.unwrap();
    assert_eq!(presented(&response), renewed_der);

    // Callers' addresses reach the audit trail as over plain TCP.
    let registration = trusting
        .post(format!("{issuer}/register"))
        .json(&serde_json::json!({ "redirect_uris": ["javascript:alert(1)"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(registration.status(), StatusCode::BAD_REQUEST);
    let mut refusals = Vec::new();
    for _ in 0..200 {
        let mut filter = mcpauth_store_sql::AuditFilter::default();
        filter.event = Some("registration_refused".into());
        refusals = store.audit_events(&filter, 10).await.unwrap();
        if !refusals.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(refusals[0].record.address.as_deref(), Some("127.0.0.1"));
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_native_tls_misconfiguration_is_refused_at_start_by_name() {
    let dir = temp_dir("native-tls-refused");
    let (ca, _) = authority();
    let (chain, key, _) = leaf(&ca);
    let (_, other_key, _) = leaf(&ca);
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (chain_path, key_path) = (write("chain.pem", &chain), write("key.pem", &key));
    let other_key_path = write("other-key.pem", &other_key);
    let garbage = write("garbage.pem", "not a certificate");
    let start = |configure: &dyn Fn(&mut mcpauth_server::Config)| {
        let mut config = mcpauth_server::Config::default();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
        configure(&mut config);
        async move {
            mcpauth_server::build(&config)
                .await
                .map(|_| ())
                .unwrap_err()
                .to_string()
        }
    };
    type Configure<'a> = Box<dyn Fn(&mut mcpauth_server::Config) + 'a>;
    let cases: Vec<(Configure<'_>, &str)> = vec![
        (
            Box::new(|c| c.tls_certificate = Some(chain_path.clone())),
            "go together",
        ),
        (
            Box::new(|c| {
                c.tls_certificate = Some(chain_path.clone());
                c.tls_private_key = Some(key_path.clone());
                c.issuer = Some("http://127.0.0.1:8080".into());
            }),
            "is not https",
        ),
        (
            Box::new(|c| {
                c.tls_certificate = Some(chain_path.clone());
                c.tls_private_key = Some(other_key_path.clone());
            }),
            "not the key of the first certificate",
        ),
        (
            Box::new(|c| {
                c.tls_certificate = Some(garbage.clone());
                c.tls_private_key = Some(key_path.clone());
            }),
            "garbage.pem",
        ),
        (
            Box::new(|c| {
                c.tls_certificate = Some(dir.join("missing.pem"));
                c.tls_private_key = Some(key_path.clone());
            }),
            "missing.pem",
        ),
    ];
    for (configure, expected) in &cases {
        let refused = start(configure.as_ref()).await;
        assert!(refused.contains(expected), "{expected}: {refused}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
