"""What every handler of the API shares: JSON replies, the error shape, request bodies, running
the (synchronous) ticket store off the loop."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from hotline.core.errors import InvalidRequest

_T = TypeVar("_T")
dumps = functools.partial(json.dumps, ensure_ascii=False)


def json_reply(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


def error_reply(status: int, error_id: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    response = json_reply({"error": error_id, "message": message}, status=status)
    if headers:
        response.headers.update(headers)
    return response


async def in_thread(call: Callable[..., _T], *args: Any) -> _T:
    """Runs a (synchronous) TicketStore method off the event loop."""
    return await asyncio.to_thread(call, *args)


async def optional_object(request: web.Request) -> dict[str, Any]:
    """The JSON object in the body, {} without a body; InvalidRequest for anything else."""
    if not request.body_exists:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    return body
