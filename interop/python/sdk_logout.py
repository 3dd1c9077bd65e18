"""Logging out with the MCP Python SDK: the revoked access token is refused by the MCP server.

Run by examples/tests/interop_python_sdk.rs, with client.py's environment (MCP_URL,
USER_EMAIL, USER_PASSWORD). The SDK signs in as in client.py (401, discovery, registration,
the user at mcpauth's pages) and lists the tools. The SDK has no logout of its own (its
OAuthClientProvider never calls a revocation endpoint, and TokenStorage has nothing to clear
with), so this script does what an SDK user must: an RFC 7009 revocation of the refresh token
at the `revocation_endpoint` the SDK discovered, authenticated the way the SDK authenticates
at the token endpoint (`OAuthContext.prepare_token_auth`), then forgets the tokens. It then
presents the access token it held to the MCP server until it is refused (10 s at most). One
JSON line on stdout; no token appears in it.
"""

import asyncio
import json
import re
import sys
import time

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from client import MCP_URL, MemoryStorage, provider


async def refused_after(token: str, deadline_seconds: float = 10.0):
    """Seconds until the MCP server answers `token` with 401, and the challenge's error.

    A refused token is answered by the bearer layer at once; a request still running after
    half a second got past it, and counts as accepted."""
    started = time.monotonic()
    async with httpx2.AsyncClient(timeout=0.5) as http:
        while time.monotonic() - started < deadline_seconds:
            try:
                answer = await http.post(
                    MCP_URL,
                    headers={"authorization": "Bearer " + token},
                    json={},
                )
                if answer.status_code == 401:
                    error = re.search(
                        r'error="([^"]*)"', answer.headers.get("www-authenticate", "")
                    )
                    return time.monotonic() - started, error.group(1) if error else None
            except httpx2.TimeoutException:
                pass
            await asyncio.sleep(0.05)
    return None, None


async def main():
    storage = MemoryStorage()
    auth = provider("MCP Python SDK logout", storage)
    async with create_mcp_http_client(auth=auth) as http:
        async with streamable_http_client(MCP_URL, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()

    # Logging out: revoke (RFC 7009) with what the SDK discovered and holds, then forget.
    context = auth.context
    tokens = context.current_tokens
    access_token = tokens.access_token
    revocation_endpoint = context.oauth_metadata.revocation_endpoint
    data = {
        "token": tokens.refresh_token,
        "token_type_hint": "refresh_token",
        "client_id": context.client_info.client_id,
    }
    data, headers = context.prepare_token_auth(
        data, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    async with httpx2.AsyncClient() as http:
        revoked = await http.post(str(revocation_endpoint), data=data, headers=headers)
    await storage.set_tokens(None)
    context.clear_tokens()
    seconds, error = await refused_after(access_token)
    print(
        json.dumps(
            {
                "tools": sorted(t.name for t in tools.tools),
                "revocation_endpoint": str(revocation_endpoint),
                "revocation_status": revoked.status_code,
                "refused_after_seconds": None if seconds is None else round(seconds, 3),
                "challenge_error": error,
            }
        )
    )


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # the test prints what failed
        print(json.dumps({"error": repr(e)}))
        sys.exit(1)
