//! The signed-in user as the upstream describes them: from an ID token and the userinfo
//! endpoint (OpenID Connect Core §5), or from a provider's own user API (GitHub, Discord,
//! any OAuth 2.0 provider through a [`ClaimMapping`]).
//!
//! Every function here is pure: the caller fetches, these read.

use serde::Deserialize;
use serde_json::Value;

/// Who signed in at the upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamIdentity {
    /// The provider id (as configured).
    pub provider: String,
    /// The provider's stable identifier for the user (`sub`, GitHub's and Discord's numeric
    /// `id`; never a login name or email, which the user can change).
    pub subject: String,
    /// The email address, if the provider gave one.
    pub email: Option<String>,
    /// Whether the provider says it verified that address. Map accounts by email only when
    /// this is true: an unverified address is whatever the user typed (Azure's `email`
    /// claim, for one, is unverified).
    pub email_verified: bool,
    /// The display name.
    pub name: Option<String>,
    /// The user name or handle.
    pub username: Option<String>,
    /// Everything the provider said (the ID token's claims merged with userinfo, or the user
    /// API's JSON), for mappers that need more.
    pub claims: Value,
}

/// Where a plain OAuth 2.0 provider's userinfo JSON keeps the user's fields: a top-level key
/// (`"id"`) or a JSON pointer (`"/data/id"`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClaimMapping {
    /// The stable user id (a string or a number).
    pub subject: String,
    /// The email address.
    #[serde(default)]
    pub email: Option<String>,
    /// A boolean saying the email is verified (none: emails are taken as unverified).
    #[serde(default)]
    pub email_verified: Option<String>,
    /// The display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The user name.
    #[serde(default)]
    pub username: Option<String>,
}

impl ClaimMapping {
    /// A mapping reading the user id from `subject`.
    #[must_use]
    pub fn new(subject: &str) -> Self {
        Self {
            subject: subject.to_owned(),
            email: None,
            email_verified: None,
            name: None,
            username: None,
        }
    }

    /// Reads the email from `email`, verified when `verified` (if given) is `true`.
    #[must_use]
    pub fn email(mut self, email: &str, verified: Option<&str>) -> Self {
        self.email = Some(email.to_owned());
        self.email_verified = verified.map(str::to_owned);
        self
    }

    /// Reads the display name from `name`.
    #[must_use]
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Reads the user name from `username`.
    #[must_use]
    pub fn username(mut self, username: &str) -> Self {
        self.username = Some(username.to_owned());
        self
    }
}

/// The identity could not be read from what the provider sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityError {
    /// Not a JSON object.
    #[error("the {what} is not a JSON object")]
    NotAnObject {
        /// Which response.
        what: &'static str,
    },
    /// No usable user id.
    #[error("the {what} has no usable user id at `{field}`")]
    NoSubject {
        /// Which response.
        what: &'static str,
        /// Where it was looked for.
        field: String,
    },
    /// The userinfo `sub` is not the ID token's (OpenID Connect Core §5.3.2: the userinfo
    /// response may belong to someone else, so it must be refused).
    #[error("the userinfo response is for another user than the ID token")]
    SubjectMismatch,
}

fn lookup<'a>(value: &'a Value, field: &str) -> Option<&'a Value> {
    if field.starts_with('/') {
        value.pointer(field)
    } else {
        value.get(field)
    }
}

fn text(value: &Value, field: &str) -> Option<String> {
    lookup(value, field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 512)
        .map(str::to_owned)
}

