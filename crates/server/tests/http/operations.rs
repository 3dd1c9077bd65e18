//! What an operator runs into: signing keys at rest and in rotation, the binary and its `user add`,
//! HSTS, metrics, production mode, logs without secrets, the operator switches.

use super::*;

// The signing key is generated once and persisted.
#[tokio::test]
async fn signing_key_survives_a_restart() {
    let dir = temp_dir("restart");
    let first = start_with("", dir.clone()).await;
    let kid = first.jwks_kid().await;
    first.stop_keeping_data();
    let second = start_with("", dir).await;
    assert_eq!(second.jwks_kid().await, kid);
}

// Signing keys at rest: once an encryption key is configured, a key stored in plain text is
// sealed in place (same key, same kid); without the encryption key it cannot be loaded.
#[tokio::test]
async fn stored_signing_keys_are_encrypted_once_an_encryption_key_is_set() {
    let dir = temp_dir("sealed");
    let first = start_with("", dir.clone()).await;
    let kid = first.jwks_kid().await;
    first.stop_keeping_data();
    let url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    let stored = |url: String| async move {
        let store = mcpauth_store_sql::SqlStore::connect(&url).await.unwrap();
        let keys = store.signing_keys().await.unwrap();
        store.close().await;
        keys
    };
    let plain = stored(url.clone()).await;
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0].material[0], 0x30, "PKCS#8 DER in plain text");

    let sealed_config = |key: Option<&str>| {
        let mut config = mcpauth_server::Config::default();
        config.database_url = url.clone();
        config.signing_key_encryption_key = key.map(Into::into);
        config
    };
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    mcpauth_server::build(&sealed_config(Some(key)))
        .await
        .unwrap();
    let sealed = stored(url.clone()).await;
    assert_eq!(sealed[0].kid, plain[0].kid);
    assert_ne!(sealed[0].material, plain[0].material);
    assert!(
        !sealed[0]
            .material
            .windows(plain[0].material.len())
            .any(|w| w == plain[0].material.as_slice()),
        "the plain key is gone from the database"
    );
    let second = start_configured("", dir.clone(), |c| {
        c.signing_key_encryption_key = Some(key.into());
    })
    .await;
    assert_eq!(second.jwks_kid().await, kid, "same key after sealing");
    second.stop_keeping_data();

    let without = mcpauth_server::build(&sealed_config(None))
        .await
        .unwrap_err();
    assert!(
        without.to_string().contains("signing_key_encryption_key"),
        "{without}"
    );
    let wrong = mcpauth_server::build(&sealed_config(Some(
        "BwECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    )))
    .await
    .unwrap_err();
    assert!(wrong.to_string().contains("cannot decrypt"), "{wrong}");
    let short = mcpauth_server::build(&sealed_config(Some("c2hvcnQ=")))
        .await
        .unwrap_err();
    assert!(short.to_string().contains("32 random bytes"), "{short}");
    let _ = std::fs::remove_dir_all(&dir);
}

// Rotating `signing_key_encryption_key` without downtime: with the old key among
// `previous_signing_key_encryption_keys`, the stored keys open and are sealed again under the
// new one at start; the old key then opens nothing, the new one alone everything; a previous
// key without a current one is refused.
#[tokio::test]
async fn the_encryption_key_rotates_with_the_old_one_kept_as_previous() {
    let dir = temp_dir("rekey");
    let url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    let (old, new) = (
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=",
    );
    let config = |current: Option<&str>, previous: &[&str]| {
        let mut config = mcpauth_server::Config::default();
        config.database_url = url.clone();
        config.signing_key_encryption_key = current.map(Into::into);
        config.previous_signing_key_encryption_keys =
            previous.iter().map(|key| (*key).into()).collect();
        config
    };
    let build = |config: mcpauth_server::Config| async move {
        match mcpauth_server::build(&config).await {
            Ok(server) => {
                let kids: Vec<String> = server.engine.jwks()["keys"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|k| k["kid"].as_str().map(str::to_owned))
                    .collect();
                server.store.close().await;
                Ok(kids)
            }
            Err(e) => Err(e.to_string()),
        }
    };
    let kids = build(config(Some(old), &[])).await.unwrap();
    assert_eq!(build(config(Some(new), &[old])).await.unwrap(), kids);
    assert_eq!(
        build(config(Some(new), &[])).await.unwrap(),
        kids,
        "sealed again under the new key"
    );
    let refused = build(config(Some(old), &[])).await.unwrap_err();
    assert!(refused.contains("cannot decrypt"), "{refused}");
    let refused = build(config(None, &[new])).await.unwrap_err();
    assert!(
        refused.contains("previous_signing_key_encryption_keys is set without"),
        "{refused}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// `mcpauth-server user add <email>` reads the password from stdin when it is not a terminal.
#[tokio::test]
async fn user_add_reads_the_password_from_stdin() {
    use tokio::io::AsyncWriteExt;
    let dir = temp_dir("cli");
    let add = || {
        let mut child = tokio::process::Command::new(binary())
            .args(["--create", "user", "add", "Carol@Example.com"])
            .current_dir(&dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        async move {
            stdin.write_all(b"a long enough password\n").await.unwrap();
            drop(stdin);
            child.wait_with_output().await.unwrap()
        }
    };
    let output = add().await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("added carol@example.com as user_"));
    assert!(
        dir.join("mcpauth.db").exists(),
        "the default database is ./mcpauth.db"
    );
    let again = add().await;
    assert!(!again.status.success(), "a taken email must fail");
    let _ = std::fs::remove_dir_all(&dir);
}

// `mcpauth-server` with no arguments serves on its SQLite default in the working directory.
#[tokio::test]
async fn binary_serves_with_no_arguments() {
    let dir = temp_dir("bin");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(binary())
        .current_dir(&dir)
        .env("MCPAUTH_LISTEN", format!("127.0.0.1:{port}"))
        .kill_on_drop(true)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/.well-known/oauth-authorization-server");
    let mut metadata = None;
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(&url).await {
            metadata = Some(response.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill().await;
    let metadata = metadata.expect("the server did not come up");
    assert_eq!(metadata["issuer"], format!("http://127.0.0.1:{port}"));
    assert!(dir.join("mcpauth.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

// RFC 6797: an https issuer's responses tell browsers to stay on https; a loopback http
// development issuer's do not (HSTS there would break other local servers on that host).
#[tokio::test]
async fn https_issuers_send_strict_transport_security() {
    let https = start_configured("", temp_dir("hsts"), |c| {
        c.issuer = Some("https://auth.example.test".into());
    })
    .await;
    for path in ["/health", "/.well-known/oauth-authorization-server"] {
        let response = https
            .http
            .get(format!("{}{path}", https.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000",
            "{path}"
        );
    }
    let http = start().await;
    let response = http
        .http
        .get(format!("{}/health", http.base))
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
}

// /metrics: requests and latencies per endpoint, tokens issued per grant type, OAuth errors
// per error code; behind a bearer token when one is configured.
// `metrics_listen`: /metrics on an address of its own, not beside the OAuth endpoints, with
// the process and build metrics; production mode accepts it without a token there.
#[tokio::test]
async fn metrics_are_served_on_their_own_address_when_asked() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = start_configured("", temp_dir("metrics-listen"), |config| {
        config.metrics_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    })
    .await;
    let beside = server.get(&format!("{}/metrics", server.base), "").await;
    assert_eq!(
        beside.status(),
        StatusCode::NOT_FOUND,
        "not beside the OAuth endpoints"
    );
    let text = server
        .get(&format!("http://127.0.0.1:{port}/metrics"), "")
        .await
        .text()
        .await
        .unwrap();
    for line in [
        "mcpauth_http_requests_total{endpoint=\"metrics\",status=\"4xx\"} 1",
        "mcpauth_build_info{version=\"",
        "process_start_time_seconds ",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(text.contains(line), "{line} not in {text}");
    }
    let mut production = mcpauth_server::Config::default();
    production.production = true;
    production.metrics_listen = Some("127.0.0.1:9090".parse().unwrap());
    let problems = production.production_problems(|_| true);
    assert!(
        !problems.iter().any(|p| p.contains("metrics")),
        "{problems:?}"
    );
    // A public address of its own still needs the token.
    production.metrics_listen = Some("0.0.0.0:9090".parse().unwrap());
    assert!(
        production
            .production_problems(|_| true)
            .iter()
            .any(|p| p.contains("metrics_listen")),
        "{problems:?}"
    );
    production.metrics_listen = None;
    assert!(
        production
            .production_problems(|_| true)
            .iter()
            .any(|p| p.contains("metrics_listen")),
        "the refusal names the way out"
    );
}

#[tokio::test]
async fn metrics_count_requests_grants_and_errors() {
    let server = start_configured("", temp_dir("metrics"), |config| {
        config.metrics_token = Some("metrics-secret-of-enough-length-here".into());
        config.registration_token = Some("metrics-test-initial-access-token".into());
        config.vouched_registration_grant_types = vec!["client_credentials".into()];
    })
    .await;
    let client: Value = server
        .http
        .post(format!("{}/register", server.issuer))
        .bearer_auth("metrics-test-initial-access-token")
        .json(&serde_json::json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_post",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issue = |secret: &str| {
        server
            .http
            .post(format!("{}/token", server.issuer))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client["client_id"].as_str().unwrap()),
                ("client_secret", secret),
                ("resource", RESOURCE),
            ])
            .send()
    };
    assert_eq!(
        issue(client["client_secret"].as_str().unwrap())
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        issue("wrong").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let url = format!("{}/metrics", server.base);
    assert_eq!(
        server.get(&url, "").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let response = server
        .http
        .get(&url)
        .bearer_auth("metrics-secret-of-enough-length-here")
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    for expected in [
        "mcpauth_tokens_issued_total{grant_type=\"client_credentials\"} 1",
        "mcpauth_oauth_errors_total{endpoint=\"token\",error=\"invalid_client\"} 1",
        "mcpauth_http_requests_total{endpoint=\"token\",status=\"2xx\"} 1",
        "mcpauth_http_requests_total{endpoint=\"token\",status=\"4xx\"} 1",
        "mcpauth_http_requests_total{endpoint=\"register\",status=\"2xx\"} 1",
        "mcpauth_http_request_duration_seconds_count{endpoint=\"token\"} 2",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    // Nothing secret reaches the metrics.
    assert!(!text.contains(client["client_secret"].as_str().unwrap()));
}

// Production mode refuses to start on an http issuer or without an encryption key, naming
// each problem.
#[tokio::test]
async fn production_mode_refuses_an_unsafe_configuration() {
    let dir = temp_dir("production");
    let mut config = mcpauth_server::Config::default();
    config.production = true;
    config.issuer = Some("http://127.0.0.1:9".into());
    config.database_url = format!("sqlite://{}", dir.join("absent.db").display());
    let error = mcpauth_server::build(&config)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("is not https"), "{error}");
    assert!(error.contains("does not exist"), "{error}");
    assert!(error.contains("signing_key_encryption_key"), "{error}");
    assert!(
        error.contains("metrics is on without metrics_token"),
        "{error}"
    );
    assert!(
        !dir.join("absent.db").exists(),
        "no empty database is created"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// A rotated-in key is published in the JWKS of a running server at once and signs only
// after the lead; tokens signed by the old key keep verifying.
#[tokio::test]
async fn a_rotated_key_is_published_before_it_signs_and_an_unreadable_one_fails_readiness() {
    let dir = temp_dir("rotate");
    let mut config = mcpauth_server::Config::default();
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    let server = mcpauth_server::build(&config).await.unwrap();
    let first = server.engine.keys().current().kid().to_owned();
    let new = server.rotate_key("ES256").await.unwrap();
    assert_eq!(server.engine.keys().current().kid(), first);
    let published: Vec<String> = server.engine.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        published.contains(&new) && published.contains(&first),
        "{published:?}"
    );

    // A stored key this instance cannot read: the keys in use stay, and `/ready` says so.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ready_url = format!("http://{}/ready", listener.local_addr().unwrap());
    let router = server.router.clone();
    let serving = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let ready = || async { reqwest::get(&ready_url).await.unwrap().status() };
    assert_eq!(ready().await, StatusCode::OK);
    server
        .store
        .insert_signing_key("unreadable", "ES256", b"not a key", UnixTime(1))
        .await
        .unwrap();
    assert!(server.reload_keys().await.is_err());
    assert_eq!(server.engine.keys().current().kid(), first);
    assert_eq!(ready().await, StatusCode::SERVICE_UNAVAILABLE);
    assert!(server.store.delete_signing_key("unreadable").await.unwrap());
    server.reload_keys().await.unwrap();
    assert_eq!(ready().await, StatusCode::OK);
    serving.abort();

    server.store.close().await;
    // Another instance (or this one, after the lead) signs with the new key.
    config.key_rotation_lead = 0;
    let later = mcpauth_server::build(&config).await.unwrap();
    assert_eq!(later.engine.keys().current().kid(), new);
    assert!(later.engine.keys().find(&first).is_some());
    later.store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// Logs carry no secrets: a whole flow through the binary at debug level, logging JSON, and
// not one line holds the password, the code, a token, the session or a CSRF token.
#[tokio::test]
async fn debug_logs_in_json_carry_no_passwords_codes_tokens_or_cookies() {
    use tokio::io::AsyncWriteExt;
    let dir = temp_dir("logs");
    let password = "correct horse battery";
    let mut add = tokio::process::Command::new(binary())
        .args(["--create", "user", "add", "alice@example.com"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = add.stdin.take().unwrap();
    stdin.write_all(password.as_bytes()).await.unwrap();
    drop(stdin);
    assert!(add.wait().await.unwrap().success());

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log_path = dir.join("server.log");
    let mut child = tokio::process::Command::new(binary())
        .current_dir(&dir)
        .env("MCPAUTH_LISTEN", format!("127.0.0.1:{port}"))
        .env("MCPAUTH_LOG", "debug")
        .env("MCPAUTH_LOG_FORMAT", "json")
        .kill_on_drop(true)
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let server = Running {
        base: base.clone(),
        issuer: base.clone(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        stop: None,
        dir: dir.clone(),
    };
    for _ in 0..100 {
        if reqwest::get(format!("{base}/health")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A wrong password first, then the whole flow.
    let form = server.login_form().await;
    let wrong = server
        .attempt_sign_in(&form, "alice@example.com", "wrong horse battery")
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let client_id = server.register().await;
    let (started, cookie) = server
        .start_authorization(&server.authorize_url(&client_id), "")
        .await;
    let interaction = format!("{base}{}", location(&started));
    let cookie = server.sign_in(&interaction, &cookie).await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    let csrf = field(&html, "csrf_token");
    let approved = server
        .post_form(
            &format!("{interaction}/consent"),
            &cookie,
            &[("csrf_token", &csrf), ("decision", "approve")],
        )
        .await;
    let redirect = url::Url::parse(&location(&approved)).unwrap();
    let code = redirect
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let post_token =
        |form: &[(&str, &str)]| server.http.post(format!("{base}/token")).form(form).send();
    let redeem_code = || {
        post_token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", VERIFIER),
            ("resource", RESOURCE),
        ])
    };
    let tokens: Value = redeem_code().await.unwrap().json().await.unwrap();
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refreshed: Value = post_token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh_token),
        ("client_id", &client_id),
    ])
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let second_refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    // A replayed code (which also revokes the grant) is logged, without the code.
    let replay = redeem_code().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    let session = cookie_named(&cookie, "mcpauth_session");
    let session_value = session.split_once('=').unwrap().1.to_owned();
    let _ = child.kill().await;

    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.lines().count() > 5, "{logs}");
    for line in logs.lines() {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON line: {line}");
    }
    // The audit trail's lines: the wrong password, the sign-in and the consent, each with
    // the caller's address.
    let audit: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "mcpauth::audit")
        .collect();
    let seen: Vec<(&str, &str, &str)> = audit
        .iter()
        .map(|f| {
            (
                f["event"].as_str().unwrap_or_default(),
                f["outcome"].as_str().unwrap_or_default(),
                f["address"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("sign_in", "failure", "127.0.0.1"),
            ("sign_in", "success", "127.0.0.1"),
            ("consent", "success", "127.0.0.1"),
        ],
        "{audit:?}"
    );
    for (what, secret) in [
        ("the password", password),
        ("the wrong password", "wrong horse battery"),
        ("the code", code.as_str()),
        ("the access token", access_token.as_str()),
        ("the refresh token", refresh_token.as_str()),
        ("the rotated refresh token", second_refresh.as_str()),
        ("the session cookie", session_value.as_str()),
        ("the CSRF token", csrf.as_str()),
        ("the code verifier", VERIFIER),
    ] {
        assert!(!logs.contains(secret), "the logs hold {what}");
    }
}

// Each operator switch mcpauth-server hands to the engine takes effect in the running server
// at the value other than its default (every other test runs the defaults):
// `self_registration_grant_types`, `introspection_clients`, `legacy_assertion_audience` and
// `user_code_attempts_per_ip_per_minute`. Two instances share one database: clients
// registered at the first, on the defaults, meet the second, switched.
#[tokio::test]
async fn the_operator_switches_take_effect_in_the_running_server() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let dir = temp_dir("switches");
    let defaults = start_configured("", dir.clone(), |_| {}).await;
    let register = |server: &Running, body: Value| {
        let request = server
            .http
            .post(format!("{}/register", server.issuer))
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let with_refresh = serde_json::json!({
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "client_secret_basic",
    });
    let (status, confidential) = register(&defaults, with_refresh.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{confidential}");
    let key = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let signing = mcpauth_token_engine::SigningKey::es256_from_pkcs8_der(key.as_ref()).unwrap();
    let (status, jwt_client) = register(
        &defaults,
        serde_json::json!({
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": { "keys": [signing.public_jwk().unwrap()] },
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{jwt_client}");

    let switched = start_configured("", dir.clone(), |config| {
        config.self_registration_grant_types = vec!["authorization_code".into()];
        config.introspection_clients = vec![confidential["client_id"].as_str().unwrap().into()];
        config.legacy_assertion_audience = true;
        config.user_code_attempts_per_ip_per_minute = 1;
    })
    .await;

    // self_registration_grant_types: refresh_token is no longer on offer.
    let (status, refused) = register(&switched, with_refresh).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["error"], "invalid_client_metadata");

    // introspection_clients: the listed client may introspect there, not at the default.
    let introspect = |server: &Running| {
        server
            .http
            .post(format!("{}/introspect", server.issuer))
            .basic_auth(
                confidential["client_id"].as_str().unwrap(),
                confidential["client_secret"].as_str(),
            )
            .form(&[("token", "not-a-token")])
            .send()
    };
    assert_eq!(
        introspect(&defaults).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let answer = introspect(&switched).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.json::<Value>().await.unwrap()["active"], false);

    // legacy_assertion_audience: an assertion naming the token endpoint authenticates the
    // client only where the switch is on (a bogus refresh token is then invalid_grant).
    let client_id = jwt_client["client_id"].as_str().unwrap();
    let with_assertion = |server: &Running, jti: &str| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let assertion = es256_jwt(
            key.as_ref(),
            signing.kid(),
            &serde_json::json!({
                "iss": client_id, "sub": client_id, "aud": format!("{}/token", server.issuer),
                "jti": jti, "iat": now, "exp": now + 60,
            }),
        );
        server
            .http
            .post(format!("{}/token", server.issuer))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "not-a-refresh-token"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
    };
    let strict = with_assertion(&defaults, "jti-strict").await.unwrap();
    assert_eq!(strict.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        strict.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let legacy = with_assertion(&switched, "jti-legacy").await.unwrap();
    assert_eq!(legacy.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        legacy.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    // user_code_attempts_per_ip_per_minute: one wrong code a minute, then "too many"; the
    // default server takes a second wrong one.
    for (server, second) in [
        (&switched, StatusCode::TOO_MANY_REQUESTS),
        (&defaults, StatusCode::BAD_REQUEST),
    ] {
        let page = server.get(&format!("{}/device", server.issuer), "").await;
        let cookie = cookies(page.headers());
        let html = page.text().await.unwrap();
        let signed_in = server
            .post_form(
                &format!("{}/sign-in", server.base),
                &cookie,
                &[
                    ("csrf_token", &field(&html, "csrf_token")),
                    ("next", "device"),
                    ("user_code", ""),
                    ("email", "alice@example.com"),
                    ("password", "correct horse battery"),
                ],
            )
            .await;
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
        let cookie = format!("{cookie}; {}", cookies(signed_in.headers()));
        let entry = server
            .get(&format!("{}/device", server.issuer), &cookie)
            .await
            .text()
            .await
            .unwrap();
        let csrf = field(&entry, "csrf_token");
        let url = format!("{}/device/code", server.base);
        let form = [("csrf_token", csrf.as_str()), ("user_code", "BCDF-GHJK")];
        let first = server.post_form(&url, &cookie, &form).await;
        assert_eq!(first.status(), StatusCode::BAD_REQUEST);
        let again = server.post_form(&url, &cookie, &form).await;
        assert_eq!(again.status(), second);
    }
}

// A port another program holds fails the start before anything is created: no database
// file, no signing key.
#[tokio::test]
async fn a_port_in_use_fails_before_the_database_is_created() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = temp_dir("port-in-use");
    let database = dir.join("mcpauth.db");
    let mut config = mcpauth_server::Config::default();
    config.listen = taken.local_addr().unwrap();
    config.database_url = format!("sqlite://{}", database.display());
    let error = mcpauth_server::serve(config, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(error, mcpauth_server::StartError::Io { .. }),
        "{error:?}"
    );
    assert!(
        !database.exists(),
        "the database was created before the port was tried"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// A person who opens the server in a browser learns what it is and where to go: the home page
// at the issuer's path links to the account and device pages and the metadata.
#[tokio::test]
async fn the_home_page_says_what_the_server_is_and_links_to_the_account_and_device_pages() {
    for path in ["", "/tenant"] {
        let server = start_with(path, temp_dir("home")).await;
        let home = server
            .http
            .get(format!(
                "{}{}",
                server.base,
                if path.is_empty() { "/" } else { path }
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(home.status(), StatusCode::OK);
        assert!(
            home.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = home.text().await.unwrap();
        for link in [
            format!("href=\"{path}/account\""),
            format!("href=\"{path}/device\""),
            format!(
                "{}/.well-known/oauth-authorization-server{path}",
                server.base
            ),
        ] {
            assert!(html.contains(&link), "{link} in {html}");
        }
    }
}

// The home page takes the issuer's path, so an issuer path that is one of the server's own
// routes is refused at start, named.
#[tokio::test]
async fn an_issuer_path_that_is_one_of_the_servers_own_routes_is_refused() {
    let dir = temp_dir("reserved-path");
    let mut config = mcpauth_server::Config::default();
    config.issuer = Some("http://127.0.0.1:9/health".into());
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    let error = mcpauth_server::build(&config)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("`/health` is one of the server's own routes"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
