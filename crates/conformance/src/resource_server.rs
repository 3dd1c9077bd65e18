//! The protected MCP endpoint's checks: challenges, scopes and step-up, tool calls, body
//! limits, the RFC 9728 document.

use reqwest::StatusCode;

use crate::Fixture;
use crate::authorization_server::{Suite, client_credentials_token};
use crate::check::{Check, assert_passed, no_redirects};

/// Sends `PUT path` to `address` with `length` bytes of body in chunks (no `Content-Length`,
/// so only a cap on the streaming body can stop it), and returns the answer's head, or `None`
/// when the server answered nothing.
pub(crate) async fn put_chunked(
    address: &str,
    path: &str,
    token: &str,
    length: usize,
) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n"
    );
    // The server may answer and close before the body is all sent: what it said counts.
    let mut sent = stream.write_all(head.as_bytes()).await;
    let chunk = [b' '; 4096];
    let mut left = length;
    while left > 0 && sent.is_ok() {
        let piece = chunk.get(..left.min(chunk.len())).unwrap_or_default();
        left -= piece.len();
        let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
        framed.extend_from_slice(piece);
        framed.extend_from_slice(b"\r\n");
        sent = stream.write_all(&framed).await;
    }
    if sent.is_ok() {
        let _ = stream.write_all(b"0\r\n\r\n").await;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    (!answer.is_empty()).then(|| answer.lines().next().unwrap_or_default().to_owned())
}

/// Largest body the protected endpoint of [`run_resource_server`] accepts.
pub const PROTECTED_MAX_BODY_BYTES: usize = 64 * 1024;

/// The protection every adapter's test puts in front of `/mcp` for [`run_resource_server`]:
/// resource `{base}/mcp`, issuer `base`, scope `mcp` required, the tool `admin_report` needing
/// `admin` as well, the tool `user_report` a user behind the token, bodies up to
/// [`PROTECTED_MAX_BODY_BYTES`].
#[must_use]
pub fn protected_mcp_config(base: &str) -> mcpauth_http::ResourceServerConfig {
    let mut config = mcpauth_http::ResourceServerConfig::new(
        format!("{base}/mcp"),
        base,
        format!("{base}/jwks.json"),
    )
    .tool_requires("admin_report", &["admin"])
    .tool_requires_user("user_report");
    config.required_scopes = vec!["mcp".into()];
    config.max_body_bytes = PROTECTED_MAX_BODY_BYTES;
    config
}

/// [`protected_mcp_config`] with [`require_user`](mcpauth_http::ResourceServerConfig::require_user)
/// on: the protection every adapter's test puts in front of `/mcp/people`, where every request
/// needs a user behind its token.
#[must_use]
pub fn people_only_mcp_config(base: &str) -> mcpauth_http::ResourceServerConfig {
    let mut config = protected_mcp_config(base);
    config.require_user = true;
    config
}

