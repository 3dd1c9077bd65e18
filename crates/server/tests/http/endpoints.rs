//! The protocol endpoints over HTTP: metadata at an issuer path, the token endpoint's headers,
//! registration and its management, metadata documents, the device page, per-address limits, the
//! provider chooser.

use super::*;

// RFC 8414 §3.1: an issuer with a path publishes its metadata at the path-inserted URL, and
// the endpoints live under the issuer's path.
#[tokio::test]
async fn issuer_with_a_path_uses_path_inserted_metadata() {
    let server = start_with("/tenant1", temp_dir("tenant")).await;
    let response = server
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server/tenant1",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let metadata: Value = response.json().await.unwrap();
    assert_eq!(metadata["issuer"], server.issuer.as_str());
    assert_eq!(
        metadata["token_endpoint"],
        format!("{}/token", server.issuer)
    );
    assert_eq!(
        server
            .http
            .get(format!("{}/jwks.json", server.issuer))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

// RFC 6749 §5.1: Cache-Control: no-store on token responses, over HTTP.
#[tokio::test]
async fn token_endpoint_answers_no_store_and_json_errors() {
    let server = start().await;
    let response = server
        .http
        .post(format!("{}/token", server.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("client_id", "nobody"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    let wrong_type = server
        .http
        .post(format!("{}/token", server.issuer))
        .json(&serde_json::json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), StatusCode::BAD_REQUEST);
}

// RFC 7592 over HTTP: the registration_client_uri answers GET with the registration token and
// DELETE removes the client.
#[tokio::test]
async fn registration_management_is_served_at_the_registration_client_uri() {
    let server = start().await;
    let registered: Value = server
        .http
        .post(format!("{}/register", server.issuer))
        .json(&serde_json::json!({ "redirect_uris": [REDIRECT], "client_name": "Managed" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uri = registered["registration_client_uri"].as_str().unwrap();
    let token = registered["registration_access_token"].as_str().unwrap();
    let read = server
        .http
        .get(uri)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(
        read.json::<Value>().await.unwrap()["client_name"],
        "Managed"
    );
    assert_eq!(
        server.http.get(uri).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server
            .http
            .delete(uri)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        server
            .http
            .get(uri)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

// Registration abuse limits over HTTP: the per-IP limit keys on the peer address the server
// sees, and the initial access token is required when configured.
#[tokio::test]
async fn registration_is_limited_per_ip_and_can_require_a_token() {
    let server = start_configured("", temp_dir("limits"), |c| {
        c.registrations_per_ip_per_hour = 1;
    })
    .await;
    let body = serde_json::json!({ "redirect_uris": [REDIRECT] });
    let register = || {
        server
            .http
            .post(format!("{}/register", server.issuer))
            .json(&body)
            .send()
    };
    assert_eq!(register().await.unwrap().status(), StatusCode::CREATED);
    let limited = register().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get("retry-after").is_some());

    let protected = start_configured("", temp_dir("iat"), |c| {
        c.registration_token = Some("operator-issued".into());
    })
    .await;
    let url = format!("{}/register", protected.issuer);
    assert_eq!(
        protected
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        protected
            .http
            .post(&url)
            .bearer_auth("operator-issued")
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
}

// RFC 6750 §2.1: a registration token no client could send as `Authorization: Bearer` would
// close /register for good; the server refuses to start with one, and says why.
#[tokio::test]
async fn a_registration_token_outside_bearer_syntax_is_refused_at_start() {
    for token in [
        "has a space in it and is long enough",
        "quote\"d-but-long-enough-token-xx",
    ] {
        let mut config = mcpauth_server::Config::default();
        config.registration_token = Some(token.into());
        let Err(error) = mcpauth_server::build(&config).await else {
            panic!("{token:?} was accepted");
        };
        assert!(
            matches!(error, mcpauth_server::StartError::Config { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("registration_token"), "{error}");
    }
}

// Client ID Metadata Documents: advertised, and a document URL that points inside the network
// is refused by the SSRF-safe fetcher with an error page, never a redirect.
#[tokio::test]
async fn metadata_document_urls_pointing_inside_the_network_are_refused() {
    let server = start().await;
    let metadata: Value = server
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            server.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["client_id_metadata_document_supported"], true);
    for client_id in [
        "https://127.0.0.1:9/client.json",
        "https://169.254.169.254/latest/client.json",
        "https://10.0.0.7/client.json",
    ] {
        let response = server
            .http
            .get(server.authorize_url(client_id))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{client_id}");
        assert!(response.headers().get(LOCATION).is_none());
        let html = response.text().await.unwrap();
        assert!(
            html.contains("private, loopback or reserved address"),
            "{html}"
        );
    }
}

// RFC 8628 §3.3: the user opens `verification_uri_complete`, signs in, confirms the code
// and approves; the device's next poll gets tokens. Wrong codes are refused with the form
// shown again.
#[tokio::test]
async fn the_device_page_signs_in_and_approves_a_device_code() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let server = start_timed("", temp_dir("device"), clock.clone(), |_| {}).await;
    let client: Value = server
        .http
        .post(format!("{}/register", server.issuer))
        .json(&serde_json::json!({
            "client_name": "Kitchen <TV>",
            "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let device: Value = server
        .http
        .post(format!("{}/device_authorization", server.issuer))
        .form(&[("client_id", client_id.as_str()), ("resource", RESOURCE)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        device["verification_uri"],
        format!("{}/device", server.issuer)
    );
    let complete = device["verification_uri_complete"].as_str().unwrap();
    let user_code = device["user_code"].as_str().unwrap();

    // Signed out: the sign-in form, carrying the code through.
    let page = server.get(complete, "").await;
    let cookie = cookies(page.headers());
    assert!(cookie.starts_with("mcpauth_form="), "{cookie}");
    let html = page.text().await.unwrap();
    assert_eq!(field(&html, "user_code"), user_code);
    let signed_in = server
        .post_form(
            &format!("{}/sign-in", server.base),
            &cookie,
            &[
                ("csrf_token", &field(&html, "csrf_token")),
                ("next", "device"),
                ("user_code", user_code),
                ("email", "alice@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = format!("{cookie}; {}", cookies(signed_in.headers()));
    let confirm = format!("{}{}", server.base, location(&signed_in));

    // Back with a session: the code-entry form, filled in; nothing looked up yet.
    let entry = server.get(&confirm, &cookie).await;
    assert_eq!(entry.status(), StatusCode::OK);
    let entry = entry.text().await.unwrap();
    assert_eq!(field(&entry, "user_code"), user_code);
    let csrf = field(&entry, "csrf_token");
    let lookup = |code: &str, token: &str| {
        let (code, token) = (code.to_owned(), token.to_owned());
        let cookie = cookie.clone();
        let server = &server;
        async move {
            server
                .post_form(
                    &format!("{}/device/code", server.base),
                    &cookie,
                    &[("csrf_token", &token), ("user_code", &code)],
                )
                .await
        }
    };
    // The code form carries a CSRF token: without it, nothing is looked up.
    let forged = lookup(user_code, "not-the-token").await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    // The confirmation shows the code, the client (escaped) and how verified it is.
    let html = lookup(user_code, &csrf).await.text().await.unwrap();
    assert!(html.contains(user_code), "{html}");
    assert!(html.contains("Kitchen &#60;TV&#62;") || html.contains("Kitchen &lt;TV&gt;"));
    assert!(html.contains("unverified: it registered itself"), "{html}");

    // A mistyped code: the entry form again, with an error.
    let wrong = lookup("BBBB-BBBB", &csrf).await;
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert!(wrong.text().await.unwrap().contains("not valid"));

    let poll = || {
        server
            .http
            .post(format!("{}/token", server.issuer))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device["device_code"].as_str().unwrap()),
                ("client_id", client_id.as_str()),
            ])
            .send()
    };
    let pending: Value = poll().await.unwrap().json().await.unwrap();
    assert_eq!(pending["error"], "authorization_pending");

    let approved = server
        .post_form(
            &format!("{}/device", server.base),
            &cookie,
            &[
                ("csrf_token", &field(&html, "csrf_token")),
                ("user_code", user_code),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(approved.status(), StatusCode::OK);
    assert!(approved.text().await.unwrap().contains("Device connected"));

    // Polling too soon after the first poll is slow_down; wait out the interval.
    clock.advance(5);
    let tokens = poll().await.unwrap();
    assert_eq!(tokens.status(), StatusCode::OK);
    let tokens: Value = tokens.json().await.unwrap();
    assert!(tokens["access_token"].is_string(), "{tokens}");
}

// Per-address limits on the token, revocation and device-authorization endpoints, counted in
// the database: over the limit, 429 with Retry-After and an RFC 6749-shaped JSON error.
#[tokio::test]
async fn token_and_device_requests_are_limited_per_address() {
    let server = start_configured("", temp_dir("limits"), |config| {
        config.token_requests_per_ip_per_minute = 3;
        config.device_authorizations_per_ip_per_minute = 2;
    })
    .await;
    let token = || {
        server
            .http
            .post(format!("{}/token", server.issuer))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
            ])
            .send()
    };
    // A browser's CORS preflights are not requests for a token: they use none of the budget.
    for _ in 0..5 {
        let preflight = server
            .http
            .request(reqwest::Method::OPTIONS, format!("{}/token", server.issuer))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert!(preflight.status().is_success(), "{}", preflight.status());
    }
    for _ in 0..3 {
        assert_eq!(token().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let limited = token().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    // A browser-based client can read why, as it reads the endpoint's own answers.
    assert_eq!(limited.headers()["access-control-allow-origin"], "*");
    assert_eq!(limited.headers()["x-content-type-options"], "nosniff");
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait));
    assert_eq!(limited.headers()["cache-control"], "no-store");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");

    // Revocation authenticates clients too: its own count, the same limit.
    let revoke = || {
        server
            .http
            .post(format!("{}/revoke", server.issuer))
            .form(&[("token", "t"), ("client_id", "nobody")])
            .send()
    };
    for _ in 0..3 {
        assert_eq!(revoke().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        revoke().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );

    let device = || {
        server
            .http
            .post(format!("{}/device_authorization", server.issuer))
            .form(&[("client_id", "nobody")])
            .send()
    };
    for _ in 0..2 {
        assert_ne!(
            device().await.unwrap().status(),
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    assert_eq!(
        device().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let metrics = server
        .get(&format!("{}/metrics", server.base), "")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mcpauth_rate_limited_total{endpoint=\"token\"} 1"),
        "{metrics}"
    );
}

// With providers: the chooser is the consent (before anyone is sent upstream), password
// sign-in can be off, continuing takes the interaction once and sends the browser upstream
// with our own state and PKCE and a cookie binding the callback to it, Deny needs no
// sign-in, and a callback with a forged state is refused with a page, redirecting nowhere.
#[tokio::test]
async fn the_provider_chooser_consents_before_sending_the_user_upstream() {
    let server = start_configured("", temp_dir("chooser"), |config| {
        config.providers = vec![
            mcpauth_proxy::ProviderConfig::new("github", mcpauth_proxy::Preset::GitHub, "gh-id")
                .client_secret("gh-secret"),
        ];
        config.password_login = false;
    })
    .await;
    let (interaction, cookie) = server.begin().await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Authorize &#60;b&#62;Evil&#60;/b&#62; &#38; Co?"),
        "{html}"
    );
    assert!(html.contains("Continue with GitHub"), "{html}");
    assert!(
        !html.contains("type=\"password\""),
        "password sign-in is off: {html}"
    );
    let csrf = field(&html, "csrf_token");

    // Password sign-in is refused outright.
    let refused = server
        .post_form(
            &format!("{interaction}/login"),
            &cookie,
            &[
                ("csrf_token", csrf.as_str()),
                ("email", "alice@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // Without the form's token: refused, nothing taken.
    let forged = server
        .post_form(
            &format!("{interaction}/upstream/github"),
            &cookie,
            &[("csrf_token", "forged")],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let upstream = server
        .post_form(
            &format!("{interaction}/upstream/github"),
            &cookie,
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(upstream.status(), StatusCode::SEE_OTHER);
    let sent_to = url::Url::parse(&location(&upstream)).unwrap();
    assert_eq!(
        sent_to.as_str().split('?').next().unwrap(),
        "https://github.com/login/oauth/authorize"
    );
    let query: std::collections::HashMap<String, String> =
        sent_to.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], "gh-id");
    assert_eq!(
        query["redirect_uri"],
        format!("{}/upstream/github/callback", server.issuer)
    );
    assert_eq!(query["code_challenge_method"], "S256");
    assert_ne!(query["state"], "s1", "our own state, not the client's");
    let binding = upstream
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("mcpauth_upstream_"))
        .expect("a binding cookie");
    assert!(
        binding.contains("Path=/upstream/github/callback") && binding.contains("HttpOnly"),
        "{binding}"
    );

    // The interaction was taken: continuing twice does not start two sign-ins.
    let again = server
        .post_form(
            &format!("{interaction}/upstream/github"),
            &cookie,
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);

    // A callback whose state no sign-in is waiting for: a page, no redirect.
    let forged = server
        .get(
            &format!(
                "{}/upstream/github/callback?code=attacker-code&state=forged",
                server.issuer
            ),
            "",
        )
        .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(forged.headers().get(LOCATION).is_none());
    assert!(
        forged
            .text()
            .await
            .unwrap()
            .contains("This sign-in cannot be completed")
    );

    // Deny on the chooser: the client hears access_denied, nobody signed in.
    let (interaction, cookie) = server.begin().await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    let denied = server
        .post_form(
            &format!("{interaction}/consent"),
            &cookie,
            &[
                ("csrf_token", field(&html, "csrf_token").as_str()),
                ("decision", "deny"),
            ],
        )
        .await;
    let back = location(&denied);
    assert!(
        back.starts_with(REDIRECT) && back.contains("error=access_denied"),
        "{back}"
    );
    // Approving needs a signed-in user: without one it is not an approval.
    let (interaction, cookie) = server.begin().await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    let approve = server
        .post_form(
            &format!("{interaction}/consent"),
            &cookie,
            &[
                ("csrf_token", field(&html, "csrf_token").as_str()),
                ("decision", "approve"),
            ],
        )
        .await;
    assert!(!location(&approve).contains("code="));
}

// A provider that refuses token requests without the client's secret (Google, GitHub, …)
// and has none configured stops the start, naming the variable that sets it, instead of
// failing the first user's sign-in.
#[tokio::test]
async fn a_provider_without_its_client_secret_is_refused_at_start_and_named() {
    let dir = temp_dir("no-provider-secret");
    let mut config = mcpauth_server::Config::default();
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    config.providers = vec![mcpauth_proxy::ProviderConfig::new(
        "google",
        mcpauth_proxy::Preset::Google,
        "1234.apps.googleusercontent.com",
    )];
    let Err(error) = mcpauth_server::build(&config).await else {
        panic!("a Google provider without its secret was accepted");
    };
    let said = mcpauth_server::said(&error);
    assert!(
        said.contains("provider `google` needs its client secret")
            && said.contains("MCPAUTH_PROVIDER_GOOGLE_CLIENT_SECRET"),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

impl Running {
    /// Registers a public client, signs alice in, approves, and returns (client id, code),
    /// the authorization request carrying `extra` parameters.
    pub(super) async fn fresh_code(&self, extra: &[(&str, &str)]) -> (String, String) {
        let client_id = self.register().await;
        let mut url = self.authorize_url(&client_id);
        for (name, value) in extra {
            url.push_str(&format!("&{name}={value}"));
        }
        let (first, cookie) = self.start_authorization(&url, "").await;
        let interaction = format!("{}{}", self.base, location(&first));
        let cookie = self.sign_in(&interaction, &cookie).await;
        let html = self.get(&interaction, &cookie).await.text().await.unwrap();
        let approved = self
            .post_form(
                &format!("{interaction}/consent"),
                &cookie,
                &[
                    ("csrf_token", &field(&html, "csrf_token")),
                    ("decision", "approve"),
                ],
            )
            .await;
        let location = url::Url::parse(&location(&approved)).unwrap();
        let code = location
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        (client_id, code)
    }

    /// Redeems `code` with these `DPoP` headers.
    async fn redeem_with_proofs(
        &self,
        client_id: &str,
        code: &str,
        proofs: &[String],
    ) -> reqwest::Response {
        let mut request = self.http.post(format!("{}/token", self.issuer)).form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", client_id),
        ]);
        for proof in proofs {
            request = request.header("dpop", proof);
        }
        request.send().await.unwrap()
    }
}

fn dpop_key() -> mcpauth_dpop::DpopKey {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    mcpauth_dpop::DpopKey::from_pkcs8(pkcs8.as_ref()).unwrap()
}

/// A proof for `issuer`'s token endpoint, now, with a fresh `jti`.
fn token_proof(key: &mcpauth_dpop::DpopKey, issuer: &str, nonce: Option<&str>) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let jti = format!(
        "server-test-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let uri = format!("{issuer}/token");
    let mut request = mcpauth_dpop::ProofRequest::new("POST", &uri, &jti, SystemClock.now().0);
    if let Some(nonce) = nonce {
        request = request.nonce(nonce);
    }
    key.proof(&request).unwrap()
}

// `dpop_required` and `dpop_nonces`, each value, through the real server: metadata names the
// proof algorithms, a proof binds the token (`token_type: DPoP`), the requirement refuses a
// request without one, and nonces come in `DPoP-Nonce` (readable by browser clients) and are
// required in proofs.
#[tokio::test]
async fn the_dpop_switches_reach_the_token_endpoint() {
    for (required, nonces) in [(false, false), (true, false), (false, true), (true, true)] {
        let server = start_configured("", temp_dir("dpop"), |config| {
            config.dpop_required = required;
            config.dpop_nonces = nonces;
        })
        .await;
        let metadata: Value = server
            .http
            .get(format!(
                "{}/.well-known/oauth-authorization-server",
                server.base
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            metadata["dpop_signing_alg_values_supported"]
                .as_array()
                .unwrap()
                .contains(&Value::from("ES256"))
        );
        let (client_id, code) = server.fresh_code(&[]).await;
        let without = server.redeem_with_proofs(&client_id, &code, &[]).await;
        let body: Value = without.json().await.unwrap();
        if required && nonces {
            // Which refusal comes first is the server's choice; both say to send a proof.
            assert!(
                body["error"] == "invalid_dpop_proof" || body["error"] == "use_dpop_nonce",
                "{body}"
            );
        } else if required {
            assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
        } else {
            assert_eq!(body["token_type"], "Bearer", "{body}");
        }

        let key = dpop_key();
        let (client_id, code) = server.fresh_code(&[]).await;
        let first = server
            .redeem_with_proofs(
                &client_id,
                &code,
                &[token_proof(&key, &server.issuer, None)],
            )
            .await;
        let nonce = first
            .headers()
            .get("dpop-nonce")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(nonce.is_some(), nonces, "DPoP-Nonce only with dpop_nonces");
        assert!(
            first.headers()["access-control-expose-headers"]
                .to_str()
                .unwrap()
                .contains("dpop-nonce")
        );
        let body: Value = first.json().await.unwrap();
        let body = if nonces {
            assert_eq!(body["error"], "use_dpop_nonce", "{body}");
            let retry = server
                .redeem_with_proofs(
                    &client_id,
                    &code,
                    &[token_proof(&key, &server.issuer, nonce.as_deref())],
                )
                .await;
            retry.json::<Value>().await.unwrap()
        } else {
            body
        };
        assert_eq!(body["token_type"], "DPoP", "{body}");
    }
}

#[tokio::test]
async fn with_dpop_off_the_server_advertises_none_and_issues_bearer_tokens_to_proofs_too() {
    let server = start_configured("", temp_dir("dpop-off"), |config| {
        config.dpop = false;
    })
    .await;
    let metadata: Value = server
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            server.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        metadata.get("dpop_signing_alg_values_supported").is_none(),
        "{metadata}"
    );
    let key = dpop_key();
    let (client_id, code) = server.fresh_code(&[]).await;
    let answer = server
        .redeem_with_proofs(
            &client_id,
            &code,
            &[token_proof(&key, &server.issuer, None)],
        )
        .await;
    assert!(answer.headers().get("dpop-nonce").is_none());
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer", "{body}");

    // DPoP off and a DPoP requirement: a contradiction, refused at start by name.
    for (required, nonces) in [(true, false), (false, true)] {
        let dir = temp_dir("dpop-contradiction");
        let mut config = mcpauth_server::Config::default();
        config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
        config.dpop = false;
        config.dpop_required = required;
        config.dpop_nonces = nonces;
        let Err(error) = mcpauth_server::build(&config).await else {
            panic!("dpop = false with dpop_required or dpop_nonces was accepted");
        };
        assert!(mcpauth_server::said(&error).contains("dpop = false"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
