//! The responses every service here shares: the one home of the OAuth JSON error shape
//! (RFC 6749 §5.2), the security headers, and the `413` for oversized bodies.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

/// The response type of every service here.
pub type HttpResponse = http::Response<Bytes>;

pub(crate) fn response(
    status: StatusCode,
    headers: &[(header::HeaderName, &str)],
    body: Bytes,
) -> HttpResponse {
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(name.clone(), value);
        }
    }
    response
}

pub(crate) fn json_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    let body = serde_json::json!({ "error": error, "error_description": description });
    response(
        status,
        &[
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Bytes::from(body.to_string()),
    )
}

/// `413` for a body over the limit (the authorization server's `MAX_BODY_BYTES`, a
/// resource's `max_body_bytes`), in the endpoints' JSON error shape.
#[must_use]
pub fn body_too_large() -> HttpResponse {
    endpoint_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request",
        "the request body is too large",
    )
}

/// The authorization server's JSON error (RFC 6749 §5.2) with its endpoints' headers, for an
/// answer an application sends in an endpoint's place (a rate limiter's `429`, a `500` when its
/// database is away): `no-store`, readable from any origin, not sniffed, not framed.
#[must_use]
pub fn endpoint_error(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    let mut response = json_error(status, error, description);
    security_headers(&mut response, true);
    response
}

/// The headers of the authorization server's JSON endpoints: with `cors`, readable from any
/// origin with `WWW-Authenticate` and `DPoP-Nonce` (RFC 9449 §8) exposed (these endpoints carry no cookies, so CORS answers
/// any origin); always not sniffed, not framed, and no referrer that could leak codes.
pub(crate) fn security_headers(response: &mut HttpResponse, cors: bool) {
    let headers = response.headers_mut();
    if cors {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("www-authenticate, dpop-nonce"),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}
