//! How the suites send a request and record what came back differently than expected.

use reqwest::StatusCode;
use serde_json::Value;

/// A request and what must come back.
pub(crate) struct Check {
    pub(crate) name: &'static str,
    pub(crate) failures: Vec<String>,
}

impl Check {
    pub(crate) fn new(name: &'static str) -> Self {
        Self {
            name,
            failures: Vec::new(),
        }
    }

    pub(crate) fn expect(&mut self, ok: bool, what: impl std::fmt::Display) {
        if !ok {
            self.failures.push(format!("{}: {what}", self.name));
        }
    }

    pub(crate) fn status(&mut self, response: &Answer, expected: StatusCode) {
        self.expect(
            response.status == expected,
            format!(
                "status {} (expected {expected}); body {}",
                response.status, response.text
            ),
        );
    }

    pub(crate) fn header(&mut self, response: &Answer, name: &str, expected: &str) {
        let actual = response.header(name);
        self.expect(
            actual.as_deref() == Some(expected),
            format!("header {name}: {actual:?} (expected {expected:?})"),
        );
    }

    pub(crate) fn json_error(&mut self, response: &Answer, status: StatusCode, error: &str) {
        self.status(response, status);
        self.header(response, "cache-control", "no-store");
        self.expect(
            response
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            format!(
                "content-type {:?} (expected JSON)",
                response.header("content-type")
            ),
        );
        let body = response.json();
        self.expect(
            body["error"] == error,
            format!("error {} (expected {error})", body["error"]),
        );
        self.expect(
            body["error_description"].is_string(),
            "an error_description says what was wrong",
        );
    }

    pub(crate) fn common_headers(&mut self, response: &Answer, cors: bool) {
        self.header(response, "x-content-type-options", "nosniff");
        self.header(response, "x-frame-options", "DENY");
        self.header(response, "referrer-policy", "no-referrer");
        if cors {
            self.header(response, "access-control-allow-origin", "*");
        }
    }
}

/// A response, read whole.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) text: String,
}

impl Answer {
    pub(crate) async fn from(response: reqwest::Response) -> Self {
        Self {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap_or_default(),
        }
    }

    /// Sends `request` and reads the answer; a request that got none is `418` with the
    /// reason as its text, so every check on it fails and says why.
    pub(crate) async fn of(request: reqwest::RequestBuilder) -> Self {
        match request.send().await {
            Ok(response) => Self::from(response).await,
            Err(e) => Self {
                status: StatusCode::IM_A_TEAPOT,
                headers: reqwest::header::HeaderMap::new(),
                text: format!("no answer: {e}"),
            },
        }
    }

    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

/// An HTTP client that reads redirects instead of following them: every "no `Location`"
/// check depends on it, so a client that cannot be built so stops the suite (a silently
/// redirect-following default would turn those checks green).
///
/// # Panics
///
/// When the TLS backend cannot be initialised.
#[allow(clippy::expect_used, reason = "the suite cannot run without it")]
pub(crate) fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client that does not follow redirects")
}

/// Panics listing every failure of `checks`, counted as `what`.
pub(crate) fn assert_passed(what: &str, checks: impl IntoIterator<Item = Check>) {
    let failures: Vec<String> = checks.into_iter().flat_map(|c| c.failures).collect();
    assert!(
        failures.is_empty(),
        "{} {what}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
