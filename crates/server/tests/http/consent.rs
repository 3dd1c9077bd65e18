//! The consent page: what it shows (escaped), remembered consent and its withdrawal, the account
//! forms.

use super::*;

// The consent page escapes what the client registered, and a decision is taken once.
#[tokio::test]
async fn consent_escapes_client_metadata_and_decides_once() {
    let server = start().await;
    let (interaction, csrf_cookie) = server.begin().await;
    let cookie = server.sign_in(&interaction, &csrf_cookie).await;
    let page = server.get(&interaction, &cookie).await;
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("&#60;b&#62;Evil&#60;/b&#62; &#38; Co")
            || html.contains("&lt;b&gt;Evil&lt;/b&gt; &amp; Co"),
        "{html}"
    );
    assert!(!html.contains("<b>Evil</b>"));
    assert!(
        html.contains("unverified: it registered itself"),
        "a self-registered client is labelled unverified"
    );
    let csrf = field(&html, "csrf_token");
    let consent = format!("{interaction}/consent");
    let approved = server
        .post_form(
            &consent,
            &cookie,
            &[("csrf_token", &csrf), ("decision", "approve")],
        )
        .await;
    assert_eq!(approved.status(), StatusCode::SEE_OTHER);
    let location = url::Url::parse(approved.headers()[LOCATION].to_str().unwrap()).unwrap();
    let params: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    assert!(params.iter().any(|(k, _)| k == "code"));
    assert!(params.contains(&("state".into(), "s1".into())));
    assert!(params.contains(&("iss".into(), server.issuer.clone())));
    let again = server
        .post_form(
            &consent,
            &cookie,
            &[("csrf_token", &csrf), ("decision", "approve")],
        )
        .await;
    assert_eq!(
        again.status(),
        StatusCode::BAD_REQUEST,
        "a decided interaction is gone"
    );
}

#[tokio::test]
async fn denying_redirects_with_access_denied() {
    let server = start().await;
    let (interaction, csrf_cookie) = server.begin().await;
    let cookie = server.sign_in(&interaction, &csrf_cookie).await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    let csrf = field(&html, "csrf_token");
    let denied = server
        .post_form(
            &format!("{interaction}/consent"),
            &cookie,
            &[("csrf_token", &csrf), ("decision", "deny")],
        )
        .await;
    let location = denied.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(REDIRECT)
            && location.contains("error=access_denied")
            && location.contains("state=s1"),
        "{location}"
    );
}

// RFC 8252 §8.6: remembered consent covers exactly what the user saw: the redirect URI, and
// per resource the scopes approved for it. Anything else asks again.
#[tokio::test]
async fn remembered_consent_covers_exactly_what_the_user_saw() {
    const OTHER_REDIRECT: &str = "http://127.0.0.1:53682/other";
    const OTHER_RESOURCE: &str = "http://127.0.0.1:3001/mcp";
    let server = start().await;
    let (interaction, cookie) = server.begin().await;
    let session = cookie_named(
        &server.sign_in(&interaction, &cookie).await,
        "mcpauth_session",
    );
    let client_id = server
        .register_confidential(&[REDIRECT, OTHER_REDIRECT])
        .await;
    let url = |redirect: &str, resource: &str, scope: &str| {
        server.authorize_url_for(&client_id, redirect, resource, scope)
    };
    // Approved and remembered: mcp:tools at RESOURCE, mcp:admin at OTHER_RESOURCE.
    let shown = server
        .open_with_session(&url(REDIRECT, RESOURCE, "mcp:tools"), &session)
        .await
        .unwrap_err();
    server.approve_shown(shown, true).await;
    let shown = server
        .open_with_session(&url(REDIRECT, OTHER_RESOURCE, "mcp:admin"), &session)
        .await
        .unwrap_err();
    server.approve_shown(shown, true).await;

    // The same request, or a narrower one, skips the page.
    assert!(
        server
            .open_with_session(&url(REDIRECT, RESOURCE, "mcp:tools"), &session)
            .await
            .is_ok_and(|back| back.starts_with(REDIRECT) && back.contains("code="))
    );
    // mcp:admin was approved for the other resource only: no union across resources.
    assert!(
        server
            .open_with_session(&url(REDIRECT, RESOURCE, "mcp:admin"), &session)
            .await
            .is_err(),
        "a scope approved for another resource asks again"
    );
    // Another redirect URI than the one approved asks again.
    assert!(
        server
            .open_with_session(&url(OTHER_REDIRECT, RESOURCE, "mcp:tools"), &session)
            .await
            .is_err(),
        "another redirect URI asks again"
    );
}

