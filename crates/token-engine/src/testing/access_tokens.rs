//! `AccessTokenStore` (optional): opaque tokens round-trip by hash.

use super::*;

/// Opaque access tokens are found by hash as stored, and gone once deleted.
pub async fn opaque_access_tokens_round_trip<M: OAuthServerModel + ?Sized>(model: &M) {
    let Some(tokens) = model.opaque_tokens() else {
        panic!(
            "the model keeps no opaque access tokens (ModelBase::opaque_tokens is None): a \
             model that implements AccessTokenStore returns Some(self)"
        );
    };
    let record = AccessTokenRecord {
        token_hash: hashed("access"),
        grant_id: Some("g-9".into()),
        client_id: "kit-client".into(),
        claims: serde_json::json!({ "sub": "user-1", "scope": "mcp", "exp": NOW.plus(60).0 }),
        expires_at: NOW.plus(60),
    };
    tokens
        .insert_access_token(record.clone())
        .await
        .answered("insert_access_token");
    assert_eq!(
        tokens
            .find_access_token(&record.token_hash)
            .await
            .answered("find_access_token")
            .as_ref(),
        Some(&record)
    );
    assert!(
        tokens.insert_access_token(record.clone()).await.is_err(),
        "a duplicate hash must be refused"
    );
    tokens
        .delete_access_token(&record.token_hash)
        .await
        .answered("delete_access_token");
    assert!(matches!(
        tokens.find_access_token(&record.token_hash).await,
        Ok(None)
    ));
}
