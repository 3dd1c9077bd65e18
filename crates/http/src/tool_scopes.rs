//! Scopes per MCP tool, checked at the HTTP layer so a client can step up.
//!
//! MCP authorization (scope challenge handling) asks a server to answer an operation the
//! token is not scoped for with `403` and `WWW-Authenticate: Bearer error="insufficient_scope"`,
//! which MCP clients turn into a new authorization request. For a tool call that means
//! reading the JSON-RPC body: `{"method": "tools/call", "params": {"name": …}}`.
//!
//! A body that is not JSON to this module's parser is refused, never let through: the MCP
//! server's own parser may read what this one cannot (a lone surrogate escape, a byte-order
//! mark, nesting past serde's limit), and would then call a tool nobody checked. Bodies that
//! are JSON but not a tool call (other methods, unknown shapes) need nothing here; the MCP
//! server answers them. Tools that need a scope should still check the verified token
//! themselves (see
//! [`ResourceServer::tool_authorization_required`](crate::ResourceServer::tool_authorization_required)).

use std::collections::BTreeMap;

use serde_json::Value;

/// Which scopes calls of particular tools need, beyond the route's, and which tools need a
/// user behind the token (no machine token may call them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolScopes {
    tools: BTreeMap<String, Vec<String>>,
    user_only: std::collections::BTreeSet<String>,
}

/// What the tool calls of one request need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToolNeeds<'a> {
    /// Scopes, without repeats.
    pub scopes: Vec<&'a str>,
    /// Whether some called tool needs a user behind the token.
    pub user: bool,
}

impl ToolScopes {
    /// No tool needs anything beyond the route's scopes.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls of `tool` need `scopes` (added to what was set before for it).
    #[must_use]
    pub fn tool(mut self, tool: &str, scopes: &[&str]) -> Self {
        self.require(tool, scopes);
        self
    }

    /// Calls of `tool` need `scopes` (added to what was set before for it).
    pub fn require(&mut self, tool: &str, scopes: &[&str]) {
        let needed = self.tools.entry(tool.to_owned()).or_default();
        for scope in scopes {
            if !needed.iter().any(|s| s == scope) {
                needed.push((*scope).to_owned());
            }
        }
    }

    /// Calls of `tool` need a user behind the token: a token the client obtained for itself
    /// (`client_credentials`), or one whose issuer does not say, is refused.
    pub fn require_user(&mut self, tool: &str) {
        self.user_only.insert(tool.to_owned());
    }

