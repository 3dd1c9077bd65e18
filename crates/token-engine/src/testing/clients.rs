//! `ClientStore`: clients round-trip as stored.

use super::*;

/// A stored client is found as stored; an unknown id is `None`.
pub async fn clients_round_trip<M: OAuthServerModel + ?Sized>(model: &M) {
    let mut metadata = ClientMetadata::default();
    metadata.redirect_uris = vec!["http://127.0.0.1/cb".into()];
    metadata.client_name = Some("Kit <client> \"quoted\"".into());
    let mut client = ClientRecord::new(
        unique("client"),
        TokenEndpointAuthMethod::ClientSecretBasic,
        metadata,
        NOW,
    );
    client.secret_hash = Some(SecretHash::of("hash"));
    client.secret_expires_at = Some(NOW.plus(10));
    model
        .insert_client(client.clone())
        .await
        .answered("insert_client");
    let found = model
        .find_client(&client.client_id)
        .await
        .answered("find_client");
    assert_eq!(
        found.as_ref(),
        Some(&client),
        "find_client must return the client as stored"
    );
    assert!(
        model.insert_client(client.clone()).await.is_err(),
        "insert_client must refuse a duplicate client_id"
    );
    assert!(
        matches!(model.find_client(&unique("missing")).await, Ok(None)),
        "an unknown client must be None"
    );
    let mut updated = client.clone();
    updated.metadata.client_name = Some("Renamed".into());
    updated.registration_token_hash = Some(SecretHash::of("rat"));
    assert!(matches!(
        model.update_client(updated.clone()).await,
        Ok(true)
    ));
    assert_eq!(
        model
            .find_client(&client.client_id)
            .await
            .answered("find_client")
            .as_ref(),
        Some(&updated),
        "update_client must replace the record"
    );
    let mut ghost = client.clone();
    ghost.client_id = unique("ghost");
    assert!(
        matches!(model.update_client(ghost).await, Ok(false)),
        "updating an unknown client changes nothing"
    );
    assert!(matches!(
        model.delete_client(&client.client_id).await,
        Ok(true)
    ));
    assert!(matches!(
        model.delete_client(&client.client_id).await,
        Ok(false)
    ));
    assert!(matches!(
        model.find_client(&client.client_id).await,
        Ok(None)
    ));
}
