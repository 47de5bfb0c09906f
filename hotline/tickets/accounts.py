"""The accounts half of SqlTicketStore: who may sign in to the agent desktop API.

Rules of this module:
- Passwords are stored only as argon2id hashes (argon2-cffi's defaults, RFC 9106's low-memory
  profile), in the PHC string format, so that the parameters travel with each hash; a hash made
  with older parameters is replaced at the next successful sign-in.
- `verify` costs the same whether the user exists, is disabled, or gave a wrong password: an
  unknown user is checked against a dummy hash of the same parameters, so the time of an answer
  says nothing about which usernames exist. Comparing hashes is argon2's constant-time compare.
- Roles are agent, supervisor, admin, unit. An agent account is tied to its agent (which must be in
  the registry when the account is made); a supervisor or admin account may be tied to one too.
  A unit account (承办单位) is tied to its unit (in the units registry) and to nothing else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import unicodedata
from datetime import datetime
from typing import Any

import argon2
from sqlalchemy import RowMapping, select, update

from hotline.core.errors import Conflict, InvalidRequest, NotFound
from hotline.core.model import AgentId, utcnow
from hotline.tickets import schema
from hotline.tickets.mixin import StorePart

ROLES = ("agent", "supervisor", "admin", "unit")
USERNAME_MAX = 64
PASSWORD_MIN = 8
PASSWORD_MAX = 1024  # argon2 hashes any length; a bound keeps a request from costing more

_A = schema.accounts


@dataclasses.dataclass(frozen=True, slots=True)
class Account:
    """An account as the API sees it: never its password hash."""

    username: str
    role: str
    agent_id: AgentId | None
    created_at: datetime
    disabled: bool = False
    unit: str | None = None  # the unit a unit account acts for

    def to_dict(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "role": self.role,
            "agent_id": self.agent_id,
            "unit": self.unit,
            "created_at": self.created_at.isoformat(),
            "disabled": self.disabled,
        }


def check_username(username: str) -> str:
    """The username as stored; InvalidRequest if it is empty, too long or has spaces or controls."""
    name = unicodedata.normalize("NFC", username.strip())
    if not name or len(name) > USERNAME_MAX:
        raise InvalidRequest(f"a username has 1 to {USERNAME_MAX} characters, got {len(name)}")
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidRequest(f"username {name!r} has a space or a control character")
    return name


class AccountBook(StorePart):
    """Mixed into SqlTicketStore, which provides the connections (`_read`, `_write`) and the
    dialect's INSERT (`_insert`)."""

    _hasher = argon2.PasswordHasher()
    _dummy_hash: str | None = None
    _dummy_lock = threading.Lock()

    def add_account(
        self, username: str, password: str, role: str, agent_id: AgentId | None = None, unit: str | None = None
    ) -> Account:
        """Creates an account; Conflict if the username is taken, InvalidRequest for a bad role,
        a short password, an agent account without an agent, a unit account without a unit (or
        with an agent) or a unit given to another role; NotFound for an agent or a unit not in
        its registry."""
        name = check_username(username)
        if role not in ROLES:
            raise InvalidRequest(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if role == "agent" and not agent_id:
            raise InvalidRequest("an agent account needs the agent it belongs to (--agent)")
        if role == "unit" and (not unit or agent_id):
            raise InvalidRequest("a unit account needs the unit it acts for (--unit) and no agent")
        if role != "unit" and unit:
            raise InvalidRequest(f"only a unit account has a unit (role {role!r} given --unit)")
        _check_password(password)
        password_hash = self._hasher.hash(password)
        created = utcnow()
        with self._write(f"adding account {name}") as conn:
            if agent_id is not None:
                found = conn.execute(
                    select(schema.agents.c.agent_id).where(schema.agents.c.agent_id == agent_id)
                ).first()
                if found is None:
                    raise NotFound(f"no agent {agent_id} in the registry (add it with `hotline agents add`)")
            known_unit = select(schema.units.c.name).where(schema.units.c.name == unit)
            if unit is not None and conn.execute(known_unit).first() is None:
                raise NotFound(f"no unit {unit} in the registry (add it with `hotline units add`)")
            if conn.execute(select(_A.c.username).where(_A.c.username == name)).first() is not None:
                raise Conflict(f"account {name} already exists")
            conn.execute(
                self._insert(_A).values(
                    username=name,
                    password_hash=password_hash,
                    role=role,
                    agent_id=agent_id,
                    created_at=created,
                    disabled=False,
                    unit=unit,
                )
            )
        return Account(name, role, agent_id, created, unit=unit)

    def get_account(self, username: str) -> Account | None:
        with self._read("get_account") as conn:
            row = conn.execute(select(_A).where(_A.c.username == username)).first()
        return None if row is None else _account(row._mapping)

    def list_accounts(self) -> list[Account]:
        """Every account, by username."""
        with self._read("list_accounts") as conn:
            rows = conn.execute(select(_A).order_by(_A.c.username)).all()
        return [_account(row._mapping) for row in rows]

    def set_account_disabled(self, username: str, disabled: bool) -> Account:
        """Disables (or enables again) an account; NotFound if there is none."""
        with self._write(f"changing account {username}") as conn:
            done = conn.execute(update(_A).where(_A.c.username == username).values(disabled=disabled))
        if done.rowcount == 0:
            raise NotFound(f"no account {username}")
        account = self.get_account(username)
        assert account is not None
        return account

    def verify(self, username: str, password: str) -> Account | None:
        """The account if the password is right and the account enabled, else None.

        Takes one argon2 verification whatever the answer (see the module's rules). Slow on
        purpose (tens of ms): call it off the event loop.
        """
        row: RowMapping | None = None
        with contextlib.suppress(InvalidRequest):
            name = check_username(username)
            with self._read("verifying a password") as conn:
                found = conn.execute(select(_A).where(_A.c.username == name)).first()
            row = None if found is None else found._mapping
        stored = row["password_hash"] if row is not None else self._dummy()
        try:
            self._hasher.verify(stored, password[:PASSWORD_MAX])
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return None
        if row is None or row["disabled"]:
            return None
        if self._hasher.check_needs_rehash(stored):
            with self._write(f"rehashing the password of {row['username']}") as conn:
                conn.execute(
                    update(_A).where(_A.c.username == row["username"]).values(password_hash=self._hasher.hash(password))
                )
        return _account(row)

    @classmethod
    def _dummy(cls) -> str:
        with cls._dummy_lock:
            if cls._dummy_hash is None:
                cls._dummy_hash = cls._hasher.hash("no such account: the same cost as a real one")
            return cls._dummy_hash


def _check_password(password: str) -> None:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidRequest(f"a password has {PASSWORD_MIN} to {PASSWORD_MAX} characters")


def _account(row: RowMapping) -> Account:
    return Account(
        username=row["username"],
        role=row["role"],
        agent_id=None if row["agent_id"] is None else AgentId(row["agent_id"]),
        created_at=row["created_at"],
        disabled=bool(row["disabled"]),
        unit=row["unit"],
    )
