//! What the resource server and the token endpoints' neighbours accept: token confusion,
//! introspection and revocation by the wrong party.

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Attacker, REDIRECT};
use crate::{Answer, Check};

impl Attacker<'_> {
    /// Tokens the resource server must refuse.
    pub(super) async fn token_confusion(&self) -> Check {
        let mut check = Check::new("token confusion at the resource server");
        let (_, tokens) = self.user_tokens(&self.target.required_scope).await;
        let access = tokens["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let refresh = tokens["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let accepted = self.call_resource(&access, "echo").await;
        check.expect(
            accepted.status.is_success(),
            format!("the user's own token works: {}", accepted.status),
        );
        let refused = |answer: &Answer| answer.status == StatusCode::UNAUTHORIZED;
        let as_refresh = self.call_resource(&refresh, "echo").await;
        check.expect(refused(&as_refresh), "a refresh token presented as bearer");
        let elsewhere = self
            .machine_token(&self.target.required_scope, &self.target.other_resource)
            .await;
        check.expect(
            !elsewhere.is_empty(),
            "the operator's machine client gets a token for the other resource",
        );
        let wrong_audience = self.call_resource(&elsewhere, "echo").await;
        check.expect(
            refused(&wrong_audience),
            format!("a token for another resource: {}", wrong_audience.status),
        );
        // A client's own token, whatever its scope, is not a user's.
        let machine = self
            .machine_token(
                &format!("{} mcp:admin", self.target.required_scope),
                &self.target.resource,
            )
            .await;
        check.expect(
            !machine.is_empty(),
            "the operator's machine client gets a token with the admin scope",
        );
        let user_only = self
            .call_resource(&machine, &self.target.user_only_tool)
            .await;
        check.expect(
            refused(&user_only)
                && user_only
                    .header("www-authenticate")
                    .is_some_and(|c| c.contains("insufficient_user_authentication")),
            format!(
                "a client_credentials token at a user-only tool: {} {:?}",
                user_only.status,
                user_only.header("www-authenticate")
            ),
        );
        // A token the server validly signed, of another kind: the ID token of the attacker's
        // own `openid` sign-in (`typ: JWT`, its `aud` the client), presented as bearer, where
        // the target says it issues ID tokens.
        let metadata = self
            .send(
                self.http
                    .get(self.url("/.well-known/oauth-authorization-server")),
            )
            .await
            .json();
        if metadata["id_token_signing_alg_values_supported"]
            .as_array()
            .is_some_and(|algs| !algs.is_empty())
        {
            let (_, identified) = self
                .user_tokens(&format!("openid {}", self.target.required_scope))
                .await;
            let id_token = identified["id_token"].as_str().unwrap_or_default();
            check.expect(
                !id_token.is_empty(),
                "an openid sign-in answers an ID token (the metadata advertises them)",
            );
            let as_bearer = self.call_resource(id_token, "echo").await;
            check.expect(
                refused(&as_bearer),
                format!("an ID token presented as bearer: {}", as_bearer.status),
            );
        }
        // Forgeries of the user's own token: unsigned (alg none), and an edited payload under
        // its signature.
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let payload: Value = access
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null);
        let header: Value = access
            .split('.')
            .next()
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p)
                    .ok()
            })
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or(Value::Null);
        let signature = access.split('.').nth(2).unwrap_or_default();
        check.expect(
            header["typ"] == "at+jwt" && payload["sub"].is_string() && !signature.is_empty(),
            format!("the user's access token is a signed JWT to forge from: {header}"),
        );
        let mut none_header = header.clone();
        none_header["alg"] = "none".into();
        let mut escalated = payload.clone();
        escalated["scope"] = format!("{} mcp:admin", self.target.required_scope).into();
        for (what, forged) in [
            (
                "alg none",
                format!("{}.{}.", b64(&none_header), b64(&payload)),
            ),
            (
                "an edited scope",
                format!("{}.{}.{signature}", b64(&header), b64(&escalated)),
            ),
        ] {
            let answer = self.call_resource(&forged, "echo").await;
            check.expect(refused(&answer), format!("{what}: {}", answer.status));
        }
        let empty = self
            .send(
                self.http
                    .post(&self.target.resource)
                    .header("authorization", "Bearer"),
            )
            .await;
        check.status(&empty, StatusCode::BAD_REQUEST);
        check
    }

    /// Introspection and revocation: only for those allowed, only for their own tokens.
    pub(super) async fn introspection_and_revocation(&self) -> Check {
        let mut check = Check::new("introspection and revocation");
        let (client_id, tokens) = self.user_tokens(&self.target.required_scope).await;
        let access = tokens["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let anonymous = self
            .send(
                self.http
                    .post(self.url("/introspect"))
                    .form(&[("token", access.as_str())]),
            )
            .await;
        check.status(&anonymous, StatusCode::UNAUTHORIZED);
        let nosy = self
            .register(json!({
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "client_secret_basic",
            }))
            .await
            .json();
        let answer = self
            .send(
                self.http
                    .post(self.url("/introspect"))
                    .basic_auth(
                        nosy["client_id"].as_str().unwrap_or_default(),
                        nosy["client_secret"].as_str(),
                    )
                    .form(&[("token", access.as_str())]),
            )
            .await;
        check.expect(
            answer.status == StatusCode::FORBIDDEN && answer.json().get("active").is_none(),
            format!(
                "a self-registered client introspects: {} {}",
                answer.status, answer.text
            ),
        );
        // Another client cannot revoke the user's tokens.
        let other = self.public_client(&[REDIRECT]).await;
        let revoked = self
            .send(self.http.post(self.url("/revoke")).form(&[
                ("client_id", other.as_str()),
                (
                    "token",
                    tokens["refresh_token"].as_str().unwrap_or_default(),
                ),
            ]))
            .await;
        check.expect(
            revoked.status == StatusCode::BAD_REQUEST
                && revoked.json()["error"] == "unauthorized_client",
            format!(
                "another client revoking: {} {}",
                revoked.status, revoked.text
            ),
        );
        let still = self
            .refresh(
                &client_id,
                tokens["refresh_token"].as_str().unwrap_or_default(),
                &[],
            )
            .await;
        check.status(&still, StatusCode::OK);
        check
    }
}
