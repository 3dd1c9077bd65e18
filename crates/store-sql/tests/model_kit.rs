//! The engine's model test kit, concurrency races included, on a real SQLite file and on a
//! real PostgreSQL cluster.

use mcpauth_token_engine::testing::run_model_test_kit;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_model_passes_the_model_test_kit() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("mcpauth-kit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("kit.db");
    let store =
        mcpauth_store_sql::SqlStore::connect(&format!("sqlite://{}", path.display())).await?;
    run_model_test_kit(&store).await;
    // Twice on the same database: the kit must not depend on an empty store.
    run_model_test_kit(&store).await;
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_model_passes_the_model_test_kit() -> Result<(), Box<dyn std::error::Error>> {
    let pg = mcpauth_test_postgres::TempPostgres::start()?;
    let url = pg.create_database("kit")?;
    let store = mcpauth_store_sql::SqlStore::connect(&url).await?;
    assert_eq!(store.backend(), mcpauth_store_sql::Backend::Postgres);
    run_model_test_kit(&store).await;
    run_model_test_kit(&store).await;
    // A second pool on the same database: what another server instance sees.
    let other = mcpauth_store_sql::SqlStore::connect(&url).await?;
    run_model_test_kit(&other).await;
    store.close().await;
    other.close().await;
    Ok(())
}

#[tokio::test]
async fn an_in_memory_sqlite_url_is_refused_with_its_fix() {
    for url in ["sqlite::memory:", "sqlite://kit.db?mode=memory"] {
        let refused = mcpauth_store_sql::SqlStore::connect(url).await;
        let Err(error) = refused else {
            panic!("{url}: accepted");
        };
        assert!(
            matches!(error, mcpauth_store_sql::StoreError::InMemorySqlite),
            "{error}"
        );
        assert!(error.to_string().contains("sqlite://PATH"), "{error}");
    }
}