/// A user id: a non-empty string or an integer (GitHub and many APIs use numbers).
fn identifier(value: &Value, field: &str) -> Option<String> {
    match lookup(value, field)? {
        Value::String(s) if !s.is_empty() && s.len() <= 255 => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// `email_verified` as a boolean, or the string `"true"` some providers send.
fn flag(value: &Value, field: &str) -> bool {
    match lookup(value, field) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

fn object<'a>(value: &'a Value, what: &'static str) -> Result<&'a Value, IdentityError> {
    if value.is_object() {
        Ok(value)
    } else {
        Err(IdentityError::NotAnObject { what })
    }
}

/// OpenID Connect: the identity in validated ID-token `claims`, completed by the `userinfo`
/// response when there is one (whose `sub` must be the ID token's, OpenID Connect Core
/// §5.3.2). The ID token's claims win where both speak.
///
/// # Errors
///
/// [`IdentityError`] when either is not an object, `sub` is missing, or the two disagree on
/// `sub`.
pub fn from_id_token(
    provider: &str,
    claims: &Value,
    userinfo: Option<&Value>,
) -> Result<UpstreamIdentity, IdentityError> {
    object(claims, "ID token")?;
    let subject = identifier(claims, "sub").ok_or_else(|| IdentityError::NoSubject {
        what: "ID token",
        field: "sub".into(),
    })?;
    let mut merged = claims.clone();
    if let Some(userinfo) = userinfo {
        object(userinfo, "userinfo response")?;
        if identifier(userinfo, "sub").as_deref() != Some(subject.as_str()) {
            return Err(IdentityError::SubjectMismatch);
        }
        if let (Some(merged), Some(extra)) = (merged.as_object_mut(), userinfo.as_object()) {
            for (key, value) in extra {
                merged.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }
    Ok(UpstreamIdentity {
        provider: provider.to_owned(),
        subject,
        email: text(&merged, "email"),
        email_verified: flag(&merged, "email_verified"),
        name: text(&merged, "name"),
        username: text(&merged, "preferred_username").or_else(|| text(&merged, "nickname")),
        claims: merged,
    })
}

/// GitHub: `GET https://api.github.com/user`, and `GET /user/emails` (scope `user:email`)
/// for the verified primary address, since `/user`'s `email` is only the public profile
/// address, unverified and often `null`.
///
/// # Errors
///
/// [`IdentityError`] when `user` is not an object or has no numeric `id`.
pub fn from_github(
    provider: &str,
    user: &Value,
    emails: Option<&Value>,
) -> Result<UpstreamIdentity, IdentityError> {
    object(user, "GitHub user")?;
    let subject = identifier(user, "id").ok_or_else(|| IdentityError::NoSubject {
        what: "GitHub user",
        field: "id".into(),
    })?;
    let primary = emails
        .and_then(Value::as_array)
        .and_then(|list| {
            list.iter()
                .find(|e| flag(e, "primary") && flag(e, "verified"))
                .or_else(|| list.iter().find(|e| flag(e, "verified")))
        })
        .and_then(|e| text(e, "email"));
    let (email, email_verified) = match primary {
        Some(email) => (Some(email), true),
        None => (text(user, "email"), false),
    };
    Ok(UpstreamIdentity {
        provider: provider.to_owned(),
        subject,
        email,
        email_verified,
        name: text(user, "name"),
        username: text(user, "login"),
        claims: user.clone(),
    })
}

/// Discord: `GET https://discord.com/api/users/@me` (scopes `identify email`).
///
/// # Errors
///
/// [`IdentityError`] when `me` is not an object or has no `id`.
pub fn from_discord(provider: &str, me: &Value) -> Result<UpstreamIdentity, IdentityError> {
    object(me, "Discord user")?;
    let subject = identifier(me, "id").ok_or_else(|| IdentityError::NoSubject {
        what: "Discord user",
        field: "id".into(),
    })?;
    Ok(UpstreamIdentity {
        provider: provider.to_owned(),
        subject,
        email: text(me, "email"),
        email_verified: flag(me, "verified"),
        name: text(me, "global_name").or_else(|| text(me, "username")),
        username: text(me, "username"),
        claims: me.clone(),
    })
}

/// Any OAuth 2.0 provider: the userinfo JSON read through `mapping`.
///
/// # Errors
///
/// [`IdentityError`] when `userinfo` is not an object or the subject field holds no id.
pub fn from_mapping(
    provider: &str,
    mapping: &ClaimMapping,
    userinfo: &Value,
) -> Result<UpstreamIdentity, IdentityError> {
    object(userinfo, "userinfo response")?;
    let subject =
        identifier(userinfo, &mapping.subject).ok_or_else(|| IdentityError::NoSubject {
            what: "userinfo response",
            field: mapping.subject.clone(),
        })?;
    Ok(UpstreamIdentity {
        provider: provider.to_owned(),
        subject,
        email: mapping.email.as_deref().and_then(|f| text(userinfo, f)),
        email_verified: mapping
            .email_verified
            .as_deref()
            .is_some_and(|f| flag(userinfo, f)),
        name: mapping.name.as_deref().and_then(|f| text(userinfo, f)),
        username: mapping.username.as_deref().and_then(|f| text(userinfo, f)),
        claims: userinfo.clone(),
    })
}
