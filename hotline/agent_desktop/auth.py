"""Who is asking: sign-in, sessions, roles, and what each role may see.

Rules of this module:
- A session token is 32 random bytes (URL-safe text); the session store keeps only its SHA-256,
  so a leaked store does not hand out sessions. Tokens travel as `Authorization: Bearer`; only
  the WebSocket also takes `?token=` (browsers cannot set headers on a WebSocket).
- Sign-in attempts count per (username, client address): at most `failures_per_minute` in any
  minute, successful or not, and a success clears the count. Counting every attempt at its
  start, not its failure, means a burst of concurrent guesses cannot slip in under the limit.
- Roles: agent < supervisor < admin. An agent acts on his own agent only (state, calls, events);
  supervisors and admins act on any agent. Lists and live views (the queue, the WebSocket) show
  callers' numbers masked to every role; the whole number only comes with an audited read.
- A unit account (role unit, 承办单位) acts for its unit and reaches only an allow-list: the unit
  API (/api/v1/unit/...), /me, /logout and the public paths; everything else is 403 for it, the
  WebSocket included, so a route added later is closed to units until it is listed here.
- With auth off (`api.auth: false`) every request acts as an admin: tests and a closed lab only.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from hotline.agent_desktop.openapi import API_PREFIX
from hotline.agent_desktop.responses import in_thread, json_reply, optional_object
from hotline.core.errors import DomainError, InvalidRequest, NotFound
from hotline.core.model import Actor, AgentId

AGENT, SUPERVISOR, ADMIN, UNIT = "agent", "supervisor", "admin", "unit"
TOKEN_BYTES = 32
WS_PATH = f"{API_PREFIX}/ws"
PUBLIC_PATHS = frozenset({f"{API_PREFIX}/health", f"{API_PREFIX}/openapi.json", f"{API_PREFIX}/login", "/metrics"})
# The web page (web.py: static files and the redirects to it) signs in through /login itself.
PUBLIC_PAGE_PATHS = frozenset({"/", "/desk"})
PUBLIC_PREFIXES = ("/desk/",)
# What a unit account may reach besides the public paths (see the module's rules).
UNIT_PREFIX = f"{API_PREFIX}/unit/"
UNIT_PATHS = frozenset({f"{API_PREFIX}/me", f"{API_PREFIX}/logout"})


class Unauthorized(DomainError):
    """No valid session (or a wrong username or password at sign-in)."""

    error_id = "unauthorized"
    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"WWW-Authenticate": 'Bearer realm="hotline"'}


class Forbidden(DomainError):
    """Signed in, but the role or ownership does not allow this."""

    error_id = "forbidden"
    status = 403


class TooManyAttempts(DomainError):
    error_id = "too-many-attempts"
    status = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in account a request acts for."""

    username: str
    role: str
    agent_id: AgentId | None = None
    open: bool = False  # auth is off: an anonymous admin
    unit: str | None = None  # the unit a unit account acts for

    @property
    def supervises(self) -> bool:
        return self.role in (SUPERVISOR, ADMIN)

    def check_agent(self, agent_id: str) -> None:
        """Forbidden unless this principal may see and change agent_id."""
        if not self.supervises and agent_id != self.agent_id:
            raise Forbidden(f"{self.username} ({self.role}) may act only on agent {self.agent_id}")

    def require_supervisor(self, what: str) -> None:
        if not self.supervises:
            raise Forbidden(f"{what} is for supervisors and admins; {self.username} is an {self.role}")

    def actor_for(self, agent_id: str) -> Actor:
        """Who the queue records as making a change of agent_id's state."""
        return Actor.AGENT if self.open or agent_id == self.agent_id else Actor.SUPERVISOR

    def owns(self, agent_id: str | None) -> bool:
        return agent_id is not None and agent_id == self.agent_id

    def caller(self, number: str) -> str:
        """The caller's number in lists and live views (the queue, the WebSocket): masked for
        every role (138****8000). The whole number is only in the audited reads (a call, a
        ticket, a call's context: privacy.audit_read), so that every sight of it is audited.
        With sign-in off (a closed lab, the tests) nobody is known to audit: shown whole."""
        return number if self.open else mask_number(number)

    def to_dict(self) -> dict[str, str | None]:
        out = {"username": self.username, "role": self.role, "agent_id": self.agent_id}
        if self.role == UNIT:
            out["unit"] = self.unit
        return out

    def may_reach(self, path: str) -> bool:
        """False for a unit account outside its allow-list (see the module's rules)."""
        if self.role != UNIT:
            return True
        return (
            path.startswith(UNIT_PREFIX)
            or path in UNIT_PATHS
            or path in PUBLIC_PATHS | PUBLIC_PAGE_PATHS
            or path.startswith(PUBLIC_PREFIXES)
        )


