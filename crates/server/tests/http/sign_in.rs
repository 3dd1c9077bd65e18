//! Signing in: the forms, their CSRF tokens, lockouts and per-address limits, the session cookie.

use super::*;

// RFC 6749 §4.1.2.1: errors before the redirect URI is validated are shown, never redirected.
#[tokio::test]
async fn authorization_errors_before_redirect_validation_render_a_page() {
    let server = start().await;
    let client_id = server.register().await;
    let url = server
        .authorize_url(&client_id)
        .replace("53682", "53683")
        .replace("callback", "evil");
    let response = server.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get(LOCATION).is_none());
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let unknown = server
        .http
        .get(format!(
            "{}/authorize?client_id=nobody&redirect_uri=https://evil.example/cb",
            server.issuer
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(unknown.headers().get(LOCATION).is_none());
}

// CSRF: the form token must match the cookie scoped to this interaction.
#[tokio::test]
async fn login_form_requires_the_interactions_csrf_cookie_and_token() {
    let server = start().await;
    let (interaction, csrf_cookie) = server.begin().await;
    let page = server
        .get(&interaction, &csrf_cookie)
        .await
        .text()
        .await
        .unwrap();
    let csrf = field(&page, "csrf_token");
    let login = format!("{interaction}/login");
    let form = [
        ("csrf_token", csrf.as_str()),
        ("email", "alice@example.com"),
        ("password", "correct horse battery"),
    ];
    assert_eq!(
        server.post_form(&login, "", &form).await.status(),
        StatusCode::FORBIDDEN,
        "no cookie: another browser"
    );
    let wrong = [
        ("csrf_token", "forged"),
        ("email", "alice@example.com"),
        ("password", "correct horse battery"),
    ];
    assert_eq!(
        server
            .post_form(&login, &csrf_cookie, &wrong)
            .await
            .status(),
        StatusCode::FORBIDDEN,
        "wrong form token"
    );
    assert_eq!(
        server.post_form(&login, &csrf_cookie, &form).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let server = start().await;
    let (interaction, csrf_cookie) = server.begin().await;
    let page = server
        .get(&interaction, &csrf_cookie)
        .await
        .text()
        .await
        .unwrap();
    let csrf = field(&page, "csrf_token");
    let login = format!("{interaction}/login");
    let a = server
        .post_form(
            &login,
            &csrf_cookie,
            &[
                ("csrf_token", &csrf),
                ("email", "alice@example.com"),
                ("password", "wrong password"),
            ],
        )
        .await;
    let b = server
        .post_form(
            &login,
            &csrf_cookie,
            &[
                ("csrf_token", &csrf),
                ("email", "bob@example.com"),
                ("password", "wrong password"),
            ],
        )
        .await;
    assert_eq!(
        (a.status(), b.status()),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    let (a, b) = (a.text().await.unwrap(), b.text().await.unwrap());
    assert!(a.contains("Wrong email or password.") && b.contains("Wrong email or password."));
}

// Sign-in attempts per address are counted in the shared store: over the configured limit
// (`sign_in_attempts_per_ip_per_hour`), even the right password is refused until the window
// ends, with a Retry-After. Each attempt names another account, as a password-spraying caller
// would.
#[tokio::test]
async fn repeated_sign_in_attempts_from_one_address_are_refused_for_a_while() {
    // Counters use fixed one-hour windows: start ten minutes into one.
    let hour = SystemClock.now().0 / 3600 * 3600;
    let clock = Arc::new(ManualClock::new(UnixTime(hour + 600)));
    let server = start_timed("", temp_dir("spray"), clock.clone(), |config| {
        config.sign_in_attempts_per_ip_per_hour = 20;
    })
    .await;
    let form = server.login_form().await;
    for n in 0..20 {
        assert_eq!(
            server
                .attempt_sign_in(&form, &format!("user{n}@example.com"), "wrong password")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let refused = server
        .attempt_sign_in(&form, "alice@example.com", "correct horse battery")
        .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry_after, 3000, "until the window ends");
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Too many sign-in attempts")
    );
    // The next window counts afresh (on a new form: the old one expired meanwhile).
    clock.advance(3000);
    let form = server.login_form().await;
    let next_window = server
        .attempt_sign_in(&form, "alice@example.com", "correct horse battery")
        .await;
    assert_eq!(next_window.status(), StatusCode::SEE_OTHER);
}

// The lockout is per account and address, so one account guessed from many addresses meets
// the account's own lock (`login_lockout_account_after` wrong passwords in a row, from any
// address), for each value: at 5, the fifth wrong password from the fifth address locks the
// account for everyone, the owner's right password included; at the default, the same spread
// of wrong passwords leaves the owner free to sign in.
#[tokio::test]
async fn guessing_one_account_from_many_addresses_locks_it_for_everyone() {
    async fn attempts(server: &Running, lock_expected: bool) {
        let form = server.login_form().await;
        for n in 1..=4 {
            let wrong =
                sign_in_from(server, &form, &format!("198.51.100.{n}"), "wrong password").await;
            assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
        }
        let fifth = sign_in_from(server, &form, "198.51.100.5", "wrong password").await;
        let owner = sign_in_from(server, &form, "203.0.113.9", "correct horse battery").await;
        if lock_expected {
            assert_eq!(fifth.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(owner.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(
                owner
                    .text()
                    .await
                    .unwrap()
                    .contains("This account is locked")
            );
            let other = server
                .attempt_sign_in(&form, "bob@example.com", "wrong password")
                .await;
            assert_eq!(
                other.status(),
                StatusCode::UNAUTHORIZED,
                "other accounts are not held"
            );
        } else {
            assert_eq!(fifth.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(owner.status(), StatusCode::SEE_OTHER);
        }
    }
    let trusting_loopback = |config: &mut mcpauth_server::Config| {
        config.trusted_proxies = vec!["127.0.0.1".into()];
    };
    let low = start_configured("", temp_dir("account-lock"), |config| {
        trusting_loopback(config);
        config.login_lockout_account_after = 5;
    })
    .await;
    attempts(&low, true).await;
    let default = start_configured("", temp_dir("account-lock-default"), |config| {
        trusting_loopback(config);
        assert_eq!(config.login_lockout_account_after, 100);
    })
    .await;
    attempts(&default, false).await;
}

// Only wrong passwords that were checked count toward the account's own lock: one address,
// locked out after its third, adds nothing more however often it tries, so it cannot lock
// the account for its owner elsewhere.
#[tokio::test]
async fn one_address_cannot_lock_an_account_for_everyone() {
    let server = start_configured("", temp_dir("account-lock-one"), |config| {
        config.trusted_proxies = vec!["127.0.0.1".into()];
        config.login_lockout_after = 3;
        config.login_lockout_account_after = 5;
    })
    .await;
    let form = server.login_form().await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(
            sign_in_from(&server, &form, "198.51.100.66", "wrong password")
                .await
                .status(),
        );
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count(),
        2,
        "two wrong passwords, the third locks this address out: {statuses:?}"
    );
    let owner = sign_in_from(&server, &form, "203.0.113.9", "correct horse battery").await;
    assert_eq!(owner.status(), StatusCode::SEE_OTHER);
}

/// A sign-in for alice@example.com as if from `address` (behind a trusted proxy).
async fn sign_in_from(
    server: &Running,
    form: &LoginForm,
    address: &str,
    password: &str,
) -> reqwest::Response {
    server
        .http
        .post(&form.action)
        .header("cookie", &form.cookie)
        .header("x-forwarded-for", address)
        .form(&[
            ("csrf_token", form.csrf.as_str()),
            ("email", "alice@example.com"),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

// Per-account lockout with progressive backoff: the sixth wrong password in a row locks the
// account (429 + Retry-After, even for the right password, which is not checked), the lock
// expires, the next lock lasts twice as long, and a success starts afresh.
#[tokio::test]
async fn the_sixth_wrong_password_locks_the_account_until_the_lock_expires() {
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let server = start_timed("", temp_dir("lockout"), clock.clone(), |c| {
        c.login_lockout_seconds = 2;
        c.login_lockout_max_seconds = 60;
    })
    .await;
    let form = server.login_form().await;
    let attempt = |email: &'static str, password: &'static str| {
        server.attempt_sign_in(&form, email, password)
    };
    let retry_after = |response: &reqwest::Response| -> u64 {
        response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    for _ in 0..5 {
        let wrong = attempt("alice@example.com", "wrong password").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let sixth = attempt("alice@example.com", "wrong password").await;
    assert_eq!(sixth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&sixth), 2);
    assert!(
        sixth
            .text()
            .await
            .unwrap()
            .contains("This account is locked")
    );
    let right_while_locked = attempt("alice@example.com", "correct horse battery").await;
    assert_eq!(right_while_locked.status(), StatusCode::TOO_MANY_REQUESTS);
    // Unknown accounts lock the same way: the answer does not reveal which emails exist.
    for _ in 0..5 {
        let unknown = attempt("nobody@example.com", "wrong password").await;
        assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    }
    let unknown_sixth = attempt("nobody@example.com", "wrong password").await;
    assert_eq!(unknown_sixth.status(), StatusCode::TOO_MANY_REQUESTS);

    // The lock expires; six more wrong passwords lock again, for twice as long.
    clock.advance(2);
    for _ in 0..5 {
        let wrong = attempt("alice@example.com", "wrong password").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let second_lock = attempt("alice@example.com", "wrong password").await;
    assert_eq!(second_lock.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&second_lock), 4, "{:?}", second_lock.headers());
    clock.advance(3);
    let still_locked = attempt("alice@example.com", "correct horse battery").await;
    assert_eq!(still_locked.status(), StatusCode::TOO_MANY_REQUESTS);
    clock.advance(1);
    let signed_in = attempt("alice@example.com", "correct horse battery").await;
    assert_eq!(
        signed_in.status(),
        StatusCode::SEE_OTHER,
        "the lock has expired"
    );
}

// Login session cookie: HttpOnly, SameSite=Lax (Secure only for https issuers).
#[tokio::test]
async fn session_cookie_is_httponly_and_samesite_lax() {
    let server = start().await;
    let (interaction, csrf_cookie) = server.begin().await;
    let page = server
        .get(&interaction, &csrf_cookie)
        .await
        .text()
        .await
        .unwrap();
    let csrf = field(&page, "csrf_token");
    let response = server
        .post_form(
            &format!("{interaction}/login"),
            &csrf_cookie,
            &[
                ("csrf_token", &csrf),
                ("email", "alice@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set_cookie.starts_with("mcpauth_session="), "{set_cookie}");
    assert!(
        set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Lax")
            && set_cookie.contains("Path=/"),
        "{set_cookie}"
    );
}

// A signed-in browser skips the login form on the next authorization, but still sees consent.
#[tokio::test]
async fn a_session_skips_login_but_not_consent() {
    let server = start().await;
    let (interaction, csrf_cookie) = server.begin().await;
    let cookie = server.sign_in(&interaction, &csrf_cookie).await;
    let session = cookie
        .split("; ")
        .find(|c| c.starts_with("mcpauth_session="))
        .unwrap()
        .to_owned();
    let client_id = server.register().await;
    let response = server
        .get(&server.authorize_url(&client_id), &session)
        .await;
    let second = format!(
        "{}{}",
        server.base,
        response.headers()[LOCATION].to_str().unwrap()
    );
    let html = server
        .get(
            &second,
            &format!("{session}; {}", cookies(response.headers())),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("decision"), "consent page expected: {html}");
    assert!(
        !html.contains("name=\"password\""),
        "no login form when signed in"
    );
}

// "Signed in as … / Sign out" on the consent page: signing out ends the session (the cookie
// no longer works) and shows the sign-in form for the same request.
#[tokio::test]
async fn signing_out_from_the_consent_page_ends_the_session() {
    let server = start().await;
    let (interaction, cookie) = server.begin().await;
    let cookie = server.sign_in(&interaction, &cookie).await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Signed in as <strong>alice@example.com</strong>"),
        "{html}"
    );
    let signed_out = server
        .post_form(
            &format!("{interaction}/sign-out"),
            &cookie,
            &[("csrf_token", &field(&html, "csrf_token"))],
        )
        .await;
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    assert!(
        signed_out.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .starts_with("mcpauth_session=;")
    );
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("name=\"password\""), "{html}");
    let account = server
        .get(
            &format!("{}/account", server.base),
            &cookie_named(&cookie, "mcpauth_session"),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        account.contains("name=\"password\""),
        "the old session is gone"
    );
}

// Accounts created by federated sign-in have no password: no password opens them, not even
// the one the dummy hash was made from.
#[tokio::test]
async fn a_federated_account_cannot_sign_in_with_a_password() {
    let dir = temp_dir("nopassword");
    let server = start_with("", dir.clone()).await;
    let store = mcpauth_store_sql::SqlStore::connect(&format!(
        "sqlite://{}",
        dir.join("mcpauth.db").display()
    ))
    .await
    .unwrap();
    store
        .create_federated_user(
            "user_fed",
            Some("fed@example.com"),
            "github",
            "42",
            UnixTime(1),
        )
        .await
        .unwrap();
    // The operator names federated users by subject or `provider:upstream-id`.
    store
        .create_federated_user("user_fed2", None, "github", "43", UnixTime(1))
        .await
        .unwrap();
    mcpauth_server::admin::disable_user(&store, "github:43")
        .await
        .unwrap();
    mcpauth_server::admin::enable_user(&store, "user_fed2")
        .await
        .unwrap();
    assert!(
        mcpauth_server::admin::disable_user(&store, "github:44")
            .await
            .is_err()
    );
    // Also a federated user whose account holds an email is named `provider:upstream-id`.
    mcpauth_server::admin::disable_user(&store, "github:42")
        .await
        .unwrap();
    let listed = mcpauth_server::admin::list_users(&store).await.unwrap();
    let fed = listed.iter().find(|u| u.user_id == "user_fed").unwrap();
    assert!(fed.disabled, "github:42 names user_fed");
    mcpauth_server::admin::enable_user(&store, "github:42")
        .await
        .unwrap();
    for password in ["", "!federated", "dummy-password-never-matches"] {
        let form = server.login_form().await;
        let response = server
            .attempt_sign_in(&form, "fed@example.com", password)
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{password:?}");
    }
}

// On an https issuer every cookie of the pages is a `__Host-` cookie: `Secure`, `Path=/`, no
// `Domain`, so no other host and no plain-http page can set or overwrite it.
#[tokio::test]
async fn on_an_https_issuer_session_and_csrf_cookies_use_the_host_prefix() {
    let server = start_configured("", temp_dir("host-prefix"), |config| {
        config.issuer = Some("https://auth.example.test".into());
    })
    .await;
    let account = server.get(&format!("{}/account", server.base), "").await;
    let form_cookie = account.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        form_cookie.starts_with("__Host-mcpauth_form=")
            && form_cookie.contains("; Path=/;")
            && form_cookie.contains("; Secure")
            && !form_cookie.contains("Domain"),
        "{form_cookie}"
    );
    let html = account.text().await.unwrap();
    let cookie = form_cookie.split(';').next().unwrap().to_owned();
    let signed_in = server
        .post_form(
            &format!("{}/sign-in", server.base),
            &cookie,
            &[
                ("csrf_token", &field(&html, "csrf_token")),
                ("next", "account"),
                ("email", "alice@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let session = signed_in.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        session.starts_with("__Host-mcpauth_session=")
            && session.contains("; Path=/;")
            && session.contains("; Secure"),
        "{session}"
    );
    // The unprefixed name a plain-http page could set is not read.
    let unprefixed = format!("mcpauth_form={}", field(&html, "csrf_token"));
    let refused = server
        .post_form(
            &format!("{}/sign-in", server.base),
            &unprefixed,
            &[
                ("csrf_token", &field(&html, "csrf_token")),
                ("next", "account"),
                ("email", "alice@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // The interaction's CSRF cookie too.
    let client_id = server.register().await;
    let started = server.get(&server.authorize_url(&client_id), "").await;
    let interaction_cookie = started.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        interaction_cookie.starts_with("__Host-mcpauth_csrf_")
            && interaction_cookie.contains("; Path=/;")
            && interaction_cookie.contains("; Secure"),
        "{interaction_cookie}"
    );
}

// Decisions re-check the user: `user disable` ends the user's sign-ins in progress, so a
// consent page left open approves nothing.
#[tokio::test]
async fn disabling_a_user_ends_their_pending_interactions() {
    let dir = temp_dir("disable-pending");
    let database = format!("sqlite://{}", dir.join("mcpauth.db").display());
    let server = start_with("", dir).await;
    let (interaction, cookie) = server.begin().await;
    let cookie = server.sign_in(&interaction, &cookie).await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("name=\"decision\""), "{html}");
    let mut config = mcpauth_server::Config::default();
    config.database_url = database;
    let store = mcpauth_server::open_store(&config).await.unwrap();
    mcpauth_server::admin::disable_user(&store, "alice@example.com")
        .await
        .unwrap();
    store.close().await;
    let approved = server
        .post_form(
            &format!("{interaction}/consent"),
            &cookie,
            &[
                ("csrf_token", &field(&html, "csrf_token")),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(approved.status(), StatusCode::BAD_REQUEST);
    assert!(approved.headers().get(LOCATION).is_none(), "no code");
    assert!(
        approved
            .text()
            .await
            .unwrap()
            .contains("This sign-in request has expired")
    );
}
