"""chuk-mcp-client-oauth (PyPI) signs in to mcpauth-server and logs out (RFC 7009).

Run by examples/tests/interop_python_sdk.rs: MCP_URL names the example MCP
server, USER_EMAIL and USER_PASSWORD the user who signs in. The library's own high-level path
is used, as mcp-cli uses it: `OAuthHandler.ensure_authenticated_mcp` discovers (RFC 9728 at the
MCP server's root well-known URL, then RFC 8414), registers (RFC 7591, public client), opens
"the browser" and waits on its local callback server; here the browser is this script, which
plays the user at mcpauth's sign-in and consent pages over HTTP and then delivers the redirect
to the library's callback server. The script calls the MCP server with the access token
(expects 200), calls `OAuthHandler.logout` (revokes the refresh token, then the access token,
at the discovered `revocation_endpoint`), and polls the MCP server with the same access token
until it is refused with 401 (10 s at most, every 100 ms). One JSON line on stdout; tokens
never appear in it.

Two seams are patched, neither in the OAuth logic: the redirect URI (the handler hard-codes
`http://localhost:8080/callback`; a free port on 127.0.0.1 is used instead) and
`webbrowser.open`. `MCPOAuthClient.revoke_token` is wrapped only to record its result, which
`OAuthHandler.logout` discards.
"""

import asyncio
import contextlib
import json
import os
import re
import socket
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

# The library keeps a registry at ~/.chuk_oauth/token_registry.json whatever token_dir says:
# give it a scratch home (set before the library computes any path).
SCRATCH = Path(tempfile.mkdtemp(prefix="chuk-oauth-"))
os.environ["HOME"] = str(SCRATCH)

import httpx  # noqa: E402  (chuk-mcp-client-oauth's own HTTP client)
from chuk_mcp_client_oauth import (  # noqa: E402
    MCPOAuthClient,
    OAuthHandler,
    TokenManager,
    TokenStoreBackend,
)
from chuk_mcp_client_oauth import mcp_oauth, oauth_handler  # noqa: E402

import client  # noqa: E402  (the user at mcpauth's pages, as the SDK scripts play it)

MCP_URL = os.environ["MCP_URL"]
SERVER_NAME = "mcpauth-example"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The library's callback server binds ("localhost", port), which is 127.0.0.1 for AF_INET.
REDIRECT_URI = f"http://127.0.0.1:{free_port()}/callback"

seen: dict = {"authorization_url": None, "revocation_endpoint": None}
revocations: list = []
browser_tasks: list = []
current: dict = {}


class Client(MCPOAuthClient):
    """The library's client with our redirect URI; records what revoke_token answered."""

    def __init__(self, server_url: str, redirect_uri: str = REDIRECT_URI):
        super().__init__(server_url, redirect_uri)
        current["client"] = self

    async def revoke_token(self, token, token_type_hint=None):
        meta = self._auth_metadata
        seen["revocation_endpoint"] = meta.revocation_endpoint if meta else None
        seen["revoked_with_client_id"] = self._client_registration is not None
        ok = await super().revoke_token(token, token_type_hint)
        revocations.append({"token_type_hint": token_type_hint, "ok": ok})
        return ok


# OAuthHandler.ensure_authenticated_mcp and OAuthHandler.logout both construct
# `MCPOAuthClient(server_url)` through this module-level name.
oauth_handler.MCPOAuthClient = Client


async def play_the_user(url: str) -> None:
    """Signs in and approves at mcpauth's pages (client.py's user), then delivers the
    redirect to the library's callback server, as a browser would."""
    try:
        query = await client.play_the_user(url, REDIRECT_URI)
        seen["consent_page"] = client.seen.get("consent_page")
        seen["redirect_has_iss"] = "iss" in query
        location = REDIRECT_URI + "?" + urlencode(query)
        async with httpx.AsyncClient(follow_redirects=False) as browser:
            # The callback server starts right after webbrowser.open returns; retry briefly.
            for _ in range(50):
                try:
                    delivered = await browser.get(location)
                    seen["callback_status"] = delivered.status_code
                    return
                except httpx.ConnectError:
                    await asyncio.sleep(0.1)
            raise RuntimeError("the library's callback server never listened")
    except Exception as e:
        # Stop the library waiting five minutes for a callback that will not come.
        library_client = current.get("client")
        if library_client is not None and library_client._auth_result is None:
            library_client._auth_result = {"error": f"script browser failed: {e!r}"}
        raise


