//! The engine's model test kit, concurrency races included, on a real SQLite file.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_model_passes_the_model_test_kit() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("mcpauth-kit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("kit.db");
    let store =
        mcpauth_store_sql::SqlStore::connect(&format!("sqlite://{}", path.display())).await?;
    mcpauth_token_engine::testing::run_model_test_kit(&store).await;
    // Twice on the same database: the kit must not depend on an empty store.
    mcpauth_token_engine::testing::run_model_test_kit(&store).await;
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
