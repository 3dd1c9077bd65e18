//! What anonymous registration gets: user-delegated grants only, within the operator's limits.

use reqwest::StatusCode;
use serde_json::json;

use super::{Attacker, REDIRECT};
use crate::Check;

impl Attacker<'_> {
    /// Open registration can mint no authority of its own.
    pub(super) async fn open_registration_abuse(&self) -> Check {
        let mut check = Check::new("open registration abuse");
        for grants in [
            json!(["client_credentials"]),
            json!([
                "authorization_code",
                "urn:ietf:params:oauth:grant-type:token-exchange"
            ]),
        ] {
            let answer = self
                .register(json!({
                    "redirect_uris": [REDIRECT],
                    "grant_types": grants,
                    "token_endpoint_auth_method": "client_secret_post",
                    "scope": "mcp:tools mcp:admin",
                }))
                .await;
            check.json_error(&answer, StatusCode::BAD_REQUEST, "invalid_client_metadata");
        }
        // A confidential self-registered client with the admin scope in its registration
        // still cannot obtain a token for itself.
        let registered = self
            .register(json!({
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "client_secret_post",
                "scope": "mcp:tools mcp:admin",
            }))
            .await
            .json();
        check.expect(
            registered["client_secret"].is_string(),
            format!("a confidential client registers (user-delegated grants): {registered}"),
        );
        let answer = self
            .send(self.http.post(self.url("/token")).form(&[
                ("grant_type", "client_credentials"),
                (
                    "client_id",
                    registered["client_id"].as_str().unwrap_or_default(),
                ),
                (
                    "client_secret",
                    registered["client_secret"].as_str().unwrap_or_default(),
                ),
                ("scope", "mcp:tools mcp:admin"),
                ("resource", &self.target.resource),
            ]))
            .await;
        check.expect(
            answer.status == StatusCode::BAD_REQUEST
                && answer.json()["error"] == "unauthorized_client"
                && answer.json()["access_token"].is_null(),
            format!(
                "a self-registered client asked for a token for itself: {}",
                answer.text
            ),
        );
        for uris in [
            json!(["javascript:alert(1)"]),
            json!(["http://evil.example/cb"]),
            json!(["https://evil.example/cb#fragment"]),
        ] {
            let answer = self
                .register(json!({ "redirect_uris": uris, "token_endpoint_auth_method": "none" }))
                .await;
            check.json_error(&answer, StatusCode::BAD_REQUEST, "invalid_redirect_uri");
        }
        let mut nested = json!(1);
        for _ in 0..64 {
            nested = json!([nested]);
        }
        let answer = self
            .register(json!({ "redirect_uris": [REDIRECT], "x": nested }))
            .await;
        check.json_error(&answer, StatusCode::BAD_REQUEST, "invalid_client_metadata");
        let answer = self
            .send(
                self.http
                    .post(self.url("/register"))
                    .header("content-type", "application/json")
                    .body(format!(
                        "{{\"redirect_uris\":[\"{REDIRECT}\"],\"client_name\":\"{}\"}}",
                        "x".repeat(100_000)
                    )),
            )
            .await;
        check.expect(
            matches!(
                answer.status,
                StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE
            ),
            format!("an oversized registration: {}", answer.status),
        );
        check
    }
}