OPEN = Principal("", ADMIN, None, open=True)


def mask_number(number: str) -> str:
    """13800138000 -> 138****8000; short numbers keep only their last two characters; the user
    part of a SIP URI is masked the same way."""
    if number.startswith("sip:") and "@" in number:
        user, _, host = number[4:].partition("@")
        return f"sip:{mask_number(user)}@{host}"
    if len(number) >= 7:
        return f"{number[:3]}****{number[-4:]}"
    return "*" * (len(number) - 2) + number[-2:] if len(number) > 2 else "**"


class AccountView(Protocol):
    """An account as the ticket store returns it (hotline.tickets.accounts.Account)."""

    @property
    def username(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def agent_id(self) -> AgentId | None: ...
    @property
    def unit(self) -> str | None: ...


class AccountStore(Protocol):
    """What sign-in needs of the ticket store. Synchronous and slow (argon2): run it in a thread."""

    def verify(self, username: str, password: str) -> AccountView | None:
        """The account if the password is right and the account enabled; the same cost either way."""


class SessionStore(Protocol):
    """Session tokens (see the module's rules)."""

    async def create(self, principal: Principal, ttl_s: float) -> str:
        """A new token for the principal, valid ttl_s."""

    async def get(self, token: str) -> Principal | None:
        """The principal of a live token, None if unknown or expired."""

    async def delete(self, token: str) -> None:
        """Ends the session (idempotent)."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class MemorySessions:
    """Sessions in this process's memory: one control process only (tests, a lab). Several
    control processes behind one address share hotline.queue.sessions.RedisSessions (the same
    digests, SET with PX), which `hotline control` uses."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_sessions: int = 100_000) -> None:
        self._clock = clock
        self._max = max_sessions
        self._sessions: collections.OrderedDict[str, tuple[Principal, float]] = collections.OrderedDict()

    async def create(self, principal: Principal, ttl_s: float) -> str:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock()
        self._expire(now)
        while len(self._sessions) >= self._max:
            self._sessions.popitem(last=False)  # the oldest session goes first
        self._sessions[token_digest(token)] = (principal, now + ttl_s)
        return token

    async def get(self, token: str) -> Principal | None:
        found = self._sessions.get(token_digest(token))
        if found is None:
            return None
        principal, expires = found
        if self._clock() >= expires:
            self._sessions.pop(token_digest(token), None)
            return None
        return principal

    async def delete(self, token: str) -> None:
        self._sessions.pop(token_digest(token), None)

    def _expire(self, now: float) -> None:
        expired = [digest for digest, (_, expires) in self._sessions.items() if expires <= now]
        for digest in expired:
            del self._sessions[digest]


def principal_json(principal: Principal) -> str:
    """A session's principal as stored by a shared session store (hotline.queue.sessions)."""
    return json.dumps(
        {
            "username": principal.username,
            "role": principal.role,
            "agent_id": principal.agent_id,
            "unit": principal.unit,
            "open": principal.open,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def principal_from_json(raw: str) -> Principal:
    """The principal of a stored entry; ValueError if it is not one."""
    data: Any = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    username, role = data.get("username"), data.get("role")
    agent_id, unit, is_open = data.get("agent_id"), data.get("unit"), data.get("open", False)
    if not isinstance(username, str) or not isinstance(role, str):
        raise ValueError("username and role must be strings")
    if agent_id is not None and not isinstance(agent_id, str):
        raise ValueError("agent_id must be a string or null")
    if unit is not None and not isinstance(unit, str):
        raise ValueError("unit must be a string or null")
    if not isinstance(is_open, bool):
        raise ValueError("open must be a boolean")
    return Principal(username, role, None if agent_id is None else AgentId(agent_id), open=is_open, unit=unit)


class LoginLimiter:
    """Sign-in attempts per (username, address) in a sliding minute (see the module's rules)."""

    WINDOW_S = 60.0

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        if per_minute < 1:
            raise InvalidRequest(f"login_failures_per_minute must be at least 1, got {per_minute}")
        self._limit = per_minute
        self._clock = clock
        self._max_keys = max_keys
        self._attempts: collections.OrderedDict[tuple[str, str], collections.deque[float]] = collections.OrderedDict()

    def attempt(self, key: tuple[str, str]) -> None:
        """Counts an attempt; TooManyAttempts (nothing counted) when the minute's are used up."""
        now = self._clock()
        times = self._attempts.get(key)
        if times is None:
            while len(self._attempts) >= self._max_keys:
                self._attempts.popitem(last=False)
            times = self._attempts[key] = collections.deque()
        while times and times[0] <= now - self.WINDOW_S:
            times.popleft()
        if len(times) >= self._limit:
            retry = max(1, int(times[0] + self.WINDOW_S - now + 0.999))
            raise TooManyAttempts(f"too many sign-in attempts for {key[0]!r}; try again in {retry} s", retry)
        times.append(now)
        self._attempts.move_to_end(key)

    def succeeded(self, key: tuple[str, str]) -> None:
        self._attempts.pop(key, None)


@dataclasses.dataclass
class Auth:
    """Sign-in for make_app: the accounts, where sessions live, the limits."""

    accounts: AccountStore
    sessions: SessionStore = dataclasses.field(default_factory=MemorySessions)
    session_ttl_s: float = 12 * 3600.0
    failures_per_minute: int = 5
    limiter: LoginLimiter = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.limiter = LoginLimiter(self.failures_per_minute)


AUTH = web.AppKey["Auth | None"]("auth")
_PRINCIPAL = web.RequestKey[Principal]("principal")


def principal(request: web.Request) -> Principal:
    """Who the request acts for (set by auth_middleware)."""
    return request[_PRINCIPAL]


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if request.path == WS_PATH:
        return request.query.get("token") or None
    return None


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Sets the request's principal from its bearer token; Unauthorized without a live one."""
    auth = request.app[AUTH]
    if auth is None:
        request[_PRINCIPAL] = OPEN
        return await handler(request)
    token = _bearer(request)
    found = None if token is None else await auth.sessions.get(token)
    if found is not None:
        if not found.may_reach(request.path):
            raise Forbidden(f"承办单位账号 {found.username} 只能使用 {UNIT_PREFIX} 下的接口")
        request[_PRINCIPAL] = found
    elif request.path not in PUBLIC_PATHS | PUBLIC_PAGE_PATHS and not request.path.startswith(PUBLIC_PREFIXES):
        if token is None:
            raise Unauthorized(f"sign in first: POST {API_PREFIX}/login, then send Authorization: Bearer <token>")
        raise Unauthorized("the session expired or was ended: sign in again")
    return await handler(request)


# --- handlers ---------------------------------------------------------------------------


def _auth_on(request: web.Request) -> Auth:
    auth = request.app[AUTH]
    if auth is None:
        raise NotFound("sign-in is off (api.auth: false): every request acts as an admin")
    return auth


async def login(request: web.Request) -> web.Response:
    auth = _auth_on(request)
    body = await optional_object(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise InvalidRequest("username and password (strings) are required")
    unknown = sorted(set(body) - {"username", "password"})
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(unknown)}")
    key = (username, request.remote or "")
    auth.limiter.attempt(key)
    account = await in_thread(auth.accounts.verify, username, password)
    if account is None:
        raise Unauthorized("wrong username or password, or the account is disabled")
    auth.limiter.succeeded(key)
    who = Principal(account.username, account.role, account.agent_id, unit=account.unit)
    token = await auth.sessions.create(who, auth.session_ttl_s)
    return json_reply(
        {"token": token, "token_type": "Bearer", "expires_in": int(auth.session_ttl_s), "account": who.to_dict()}
    )


async def logout(request: web.Request) -> web.Response:
    auth = _auth_on(request)
    token = _bearer(request)
    if token is not None:
        await auth.sessions.delete(token)
    return json_reply({"signed_out": True})


async def me(request: web.Request) -> web.Response:
    return json_reply(principal(request).to_dict())
