//! Codes and refresh tokens used twice: inside the grace window, after it, and the family revoked.

use reqwest::StatusCode;

use super::browser::{Browser, query_param};
use super::{Attacker, REDIRECT};
use crate::Check;

impl Attacker<'_> {
    /// A code is used once; its replay revokes what it gave.
    pub(super) async fn code_replay(&self) -> Check {
        let mut check = Check::new("code replay");
        let client_id = self.public_client(&[REDIRECT]).await;
        let mut browser = Browser::new();
        let location = self
            .consent(
                &mut browser,
                &Self::code_request(
                    &client_id,
                    REDIRECT,
                    &self.target.required_scope,
                    &self.target.resource,
                ),
            )
            .await;
        let code = query_param(&location, "code").unwrap_or_default();
        let first = self.redeem(&client_id, &code, &[]).await;
        check.status(&first, StatusCode::OK);
        let replay = self.redeem(&client_id, &code, &[]).await;
        check.json_error(&replay, StatusCode::BAD_REQUEST, "invalid_grant");
        let refresh = first.json()["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let after = self.refresh(&client_id, &refresh, &[]).await;
        check.json_error(&after, StatusCode::BAD_REQUEST, "invalid_grant");
        check
    }

    /// Refresh replays: a retry inside the window gets the same successor; any other replay
    /// revokes the family.
    pub(super) async fn refresh_replay(&self) -> Check {
        let mut check = Check::new("refresh replay");
        let (client_id, tokens) = self.user_tokens(&self.target.required_scope).await;
        let old = tokens["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let rotated = self.refresh(&client_id, &old, &[]).await;
        check.status(&rotated, StatusCode::OK);
        let successor = rotated.json()["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let replay = self.refresh(&client_id, &old, &[]).await;
        if self.target.refresh_reuse_grace > 0 {
            check.expect(
                replay.status == StatusCode::OK
                    && replay.json()["refresh_token"] == successor.as_str(),
                format!(
                    "a retry inside the window gets the same successor: {}",
                    replay.text
                ),
            );
            // The successor moves on; the old token is no longer the one just rotated.
            let next = self.refresh(&client_id, &successor, &[]).await;
            check.status(&next, StatusCode::OK);
            let late = self.refresh(&client_id, &old, &[]).await;
            check.json_error(&late, StatusCode::BAD_REQUEST, "invalid_grant");
            let family = self
                .refresh(
                    &client_id,
                    next.json()["refresh_token"].as_str().unwrap_or_default(),
                    &[],
                )
                .await;
            check.json_error(&family, StatusCode::BAD_REQUEST, "invalid_grant");
        } else {
            check.json_error(&replay, StatusCode::BAD_REQUEST, "invalid_grant");
            let family = self.refresh(&client_id, &successor, &[]).await;
            check.json_error(&family, StatusCode::BAD_REQUEST, "invalid_grant");
        }
        // Another client cannot use the user's refresh token at all.
        let (_, tokens) = self.user_tokens(&self.target.required_scope).await;
        let other = self.public_client(&[REDIRECT]).await;
        let stolen = self
            .refresh(
                &other,
                tokens["refresh_token"].as_str().unwrap_or_default(),
                &[],
            )
            .await;
        check.json_error(&stolen, StatusCode::BAD_REQUEST, "invalid_grant");
        check
    }
}