// RFC 8252 §8.6: a public client whose redirect is a loopback URI cannot prove who it is; it
// is asked every time, the page does not offer to remember, and says plainly where the answer
// goes. A signed-in user still approves with one click.
#[tokio::test]
async fn a_public_loopback_client_is_asked_every_time() {
    let server = start().await;
    let client_id = server.register().await;
    let (interaction, cookie) = server.begin().await;
    let session = cookie_named(
        &server.sign_in(&interaction, &cookie).await,
        "mcpauth_session",
    );
    let url = server.authorize_url(&client_id);
    let shown = server.open_with_session(&url, &session).await.unwrap_err();
    assert!(!shown.0.contains("name=\"remember\""), "{}", shown.0);
    assert!(
        shown.0.contains("a program on this computer (localhost)"),
        "{}",
        shown.0
    );
    // Posting "remember" anyway remembers nothing.
    let back = server.approve_shown(shown, true).await;
    assert!(
        back.starts_with(REDIRECT) && back.contains("code="),
        "{back}"
    );
    assert!(
        server.open_with_session(&url, &session).await.is_err(),
        "asked again"
    );
}

// Remembered consent is per user and client: approving with "remember" skips the consent
// page next time; withdrawing it on the account page asks again.
#[tokio::test]
async fn remembered_consent_skips_the_page_until_it_is_withdrawn() {
    let server = start().await;
    let client_id = server.register_confidential(&[REDIRECT]).await;
    let (first, cookie) = server
        .start_authorization(&server.authorize_url(&client_id), "")
        .await;
    let interaction = format!("{}{}", server.base, location(&first));
    let cookie = server.sign_in(&interaction, &cookie).await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("name=\"remember\""), "{html}");
    let approved = server
        .post_form(
            &format!("{interaction}/consent"),
            &cookie,
            &[
                ("csrf_token", &field(&html, "csrf_token")),
                ("decision", "approve"),
                ("remember", "yes"),
            ],
        )
        .await;
    assert!(location(&approved).starts_with(REDIRECT));
    let session = cookie_named(&cookie, "mcpauth_session");

    // Same user, same client, same request: straight back to the client with a code.
    let (second, cookie) = server
        .start_authorization(&server.authorize_url(&client_id), &session)
        .await;
    let interaction = format!("{}{}", server.base, location(&second));
    let skipped = server.get(&interaction, &cookie).await;
    assert_eq!(skipped.status(), StatusCode::SEE_OTHER);
    let back = location(&skipped);
    assert!(
        back.starts_with(REDIRECT) && back.contains("code=") && back.contains("state=s1"),
        "{back}"
    );

    // Another client is still asked.
    let other = server.register_confidential(&[REDIRECT]).await;
    let (third, cookie) = server
        .start_authorization(&server.authorize_url(&other), &session)
        .await;
    let html = server
        .get(&format!("{}{}", server.base, location(&third)), &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("name=\"decision\""), "{html}");

    // The account page lists the decision; withdrawing it asks again.
    let account = server
        .get(&format!("{}/account", server.base), &session)
        .await;
    let cookie = format!("{session}; {}", cookies(account.headers()));
    let html = account.text().await.unwrap();
    assert!(html.contains(&client_id), "{html}");
    let withdrawn = server
        .post_form(
            &format!("{}/account/withdraw", server.base),
            &cookie,
            &[
                ("csrf_token", &field(&html, "csrf_token")),
                ("client_id", &client_id),
            ],
        )
        .await;
    assert_eq!(withdrawn.status(), StatusCode::SEE_OTHER);
    let html = server
        .get(&format!("{}/account", server.base), &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains(&client_id), "{html}");
    let (fourth, cookie) = server
        .start_authorization(&server.authorize_url(&client_id), &session)
        .await;
    let asked = server
        .get(&format!("{}{}", server.base, location(&fourth)), &cookie)
        .await;
    assert_eq!(asked.status(), StatusCode::OK);
    assert!(asked.text().await.unwrap().contains("name=\"decision\""));
}

