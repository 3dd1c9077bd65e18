"""The MCP Python SDK's OAuth client against mcpauth-server and the example MCP server.

Run by examples/tests/interop_python_sdk.rs: MCP_URL names the example MCP server,
USER_EMAIL and USER_PASSWORD the user who signs in. The SDK gets the 401, discovers
mcpauth, registers, and hands this script the authorization URL; the script plays the user
at mcpauth's sign-in and consent pages (over HTTP, reading the forms) and hands back the code
from the redirect. Then the SDK lists the tools and calls `whoami`. One JSON line on stdout
says what happened.
"""

import asyncio
import json
import os
import re
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

MCP_URL = os.environ["MCP_URL"]
EMAIL = os.environ["USER_EMAIL"]
PASSWORD = os.environ["USER_PASSWORD"]
REDIRECT_URI = "http://127.0.0.1:53684/callback"

seen = {"authorization_url": None}


class MemoryStorage(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull):
        self.client = client_info


def field(html: str, name: str) -> str:
    match = re.search(r'name="%s" value="([^"]*)"' % re.escape(name), html)
    if not match:
        raise RuntimeError(f"no {name} in the page: {html[:400]}")
    return match.group(1)


async def play_the_user(url: str, redirect_uri: str = REDIRECT_URI) -> dict:
    """Signs in and approves at mcpauth's pages; returns the redirect's query parameters."""
    async with httpx2.AsyncClient(follow_redirects=False) as browser:
        answer = await browser.get(url)
        interaction = urljoin(url, answer.headers["location"])
        page = await browser.get(interaction)
        if 'name="password"' in page.text:
            await browser.post(
                interaction + "/login",
                data={
                    "csrf_token": field(page.text, "csrf_token"),
                    "email": EMAIL,
                    "password": PASSWORD,
                },
            )
            page = await browser.get(interaction)
        seen["consent_page"] = "Authorize" in page.text
        answer = await browser.post(
            interaction + "/consent",
            data={"csrf_token": field(page.text, "csrf_token"), "decision": "approve"},
        )
        location = answer.headers["location"]
        if not location.startswith(redirect_uri):
            raise RuntimeError(f"not redirected to the client: {location}")
        return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}


def provider(client_name: str, storage: TokenStorage) -> OAuthClientProvider:
    """The SDK's OAuth client for MCP_URL, a public client whose user is played by
    play_the_user."""
    answer = {}

    async def redirect_handler(url: str) -> None:
        seen["authorization_url"] = url
        answer.update(await play_the_user(url))

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(
            code=answer["code"], state=answer.get("state"), iss=answer.get("iss")
        )

    return OAuthClientProvider(
        server_url=MCP_URL,
        client_metadata=OAuthClientMetadata(
            client_name=client_name,
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )


async def main():
    auth = provider("MCP Python SDK interop client", MemoryStorage())
    async with create_mcp_http_client(auth=auth) as http:
        async with streamable_http_client(MCP_URL, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                whoami = await session.call_tool("whoami", {})
    query = parse_qs(urlparse(seen["authorization_url"]).query)
    print(
        json.dumps(
            {
                "resource": query.get("resource"),
                "scope": query.get("scope"),
                "code_challenge_method": query.get("code_challenge_method"),
                "consent_page": seen.get("consent_page"),
                "tools": sorted(t.name for t in tools.tools),
                "whoami": [c.text for c in whoami.content if getattr(c, "text", None)],
            }
        )
    )


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # the test prints what failed
        print(json.dumps({"error": repr(e)}))
        sys.exit(1)
