//! The Shared Signals transmitter (SSF 1.0, RFC 8936 poll) over HTTP: who may create and poll
//! streams (resource servers, each its own), and that every change that ends access reaches a
//! stream as a signed Security Event Token until acknowledged.

use super::*;

/// A client the operator registers on the running server's database (as `mcpauth-server
/// client add` does, from another process): its id and secret.
async fn operator_client(server: &Running, name: &str, resource_server: bool) -> (String, String) {
    let mut config = mcpauth_server::Config::default();
    config.issuer = Some(server.issuer.clone());
    config.database_url = format!("sqlite://{}", server.dir.join("mcpauth.db").display());
    let admin = mcpauth_server::build(&config).await.unwrap();
    let mut client = mcpauth_server::admin::NewClient::new(name);
    client.resource_server = resource_server;
    let registered = mcpauth_server::admin::add_client(&admin.engine, client)
        .await
        .unwrap();
    admin.store.close().await;
    (registered.client_id, registered.client_secret.unwrap())
}

impl Running {
    async fn ssf(
        &self,
        method: reqwest::Method,
        path: &str,
        credentials: Option<&(String, String)>,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.issuer));
        if let Some((id, secret)) = credentials {
            request = request.basic_auth(id, Some(secret));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// Polls `stream` as `receiver`, acknowledging `ack`: the SETs by `jti`.
    async fn poll_stream(
        &self,
        stream: &str,
        receiver: &(String, String),
        ack: &[String],
    ) -> serde_json::Map<String, Value> {
        let (status, _, body) = self
            .ssf(
                reqwest::Method::POST,
                &format!("/ssf/poll/{stream}"),
                Some(receiver),
                Some(serde_json::json!({ "ack": ack, "returnImmediately": true })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["sets"].as_object().unwrap().clone()
    }
}

/// The claims of `set`, checked as a receiver checks them: signed by one of the issuer's
/// keys, `typ: secevent+jwt`.
async fn verified_set(server: &Running, set: &str) -> Value {
    let header = jsonwebtoken::decode_header(set).unwrap();
    assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
    let jwks: jsonwebtoken::jwk::JwkSet = server
        .http
        .get(format!("{}/jwks.json", server.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    validation.validate_aud = false;
    validation.set_issuer(&[&server.issuer]);
    jsonwebtoken::decode::<Value>(
        set,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap()
    .claims
}

#[tokio::test]
async fn only_a_resource_server_creates_and_polls_streams_and_only_its_own() {
    let server = start().await;
    let receiver = operator_client(&server, "MCP server", true).await;
    let other_receiver = operator_client(&server, "Another MCP server", true).await;
    let plain = operator_client(&server, "A machine client", false).await;

    // The transmitter's metadata (SSF §7.1) is public.
    let (status, _, configuration) = server
        .ssf(
            reqwest::Method::GET,
            "/.well-known/ssf-configuration",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(configuration["issuer"], server.issuer.as_str());
    assert_eq!(
        configuration["delivery_methods_supported"],
        serde_json::json!(["urn:ietf:rfc:8936"])
    );
    assert_eq!(
        configuration["configuration_endpoint"],
        format!("{}/ssf/streams", server.issuer)
    );

    // Anonymous, wrong secret, not a resource server: nothing.
    let create = serde_json::json!({ "delivery": { "method": "urn:ietf:rfc:8936" } });
    let (status, headers, body) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/streams",
            None,
            Some(create.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let wrong = (receiver.0.clone(), "not-the-secret".to_owned());
    let (status, _, _) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/streams",
            Some(&wrong),
            Some(create.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/streams",
            Some(&plain),
            Some(create.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Push delivery is not offered.
    let (status, _, _) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/streams",
            Some(&receiver),
            Some(serde_json::json!({ "delivery": { "method": "urn:ietf:rfc:8935" } })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The resource server's stream.
    let (status, _, stream) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/streams",
            Some(&receiver),
            Some(create),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    let stream_id = stream["stream_id"].as_str().unwrap().to_owned();
    assert_eq!(stream["aud"], receiver.0.as_str());
    assert_eq!(stream["iss"], server.issuer.as_str());
    assert_eq!(stream["delivery"]["method"], "urn:ietf:rfc:8936");
    assert_eq!(
        stream["delivery"]["endpoint_url"],
        format!("{}/ssf/poll/{stream_id}", server.issuer)
    );
    let (status, _, read) = server
        .ssf(
            reqwest::Method::GET,
            &format!("/ssf/streams?stream_id={stream_id}"),
            Some(&receiver),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["stream_id"], stream_id.as_str());

    // Another receiver, or anyone else, cannot read, poll or delete it.
    for (method, path) in [
        (
            reqwest::Method::GET,
            format!("/ssf/streams?stream_id={stream_id}"),
        ),
        (reqwest::Method::POST, format!("/ssf/poll/{stream_id}")),
        (
            reqwest::Method::DELETE,
            format!("/ssf/streams?stream_id={stream_id}"),
        ),
    ] {
        let (status, _, _) = server
            .ssf(method.clone(), &path, Some(&other_receiver), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        let (status, _, _) = server.ssf(method.clone(), &path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        let (status, _, _) = server.ssf(method.clone(), &path, Some(&plain), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    assert!(
        server
            .poll_stream(&stream_id, &receiver, &[])
            .await
            .is_empty()
    );

    // Deleted by its receiver: gone.
    let (status, _, _) = server
        .ssf(
            reqwest::Method::DELETE,
            &format!("/ssf/streams?stream_id={stream_id}"),
            Some(&receiver),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = server
        .ssf(
            reqwest::Method::POST,
            &format!("/ssf/poll/{stream_id}"),
            Some(&receiver),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_revoked_grant_and_a_disabled_user_reach_the_stream_as_signed_events_until_acknowledged()
{
    let server = start().await;
    let receiver = operator_client(&server, "MCP server", true).await;
    let (_, _, stream) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/streams",
            Some(&receiver),
            Some(serde_json::json!({ "description": "the example MCP server" })),
        )
        .await;
    let stream_id = stream["stream_id"].as_str().unwrap().to_owned();

    // Alice signs in; the client logs out (RFC 7009 on the refresh token).
    let (client_id, code) = server.fresh_code(&[]).await;
    let tokens: Value = server.redeem_code(&client_id, &code).await;
    let access = tokens["access_token"].as_str().unwrap();
    let grant_id = serde_json::from_slice::<Value>(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            access.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap()["jti"]
        .as_str()
        .unwrap()
        .split_once('.')
        .unwrap()
        .0
        .to_owned();
    let revoked = server
        .http
        .post(format!("{}/revoke", server.issuer))
        .form(&[
            ("token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);

    let sets = server.poll_stream(&stream_id, &receiver, &[]).await;
    assert_eq!(sets.len(), 1, "{sets:?}");
    let (jti, set) = sets.iter().next().unwrap();
    let claims = verified_set(&server, set.as_str().unwrap()).await;
    assert_eq!(claims["jti"], jti.as_str());
    assert_eq!(claims["aud"], receiver.0.as_str());
    let session_revoked = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
    assert!(
        claims["events"][session_revoked]["event_timestamp"].is_u64(),
        "{claims}"
    );
    assert_eq!(claims["sub_id"]["format"], "complex");
    assert_eq!(claims["sub_id"]["session"]["id"], grant_id.as_str());
    assert_eq!(claims["sub_id"]["application"]["id"], client_id.as_str());
    assert_eq!(claims["sub_id"]["user"]["format"], "iss_sub");
    // Not acknowledged: delivered again. Acknowledged: gone.
    assert_eq!(
        server.poll_stream(&stream_id, &receiver, &[]).await.len(),
        1
    );
    assert!(
        server
            .poll_stream(&stream_id, &receiver, std::slice::from_ref(jti))
            .await
            .is_empty()
    );

    // The operator disables alice (from another process, on the same database).
    let store = mcpauth_store_sql::SqlStore::connect(&format!(
        "sqlite://{}",
        server.dir.join("mcpauth.db").display()
    ))
    .await
    .unwrap();
    mcpauth_server::admin::disable_user(&store, "alice@example.com")
        .await
        .unwrap();
    store.close().await;
    let sets = server.poll_stream(&stream_id, &receiver, &[]).await;
    let disabled = "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
    let mut kinds = Vec::new();
    for set in sets.values() {
        let claims = verified_set(&server, set.as_str().unwrap()).await;
        kinds.extend(claims["events"].as_object().unwrap().keys().cloned());
        if claims["events"].get(disabled).is_some() {
            assert_eq!(claims["sub_id"]["format"], "iss_sub");
            assert_eq!(claims["sub_id"]["iss"], server.issuer.as_str());
        }
    }
    assert_eq!(kinds, [disabled], "its grants were revoked already");
    // An event the receiver reports it could not process (RFC 8936 setErrs) is not sent again.
    let jti = sets.keys().next().unwrap().clone();
    let (status, _, body) = server
        .ssf(
            reqwest::Method::POST,
            &format!("/ssf/poll/{stream_id}"),
            Some(&receiver),
            Some(serde_json::json!({
                "setErrs": { jti: { "err": "invalid_request", "description": "test" } },
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["sets"].as_object().unwrap().is_empty(), "{body}");
    // The operator sees the polls and deliveries in /metrics.
    let metrics = server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    assert_eq!(value("mcpauth_ssf_polls_total"), 5);
    assert_eq!(
        value("mcpauth_ssf_events_delivered_total"),
        3,
        "the logout twice (not acknowledged the first time), then the disabling"
    );
    assert!(value("mcpauth_ssf_last_poll_timestamp_seconds") > 1_700_000_000);
    value("mcpauth_ssf_delivery_lag_seconds");
}

#[tokio::test]
async fn streams_deliver_what_was_asked_and_a_receiver_never_runs_out_of_streams() {
    let server = start().await;
    let receiver = operator_client(&server, "MCP server", true).await;
    let disabled = "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
    let create = |body: Value| {
        let server = &server;
        let receiver = &receiver;
        async move {
            server
                .ssf(
                    reqwest::Method::POST,
                    "/ssf/streams",
                    Some(receiver),
                    Some(body),
                )
                .await
        }
    };
    // Only what it asked for, of what is supported.
    let (status, _, only_disabled) =
        create(serde_json::json!({ "events_requested": [disabled] })).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        only_disabled["events_delivered"],
        serde_json::json!([disabled])
    );
    assert_eq!(only_disabled["inactivity_timeout"], 3600);
    let (status, _, _) =
        create(serde_json::json!({ "events_requested": ["https://example.com/nothing-we-send"] }))
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = create(serde_json::json!({ "description": "d".repeat(257) })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = server
        .ssf(reqwest::Method::POST, "/ssf/streams", Some(&receiver), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no JSON body");

    // Listing (SSF §8.1.1.2, no stream_id): the receiver's streams.
    let (status, _, listed) = server
        .ssf(reqwest::Method::GET, "/ssf/streams", Some(&receiver), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Instances that restart without deleting their streams: at 64 the stalest is replaced,
    // never the new one refused.
    let mut newest = String::new();
    for _ in 0..64 {
        let (status, _, created) = create(serde_json::json!({})).await;
        assert_eq!(status, StatusCode::CREATED);
        newest = created["stream_id"].as_str().unwrap().to_owned();
    }
    let (_, _, listed) = server
        .ssf(reqwest::Method::GET, "/ssf/streams", Some(&receiver), None)
        .await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stream_id"].as_str().unwrap())
        .collect();
    // (All were polled as long ago here: any of them may be the one replaced.)
    assert_eq!(ids.len(), 64);
    assert!(ids.contains(&newest.as_str()));
}

/// A receiver's push endpoint (RFC 8935) for the tests: records each push (its
/// `Authorization`, `Content-Type` and body) and answers with the status and body `answer`
/// holds.
struct PushReceiver {
    origin: String,
    pushes: tokio::sync::mpsc::UnboundedReceiver<(Option<String>, Option<String>, String)>,
    answer: Arc<std::sync::Mutex<(u16, &'static str)>>,
}

impl PushReceiver {
    async fn start() -> Self {
        let (sender, pushes) = tokio::sync::mpsc::unbounded_channel();
        let answer = Arc::new(std::sync::Mutex::new((202, "")));
        let status = answer.clone();
        let app = axum::Router::new().route(
            "/ssf/push",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: String| async move {
                    let header = |name| {
                        headers
                            .get(name)
                            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    let _ = sender.send((header("authorization"), header("content-type"), body));
                    let (code, body) = *status.lock().unwrap();
                    let mut response = axum::response::IntoResponse::into_response((
                        axum::http::StatusCode::from_u16(code).unwrap(),
                        body,
                    ));
                    if code == 302 {
                        // Back to this very endpoint: followed, it would be recorded again.
                        response.headers_mut().insert(
                            "location",
                            axum::http::HeaderValue::from_static("/ssf/push"),
                        );
                    }
                    response
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            origin,
            pushes,
            answer,
        }
    }

    /// Answers the next pushes with `status` and `body`.
    fn answer(&self, status: u16, body: &'static str) {
        *self.answer.lock().unwrap() = (status, body);
    }

    /// The next push, within five seconds.
    async fn next(&mut self) -> (Option<String>, Option<String>, String) {
        tokio::time::timeout(Duration::from_secs(5), self.pushes.recv())
            .await
            .expect("a push within five seconds")
            .unwrap()
    }

    /// Whether a push arrives within `millis`.
    async fn quiet_for(&mut self, millis: u64) -> bool {
        tokio::time::timeout(Duration::from_millis(millis), self.pushes.recv())
            .await
            .is_err()
    }
}

#[tokio::test]
async fn push_streams_reach_only_listed_origins_and_each_event_is_posted_until_taken() {
    let mut receiver_endpoint = PushReceiver::start().await;
    let push_url = format!("{}/ssf/push", receiver_endpoint.origin);
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let origins = vec![receiver_endpoint.origin.clone()];
    let server = start_timed("", temp_dir("ssf-push"), clock.clone(), move |config| {
        config.ssf_push_origins = origins;
    })
    .await;
    let receiver = operator_client(&server, "MCP server", true).await;
    let other_receiver = operator_client(&server, "Another MCP server", true).await;

    let (_, _, configuration) = server
        .ssf(
            reqwest::Method::GET,
            "/.well-known/ssf-configuration",
            None,
            None,
        )
        .await;
    assert_eq!(
        configuration["delivery_methods_supported"],
        serde_json::json!(["urn:ietf:rfc:8936", "urn:ietf:rfc:8935"])
    );
    assert_eq!(
        configuration["verification_endpoint"],
        format!("{}/ssf/verify", server.issuer)
    );

    // Where the operator did not list, nothing is pushed: not another port, not the cloud's
    // metadata service, not a URL with credentials or without an endpoint.
    let push = |delivery: Value| serde_json::json!({ "delivery": delivery });
    for (delivery, why) in [
        (
            serde_json::json!({ "method": "urn:ietf:rfc:8935", "endpoint_url": "http://127.0.0.1:1/ssf/push" }),
            "ssf_push_origins",
        ),
        (
            serde_json::json!({ "method": "urn:ietf:rfc:8935", "endpoint_url": "http://169.254.169.254/latest" }),
            "ssf_push_origins",
        ),
        (
            serde_json::json!({ "method": "urn:ietf:rfc:8935" }),
            "endpoint_url",
        ),
        (
            serde_json::json!({
                "method": "urn:ietf:rfc:8935",
                "endpoint_url": push_url.replace("http://", "http://user:pw@"),
            }),
            "credentials",
        ),
        (
            serde_json::json!({
                "method": "urn:ietf:rfc:8935",
                "endpoint_url": push_url,
                "authorization_header": "Bearer a\nb",
            }),
            "authorization_header",
        ),
        (
            serde_json::json!({ "method": "urn:example:carrier-pigeon" }),
            "delivery.method",
        ),
    ] {
        let (status, _, body) = server
            .ssf(
                reqwest::Method::POST,
                "/ssf/streams",
                Some(&receiver),
                Some(push(delivery)),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error_description"].as_str().unwrap().contains(why),
            "{body}"
        );
    }
    // Anonymous callers create nothing, push or not.
    let (status, _, _) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/streams",
            None,
            Some(push(serde_json::json!({
                "method": "urn:ietf:rfc:8935", "endpoint_url": push_url,
            }))),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _, created) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/streams",
            Some(&receiver),
            Some(push(serde_json::json!({
                "method": "urn:ietf:rfc:8935",
                "endpoint_url": push_url,
                "authorization_header": "Bearer push-credential",
            }))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let stream_id = created["stream_id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["delivery"],
        serde_json::json!({ "method": "urn:ietf:rfc:8935", "endpoint_url": push_url })
    );
    assert!(
        !created.to_string().contains("push-credential"),
        "the receiver's credential is not repeated"
    );
    // A pushed stream is not polled.
    let (status, _, _) = server
        .ssf(
            reqwest::Method::POST,
            &format!("/ssf/poll/{stream_id}"),
            Some(&receiver),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Verification (SSF §8.1.4): only the stream's own receiver may ask.
    let verify = |state: &str| serde_json::json!({ "stream_id": stream_id, "state": state });
    let (status, _, _) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/verify",
            None,
            Some(verify("s0")),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/verify",
            Some(&other_receiver),
            Some(verify("s0")),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let plain = operator_client(&server, "Not a resource server", false).await;
    let (status, _, _) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/verify",
            Some(&plain),
            Some(verify("s0")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(receiver_endpoint.quiet_for(600).await, "nothing was pushed");

    // Delivered: posted as a SET with the receiver's credential, once.
    let (status, _, _) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/verify",
            Some(&receiver),
            Some(verify("s1")),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (authorization, content_type, set) = receiver_endpoint.next().await;
    assert_eq!(authorization.as_deref(), Some("Bearer push-credential"));
    assert_eq!(content_type.as_deref(), Some("application/secevent+jwt"));
    let claims = verified_set(&server, &set).await;
    assert_eq!(claims["aud"], receiver.0.as_str());
    assert_eq!(
        claims["sub_id"],
        serde_json::json!({ "format": "opaque", "id": stream_id })
    );
    assert_eq!(
        claims["events"]["https://schemas.openid.net/secevent/ssf/event-type/verification"],
        serde_json::json!({ "state": "s1" })
    );
    assert!(receiver_endpoint.quiet_for(600).await, "delivered once");
    // At most one verification request a second (min_verification_interval).
    let (status, _, _) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/verify",
            Some(&receiver),
            Some(verify("again")),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    clock.advance(1);

    // The receiver fails (a 503, a redirect, which is not followed, a 400 without `err`):
    // the event waits out each backoff (1 s, 2 s, 4 s: the clock steps past them) and is
    // posted again until taken.
    receiver_endpoint.answer(503, "");
    let (status, _, _) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/verify",
            Some(&receiver),
            Some(verify("s2")),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, _, first_try) = receiver_endpoint.next().await;
    let jti = verified_set(&server, &first_try).await["jti"].clone();
    assert!(
        receiver_endpoint.quiet_for(600).await,
        "not again before the backoff"
    );
    for (answer, body, wait) in [(302, "", 1), (400, "not json", 2), (202, "", 4)] {
        receiver_endpoint.answer(answer, body);
        clock.advance(wait - 1);
        assert!(
            receiver_endpoint.quiet_for(400).await,
            "not before {wait} s"
        );
        clock.advance(1);
        let (_, _, again) = receiver_endpoint.next().await;
        assert_eq!(verified_set(&server, &again).await["jti"], jti);
        assert!(
            receiver_endpoint.quiet_for(600).await,
            "{answer}: a redirect is not followed, and each try is one post"
        );
    }

    // A receiver that refuses an event for good (400 with `err`) does not get it again; a
    // real event (a client removed by the operator) goes out like the others.
    receiver_endpoint.answer(
        400,
        r#"{"err":"invalid_key","description":"not a key of ours"}"#,
    );
    let (status, _, _) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/verify",
            Some(&receiver),
            Some(verify("s3")),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    receiver_endpoint.next().await;
    clock.advance(120);
    assert!(receiver_endpoint.quiet_for(600).await, "refused: not again");
    receiver_endpoint.answer(202, "");
    let (machine, _) = operator_client(&server, "A machine client", false).await;
    let mut config = mcpauth_server::Config::default();
    config.issuer = Some(server.issuer.clone());
    config.database_url = format!("sqlite://{}", server.dir.join("mcpauth.db").display());
    let admin = mcpauth_server::build(&config).await.unwrap();
    assert!(
        mcpauth_server::admin::remove_client(&admin.engine, &machine)
            .await
            .unwrap()
    );
    admin.store.close().await;
    let (_, _, removed) = receiver_endpoint.next().await;
    let claims = verified_set(&server, &removed).await;
    assert_eq!(
        claims["sub_id"]["application"]["id"],
        machine.as_str(),
        "{claims}"
    );

    let metrics = server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (outcome, at_least) in [("delivered", 3), ("refused", 1), ("failed", 3)] {
        let line = format!("mcpauth_ssf_pushes_total{{outcome=\"{outcome}\"}} ");
        let count: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{line} missing:\n{metrics}"));
        assert!(count >= at_least, "{outcome}: {count}");
    }
}

#[tokio::test]
async fn without_push_origins_push_delivery_is_refused_and_not_advertised() {
    let server = start().await;
    let receiver = operator_client(&server, "MCP server", true).await;
    let (status, _, body) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/streams",
            Some(&receiver),
            Some(serde_json::json!({ "delivery": {
                "method": "urn:ietf:rfc:8935",
                "endpoint_url": "http://127.0.0.1:1/ssf/push",
            } })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not enabled on this server"),
        "{body}"
    );
    // Verification on a polled stream arrives with the next poll.
    let (_, _, created) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/streams",
            Some(&receiver),
            Some(serde_json::json!({})),
        )
        .await;
    let stream_id = created["stream_id"].as_str().unwrap();
    let (status, _, _) = server
        .ssf(
            reqwest::Method::POST,
            "/ssf/verify",
            Some(&receiver),
            Some(serde_json::json!({ "stream_id": stream_id, "state": "polled" })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let sets = server.poll_stream(stream_id, &receiver, &[]).await;
    let verifications: Vec<Value> = futures::future::join_all(
        sets.values()
            .map(|set| verified_set(&server, set.as_str().unwrap())),
    )
    .await
    .into_iter()
    .filter_map(|claims| {
        claims["events"]
            .get("https://schemas.openid.net/secevent/ssf/event-type/verification")
            .cloned()
    })
    .collect();
    assert_eq!(verifications, [serde_json::json!({ "state": "polled" })]);
}
