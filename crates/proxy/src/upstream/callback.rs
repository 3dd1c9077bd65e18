//! The callback the upstream sends the browser back with (RFC 6749 §4.1.2, RFC 9207's `iss`).

use crate::provider::{IssuerRule, Provider};

/// Why a callback was refused. None of these changes any state except consuming the
/// stored request (a callback is single use, replays find nothing).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallbackError {
    /// The query is malformed: missing `state`, `code` and `error` both or neither, a
    /// repeated parameter.
    #[error("the callback is malformed: {0}")]
    Malformed(&'static str),
    /// No sign-in is waiting for this `state`: forged, expired, or already used (a replay).
    #[error("no sign-in is waiting for this callback (forged, expired or already used)")]
    UnknownState,
    /// The callback arrived at another provider's URL than the one the user was sent to.
    #[error("the callback arrived for another identity provider")]
    WrongProvider,
    /// The browser is not the one that started the sign-in.
    #[error("the callback came from another browser than the one that started the sign-in")]
    WrongBrowser,
    /// RFC 9207: `iss` names another issuer (a mix-up attack), or is missing although the
    /// provider promised it.
    #[error("the callback's issuer is not this identity provider (RFC 9207)")]
    WrongIssuer,
}

/// The parsed callback query.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Callback {
    /// The user signed in.
    Code {
        /// The upstream code.
        code: String,
        /// Our `state`, echoed.
        state: String,
        /// RFC 9207 `iss`, when sent.
        iss: Option<String>,
    },
    /// The upstream answered an error (RFC 6749 §4.1.2.1).
    Error {
        /// The error code (`access_denied`, …).
        error: String,
        /// Its description, if any.
        description: Option<String>,
        /// Our `state`, echoed.
        state: String,
        /// RFC 9207 `iss`, when sent.
        iss: Option<String>,
    },
}

impl Callback {
    /// The `state` the callback carries.
    #[must_use]
    pub fn state(&self) -> &str {
        match self {
            Self::Code { state, .. } | Self::Error { state, .. } => state,
        }
    }

    /// The `iss` the callback carries.
    #[must_use]
    pub fn iss(&self) -> Option<&str> {
        match self {
            Self::Code { iss, .. } | Self::Error { iss, .. } => iss.as_deref(),
        }
    }
}

/// Parses the callback's query string (without `?`). Repeated parameters are refused
/// (RFC 6749 §3.1).
///
/// # Errors
///
/// [`CallbackError::Malformed`].
pub fn parse_callback(query: &str) -> Result<Callback, CallbackError> {
    let mut code = None;
    let mut state = None;
    let mut iss = None;
    let mut error = None;
    let mut description = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match key.as_ref() {
            "code" => &mut code,
            "state" => &mut state,
            "iss" => &mut iss,
            "error" => &mut error,
            "error_description" => &mut description,
            _ => continue,
        };
        if slot.is_some() {
            return Err(CallbackError::Malformed("a parameter is repeated"));
        }
        if value.len() > 4096 {
            return Err(CallbackError::Malformed("a parameter is too long"));
        }
        *slot = Some(value.into_owned());
    }
    let state = state
        .filter(|s| !s.is_empty())
        .ok_or(CallbackError::Malformed("state is missing"))?;
    match (code, error) {
        (Some(code), None) if !code.is_empty() => Ok(Callback::Code { code, state, iss }),
        (None, Some(error)) if !error.is_empty() => Ok(Callback::Error {
            error,
            description,
            state,
            iss,
        }),
        _ => Err(CallbackError::Malformed(
            "exactly one of code and error must be present",
        )),
    }
}

/// RFC 9207 §2.4: when the callback carries `iss`, it must be the provider's issuer; when
/// the provider promised `iss` (`authorization_response_iss_parameter_supported`), it must
/// be there.
///
/// # Errors
///
/// [`CallbackError::WrongIssuer`].
pub fn check_issuer(provider: &Provider, iss: Option<&str>) -> Result<(), CallbackError> {
    match (iss, &provider.issuer, &provider.issuer_rule) {
        (None, _, _) if provider.requires_iss => Err(CallbackError::WrongIssuer),
        (None, _, _) => Ok(()),
        (Some(iss), Some(issuer), _) if iss == issuer => Ok(()),
        (Some(iss), None, Some(IssuerRule::AzureAnyTenant))
            if crate::provider::azure_tenant_of(iss).is_some() =>
        {
            Ok(())
        }
        // An `iss` from a provider with no known issuer (GitHub, Discord, plain OAuth 2.0)
        // cannot be checked against anything: refuse rather than guess.
        (Some(_), _, _) => Err(CallbackError::WrongIssuer),
    }
}