/// Checks a protected MCP endpoint mounted at `base` the way every adapter's test mounts it:
/// the authorization server of `fixture` at the root (issuer = `base`), `POST /mcp` protected
/// by [`protected_mcp_config`] and answering the token's subject followed by a newline and the
/// request body when there is one (the same for `PUT /mcp`), `POST /mcp/admin` requiring `mcp admin`, `POST /mcp/user`
/// requiring a user with the adapter's `requiring_user`, `POST /mcp/people` protected by
/// [`people_only_mcp_config`], and the RFC 9728
/// document at its well-known URLs. Panics listing every mismatch.
///
/// # Panics
///
/// When any answer differs from what the suite expects.
pub async fn run_resource_server(base: &str, fixture: &Fixture) {
    // Redirects are read, not followed (the authorization code comes back in one).
    let http = no_redirects();
    let resource = format!("{base}/mcp");
    let metadata_url = format!("{base}/.well-known/oauth-protected-resource/mcp");
    let suite = Suite {
        http: http.clone(),
        base,
        fixture,
        issuer_path: String::new(),
    };
    let mut check = Check::new("RFC 6750 §3 / RFC 9728 §5.1 / MCP step-up: a protected endpoint");

    let anonymous = suite.send(http.post(&resource)).await;
    check.status(&anonymous, StatusCode::UNAUTHORIZED);
    check.header(
        &anonymous,
        "www-authenticate",
        &format!("Bearer resource_metadata=\"{metadata_url}\", scope=\"mcp\""),
    );
    check.header(&anonymous, "access-control-allow-origin", "*");
    // The challenge must be readable from any page (and the DPoP nonce of a
    // `use_dpop_nonce` refusal, RFC 9449 §9, where a server sends one).
    check.expect(
        anonymous
            .header("access-control-expose-headers")
            .is_some_and(|h| {
                h.split(',')
                    .any(|name| name.trim().eq_ignore_ascii_case("www-authenticate"))
            }),
        format!(
            "a refusal exposes WWW-Authenticate to the page, got {:?}",
            anonymous.header("access-control-expose-headers")
        ),
    );
    // RFC 6750 §3.1: a request that sent no credentials gets no error code, in the body
    // either (a client must not read "invalid_token" for a token it never sent).
    check.expect(
        anonymous.json().get("error").is_none(),
        format!(
            "a request without credentials gets no error code, got {}",
            anonymous.text
        ),
    );

    let basic = client_credentials_token(&http, fixture, "mcp", &resource).await;
    let allowed = suite.send(http.post(&resource).bearer_auth(&basic)).await;
    check.status(&allowed, StatusCode::OK);
    check.expect(
        allowed.text == fixture.confidential_client().0,
        format!(
            "the handler sees the verified subject, got {:?}",
            allowed.text
        ),
    );

    // Browser-based MCP clients (CORS): the preflight of a POST with a token and MCP's
    // headers is answered without credentials, on the MCP route and on the metadata path
    // (their GET carries MCP-Protocol-Version), and an admitted answer is readable with the
    // session header exposed.
    let preflight = |url: String| {
        http.request(reqwest::Method::OPTIONS, url)
            .header("origin", "https://inspector.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, mcp-protocol-version",
            )
    };
    for url in [resource.clone(), metadata_url.clone()] {
        let answer = suite.send(preflight(url.clone())).await;
        check.status(&answer, StatusCode::NO_CONTENT);
        check.header(&answer, "access-control-allow-origin", "*");
        check.expect(
            answer
                .header("access-control-allow-methods")
                .is_some_and(|m| m.contains("POST") && m.contains("GET")),
            format!("the preflight of {url} allows GET and POST"),
        );
        check.header(
            &answer,
            "access-control-allow-headers",
            "authorization, content-type, mcp-protocol-version",
        );
    }
    let from_a_page = suite
        .send(
            http.post(&resource)
                .bearer_auth(&basic)
                .header("origin", "https://inspector.example"),
        )
        .await;
    check.status(&from_a_page, StatusCode::OK);
    check.header(&from_a_page, "access-control-allow-origin", "*");
    check.expect(
        from_a_page
            .header("access-control-expose-headers")
            .is_some_and(|h| h.contains("mcp-session-id") && h.contains("www-authenticate")),
        "an admitted answer exposes Mcp-Session-Id and WWW-Authenticate to the page",
    );

    // RFC 9700 §4.3 and OAuth 2.1 §5.1: a token in the URI ends up in logs and histories;
    // only the Authorization header is read (RFC 6750's query and form methods are gone).
    let in_query = suite
        .send(http.post(format!("{resource}?access_token={basic}")))
        .await;
    check.status(&in_query, StatusCode::UNAUTHORIZED);
    let in_form = suite
        .send(
            http.post(&resource)
                .form(&[("access_token", basic.as_str())]),
        )
        .await;
    check.status(&in_form, StatusCode::UNAUTHORIZED);

    let short = suite
        .send(http.post(format!("{resource}/admin")).bearer_auth(&basic))
        .await;
    check.status(&short, StatusCode::FORBIDDEN);
    let challenge = short.header("www-authenticate").unwrap_or_default();
    check.expect(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"mcp admin\"")
            && challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        format!("insufficient_scope naming every scope needed: {challenge}"),
    );

    let stepped_up = client_credentials_token(&http, fixture, "mcp admin", &resource).await;
    let admin = suite
        .send(
            http.post(format!("{resource}/admin"))
                .bearer_auth(&stepped_up),
        )
        .await;
    check.status(&admin, StatusCode::OK);

    // Step-up for a tool: the JSON-RPC body names a tool that needs more than the route.
    let call = |tool: &str| {
        serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": { "name": tool, "arguments": {} },
        })
        .to_string()
    };
    let post_json = |token: &str, body: String| {
        http.post(&resource)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
    };
    let echo = suite.send(post_json(&basic, call("echo"))).await;
    check.status(&echo, StatusCode::OK);
    check.expect(
        echo.text == format!("{}\n{}", fixture.confidential_client().0, call("echo")),
        format!(
            "the handler gets the body the protection read, got {:?}",
            echo.text
        ),
    );
    let tool_short = suite.send(post_json(&basic, call("admin_report"))).await;
    check.status(&tool_short, StatusCode::FORBIDDEN);
    let challenge = tool_short.header("www-authenticate").unwrap_or_default();
    check.expect(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"mcp admin\""),
        format!("a call of a tool needing more names the scopes held and needed: {challenge}"),
    );
    let tool_allowed = suite
        .send(post_json(&stepped_up, call("admin_report")))
        .await;
    check.status(&tool_allowed, StatusCode::OK);
    let batch = format!("[{},{}]", call("echo"), call("admin_report"));
    let batch_short = suite.send(post_json(&basic, batch)).await;
    check.status(&batch_short, StatusCode::FORBIDDEN);
    let too_large = suite
        .send(post_json(&basic, " ".repeat(PROTECTED_MAX_BODY_BYTES + 1)))
        .await;
    check.status(&too_large, StatusCode::PAYLOAD_TOO_LARGE);
    check.expect(
        too_large.json()["error"] == "invalid_request",
        format!("413 in the JSON error shape: {}", too_large.text),
    );

    // A body the protection does not read (a PUT here: only POSTs carry tool calls) streams
    // through, cut off at the limit when it does not declare its length.
    let address = base.trim_start_matches("http://");
    let under = put_chunked(address, "/mcp", &basic, PROTECTED_MAX_BODY_BYTES).await;
    check.expect(
        under
            .as_deref()
            .is_some_and(|r| r.starts_with("HTTP/1.1 200")),
        format!("a chunked body within the limit streams through: {under:?}"),
    );
    let over = put_chunked(address, "/mcp", &basic, PROTECTED_MAX_BODY_BYTES + 1).await;
    check.expect(
        over.as_deref()
            .is_some_and(|r| r.starts_with("HTTP/1.1 413")),
        format!("a chunked body past the limit is cut off with 413: {over:?}"),
    );

    // A tool that needs a user refuses a client's own token, whatever its scope (RFC 9470).
    let machine_call = suite
        .send(post_json(&stepped_up, call("user_report")))
        .await;
    check.status(&machine_call, StatusCode::UNAUTHORIZED);
    check.expect(
        machine_call
            .header("www-authenticate")
            .is_some_and(|c| c.contains("error=\"insufficient_user_authentication\"")),
        format!(
            "a user-only tool refuses a client_credentials token: {:?}",
            machine_call.header("www-authenticate")
        ),
    );
    let user = suite.user_token("mcp", &resource).await;
    let user_call = suite.send(post_json(&user, call("user_report"))).await;
    check.status(&user_call, StatusCode::OK);

    // Routes where every request needs a user: the adapter's per-route `requiring_user`, and
    // a protection whose configuration says `require_user`.
    for route in ["/mcp/user", "/mcp/people"] {
        let url = format!("{base}{route}");
        let machine = suite.send(http.post(&url).bearer_auth(&stepped_up)).await;
        check.status(&machine, StatusCode::UNAUTHORIZED);
        check.expect(
            machine
                .header("www-authenticate")
                .is_some_and(|c| c.contains("error=\"insufficient_user_authentication\"")),
            format!(
                "{route} refuses a client_credentials token: {:?}",
                machine.header("www-authenticate")
            ),
        );
        let person = suite.send(http.post(&url).bearer_auth(&user)).await;
        check.status(&person, StatusCode::OK);
    }

    // A body the check cannot read is refused, not waved through to a parser that might read
    // it (a lone surrogate JavaScript's JSON.parse takes, a byte-order mark Python takes).
    for body in [
        call("user_report").replace("{}", r#"{"x":"\ud800"}"#),
        format!("\u{feff}{}", call("admin_report")),
    ] {
        let unread = suite.send(post_json(&stepped_up, body.clone())).await;
        check.status(&unread, StatusCode::BAD_REQUEST);
        check.expect(
            unread.json()["error"]["code"] == -32700,
            format!(
                "an unreadable body is a JSON-RPC parse error: {body} -> {}",
                unread.text
            ),
        );
    }
    let compressed = suite
        .send(post_json(&stepped_up, call("user_report")).header("content-encoding", "gzip"))
        .await;
    check.status(&compressed, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // RFC 6750 §3.1: the Bearer scheme with no token is a malformed request.
    let empty = suite
        .send(http.post(&resource).header("authorization", "Bearer"))
        .await;
    check.status(&empty, StatusCode::BAD_REQUEST);
    check.expect(
        empty
            .header("www-authenticate")
            .is_some_and(|c| c.contains("error=\"invalid_request\"")),
        "Authorization: Bearer with no token is invalid_request",
    );

    let garbage = suite
        .send(http.post(&resource).bearer_auth("not.a.jwt"))
        .await;
    check.status(&garbage, StatusCode::UNAUTHORIZED);
    check.expect(
        garbage
            .header("www-authenticate")
            .is_some_and(|c| c.contains("error=\"invalid_token\"")),
        "a bad token is invalid_token",
    );
    let other_audience =
        client_credentials_token(&http, fixture, "mcp", "http://127.0.0.1:1/other").await;
    let refused = suite
        .send(http.post(&resource).bearer_auth(&other_audience))
        .await;
    check.status(&refused, StatusCode::UNAUTHORIZED);

    for url in [
        metadata_url.clone(),
        format!("{base}/.well-known/oauth-protected-resource"),
    ] {
        let document = suite.send(http.get(&url)).await;
        check.status(&document, StatusCode::OK);
        check.header(&document, "access-control-allow-origin", "*");
        let json = document.json();
        check.expect(
            json["resource"] == resource.as_str()
                && json["authorization_servers"][0] == fixture.issuer(),
            format!("RFC 9728 document at {url}: {json}"),
        );
    }
    assert_passed("conformance failures", [check]);
}
