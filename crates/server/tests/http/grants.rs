//! Who holds what: `mcpauth-server grant list` shows each grant (user, client, resources,
//! scope, when given, when last refreshed) and `grant revoke` ends one: the client's refresh
//! then fails, and the revocation is in the audit trail with the administrator as actor.

use super::*;

#[tokio::test]
async fn the_operator_lists_a_users_grants_and_revoking_one_ends_its_refresh_tokens() {
    let server = start().await;
    let (client_id, code) = server.fresh_code(&[]).await;
    let tokens: Value = server.redeem_code(&client_id, &code).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap();

    let (ok, listed, err) = cli(
        &server,
        &["grant", "list", "--user", "alice@example.com", "--json"],
    );
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let grants = listed.as_array().unwrap();
    assert_eq!(grants.len(), 1, "{listed}");
    let grant = &grants[0];
    assert_eq!(grant["client_id"], client_id.as_str());
    assert!(grant["user_id"].as_str().unwrap().starts_with("user_"));
    assert!(grant["scope"].is_string(), "{grant}");
    assert_eq!(grant["resources"][0].as_str(), Some(RESOURCE), "{grant}");
    assert!(grant["created_at"].as_u64().is_some());
    assert!(grant["last_refreshed_at"].as_u64().is_some(), "{grant}");
    assert_eq!(grant["revoked_at"], Value::Null);
    // No token or hash is shown.
    assert!(!listed.to_string().contains(refresh_token));
    let grant_id = grant["grant_id"].as_str().unwrap().to_owned();
    // The table, and the client filter.
    let (ok, table, _) = cli(&server, &["grant", "list", "--client", &client_id]);
    assert!(ok && table.contains(&grant_id), "{table}");
    let (ok, none, _) = cli(&server, &["grant", "list", "--client", "another-client"]);
    assert!(ok && !none.contains(&grant_id), "{none}");

    let (ok, out, err) = cli(&server, &["grant", "revoke", &grant_id]);
    assert!(ok && out.contains(&grant_id), "{out}{err}");
    let refreshed = server.refresh(&client_id, refresh_token).await;
    assert_eq!(refreshed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        refreshed.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    // Revoking it again, or a grant that does not exist, changes nothing and says so.
    for id in [grant_id.as_str(), "no-such-grant"] {
        let (ok, _, err) = cli(&server, &["grant", "revoke", id]);
        assert!(!ok && err.contains("no live grant"), "{err}");
    }
    // Live grants only by default; --all shows the revoked one with when.
    let (_, live, _) = cli(&server, &["grant", "list", "--json"]);
    assert_eq!(live.trim(), "[]");
    let (_, all, _) = cli(&server, &["grant", "list", "--all", "--json"]);
    let all: Value = serde_json::from_str(&all).unwrap();
    assert!(all[0]["revoked_at"].as_u64().is_some(), "{all}");

    let (ok, trail, err) = cli(&server, &["audit", "--event", "grant_revoked", "--json"]);
    assert!(ok, "{err}");
    let trail: Value = serde_json::from_str(&trail).unwrap();
    assert_eq!(trail.as_array().unwrap().len(), 1, "{trail}");
    assert_eq!(trail[0]["actor"], "admin");
    assert_eq!(trail[0]["client"], client_id.as_str());
    assert_eq!(trail[0]["detail"], grant_id.as_str());
}
