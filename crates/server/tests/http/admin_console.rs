//! The admin console and its JSON API over HTTP: administrators only (every route refuses
//! anyone else with `403`), every action a POST with the form CSRF token (a forged one is
//! refused and changes nothing), every action audited with the administrator as actor and
//! their address. The browser test (`tests/browser.rs`) clicks through the same pages.

use super::*;

const ROOT_EMAIL: &str = "root@example.com";
const ROOT_PASSWORD: &str = "operator's long passphrase";

/// Opens `server`'s database as the operator's commands do.
async fn operator_store(server: &Running) -> mcpauth_store_sql::SqlStore {
    let mut config = mcpauth_server::Config::default();
    config.database_url = format!("sqlite://{}", server.dir.join("mcpauth.db").display());
    mcpauth_server::open_store(&config).await.unwrap()
}

/// Adds the administrator `root@example.com`; returns its subject.
async fn add_administrator(server: &Running) -> String {
    let store = operator_store(server).await;
    let id = mcpauth_server::add_user(&store, ROOT_EMAIL, ROOT_PASSWORD)
        .await
        .unwrap();
    mcpauth_server::admin::set_admin(&store, ROOT_EMAIL, true)
        .await
        .unwrap();
    store.close().await;
    id
}

/// A browser session of `email` signed in on the console's sign-in form: the cookies to send
/// and the form CSRF token.
async fn console_session(server: &Running, email: &str, password: &str) -> (String, String) {
    let shown = server
        .get(&format!("{}/admin/users", server.base), "")
        .await;
    assert_eq!(shown.status(), StatusCode::OK);
    let form_cookie = cookies(shown.headers());
    let html = shown.text().await.unwrap();
    assert!(html.contains("Sign in as an administrator"), "{html}");
    let csrf = field(&html, "csrf_token");
    let signed_in = server
        .post_form(
            &format!("{}/sign-in", server.base),
            &form_cookie,
            &[
                ("csrf_token", &csrf),
                ("next", "admin"),
                ("email", email),
                ("password", password),
            ],
        )
        .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&signed_in), "/admin");
    (
        format!("{form_cookie}; {}", cookies(signed_in.headers())),
        csrf,
    )
}

/// A console action: its URL and the form fields besides the CSRF token.
type Action = (String, Vec<(&'static str, &'static str)>);

/// Every page, API read and action of the console.
fn routes(server: &Running) -> (Vec<String>, Vec<Action>) {
    let at = |path: &str| format!("{}/admin{path}", server.base);
    let reads = [
        "/users",
        "/clients",
        "/grants",
        "/keys",
        "/audit",
        "/api/users",
        "/api/clients",
        "/api/grants",
        "/api/keys",
        "/api/audit",
        "/api/consents?user=alice@example.com",
    ]
    .iter()
    .map(|p| at(p))
    .collect();
    let actions = vec![
        (at("/users/disable"), vec![("user_id", "alice@example.com")]),
        (at("/users/enable"), vec![("user_id", "alice@example.com")]),
        (at("/users/unlock"), vec![("user_id", "alice@example.com")]),
        (
            at("/users/grant-admin"),
            vec![("user_id", "alice@example.com")],
        ),
        (
            at("/users/revoke-admin"),
            vec![("user_id", "alice@example.com")],
        ),
        (at("/grants/revoke"), vec![("grant_id", "any")]),
        (at("/clients/remove"), vec![("client_id", "any")]),
        (at("/keys/rotate"), vec![("algorithm", "ES256")]),
        (
            at("/consents/withdraw"),
            vec![("user_id", "alice@example.com"), ("client_id", "any")],
        ),
        (
            at("/api/users/alice@example.com/consents/any/withdraw"),
            vec![],
        ),
        (at("/api/users/alice@example.com/disable"), vec![]),
        (at("/api/users/alice@example.com/grant-admin"), vec![]),
        (at("/api/grants/any/revoke"), vec![]),
        (at("/api/clients/any/remove"), vec![]),
        (at("/api/keys/rotate"), vec![]),
    ];
    (reads, actions)
}

