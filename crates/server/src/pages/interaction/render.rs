//! What the interaction's pages show: the consent page (the client, where the answer goes, the
//! scopes), the provider chooser, the sign-in form.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;
use mcpauth_token_engine::{ClientIdentity, PendingAuthorization};

use crate::pages::{LoginPage, Pages, ProviderButton, ScopeLine, SessionBar, page};

#[derive(Template)]
#[template(path = "consent.html")]
pub(super) struct ConsentPage<'a> {
    pub(super) base: &'a str,
    pub(super) signed_in: SessionBar<'a>,
    pub(super) client_name: &'a str,
    pub(super) client_id: &'a str,
    pub(super) identity: String,
    pub(super) resources: &'a [String],
    pub(super) scopes: Vec<ScopeLine<'a>>,
    pub(super) redirect_host: String,
    pub(super) redirect_warning: Option<String>,
    /// Whether the page offers to remember the decision (RFC 8252 §8.6: not for a client
    /// whose identity cannot be assured).
    pub(super) remember_offered: bool,
    pub(super) action: String,
    pub(super) csrf_token: &'a str,
}

/// The chooser of a server with upstream providers: the MCP client's request, and a button
/// per provider that approves it and signs in there. Consent comes first, before the user
/// is sent upstream (the MCP confused-deputy rule: the upstream may remember an earlier
/// sign-in and answer at once, so its consent says nothing about this client).
#[derive(Template)]
#[template(path = "choose.html")]
struct ChooserPage<'a> {
    base: &'a str,
    client_name: &'a str,
    client_id: &'a str,
    identity: String,
    resources: &'a [String],
    scopes: Vec<ScopeLine<'a>>,
    redirect_host: String,
    redirect_warning: Option<String>,
    providers: Vec<ProviderButton<'a>>,
    deny_action: String,
    password_login: bool,
    login_action: String,
    csrf_token: &'a str,
}

/// How the pages describe the client of a request.
pub(super) struct ClientDescription {
    pub(super) name: String,
    pub(super) identity: String,
    pub(super) redirect_host: String,
    /// Said plainly when the answer goes to a program on this device, which any program
    /// could be (a loopback or private-use redirect URI).
    pub(super) redirect_warning: Option<String>,
}

/// The warning for a redirect URI that any local program could receive, if it is one.
fn redirect_warning(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    if url.scheme() == "http" && mcpauth_metadata::is_loopback_http(&url) {
        return Some(
            "The answer goes to a program on this computer (localhost), not to a website: any program running here could be the one listening. Approve only if you just started this from an application you trust."
                .to_owned(),
        );
    }
    if url.scheme() != "https" {
        return Some(format!(
            "The answer goes to an application on this device through the `{}:` link type, which any installed application can claim. Approve only if you just started this from an application you trust.",
            url.scheme()
        ));
    }
    None
}

pub(super) fn describe_client(pending: &PendingAuthorization) -> ClientDescription {
    ClientDescription {
        name: pending.client_name().unwrap_or("An application").to_owned(),
        identity: match &pending.client_identity() {
            ClientIdentity::MetadataDocument { host } => format!("published by {host}"),
            ClientIdentity::SelfRegistered => "unverified: it registered itself".to_owned(),
            _ => "registered by this server's operator".to_owned(),
        },
        redirect_host: url::Url::parse(pending.redirect_uri())
            .ok()
            .map(|u| {
                u.host_str()
                    .map_or_else(|| u.scheme().to_owned(), str::to_owned)
            })
            .unwrap_or_default(),
        redirect_warning: redirect_warning(pending.redirect_uri()),
    }
}

impl Pages {
    pub(crate) fn chooser_page(
        &self,
        id: &str,
        pending: &PendingAuthorization,
        federation: &crate::federation::Federation,
        csrf: &str,
    ) -> Response {
        let client = describe_client(pending);
        let path = self.interaction_path(id);
        page(
            StatusCode::OK,
            ChooserPage {
                base: &self.base,
                client_name: &client.name,
                client_id: pending.client_id(),
                identity: client.identity,
                resources: pending.resources(),
                scopes: self.scope_lines(pending.scope()),
                redirect_host: client.redirect_host,
                redirect_warning: client.redirect_warning,
                providers: federation
                    .login
                    .providers()
                    .iter()
                    .map(|p| ProviderButton {
                        name: &p.display_name,
                        action: format!("{path}/upstream/{}", p.id),
                    })
                    .collect(),
                deny_action: format!("{path}/consent"),
                password_login: self.password_login,
                login_action: format!("{path}/login"),
                csrf_token: csrf,
            }
            .render(),
        )
    }

    pub(crate) fn login_page(
        &self,
        status: StatusCode,
        id: &str,
        pending: &str,
        csrf: &str,
        email: &str,
        error: Option<&str>,
    ) -> Response {
        let client_name = PendingAuthorization::restore(pending)
            .ok()
            .and_then(|p| p.client_name().map(str::to_owned))
            .unwrap_or_else(|| "An application".into());
        page(
            status,
            LoginPage {
                base: &self.base,
                client_name: Some(&client_name),
                purpose: "",
                action: format!("{}/login", self.interaction_path(id)),
                csrf_token: csrf,
                hidden: Vec::new(),
                email,
                error,
                // Shown only without providers (which get the chooser instead).
                providers: Vec::new(),
                password_login: true,
            }
            .render(),
        )
    }
}
