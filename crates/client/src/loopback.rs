//! The loopback redirect listener (RFC 8252 §7.3): `http://127.0.0.1:{port}/callback`, on
//! a random port unless a preferred one is free. It answers the one callback that carries
//! the `state` of the sign-in in progress, whose `Host` must be its own address (a
//! DNS-rebinding page cannot reach it through another name), with a "you can close this
//! window" page, and stops; anything else (a stray request, a page that guesses the port) is
//! refused and the listener keeps waiting, until its time limit.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::sync::oneshot;

use crate::Error;

const DONE_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Signed in</title>\
<body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto\">\
<h1>You are signed in</h1><p>You can close this window and return to the application.</p>";

const FAILED_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Not signed in</title>\
<body style=\"font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto\">\
<h1>The sign-in did not complete</h1><p>Return to the application to see why.</p>";

/// How long a connection may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A listener waiting for one authorization response.
#[derive(Debug)]
pub struct LoopbackListener {
    listener: tokio::net::TcpListener,
    port: u16,
}

struct Waiting {
    host: String,
    state: String,
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

    /// Waits up to `timeout` for the callback carrying `state` (the authorization request's);
    /// returns its raw query. Requests without it are refused and do not end the wait.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when nothing came in time; [`Error::Browser`] when serving failed.
    pub async fn wait(self, state: &str, timeout: Duration) -> Result<String, Error> {
        let (sender, received) = oneshot::channel();
        let waiting = Arc::new(Waiting {
            host: format!("127.0.0.1:{}", self.port),
            state: state.to_owned(),
            sender: Mutex::new(Some(sender)),
        });
        let listener = self.listener;
        let mut connections = tokio::task::JoinSet::new();
        // HTTP/1.1, one request per connection (no keep-alive), its head within a few
        // seconds: a local process that opens idle connections holds none for long. The
        // listener stops accepting when the answer came or time ran out.
        let accept = async {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of descriptors, say: wait for some to close, never spin.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let waiting = Arc::clone(&waiting);
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let answer = answer(&waiting, &request);
                        async move { Ok::<_, Infallible>(answer) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .keep_alive(false)
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        };
        let outcome = tokio::select! {
            outcome = received => outcome
                .map_err(|_| Error::Browser("the loopback listener stopped".into())),
            () = accept => Err(Error::Browser("the loopback listener stopped".into())),
            () = tokio::time::sleep(timeout) => Err(Error::Timeout {
                seconds: timeout.as_secs(),
            }),
        };
        // Let the page reach the browser (it was answered before the wait ended, so this
        // takes a moment), then close whatever is left: a browser's spare connection, say.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        connections.abort_all();
        outcome
    }
}

fn page(
    status: StatusCode,
    content_type: &'static str,
    body: &'static str,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        http::HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The answer to one request: only `GET /callback` on our own `Host` with this sign-in's
/// `state` is taken (and ends the wait); anything else is refused.
fn answer(waiting: &Waiting, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if request.uri().path() != "/callback" {
        return page(StatusCode::NOT_FOUND, TEXT, "not found");
    }
    if request.method() != Method::GET {
        return page(StatusCode::METHOD_NOT_ALLOWED, TEXT, "GET only");
    }
    let host_ok = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h == waiting.host);
    if !host_ok {
        return page(StatusCode::MISDIRECTED_REQUEST, TEXT, "wrong host");
    }
    let query = request.uri().query().unwrap_or_default();
    // Only the response to this sign-in ends the wait: its `state` (RFC 6749 §10.12).
    let states: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .collect();
    let ours = matches!(states.as_slice(), [state] if mcpauth_oauth_types::constant_time_eq(state.as_bytes(), waiting.state.as_bytes()));
    if !ours {
        return page(
            StatusCode::BAD_REQUEST,
            TEXT,
            "this is not the answer to the sign-in in progress",
        );
    }
    let failed = url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "error");
    let sender = waiting
        .sender
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let Some(sender) = sender else {
        return page(StatusCode::CONFLICT, TEXT, "this sign-in already completed");
    };
    let _ = sender.send(query.to_owned());
    page(
        StatusCode::OK,
        "text/html; charset=utf-8",
        if failed { FAILED_PAGE } else { DONE_PAGE },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    // A stray request (a wrong or missing state, a scanner) is refused and does not end the
    // sign-in: the listener keeps waiting for the answer with the expected state.
    #[tokio::test]
    async fn a_stray_request_does_not_abort_the_sign_in() {
        let listener = LoopbackListener::bind(None).await.unwrap();
        let base = listener.redirect_uri();
        let waiting = tokio::spawn(listener.wait("expected-state", Duration::from_secs(20)));
        let http = reqwest::Client::new();
        let get = |query: &str| {
            let url = format!("{base}?{query}");
            let http = http.clone();
            async move { http.get(url).send().await.unwrap().status() }
        };
        // The listener may need a moment to start serving.
        let mut first = None;
        for _ in 0..50 {
            match http.get(format!("{base}?code=x")).send().await {
                Ok(response) => {
                    first = Some(response.status());
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        assert_eq!(first, Some(reqwest::StatusCode::BAD_REQUEST), "no state");
        assert_eq!(
            get("code=x&state=guess").await,
            reqwest::StatusCode::BAD_REQUEST
        );
        assert_eq!(
            get("code=x&state=expected-state&state=expected-state").await,
            reqwest::StatusCode::BAD_REQUEST,
            "a repeated state is not ours"
        );
        assert!(!waiting.is_finished(), "still waiting");
        assert_eq!(
            get("code=the-code&state=expected-state").await,
            reqwest::StatusCode::OK
        );
        let query = waiting.await.unwrap().unwrap();
        assert!(query.contains("code=the-code"), "{query}");
    }

    // A connection that never sends a request (a browser's spare connection, or a local
    // process holding one open) neither blocks the answer nor outlives the wait.
    #[tokio::test]
    async fn an_idle_connection_does_not_hold_up_the_sign_in() {
        let listener = LoopbackListener::bind(None).await.unwrap();
        let port = listener.port();
        let base = listener.redirect_uri();
        let waiting = tokio::spawn(listener.wait("expected-state", Duration::from_secs(20)));
        let mut idle = None;
        for _ in 0..50 {
            match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                Ok(stream) => {
                    idle = Some(stream);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let mut idle = idle.unwrap();
        let status = reqwest::get(format!("{base}?code=c&state=expected-state"))
            .await
            .unwrap()
            .status();
        assert_eq!(status, reqwest::StatusCode::OK);
        assert!(waiting.await.unwrap().unwrap().contains("code=c"));
        // The listener closed the idle connection when it stopped.
        use tokio::io::AsyncReadExt as _;
        let mut buffer = [0_u8; 1];
        assert_eq!(idle.read(&mut buffer).await.unwrap(), 0);
    }
}