def open_browser(url: str, *args, **kwargs) -> bool:
    """Stands in for webbrowser.open (called from inside MCPOAuthClient.authorize)."""
    seen["authorization_url"] = url
    browser_tasks.append(asyncio.get_running_loop().create_task(play_the_user(url)))
    return True


mcp_oauth.webbrowser.open = open_browser


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "chuk-mcp-client-oauth logout", "version": "0"},
    },
}


async def call_mcp(http: httpx.AsyncClient, token: str, body=None) -> httpx.Response:
    return await http.post(
        MCP_URL,
        headers={
            "authorization": "Bearer " + token,
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
        },
        json=INITIALIZE if body is None else body,
    )


async def main():
    handler = OAuthHandler(
        token_manager=TokenManager(
            token_dir=SCRATCH / "tokens",
            # No keyring, no prompt: the encrypted-file store with a fixed password.
            backend=TokenStoreBackend.ENCRYPTED_FILE,
            password="interop-test-only",
        )
    )
    # The callback server prints to stdout from its thread; keep stdout for the JSON line.
    with contextlib.redirect_stdout(sys.stderr):
        tokens = await handler.ensure_authenticated_mcp(SERVER_NAME, MCP_URL)
    for task in browser_tasks:
        await task  # surfaces a failure of the scripted browser
    access_token = tokens.access_token

    async with httpx.AsyncClient(timeout=10) as http:
        before = (await call_mcp(http, access_token)).status_code
        if before != 200:
            raise RuntimeError(f"the MCP server answered the fresh token with {before}")

        started = time.monotonic()
        with contextlib.redirect_stdout(sys.stderr):
            await handler.logout(SERVER_NAME, MCP_URL)
        logged_out = time.monotonic()

        # A cheap request, as examples/tests/revocation.rs polls: the bearer layer answers a
        # refused token at once; one still running after half a second got past it.
        refused_after = None
        last = None
        challenge = None
        deadline = logged_out + 10
        while True:
            try:
                answer = await asyncio.wait_for(call_mcp(http, access_token, body={}), 0.5)
                last = answer.status_code
            except asyncio.TimeoutError:
                answer, last = None, "accepted (still answering after 0.5 s)"
            if last == 401:
                refused_after = time.monotonic() - logged_out
                challenge = answer.headers.get("www-authenticate")
                break
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)

    query = parse_qs(urlparse(seen["authorization_url"]).query)
    error = re.search(r'error="([^"]*)"', challenge or "")
    print(
        json.dumps(
            {
                "resource_in_authorization_request": query.get("resource"),
                "scope_in_authorization_request": query.get("scope"),
                "code_challenge_method": query.get("code_challenge_method"),
                "consent_page": seen.get("consent_page"),
                "callback_status": seen.get("callback_status"),
                "granted_scope": tokens.scope,
                "refresh_token_issued": tokens.refresh_token is not None,
                "mcp_status_before_logout": before,
                "revocation_endpoint": seen["revocation_endpoint"],
                "revoked_with_client_id": seen.get("revoked_with_client_id"),
                "revocations": revocations,
                "logout_seconds": round(logged_out - started, 3),
                "tokens_cleared_locally": handler.token_manager.load_tokens(SERVER_NAME)
                is None,
                "mcp_status_after_logout": last,
                "challenge_error": error.group(1) if error else None,
                "refused_after_seconds": None
                if refused_after is None
                else round(refused_after, 3),
            }
        )
    )


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # the test prints what failed
        print(json.dumps({"error": repr(e)}))
        sys.exit(1)