    /// Whether no tool has needs of its own (bodies need not be read).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty() && self.user_only.is_empty()
    }

    /// The scopes the tool calls in `body` need, without repeats: one JSON-RPC message or a
    /// batch (an array, as protocol 2025-03-26 allowed). Nothing for JSON that is not a tool
    /// call; `None` for a body that is not JSON at all, which must be refused.
    #[must_use]
    pub fn required_by(&self, body: &[u8]) -> Option<Vec<&str>> {
        self.needs_of(body).map(|needs| needs.scopes)
    }

    /// What the tool calls in `body` need: their scopes and whether a user must stand
    /// behind the token. Nothing for an empty body or JSON that is not a tool call; `None`
    /// for a body that is not JSON (UTF-8, RFC 8259) to this parser, which the caller must
    /// refuse rather than let through unchecked.
    #[must_use]
    pub fn needs_of(&self, body: &[u8]) -> Option<ToolNeeds<'_>> {
        let mut needs = ToolNeeds::default();
        // An empty body calls nothing, whoever parses it.
        if self.is_empty() || body.trim_ascii().is_empty() {
            return Some(needs);
        }
        let needed = &mut needs.scopes;
        // `Value` keeps the last of duplicated keys, as the MCP SDKs' JSON parsers do, so the
        // tool named here is the tool the server would call.
        let message = serde_json::from_slice::<Value>(body).ok()?;
        let messages = match &message {
            Value::Array(batch) => batch.as_slice(),
            single => std::slice::from_ref(single),
        };
        for message in messages {
            if message.get("method").and_then(Value::as_str) != Some("tools/call") {
                continue;
            }
            let Some(tool) = message
                .get("params")
                .and_then(|params| params.get("name"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            for scope in self.tools.get(tool).into_iter().flatten() {
                if !needed.contains(&scope.as_str()) {
                    needed.push(scope);
                }
            }
            needs.user |= self.user_only.contains(tool);
        }
        Some(needs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ToolScopes {
        ToolScopes::new()
            .tool("admin_report", &["mcp:admin"])
            .tool("delete", &["mcp:admin", "mcp:write"])
    }

    #[test]
    fn a_call_of_a_scoped_tool_needs_its_scopes() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_report","arguments":{}}}"#;
        assert_eq!(policy().required_by(body).unwrap(), ["mcp:admin"]);
    }

    #[test]
    fn a_call_of_a_user_only_tool_needs_a_user() {
        let mut policy = policy();
        policy.require_user("admin_report");
        let admin =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_report"}}"#;
        let echo = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
        assert!(policy.needs_of(admin).unwrap().user);
        assert!(!policy.needs_of(echo).unwrap().user);
        let mut only_user = ToolScopes::new();
        only_user.require_user("echo");
        assert!(!only_user.is_empty(), "bodies must be read for it");
        assert_eq!(
            only_user.needs_of(echo),
            Some(ToolNeeds {
                scopes: vec![],
                user: true
            })
        );
    }

    #[test]
    fn other_tools_and_other_methods_need_nothing_more() {
        let policy = policy();
        let echo = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
        let list =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"admin_report"}}"#;
        assert_eq!(policy.required_by(echo), Some(vec![]));
        assert_eq!(policy.required_by(list), Some(vec![]));
    }

    #[test]
    fn a_batch_needs_the_union_of_its_calls() {
        let body = br#"[
            {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_report"}},
            {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete"}}
        ]"#;
        assert_eq!(
            policy().required_by(body).unwrap(),
            ["mcp:admin", "mcp:write"]
        );
    }

    #[test]
    fn a_duplicated_name_is_read_as_the_server_reads_it_the_last_one() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"admin_report"}}"#;
        assert_eq!(policy().required_by(body).unwrap(), ["mcp:admin"]);
    }

    #[test]
    fn json_that_is_not_a_tool_call_needs_nothing() {
        let policy = policy();
        for body in [
            &b""[..],
            b" \r\n",
            b"[]",
            b"null",
            b"{\"method\":7}",
            b"{\"method\":\"tools/call\",\"params\":[1]}",
            b"[1,\"x\",{\"method\":\"tools/call\",\"params\":{\"name\":null}}]",
        ] {
            assert_eq!(policy.required_by(body), Some(vec![]), "{body:?}");
        }
    }

    // A body another JSON parser might read (the MCP server's) but this one cannot is not
    // waved through: it is refused, so no tool call escapes the check.
    #[test]
    fn a_body_that_is_not_json_here_is_refused_not_let_through() {
        let policy = policy();
        let deep = format!(
            "{}{{\"method\":\"tools/call\",\"params\":{{\"name\":\"admin_report\"}}}}{}",
            "[".repeat(200),
            "]".repeat(200)
        );
        for body in [
            &b"not json"[..],
            // A lone surrogate: JavaScript's JSON.parse takes it.
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_report","arguments":{"x":"\ud800"}}}"#,
            // A byte-order mark: Python's json.loads takes it on bytes.
            b"\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"admin_report\"}}",
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin_report","arguments":{"x":NaN}}}"#,
            b"\xff\xfe{\x00",
            deep.as_bytes(),
        ] {
            assert_eq!(policy.needs_of(body), None, "{body:?}");
        }
        assert_eq!(
            ToolScopes::new().needs_of(b"not json"),
            Some(ToolNeeds::default()),
            "with no tool policy, bodies are not read at all"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_body_needs_only_configured_scopes(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let policy = policy();
            for scope in policy.required_by(&body).unwrap_or_default() {
                proptest::prop_assert!(["mcp:admin", "mcp:write"].contains(&scope));
            }
        }
    }
}
