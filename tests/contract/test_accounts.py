"""Accounts in the ticket store (hotline/tickets/accounts.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy

from hotline.core.errors import Conflict, InvalidRequest, NotFound
from hotline.core.model import Agent, AgentId
from hotline.tickets.store import SqlTicketStore

PASSWORD = "correct horse 电池"


@pytest.fixture
def store(ticket_store_url: str) -> Iterator[SqlTicketStore]:
    s = SqlTicketStore(ticket_store_url)
    s.add_agent(Agent(AgentId("a1"), "张伟", "1001"))
    yield s
    s.close()


class TestAccounts:
    def test_add_and_verify(self, store: SqlTicketStore) -> None:
        made = store.add_account("zhangwei", PASSWORD, "agent", AgentId("a1"))
        assert (made.username, made.role, made.agent_id, made.disabled) == ("zhangwei", "agent", "a1", False)
        assert store.get_account("zhangwei") == made
        assert store.verify("zhangwei", PASSWORD) == made
        assert store.verify("zhangwei", PASSWORD + "x") is None
        assert store.verify("zhangwei", "") is None
        assert store.verify("nobody", PASSWORD) is None
        assert store.verify("", PASSWORD) is None
        assert store.get_account("nobody") is None

    def test_the_password_is_stored_as_an_argon2id_hash(self, store: SqlTicketStore, ticket_store_url: str) -> None:
        store.add_account("admin", PASSWORD, "admin")
        engine = sqlalchemy.create_engine(ticket_store_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as conn:
                stored = conn.execute(sqlalchemy.text("SELECT password_hash FROM accounts")).scalar_one()
        finally:
            engine.dispose()
        assert stored.startswith("$argon2id$")
        assert PASSWORD not in stored
        assert "password" not in repr(store.get_account("admin")).lower()

    def test_roles_and_agent_ties(self, store: SqlTicketStore) -> None:
        store.add_account("sup", PASSWORD, "supervisor")
        store.add_account("lead", PASSWORD, "supervisor", AgentId("a1"))  # a supervisor may take calls too
        with pytest.raises(InvalidRequest, match="role"):
            store.add_account("x", PASSWORD, "root")
        with pytest.raises(InvalidRequest, match="agent"):
            store.add_account("x", PASSWORD, "agent")
        with pytest.raises(NotFound, match="a9"):
            store.add_account("x", PASSWORD, "agent", AgentId("a9"))
        assert store.get_account("x") is None
        assert [a.username for a in store.list_accounts()] == ["lead", "sup"]

    @pytest.mark.parametrize("name", ["", "  ", "a b", "tab\tname", "x" * 65, "nul\x00"])
    def test_bad_usernames(self, store: SqlTicketStore, name: str) -> None:
        with pytest.raises(InvalidRequest):
            store.add_account(name, PASSWORD, "admin")
        assert store.verify(name, PASSWORD) is None

    def test_short_passwords_are_refused(self, store: SqlTicketStore) -> None:
        with pytest.raises(InvalidRequest, match="password"):
            store.add_account("admin", "1234567", "admin")

    def test_a_taken_username_is_a_conflict(self, store: SqlTicketStore) -> None:
        store.add_account("admin", PASSWORD, "admin")
        with pytest.raises(Conflict):
            store.add_account(" admin ", "another password", "supervisor")
        assert store.verify("admin", PASSWORD) is not None

    def test_a_disabled_account_cannot_sign_in(self, store: SqlTicketStore) -> None:
        store.add_account("sup", PASSWORD, "supervisor")
        assert store.set_account_disabled("sup", True).disabled
        assert store.verify("sup", PASSWORD) is None
        store.set_account_disabled("sup", False)
        assert store.verify("sup", PASSWORD) is not None
        with pytest.raises(NotFound):
            store.set_account_disabled("nobody", True)

    def test_an_unknown_user_costs_as_much_as_a_wrong_password(self, store: SqlTicketStore) -> None:
        store.add_account("sup", PASSWORD, "supervisor")

        def cost(username: str) -> float:
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                store.verify(username, "wrong password")
                best = min(best, time.perf_counter() - start)
            return best

        known, unknown = cost("sup"), cost("nobody")
        assert known > 0.005  # argon2 is slow on purpose
        assert 0.5 < unknown / known < 2.0
