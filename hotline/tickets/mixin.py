"""What every part of SqlTicketStore (ledger, accounts, statistics, recordings) is given by
the store: its connections (`_read`, `_write`), the dialect's INSERT (`_insert`) and the
backend's name. The parts inherit this instead of each declaring the same stubs."""

from __future__ import annotations

import contextlib

from sqlalchemy import Connection, Insert, Table


class StorePart:
    @property
    def backend(self) -> str:
        raise NotImplementedError

    def _read(self, what: str) -> contextlib.AbstractContextManager[Connection]:
        raise NotImplementedError

    def _write(self, what: str) -> contextlib.AbstractContextManager[Connection]:
        raise NotImplementedError

    def _insert(self, table: Table) -> Insert:
        raise NotImplementedError
