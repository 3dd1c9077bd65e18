//! Abandoned dynamic registrations are swept; clients in use and pre-registered ones stay.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use mcpauth_oauth_types::ClientMetadata;
use mcpauth_token_engine::{
    ClientRecord, ClientStore, GrantRecord, GrantStore, TokenEndpointAuthMethod, UnixTime,
};

#[tokio::test]
async fn unused_dynamic_registrations_are_deleted_and_others_kept() {
    let dir = std::env::temp_dir().join(format!("mcpauth-unused-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store =
        mcpauth_store_sql::SqlStore::connect(&format!("sqlite://{}", dir.join("u.db").display()))
            .await
            .unwrap();
    let client = |id: &str, dynamic: bool, created: u64| {
        let mut record = ClientRecord::new(
            id.into(),
            TokenEndpointAuthMethod::None,
            ClientMetadata::default(),
            UnixTime(created),
        );
        if dynamic {
            record.registration_token_hash = Some("h".into());
        }
        record
    };
    store
        .insert_client(client("abandoned", true, 100))
        .await
        .unwrap();
    store
        .insert_client(client("in-use", true, 100))
        .await
        .unwrap();
    store
        .insert_client(client("operator", false, 100))
        .await
        .unwrap();
    store
        .insert_client(client("fresh", true, 10_000))
        .await
        .unwrap();
    store
        .insert_grant(GrantRecord {
            grant_id: "g".into(),
            client_id: "in-use".into(),
            subject: "u".into(),
            scope: String::new(),
            resources: vec![],
            created_at: UnixTime(200),
            revoked_at: None,
        })
        .await
        .unwrap();
    assert_eq!(store.delete_unused_registrations(5_000).await.unwrap(), 1);
    assert!(store.find_client("abandoned").await.unwrap().is_none());
    for kept in ["in-use", "operator", "fresh"] {
        assert!(store.find_client(kept).await.unwrap().is_some(), "{kept}");
    }
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}