#[tokio::test]
async fn every_console_and_api_route_refuses_a_non_administrator_with_403() {
    let server = start().await;
    add_administrator(&server).await;
    let (cookie, csrf) =
        console_session(&server, "alice@example.com", "correct horse battery").await;
    let (reads, actions) = routes(&server);
    for url in &reads {
        let response = server.get(url, &cookie).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{url}");
    }
    for (url, form) in &actions {
        let mut fields = vec![("csrf_token", csrf.as_str())];
        fields.extend(form.iter().copied());
        let response = server
            .http
            .post(url)
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{url}");
    }
    // Without any session: the API and the actions refuse too; a page shows the sign-in.
    for url in reads.iter().filter(|u| u.contains("/api/")) {
        let response = server.get(url, "").await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{url}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "forbidden");
    }
    for (url, _) in &actions {
        // With no body, or one that is not a form: refused before it is read.
        for body in ["", "{not a form"] {
            let response = server.http.post(url).body(body).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{url}");
        }
    }
    // Nothing was done: alice is enabled and no administrator, no key was added.
    let store = operator_store(&server).await;
    let alice = store
        .find_user_by_email("alice@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(!alice.disabled && !alice.admin);
    assert_eq!(store.signing_keys().await.unwrap().len(), 1);
    let trail = store
        .audit_events(&mcpauth_store_sql::AuditFilter::default(), 100)
        .await
        .unwrap();
    // The only administrators' actions recorded are the operator's adding alice and root and
    // making root one.
    let actions: Vec<_> = trail
        .iter()
        .filter(|e| e.record.actor.is_some())
        .map(|e| (e.record.event.as_str(), e.record.actor.as_deref()))
        .collect();
    assert_eq!(
        actions,
        [
            ("admin_granted", Some("admin")),
            ("user_added", Some("admin")),
            ("user_added", Some("admin"))
        ]
    );
    store.close().await;
}