// Forms outside an interaction (withdraw, sign-out, device) need the browser's form cookie
// and the matching hidden token.
#[tokio::test]
async fn account_forms_without_the_csrf_token_are_refused() {
    let server = start().await;
    let (interaction, cookie) = server.begin().await;
    let cookie = server.sign_in(&interaction, &cookie).await;
    let session = cookie_named(&cookie, "mcpauth_session");
    for (path, form) in [
        ("/account/withdraw", vec![("client_id", "x")]),
        ("/sign-out", vec![]),
        (
            "/device",
            vec![("user_code", "BCDF-GHJK"), ("decision", "approve")],
        ),
    ] {
        let mut with_token = form.clone();
        with_token.push(("csrf_token", "forged"));
        let refused = server
            .post_form(
                &format!("{}{path}", server.base),
                &format!("{session}; mcpauth_form={}", "A".repeat(43)),
                &with_token,
            )
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{path}");
    }
    // The session survived the forged sign-out.
    let html = server
        .get(&format!("{}/account", server.base), &session)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("alice@example.com"), "{html}");
}

// XSS: `scope` and `client_name` are shown escaped; `state` only ever travels URL-encoded
// in the redirect.
#[tokio::test]
async fn scope_and_state_are_escaped() {
    let server = start_configured("", temp_dir("xss"), |config| {
        config
            .scope_descriptions
            .insert("mcp:tools".into(), "Use <i>all</i> tools".into());
    })
    .await;
    let client_id = server.register().await;
    let state = "\"><script>alert(1)</script>";
    let url = server.authorize_url_with(
        &client_id,
        state,
        Some("<img/src=x/onerror=alert(1)> mcp:tools"),
    );
    let (response, cookie) = server.start_authorization(&url, "").await;
    let interaction = format!("{}{}", server.base, location(&response));
    let cookie = server.sign_in(&interaction, &cookie).await;
    let html = server
        .get(&interaction, &cookie)
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("<i>all</i>"), "{html}");
    assert!(!html.contains("<script"), "{html}");
    assert!(
        html.contains("&#60;img/src=x/onerror=alert(1)&#62;")
            || html.contains("&lt;img/src=x/onerror=alert(1)&gt;"),
        "{html}"
    );
    let decided = server
        .post_form(
            &format!("{interaction}/consent"),
            &cookie,
            &[
                ("csrf_token", &field(&html, "csrf_token")),
                ("decision", "deny"),
            ],
        )
        .await;
    let back = location(&decided);
    assert!(!back.contains('<') && !back.contains('"'), "{back}");
    let back = url::Url::parse(&back).unwrap();
    assert!(back.query_pairs().any(|(k, v)| k == "state" && v == state));
}

// Pages take their style from one stylesheet on this origin; the CSP allows nothing else.
#[tokio::test]
async fn pages_use_one_stylesheet_from_this_origin() {
    let server = start_with("/tenant", temp_dir("css")).await;
    let css = server
        .get(&format!("{}/static/mcpauth.css", server.issuer), "")
        .await;
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let page = server.get(&format!("{}/device", server.issuer), "").await;
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'; style-src 'self';")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("href=\"/tenant/static/mcpauth.css\""),
        "{html}"
    );
}
