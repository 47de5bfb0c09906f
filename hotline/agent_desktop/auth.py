"""Who is asking: sign-in, sessions, roles, and what each role may see.

Rules of this module:
- A session token is 32 random bytes (URL-safe text); the session store keeps only its SHA-256,
  so a leaked store does not hand out sessions. Tokens travel as `Authorization: Bearer`; only
  the WebSocket also takes `?token=` (browsers cannot set headers on a WebSocket).
- Sign-in attempts count per (username, client address): at most `failures_per_minute` in any
  minute, successful or not, and a success clears the count. Counting every attempt at its
  start, not its failure, means a burst of concurrent guesses cannot slip in under the limit.
- Roles: agent < supervisor < admin. An agent acts on his own agent only (state, calls, events)
  and sees other people's callers masked; supervisors and admins act on any agent.
- With auth off (`api.auth: false`) every request acts as an admin: tests and a closed lab only.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from hotline.agent_desktop.openapi import API_PREFIX
from hotline.agent_desktop.responses import in_thread, json_reply, optional_object
from hotline.core.errors import DomainError, InvalidRequest, NotFound
from hotline.core.model import Actor, AgentId

AGENT, SUPERVISOR, ADMIN = "agent", "supervisor", "admin"
TOKEN_BYTES = 32
WS_PATH = f"{API_PREFIX}/ws"
PUBLIC_PATHS = frozenset({f"{API_PREFIX}/health", f"{API_PREFIX}/openapi.json", f"{API_PREFIX}/login", "/metrics"})


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

    def caller(self, number: str, owner: str | None) -> str:
        """The caller's number as this principal may see it: whole for supervisors and on his
        own calls, masked for an agent on anyone else's."""
        return number if self.supervises or self.owns(owner) else mask_number(number)

    def to_dict(self) -> dict[str, str | None]:
        return {"username": self.username, "role": self.role, "agent_id": self.agent_id}


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
    """Sessions in this process's memory.

    TODO: one control process only. Several control processes behind one address need the
    sessions in Redis (same digests, SET with PX): a small adapter in hotline/queue."""

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
        request[_PRINCIPAL] = found
    elif request.path not in PUBLIC_PATHS:
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
    who = Principal(account.username, account.role, account.agent_id)
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
