"""A hand-written MCP client of the kind the quick start's `default_scope` exists for (seed
003's chuk-mcp-client-oauth is one): it registers and authorizes without `scope` and without
`resource`, ignoring the server's WWW-Authenticate challenge, then calls the MCP server with
the token. Run by examples/tests/interop_python_sdk.rs; prints one JSON line.
"""

import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import sys
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import httpx2

MCP_URL = os.environ["MCP_URL"]
ISSUER = os.environ["ISSUER"]
EMAIL = os.environ["USER_EMAIL"]
PASSWORD = os.environ["USER_PASSWORD"]
REDIRECT_URI = "http://127.0.0.1:53685/callback"


def field(html: str, name: str) -> str:
    match = re.search(r'name="%s" value="([^"]*)"' % re.escape(name), html)
    if not match:
        raise RuntimeError(f"no {name} in the page: {html[:400]}")
    return match.group(1)


async def main():
    async with httpx2.AsyncClient(follow_redirects=False) as http:
        client = (
            await http.post(
                ISSUER + "/register",
                json={"client_name": "Legacy client", "redirect_uris": [REDIRECT_URI]},
            )
        ).json()
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client["client_id"],
                "redirect_uri": REDIRECT_URI,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "state": "legacy",
            }
        )
        answer = await http.get(f"{ISSUER}/authorize?{query}")
        interaction = urljoin(ISSUER, answer.headers["location"])
        page = await http.get(interaction)
        await http.post(
            interaction + "/login",
            data={
                "csrf_token": field(page.text, "csrf_token"),
                "email": EMAIL,
                "password": PASSWORD,
            },
        )
        page = await http.get(interaction)
        shown_scope = "mcp:tools" in page.text
        answer = await http.post(
            interaction + "/consent",
            data={"csrf_token": field(page.text, "csrf_token"), "decision": "approve"},
        )
        code = parse_qs(urlparse(answer.headers["location"]).query)["code"][0]
        tokens = (
            await http.post(
                ISSUER + "/token",
                data={
                    "grant_type": "authorization_code",
                    "client_id": client["client_id"],
                    "code": code,
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": verifier,
                },
            )
        ).json()
        called = await http.post(
            MCP_URL,
            headers={
                "authorization": "Bearer " + tokens["access_token"],
                "content-type": "application/json",
                "accept": "application/json, text/event-stream",
            },
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "legacy", "version": "0"},
                },
            },
        )
        print(
            json.dumps(
                {
                    "scope": tokens.get("scope"),
                    "consent_showed_the_default_scope": shown_scope,
                    "mcp_status": called.status_code,
                }
            )
        )


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:
        print(json.dumps({"error": repr(e)}))
        sys.exit(1)
