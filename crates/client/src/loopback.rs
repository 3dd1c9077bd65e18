//! The loopback redirect listener (RFC 8252 §7.3): `http://127.0.0.1:{port}/callback`, on
//! a random port unless a preferred one is free. It answers one callback, whose `Host` must
//! be its own address (a DNS-rebinding page cannot reach it through another name), with a
//! "you can close this window" page, and stops; it gives up after a time limit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use tokio::sync::oneshot;

use crate::Error;

const DONE_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Signed in</title>\
<body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto\">\
<h1>You are signed in</h1><p>You can close this window and return to the application.</p>";

const FAILED_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Not signed in</title>\
<body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto\">\
<h1>The sign-in did not complete</h1><p>Return to the application to see why.</p>";

/// A listener waiting for one authorization response.
#[derive(Debug)]
pub struct LoopbackListener {
    listener: tokio::net::TcpListener,
    port: u16,
}

struct Waiting {
    host: String,
    sender: Mutex<Option<oneshot::Sender<String>>>,
}

impl LoopbackListener {
    /// Listens on `127.0.0.1`, on `preferred_port` when it is free (so a registration made
    /// with it matches exactly), otherwise on a random port.
    ///
    /// # Errors
    ///
    /// [`Error::Browser`] when no port can be bound.
    pub async fn bind(preferred_port: Option<u16>) -> Result<Self, Error> {
        let preferred = match preferred_port.filter(|p| *p != 0) {
            Some(port) => tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .ok(),
            None => None,
        };
        let listener = match preferred {
            Some(listener) => listener,
            None => tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(|e| Error::Browser(format!("cannot listen on 127.0.0.1: {e}")))?,
        };
        let port = listener
            .local_addr()
            .map_err(|e| Error::Browser(e.to_string()))?
            .port();
        Ok(Self { listener, port })
    }

    /// The port listened on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The redirect URI to send: `http://127.0.0.1:{port}/callback`.
    #[must_use]
    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    /// Waits up to `timeout` for the callback; returns its raw query.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when nothing came in time; [`Error::Browser`] when serving failed.
    pub async fn wait(self, timeout: Duration) -> Result<String, Error> {
        let (sender, received) = oneshot::channel();
        let waiting = Arc::new(Waiting {
            host: format!("127.0.0.1:{}", self.port),
            sender: Mutex::new(Some(sender)),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let app = axum::Router::new()
            .route("/callback", axum::routing::get(callback))
            .with_state(waiting);
        let server = tokio::spawn(async move {
            axum::serve(self.listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        let outcome = tokio::time::timeout(timeout, received).await;
        let _ = stop.send(());
        // Let the page reach the browser before the listener goes.
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        match outcome {
            Ok(Ok(query)) => Ok(query),
            Ok(Err(_)) => Err(Error::Browser("the loopback listener stopped".into())),
            Err(_) => Err(Error::Timeout {
                seconds: timeout.as_secs(),
            }),
        }
    }
}

async fn callback(
    State(waiting): State<Arc<Waiting>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let host_ok = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h == waiting.host);
    if !host_ok {
        return (StatusCode::MISDIRECTED_REQUEST, "wrong host").into_response();
    }
    let query = query.unwrap_or_default();
    let failed = url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "error");
    let sender = waiting
        .sender
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let Some(sender) = sender else {
        return (StatusCode::CONFLICT, "this sign-in already completed").into_response();
    };
    let _ = sender.send(query);
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(if failed { FAILED_PAGE } else { DONE_PAGE }),
    )
        .into_response()
}
