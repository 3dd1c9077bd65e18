//! Serving a built [`Server`]: the listener, the sweepers, graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use crate::config::Config;
use crate::{
    KEY_RELOAD_INTERVAL, SSF_STREAM_IDLE, SUCCESSOR_MARGIN, Server, StartError, build, said,
};

/// What the periodic sweep needs: the store, the clock and the retention settings.
pub(crate) struct Housekeeping {
    pub(crate) store: mcpauth_store_sql::SqlStore,
    pub(crate) clock: Arc<dyn mcpauth_token_engine::Clock>,
    pub(crate) unused_registration_ttl: Option<u64>,
    pub(crate) security_event_retention: u64,
    pub(crate) audit_retention: Option<u64>,
}

impl Housekeeping {
    /// One pass: expired rows, old security events and idle streams, audit records past
    /// their retention, registrations never used. Failures are logged; the next pass tries
    /// again.
    pub(crate) async fn sweep(&self) {
        let (store, clock) = (&self.store, &self.clock);
        match store.sweep_expired(clock.now()).await {
            Ok(removed) if removed > 0 => tracing::debug!(removed, "swept expired rows"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweeping expired rows failed"),
        }
        let now = clock.now().0;
        match store
            .sweep_security_events(
                mcpauth_token_engine::UnixTime(now.saturating_sub(self.security_event_retention)),
                mcpauth_token_engine::UnixTime(now.saturating_sub(SSF_STREAM_IDLE)),
            )
            .await
        {
            Ok(removed) if removed > 0 => {
                tracing::debug!(removed, "swept old security events and idle streams")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweeping security events failed"),
        }
        if let Some(retention) = self.audit_retention {
            match store
                .sweep_audit_events(mcpauth_token_engine::UnixTime(
                    now.saturating_sub(retention),
                ))
                .await
            {
                Ok(removed) if removed > 0 => {
                    tracing::debug!(removed, "swept audit records past their retention")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweeping audit records failed"),
            }
        }
        if let Some(ttl) = self.unused_registration_ttl {
            match store
                .delete_unused_registrations(now.saturating_sub(ttl))
                .await
            {
                Ok(removed) if removed > 0 => {
                    tracing::info!(removed, "deleted registrations that were never used")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweeping unused registrations failed"),
            }
        }
    }
}

/// Serves `server` on `listener` until `shutdown` completes, sweeping expired rows every
/// ten minutes.
///
/// # Errors
///
/// [`StartError::Io`] when serving fails.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    server: Server,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    // `/metrics` on its own address first: a port another program holds fails the start.
    let metrics_server = match &server.metrics_listener {
        None => None,
        Some((address, router)) => {
            let metrics_tcp = tokio::net::TcpListener::bind(address)
                .await
                .map_err(|source| StartError::Io {
                    addr: address.to_string(),
                    source,
                })?;
            tracing::info!(listen = %address, "serving /metrics on its own address");
            Some(tokio::spawn(
                axum::serve(metrics_tcp, router.clone()).into_future(),
            ))
        }
    };
    let housekeeping = server.housekeeping();
    let sweeper = tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            interval.tick().await;
            housekeeping.sweep().await;
        }
    });
    // Shared Signals push delivery (RFC 8935), where push origins are configured.
    let pushes = tokio::spawn(server.transmitter.clone().deliver_pushes());
    // A rotated refresh token's successor is kept (sealed) for the reuse grace window only.
    let successors = tokio::spawn({
        let store = server.store.clone();
        let clock = server.clock.clone();
        let grace = server.engine.config().refresh_reuse_grace_seconds();
        async move {
            // Without a grace window no successor is kept: forget any an earlier configuration
            // (or another instance) left, once.
            if grace == 0 {
                if let Err(e) = store.forget_refresh_successors(clock.now().0).await {
                    tracing::warn!(error = %e, "forgetting rotated refresh successors failed");
                }
                return;
            }
            let mut interval =
                tokio::time::interval(std::time::Duration::from_secs(grace.clamp(1, 60)));
            loop {
                interval.tick().await;
                // A margin past the window, so a retry in its last second (or on an
                // instance whose clock is a little behind) still finds the successor.
                let closed = clock
                    .now()
                    .0
                    .saturating_sub(grace.saturating_add(SUCCESSOR_MARGIN));
                if let Err(e) = store.forget_refresh_successors(closed).await {
                    tracing::warn!(error = %e, "forgetting rotated refresh successors failed");
                }
            }
        }
    });
    let server = Arc::new(server);
    let reloader = tokio::spawn({
        let server = server.clone();
        async move {
            let mut interval =
                tokio::time::interval(std::time::Duration::from_secs(KEY_RELOAD_INTERVAL));
            interval.tick().await;
            loop {
                interval.tick().await;
                if let Err(e) = server.reload_keys().await {
                    tracing::warn!(error = %said(&e), "reloading signing keys failed; keeping the current ones");
                }
            }
        }
    });
    let (result, tls_reloader) = match server.tls.clone() {
        None => {
            let service = server
                .router
                .clone()
                .into_make_service_with_connect_info::<std::net::SocketAddr>();
            // Small responses go out at once: without TCP_NODELAY a response written in
            // pieces can wait for the client's delayed ACK (40 ms on Linux).
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let result = axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await;
            (result, None)
        }
        Some(certificates) => {
            let listener =
                crate::tls::TlsListener::new(listener, &certificates).map_err(|source| {
                    StartError::Io {
                        addr: addr.clone(),
                        source,
                    }
                })?;
            // A renewed certificate is used without a restart.
            let reloader = tokio::spawn(async move {
                let mut interval = tokio::time::interval(crate::tls::RELOAD_INTERVAL);
                interval.tick().await;
                loop {
                    interval.tick().await;
                    match certificates.reload() {
                        Ok(true) => tracing::info!("reloaded the TLS certificate and key"),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(
                            error = %said(&e),
                            "the TLS certificate and key did not reload; serving the ones loaded before"
                        ),
                    }
                }
            });
            let service = server
                .router
                .clone()
                .layer(axum::middleware::from_fn(crate::tls::peer_address))
                .into_make_service_with_connect_info::<crate::tls::TlsPeer>();
            let result = axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await;
            (result, Some(reloader))
        }
    };
    if let Some(reloader) = tls_reloader {
        reloader.abort();
    }
    if let Some(metrics_server) = metrics_server {
        metrics_server.abort();
    }
    sweeper.abort();
    successors.abort();
    reloader.abort();
    pushes.abort();
    // The audit records of the last requests answered, before the process exits.
    server.audit.flush().await;
    result.map_err(|source| StartError::Io { addr, source })
}

/// Runs the request in its own task. A client that hangs up drops the request's future; one
/// dropped inside a database transaction (between sqlx's `BEGIN` and its drop guard) would
/// return the connection to the pool still in the transaction, holding row locks that stall
/// every later request touching those rows (seen under load on PostgreSQL: sign-ins waiting
/// on an interaction row until the statement timeout).
pub(crate) async fn run_to_completion(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "the request's task failed");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Builds and serves `config` on its `listen` address until `shutdown` completes.
///
/// # Errors
///
/// [`StartError`] naming what failed.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    // The address first: a port another program holds fails before anything is created (a
    // database, a signing key).
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Io {
            addr: config.listen.to_string(),
            source,
        })?;
    let server = build(&config).await?;
    tracing::info!(listen = %config.listen, issuer = %config.issuer(), "mcpauth-server is ready");
    serve_on(listener, server, shutdown).await
}
