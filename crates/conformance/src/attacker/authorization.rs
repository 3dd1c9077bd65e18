//! The authorization request: scope and resource escalation, redirect-URI variants, PKCE downgrade,
//! consent and CSRF bypasses.

use reqwest::StatusCode;

use super::browser::{Browser, field, query_param};
use super::{Attacker, REDIRECT};
use crate::Check;
use crate::fixture::{CHALLENGE, VERIFIER};

impl Attacker<'_> {
    /// Scopes and resources only narrow.
    pub(super) async fn scope_and_resource_escalation(&self) -> Check {
        let mut check = Check::new("scope and resource escalation");
        let client_id = self.public_client(&[REDIRECT]).await;
        let mut browser = Browser::new();
        let unknown_resource = self
            .consent(
                &mut browser,
                &Self::code_request(
                    &client_id,
                    REDIRECT,
                    &self.target.required_scope,
                    "https://evil.example/mcp",
                ),
            )
            .await;
        check.expect(
            query_param(&unknown_resource, "error").as_deref() == Some("invalid_target"),
            format!("a resource this server does not serve: {unknown_resource}"),
        );
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
        let other = self
            .redeem(
                &client_id,
                &code,
                &[("resource", &self.target.other_resource)],
            )
            .await;
        check.json_error(&other, StatusCode::BAD_REQUEST, "invalid_target");
        let tokens = self.redeem(&client_id, &code, &[]).await;
        check.status(&tokens, StatusCode::OK);
        let refresh = tokens.json()["refresh_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let wider = self
            .refresh(&client_id, &refresh, &[("scope", "mcp:tools mcp:admin")])
            .await;
        check.json_error(&wider, StatusCode::BAD_REQUEST, "invalid_scope");
        let elsewhere = self
            .refresh(
                &client_id,
                &refresh,
                &[("resource", &self.target.other_resource)],
            )
            .await;
        check.json_error(&elsewhere, StatusCode::BAD_REQUEST, "invalid_target");
        check
    }

    /// Only the registered redirect URI, exactly (the port of a loopback one may vary).
    pub(super) async fn redirect_uri_variants(&self) -> Check {
        let mut check = Check::new("redirect-URI variants");
        let client_id = self.public_client(&[REDIRECT]).await;
        for variant in [
            "http://127.0.0.1:53683/callback/",
            "http://127.0.0.1:53683/Callback",
            "http://127.0.0.1:53683/callback?extra=1",
            "http://127.0.0.1:53683/callback/../callback",
            "http://evil@127.0.0.1:53683/callback",
            "http://127.0.0.1.evil.example:53683/callback",
            "https://127.0.0.1:53683/callback",
            "http://127.0.0.1:53683/callback#x",
            "https://evil.example/callback",
        ] {
            let answer = self
                .send(self.http.get(self.authorize_url(&Self::code_request(
                    &client_id,
                    variant,
                    &self.target.required_scope,
                    &self.target.resource,
                ))))
                .await;
            check.expect(
                answer.status == StatusCode::BAD_REQUEST && answer.header("location").is_none(),
                format!(
                    "`{variant}`: {} {:?} (an error page, never a redirect)",
                    answer.status,
                    answer.header("location")
                ),
            );
        }
        let other_port = self
            .send(self.http.get(self.authorize_url(&Self::code_request(
                &client_id,
                "http://127.0.0.1:61999/callback",
                &self.target.required_scope,
                &self.target.resource,
            ))))
            .await;
        check.expect(
            other_port.status == StatusCode::SEE_OTHER,
            "a loopback redirect on another port is accepted (RFC 8252 §7.3)",
        );
        check
    }

    /// PKCE cannot be skipped, weakened, or guessed.
    pub(super) async fn pkce_downgrade(&self) -> Check {
        let mut check = Check::new("PKCE downgrade");
        let client_id = self.public_client(&[REDIRECT]).await;
        let base = |method: Option<&'static str>, challenge: Option<&'static str>| {
            let mut pairs = vec![
                ("response_type", "code"),
                ("client_id", client_id.as_str()),
                ("redirect_uri", REDIRECT),
                ("state", "s"),
                ("resource", self.target.resource.as_str()),
            ];
            if let Some(challenge) = challenge {
                pairs.push(("code_challenge", challenge));
            }
            if let Some(method) = method {
                pairs.push(("code_challenge_method", method));
            }
            self.authorize_url(&pairs)
        };
        for (what, url) in [
            ("no challenge", base(None, None)),
            ("plain", base(Some("plain"), Some(VERIFIER))),
            ("no method", base(None, Some(CHALLENGE))),
        ] {
            let answer = self.send(self.http.get(url)).await;
            let location = answer.header("location").unwrap_or_default();
            check.expect(
                location.contains("error=invalid_request") && !location.contains("code="),
                format!("{what}: {location}"),
            );
        }
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
        let no_verifier = self
            .send(self.http.post(self.url("/token")).form(&[
                ("grant_type", "authorization_code"),
                ("client_id", client_id.as_str()),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
            ]))
            .await;
        check.json_error(&no_verifier, StatusCode::BAD_REQUEST, "invalid_request");
        let wrong = self
            .send(self.http.post(self.url("/token")).form(&[
                ("grant_type", "authorization_code"),
                ("client_id", client_id.as_str()),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &"A".repeat(43)),
            ]))
            .await;
        check.json_error(&wrong, StatusCode::BAD_REQUEST, "invalid_grant");
        let right = self.redeem(&client_id, &code, &[]).await;
        check.expect(
            right.status == StatusCode::OK,
            "failed attempts leave the code usable for the right verifier",
        );
        check
    }

    /// Consent is the signed-in user's, in their browser, once.
    pub(super) async fn consent_and_csrf_bypasses(&self) -> Check {
        let mut check = Check::new("consent and CSRF bypasses");
        let client_id = self.public_client(&[REDIRECT]).await;
        let request = Self::code_request(
            &client_id,
            REDIRECT,
            &self.target.required_scope,
            &self.target.resource,
        );
        // The victim signs in and reaches the consent page.
        let mut victim = Browser::new();
        let started = victim.get(&self.authorize_url(&request)).await;
        let interaction = self.url(&started.header("location").unwrap_or_default());
        let login = victim.get(&interaction).await;
        victim
            .post_form(
                &format!("{interaction}/login"),
                &[
                    ("csrf_token", &field(&login.text, "csrf_token")),
                    ("email", &self.target.user.0),
                    ("password", &self.target.user.1),
                ],
            )
            .await;
        let consent = victim.get(&interaction).await;
        let csrf = field(&consent.text, "csrf_token");
        // Another site posts the approval from the victim's session, without the interaction's
        // CSRF cookie (SameSite) or with a guessed token.
        let mut cross_site = Browser::new();
        cross_site.cookies = victim
            .cookies
            .iter()
            .filter(|(name, _)| !name.contains("csrf"))
            .cloned()
            .collect();
        let forged = cross_site
            .post_form(
                &format!("{interaction}/consent"),
                &[("csrf_token", &csrf), ("decision", "approve")],
            )
            .await;
        check.expect(
            forged.status == StatusCode::FORBIDDEN && forged.header("location").is_none(),
            format!(
                "a consent posted without the browser's CSRF cookie: {}",
                forged.status
            ),
        );
        let guessed = victim
            .post_form(
                &format!("{interaction}/consent"),
                &[("csrf_token", "guessed"), ("decision", "approve")],
            )
            .await;
        check.expect(
            guessed.status == StatusCode::FORBIDDEN && guessed.header("location").is_none(),
            format!("a consent with a guessed CSRF token: {}", guessed.status),
        );
        // Approving without a signed-in user issues nothing.
        let mut anonymous = Browser::new();
        let started = anonymous.get(&self.authorize_url(&request)).await;
        let anonymous_interaction = self.url(&started.header("location").unwrap_or_default());
        let page = anonymous.get(&anonymous_interaction).await;
        let approve = anonymous
            .post_form(
                &format!("{anonymous_interaction}/consent"),
                &[
                    ("csrf_token", &field(&page.text, "csrf_token")),
                    ("decision", "approve"),
                ],
            )
            .await;
        check.expect(
            !approve
                .header("location")
                .is_some_and(|l| l.contains("code=")),
            "approving without a user issues no code",
        );
        // The victim's real approval works once; a second post finds the interaction gone.
        let approved = victim
            .post_form(
                &format!("{interaction}/consent"),
                &[("csrf_token", &csrf), ("decision", "approve")],
            )
            .await;
        check.expect(
            approved
                .header("location")
                .is_some_and(|l| l.contains("code=")),
            format!("the victim's own approval: {}", approved.status),
        );
        let again = victim
            .post_form(
                &format!("{interaction}/consent"),
                &[("csrf_token", &csrf), ("decision", "approve")],
            )
            .await;
        check.expect(
            again.header("location").is_none(),
            "a decision is taken once",
        );
        // The device page's forms need the form token too.
        let device = victim
            .post_form(
                &self.url("/device/code"),
                &[("csrf_token", "forged"), ("user_code", "BCDF-GHJK")],
            )
            .await;
        check.status(&device, StatusCode::FORBIDDEN);
        check
    }
}