#[tokio::test]
async fn an_administrators_actions_are_done_and_audited_with_them_as_actor() {
    let server = start().await;
    let root = add_administrator(&server).await;
    // alice gives a client a grant.
    let (client_id, code) = server.fresh_code(&[]).await;
    let tokens: Value = server.redeem_code(&client_id, &code).await;
    let (cookie, csrf) = console_session(&server, ROOT_EMAIL, ROOT_PASSWORD).await;

    // The API lists the grant with alice's email and the client's name.
    let grants: Value = server
        .get(
            &format!("{}/admin/api/grants?user=alice@example.com", server.base),
            &cookie,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(grants.as_array().unwrap().len(), 1, "{grants}");
    assert_eq!(grants[0]["email"], "alice@example.com");
    assert_eq!(grants[0]["client_id"], client_id.as_str());
    let grant_id = grants[0]["grant_id"].as_str().unwrap().to_owned();
    let page = server
        .get(&format!("{}/admin/grants", server.base), &cookie)
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert!(page.text().await.unwrap().contains(&grant_id));

    // Revoke it on the page: the client's refresh fails.
    let revoked = server
        .post_form(
            &format!("{}/admin/grants/revoke", server.base),
            &cookie,
            &[("csrf_token", &csrf), ("grant_id", &grant_id)],
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    let refreshed = server
        .refresh(&client_id, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(refreshed.status(), StatusCode::BAD_REQUEST);
    // Again: nothing left to revoke, 404.
    let again = server
        .post_form(
            &format!("{}/admin/grants/revoke", server.base),
            &cookie,
            &[("csrf_token", &csrf), ("grant_id", &grant_id)],
        )
        .await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    // Disable alice through the API; rotate a key on the page.
    let disabled = server
        .http
        .post(format!(
            "{}/admin/api/users/alice@example.com/disable",
            server.base
        ))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    let rotated = server
        .post_form(
            &format!("{}/admin/keys/rotate", server.base),
            &cookie,
            &[("csrf_token", &csrf), ("algorithm", "EdDSA")],
        )
        .await;
    assert_eq!(rotated.status(), StatusCode::SEE_OTHER);
    let keys: Value = server
        .get(&format!("{}/admin/api/keys", server.base), &cookie)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 2, "{keys}");
    assert_eq!(keys[0]["state"], "next");
    assert_eq!(keys[0]["algorithm"], "EdDSA");
    // An administrator cannot disable themselves (the console would lose its last user).
    let myself = server
        .post_form(
            &format!("{}/admin/users/disable", server.base),
            &cookie,
            &[("csrf_token", &csrf), ("user_id", &root)],
        )
        .await;
    assert_eq!(myself.status(), StatusCode::CONFLICT);

    // Each action is in the trail, by root, from the caller's address; the API shows it.
    let trail: Value = server
        .get(
            &format!("{}/admin/api/audit?user=alice@example.com", server.base),
            &cookie,
        )
        .await
        .json()
        .await
        .unwrap();
    let by_root: Vec<(&str, &str)> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == root.as_str())
        .map(|e| {
            (
                e["event"].as_str().unwrap(),
                e["address"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        by_root,
        [
            ("user_disabled", "127.0.0.1"),
            ("grant_revoked", "127.0.0.1")
        ]
    );
    let keys_trail: Value = server
        .get(
            &format!("{}/admin/api/audit?event=key_rotated", server.base),
            &cookie,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(keys_trail[0]["actor"], root.as_str());
    let page = server
        .get(
            &format!("{}/admin/audit?event=grant_revoked", server.base),
            &cookie,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(&grant_id) && page.contains(&root), "{page}");
}

#[tokio::test]
async fn a_forged_csrf_token_is_refused_and_changes_nothing() {
    let server = start().await;
    add_administrator(&server).await;
    let (cookie, csrf) = console_session(&server, ROOT_EMAIL, ROOT_PASSWORD).await;
    let forged = "A".repeat(csrf.len());
    let page = server
        .post_form(
            &format!("{}/admin/users/disable", server.base),
            &cookie,
            &[("csrf_token", &forged), ("user_id", "alice@example.com")],
        )
        .await;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    for header in [None, Some(forged.as_str())] {
        let mut request = server
            .http
            .post(format!(
                "{}/admin/api/users/alice@example.com/disable",
                server.base
            ))
            .header("cookie", &cookie);
        if let Some(token) = header {
            request = request.header("x-csrf-token", token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_csrf_token");
    }
    let store = operator_store(&server).await;
    assert!(
        !store
            .find_user_by_email("alice@example.com")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    store.close().await;
}

#[tokio::test]
async fn the_user_actions_unlock_and_administrator_rights_work_and_refuse_oneself() {
    let server = start_configured("", temp_dir("admin-users"), |config| {
        config.login_lockout_account_after = 2;
    })
    .await;
    let root = add_administrator(&server).await;
    // Wrong passwords lock alice's account for everyone.
    let form = server.login_form().await;
    for _ in 0..2 {
        server
            .attempt_sign_in(&form, "alice@example.com", "Not-Her-Password-1")
            .await;
    }
    let (cookie, csrf) = console_session(&server, ROOT_EMAIL, ROOT_PASSWORD).await;
    let users = |server: &Running, cookie: String| {
        let url = format!("{}/admin/api/users", server.base);
        let server_http = server.http.clone();
        async move {
            let users: Value = server_http
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            users
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["email"] == "alice@example.com")
                .unwrap()
                .clone()
        }
    };
    let alice = users(&server, cookie.clone()).await;
    assert!(alice["locked_until"].as_u64().is_some(), "{alice}");
    let post = |action: &'static str, user: String| {
        let url = format!("{}/admin/users/{action}", server.base);
        let (cookie, csrf) = (cookie.clone(), csrf.clone());
        let http = server.http.clone();
        async move {
            http.post(url)
                .header("cookie", cookie)
                .form(&[("csrf_token", csrf.as_str()), ("user_id", user.as_str())])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let alice_id = alice["user_id"].as_str().unwrap().to_owned();
    assert_eq!(
        post("unlock", alice_id.clone()).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        users(&server, cookie.clone()).await["locked_until"],
        Value::Null
    );
    assert_eq!(
        post("grant-admin", alice_id.clone()).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(users(&server, cookie.clone()).await["admin"], true);
    assert_eq!(
        post("revoke-admin", alice_id.clone()).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(users(&server, cookie.clone()).await["admin"], false);
    // Not oneself; not an action that does not exist; not without the user.
    assert_eq!(
        post("revoke-admin", root.clone()).await,
        StatusCode::CONFLICT
    );
    assert_eq!(post("disable", root.clone()).await, StatusCode::CONFLICT);
    assert_eq!(
        post("promote", alice_id.clone()).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post("disable", String::new()).await,
        StatusCode::BAD_REQUEST
    );
    // An action is a POST: GET finds no route.
    let get = server
        .get(&format!("{}/admin/users/disable", server.base), &cookie)
        .await;
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    // The API's POST needs the form cookie as well as the header.
    let session_only: String = cookie
        .split("; ")
        .filter(|c| !c.starts_with("mcpauth_form="))
        .collect::<Vec<_>>()
        .join("; ");
    let refused = server
        .http
        .post(format!(
            "{}/admin/api/users/alice@example.com/disable",
            server.base
        ))
        .header("cookie", session_only)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // A bad page number is named, after the caller is known.
    let bad = server
        .get(
            &format!("{}/admin/api/audit?before=x", server.base),
            &cookie,
        )
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let anonymous = server
        .get(&format!("{}/admin/api/audit?before=x", server.base), "")
        .await;
    assert_eq!(anonymous.status(), StatusCode::FORBIDDEN);
    // Each is in the trail, by root.
    let store = operator_store(&server).await;
    let mut filter = mcpauth_store_sql::AuditFilter::default();
    filter.user_id = Some(alice_id);
    let events: Vec<(String, Option<String>)> = store
        .audit_events(&filter, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.record.actor.is_some())
        .map(|e| (e.record.event, e.record.actor))
        .collect();
    store.close().await;
    assert_eq!(
        events[..3],
        [
            ("admin_revoked".to_owned(), Some(root.clone())),
            ("admin_granted".to_owned(), Some(root.clone())),
            ("lockout_reset".to_owned(), Some(root)),
        ]
    );
}

// A user's remembered approvals: listed with their grants, withdrawn by the administrator
// (forgotten, the client's grants for the user revoked), audited with the administrator.
#[tokio::test]
async fn an_administrator_sees_and_withdraws_a_users_remembered_approvals() {
    let server = start().await;
    let root = add_administrator(&server).await;
    let store = operator_store(&server).await;
    let alice = store
        .find_user_by_email("alice@example.com")
        .await
        .unwrap()
        .unwrap()
        .user_id;
    store
        .remember_consent(
            &alice,
            "remembered-client",
            "https://app.example/cb",
            "mcp:tools",
            &[RESOURCE.to_owned()],
            UnixTime(1_800_000_000),
        )
        .await
        .unwrap();
    store.close().await;
    let (cookie, csrf) = console_session(&server, ROOT_EMAIL, ROOT_PASSWORD).await;
    let consents: Value = server
        .get(
            &format!("{}/admin/api/consents?user=alice@example.com", server.base),
            &cookie,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(consents[0]["client_id"], "remembered-client", "{consents}");
    assert_eq!(consents[0]["approvals"][0]["resource"], RESOURCE);
    assert_eq!(consents[0]["approvals"][0]["scope"], "mcp:tools");
    let page = server
        .get(
            &format!("{}/admin/grants?user=alice@example.com", server.base),
            &cookie,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Remembered approvals") && page.contains("remembered-client"),
        "{page}"
    );
    let withdrawn = server
        .post_form(
            &format!("{}/admin/consents/withdraw", server.base),
            &cookie,
            &[
                ("csrf_token", &csrf),
                ("user_id", &alice),
                ("client_id", "remembered-client"),
            ],
        )
        .await;
    assert_eq!(withdrawn.status(), StatusCode::SEE_OTHER);
    let consents: Value = server
        .get(
            &format!("{}/admin/api/consents?user={alice}", server.base),
            &cookie,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(consents, serde_json::json!([]));
    // Again, through the API: nothing left, 404.
    let again = server
        .http
        .post(format!(
            "{}/admin/api/users/{alice}/consents/remembered-client/withdraw",
            server.base
        ))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let trail: Value = server
        .get(
            &format!("{}/admin/api/audit?event=consent_withdrawn", server.base),
            &cookie,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(trail[0]["actor"], root.as_str());
    assert_eq!(trail[0]["user"], alice.as_str());
    assert_eq!(trail[0]["client"], "remembered-client");
}
