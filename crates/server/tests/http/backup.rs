//! Backups and upgrades: `mcpauth-server backup` copies the SQLite database while the server
//! serves; `restore` puts the copy where a new instance's database goes, and that instance
//! honours the clients and tokens of the first (up to the backup, nothing after). With
//! `migrate = false` a server refuses a database that lacks migrations, naming `mcpauth-server
//! migrate`, which brings it up to date.

use super::*;

#[tokio::test]
async fn a_backup_taken_while_serving_restores_into_a_new_instance_with_its_clients_and_tokens() {
    let first = start().await;
    let (client_id, code) = first.fresh_code(&[]).await;
    let tokens: Value = first.redeem_code(&client_id, &code).await;
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let elsewhere = temp_dir("backup-copies");
    let backup = elsewhere.join("mcpauth-backup.db");
    // While the first instance serves.
    let (ok, out, err) = cli(&first, &["backup", backup.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    // It holds password hashes and the sealed keys: its owner's alone.
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let after_the_backup = first.register().await;
    // It refuses to overwrite a file.
    let (ok, _, err) = cli(&first, &["backup", backup.to_str().unwrap()]);
    assert!(!ok, "{err}");
    let issuer = first.issuer.clone();
    drop(first);

    // Restore where the new instance keeps its database.
    let second_dir = temp_dir("backup-restored");
    let url = format!("sqlite://{}", second_dir.join("mcpauth.db").display());
    let not_a_backup = elsewhere.join("notes.txt");
    std::fs::write(&not_a_backup, "not a database").unwrap();
    let (ok, _, err) = cli_on(&url, &["restore", not_a_backup.to_str().unwrap()]);
    assert!(!ok && err.contains("notes.txt"), "{err}");
    assert!(
        !second_dir.join("mcpauth.db").exists(),
        "nothing half restored"
    );
    // A write-ahead log left where the database goes would be replayed onto the copy.
    let stale_wal = second_dir.join("mcpauth.db-wal");
    std::fs::write(&stale_wal, b"left behind").unwrap();
    let (ok, _, err) = cli_on(&url, &["restore", backup.to_str().unwrap()]);
    assert!(!ok && err.contains("mcpauth.db-wal"), "{err}");
    std::fs::remove_file(&stale_wal).unwrap();
    let (ok, out, err) = cli_on(&url, &["restore", backup.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = cli_on(&url, &["restore", backup.to_str().unwrap()]);
    assert!(
        !ok && err.contains("exists"),
        "never over a database: {err}"
    );

    // The new instance, at the same issuer, on the restored database.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = mcpauth_server::Config::default();
    config.listen = listener.local_addr().unwrap();
    config.issuer = Some(issuer.clone());
    config.database_url = url.clone();
    config.migrate = false;
    let server = mcpauth_server::build(&config).await.unwrap();
    let store = server.store.clone();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mcpauth_server::serve_on(listener, server, async {
        let _ = stopped.await;
    }));
    let at = format!("http://{}", config.listen);
    let refreshed = reqwest::Client::new()
        .post(format!("{at}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        refreshed.status(),
        StatusCode::OK,
        "the refresh token is there"
    );
    let refreshed: Value = refreshed.json().await.unwrap();
    // The access tokens of both instances are signed with the same restored keys.
    let kid = |token: &str| {
        let header = token.split('.').next().unwrap();
        let header: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
                .unwrap(),
        )
        .unwrap();
        header["kid"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        kid(tokens["access_token"].as_str().unwrap()),
        kid(refreshed["access_token"].as_str().unwrap())
    );
    use mcpauth_token_engine::ClientStore as _;
    assert!(
        store
            .find_client(&mcpauth_token_engine::ClientId::from(client_id.as_str()))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .find_client(&mcpauth_token_engine::ClientId::from(
                after_the_backup.as_str()
            ))
            .await
            .unwrap()
            .is_none(),
        "what came after the backup is not in it"
    );
    assert!(
        store
            .find_user_by_email("alice@example.com")
            .await
            .unwrap()
            .is_some()
    );
    let _ = std::fs::remove_dir_all(&elsewhere);
    let _ = std::fs::remove_dir_all(&second_dir);
}

#[tokio::test]
async fn without_migrations_a_database_that_lacks_them_is_refused_until_migrate_runs() {
    let dir = temp_dir("no-migrate");
    let url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    let mut config = mcpauth_server::Config::default();
    config.database_url = url.clone();
    config.migrate = false;
    // A database no migration has touched yet (created empty).
    std::fs::write(dir.join("mcpauth.db"), b"").unwrap();
    let refused = mcpauth_server::build(&config)
        .await
        .map(|_| ())
        .unwrap_err();
    let said = mcpauth_server::said(&refused);
    assert!(said.contains("mcpauth-server migrate"), "{said}");
    // The flag says the same as the setting.
    let (ok, _, err) = cli_on(&url, &["--no-migrate", "user", "list"]);
    assert!(!ok && err.contains("mcpauth-server migrate"), "{err}");
    let (ok, out, err) = cli_on(&url, &["migrate"]);
    assert!(ok && out.contains("migrations"), "{out}{err}");
    let server = mcpauth_server::build(&config).await.unwrap();
    server.store.close().await;
    // With migrations on (the default), a server brings the database up by itself.
    let fresh = temp_dir("migrate-at-start");
    let mut config = mcpauth_server::Config::default();
    config.database_url = format!("sqlite://{}", fresh.join("mcpauth.db").display());
    let server = mcpauth_server::build(&config).await.unwrap();
    assert!(!server.store.schema_versions().await.unwrap().is_empty());
    server.store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&fresh);
}
