//! `MCPAUTH_*` environment variables, which win over the file.

use crate::{
    Config, ConfigError, ForwardedHeaderName, LogFormat, Secret, TokenFormat,
    provider_secret_variable,
};

fn boolean(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::Env {
            name,
            reason: format!("`{value}` is not true or false"),
        }),
    }
}

fn list(value: &str) -> Vec<String> {
    value
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Config {
    pub(super) fn apply_env(
        &mut self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        fn number(name: &'static str, value: &str) -> Result<u64, ConfigError> {
            value.parse().map_err(|_| ConfigError::Env {
                name,
                reason: format!("`{value}` is not a number of seconds"),
            })
        }
        if let Some(v) = env("MCPAUTH_LISTEN") {
            self.listen = v.parse().map_err(|_| ConfigError::Env {
                name: "MCPAUTH_LISTEN",
                reason: format!("`{v}` is not an address like 127.0.0.1:8080"),
            })?;
        }
        if let Some(v) = env("MCPAUTH_ISSUER") {
            self.issuer = Some(v);
        }
        if let Some(v) = env("MCPAUTH_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = env("MCPAUTH_DATABASE_MAX_CONNECTIONS") {
            self.database_max_connections =
                u32::try_from(number("MCPAUTH_DATABASE_MAX_CONNECTIONS", &v)?).unwrap_or(u32::MAX);
        }
        if let Some(v) = env("MCPAUTH_DATABASE_TIMEOUT") {
            self.database_timeout = number("MCPAUTH_DATABASE_TIMEOUT", &v)?;
        }
        if let Some(v) = env("MCPAUTH_CLIENT_CACHE_TTL") {
            self.client_cache_ttl = number("MCPAUTH_CLIENT_CACHE_TTL", &v)?;
        }
        if let Some(v) = env("MCPAUTH_SIGNING_KEY_ENCRYPTION_KEY") {
            self.signing_key_encryption_key = Some(Secret::new(v));
        }
        if let Some(v) = env("MCPAUTH_PREVIOUS_SIGNING_KEY_ENCRYPTION_KEYS") {
            self.previous_signing_key_encryption_keys = v
                .split_ascii_whitespace()
                .map(|key| Secret::new(key.to_owned()))
                .collect();
        }
        if let Some(v) = env("MCPAUTH_KEY_ROTATION_LEAD") {
            self.key_rotation_lead = number("MCPAUTH_KEY_ROTATION_LEAD", &v)?;
        }
        if let Some(v) = env("MCPAUTH_ACCESS_TOKEN_TTL") {
            self.access_token_ttl = number("MCPAUTH_ACCESS_TOKEN_TTL", &v)?;
        }
        if let Some(v) = env("MCPAUTH_REFRESH_TOKEN_TTL") {
            self.refresh_token_ttl = number("MCPAUTH_REFRESH_TOKEN_TTL", &v)?;
        }
        if let Some(v) = env("MCPAUTH_REFRESH_REUSE_GRACE") {
            self.refresh_reuse_grace = number("MCPAUTH_REFRESH_REUSE_GRACE", &v)?;
        }
        if let Some(v) = env("MCPAUTH_SESSION_TTL") {
            self.session_ttl = number("MCPAUTH_SESSION_TTL", &v)?;
        }
        if let Some(v) = env("MCPAUTH_LOGIN_LOCKOUT_AFTER") {
            let after = number("MCPAUTH_LOGIN_LOCKOUT_AFTER", &v)?;
            self.login_lockout_after = u32::try_from(after).unwrap_or(u32::MAX);
        }
        if let Some(v) = env("MCPAUTH_LOGIN_LOCKOUT_SECONDS") {
            self.login_lockout_seconds = number("MCPAUTH_LOGIN_LOCKOUT_SECONDS", &v)?;
        }
        if let Some(v) = env("MCPAUTH_LOGIN_LOCKOUT_MAX_SECONDS") {
            self.login_lockout_max_seconds = number("MCPAUTH_LOGIN_LOCKOUT_MAX_SECONDS", &v)?;
        }
        if let Some(v) = env("MCPAUTH_SCOPES_SUPPORTED") {
            self.scopes_supported = list(&v);
        }
        if let Some(v) = env("MCPAUTH_DEFAULT_SCOPE") {
            self.default_scope = list(&v);
        }
        if let Some(v) = env("MCPAUTH_RESOURCES") {
            self.resources = list(&v);
        }
        if let Some(v) = env("MCPAUTH_DEFAULT_RESOURCE") {
            self.default_resource = Some(v);
        }
        if let Some(v) = env("MCPAUTH_DYNAMIC_REGISTRATION") {
            self.dynamic_registration = boolean("MCPAUTH_DYNAMIC_REGISTRATION", &v)?;
        }
        if let Some(v) = env("MCPAUTH_ACCESS_TOKEN_FORMAT") {
            self.access_token_format = match v.as_str() {
                "jwt" => TokenFormat::Jwt,
                "opaque" => TokenFormat::Opaque,
                _ => {
                    return Err(ConfigError::Env {
                        name: "MCPAUTH_ACCESS_TOKEN_FORMAT",
                        reason: format!("`{v}` is not jwt or opaque"),
                    });
                }
            };
        }
        if let Some(v) = env("MCPAUTH_REGISTRATION_TOKEN") {
            self.registration_token = Some(Secret::new(v));
        }
        if let Some(v) = env("MCPAUTH_SELF_REGISTRATION_GRANT_TYPES") {
            self.self_registration_grant_types = list(&v);
        }
        if let Some(v) = env("MCPAUTH_VOUCHED_REGISTRATION_GRANT_TYPES") {
            self.vouched_registration_grant_types = list(&v);
        }
        if let Some(v) = env("MCPAUTH_VOUCHED_CLIENT_SCOPE") {
            self.vouched_client_scope = list(&v);
        }
        if let Some(v) = env("MCPAUTH_INTROSPECTION_CLIENTS") {
            self.introspection_clients = list(&v);
        }
        if let Some(v) = env("MCPAUTH_LEGACY_ASSERTION_AUDIENCE") {
            self.legacy_assertion_audience = boolean("MCPAUTH_LEGACY_ASSERTION_AUDIENCE", &v)?;
        }
        if let Some(v) = env("MCPAUTH_DPOP") {
            self.dpop = boolean("MCPAUTH_DPOP", &v)?;
        }
        if let Some(v) = env("MCPAUTH_DPOP_REQUIRED") {
            self.dpop_required = boolean("MCPAUTH_DPOP_REQUIRED", &v)?;
        }
        if let Some(v) = env("MCPAUTH_DPOP_NONCES") {
            self.dpop_nonces = boolean("MCPAUTH_DPOP_NONCES", &v)?;
        }
        if let Some(v) = env("MCPAUTH_MAX_CLIENTS") {
            self.max_clients = Some(number("MCPAUTH_MAX_CLIENTS", &v)?);
        }
        if let Some(v) = env("MCPAUTH_REGISTRATIONS_PER_IP_PER_HOUR") {
            self.registrations_per_ip_per_hour =
                u32::try_from(number("MCPAUTH_REGISTRATIONS_PER_IP_PER_HOUR", &v)?)
                    .unwrap_or(u32::MAX);
        }
        if let Some(v) = env("MCPAUTH_TRUSTED_PROXIES") {
            self.trusted_proxies = list(&v);
        }
        if let Some(v) = env("MCPAUTH_AUDIT_RETENTION_DAYS") {
            self.audit_retention_days = number("MCPAUTH_AUDIT_RETENTION_DAYS", &v)?;
        }
        if let Some(v) = env("MCPAUTH_SSF_PUSH_ORIGINS") {
            self.ssf_push_origins = list(&v);
        }
        if let Some(v) = env("MCPAUTH_FORWARDED_HEADER") {
            self.forwarded_header = match v.as_str() {
                "x-forwarded-for" => ForwardedHeaderName::XForwardedFor,
                "forwarded" => ForwardedHeaderName::Forwarded,
                _ => {
                    return Err(ConfigError::Env {
                        name: "MCPAUTH_FORWARDED_HEADER",
                        reason: format!("`{v}` is not x-forwarded-for or forwarded"),
                    });
                }
            };
        }
        if let Some(v) = env("MCPAUTH_SIGN_IN_ATTEMPTS_PER_IP_PER_HOUR") {
            self.sign_in_attempts_per_ip_per_hour =
                u32::try_from(number("MCPAUTH_SIGN_IN_ATTEMPTS_PER_IP_PER_HOUR", &v)?)
                    .unwrap_or(u32::MAX);
        }
        if let Some(v) = env("MCPAUTH_LOGIN_LOCKOUT_ACCOUNT_AFTER") {
            self.login_lockout_account_after =
                u32::try_from(number("MCPAUTH_LOGIN_LOCKOUT_ACCOUNT_AFTER", &v)?)
                    .unwrap_or(u32::MAX);
        }
        if let Some(v) = env("MCPAUTH_USER_CODE_ATTEMPTS_PER_IP_PER_MINUTE") {
            self.user_code_attempts_per_ip_per_minute =
                u32::try_from(number("MCPAUTH_USER_CODE_ATTEMPTS_PER_IP_PER_MINUTE", &v)?)
                    .unwrap_or(u32::MAX);
        }
        if let Some(v) = env("MCPAUTH_TOKEN_REQUESTS_PER_IP_PER_MINUTE") {
            self.token_requests_per_ip_per_minute =
                u32::try_from(number("MCPAUTH_TOKEN_REQUESTS_PER_IP_PER_MINUTE", &v)?)
                    .unwrap_or(u32::MAX);
        }
        if let Some(v) = env("MCPAUTH_DEVICE_AUTHORIZATIONS_PER_IP_PER_MINUTE") {
            self.device_authorizations_per_ip_per_minute = u32::try_from(number(
                "MCPAUTH_DEVICE_AUTHORIZATIONS_PER_IP_PER_MINUTE",
                &v,
            )?)
            .unwrap_or(u32::MAX);
        }
        if let Some(v) = env("MCPAUTH_METRICS") {
            self.metrics = boolean("MCPAUTH_METRICS", &v)?;
        }
        if let Some(v) = env("MCPAUTH_MIGRATE") {
            self.migrate = boolean("MCPAUTH_MIGRATE", &v)?;
        }
        if let Some(v) = env("MCPAUTH_TLS_CERTIFICATE") {
            self.tls_certificate = Some(v.into());
        }
        if let Some(v) = env("MCPAUTH_TLS_PRIVATE_KEY") {
            self.tls_private_key = Some(v.into());
        }
        if let Some(v) = env("MCPAUTH_METRICS_LISTEN") {
            self.metrics_listen = Some(v.parse().map_err(|_| ConfigError::Env {
                name: "MCPAUTH_METRICS_LISTEN",
                reason: format!("`{v}` is not an address like 127.0.0.1:9090"),
            })?);
        }
        if let Some(v) = env("MCPAUTH_METRICS_TOKEN") {
            self.metrics_token = Some(Secret::new(v));
        }
        if let Some(v) = env("MCPAUTH_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Env {
                        name: "MCPAUTH_LOG_FORMAT",
                        reason: format!("`{v}` is not text or json"),
                    });
                }
            };
        }
        if let Some(v) = env("MCPAUTH_PRODUCTION") {
            self.production = boolean("MCPAUTH_PRODUCTION", &v)?;
        }
        if let Some(v) = env("MCPAUTH_CLIENT_SECRET_TTL") {
            self.client_secret_ttl = Some(number("MCPAUTH_CLIENT_SECRET_TTL", &v)?);
        }
        if let Some(v) = env("MCPAUTH_UNUSED_REGISTRATION_TTL") {
            self.unused_registration_ttl =
                Some(number("MCPAUTH_UNUSED_REGISTRATION_TTL", &v)?).filter(|ttl| *ttl > 0);
        }
        if let Some(v) = env("MCPAUTH_CLIENT_METADATA_DOCUMENTS") {
            self.client_metadata_documents = boolean("MCPAUTH_CLIENT_METADATA_DOCUMENTS", &v)?;
        }
        if let Some(v) = env("MCPAUTH_STRICT_RESOURCE") {
            self.strict_resource = boolean("MCPAUTH_STRICT_RESOURCE", &v)?;
        }
        if let Some(v) = env("MCPAUTH_PASSWORD_LOGIN") {
            self.password_login = boolean("MCPAUTH_PASSWORD_LOGIN", &v)?;
        }
        if let Some(v) = env("MCPAUTH_FEDERATED_EMAIL_DOMAINS") {
            self.federated_email_domains = list(&v);
        }
        if let Some(v) = env("MCPAUTH_KEEP_UPSTREAM_TOKENS") {
            self.keep_upstream_tokens = boolean("MCPAUTH_KEEP_UPSTREAM_TOKENS", &v)?;
        }
        // Provider secrets stay out of the file: `MCPAUTH_PROVIDER_<ID>_CLIENT_SECRET`.
        for provider in &mut self.providers {
            if let Some(v) = env(&provider_secret_variable(&provider.id)) {
                provider.client_secret = Some(v);
            }
        }
        Ok(())
    }
}
