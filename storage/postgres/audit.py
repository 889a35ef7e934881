"""`memsvc verify` on a PostgreSQL store (through `memsvc.storage.factory.open_auditor`): the
whole-store work itself is shared (memsvc.storage.integrity.whole_store).

Every tenant must be visible, and row-level security hides all rows from a role that is
neither a superuser nor BYPASSRLS when no tenant is set; so the auditor works as the URL's
role and refuses an unprivileged one rather than report an empty store as intact.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, inspect, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from memsvc.model.errors import IntegrityError
from memsvc.storage.integrity import whole_store
from memsvc.storage.integrity.checks import Finding
from memsvc.storage.postgres.integrity import open_integrity


class PostgresAuditor:
    """A PostgreSQL store opened for `memsvc verify` as its (privileged) owner role."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(make_url(url), poolclass=NullPool)
        try:
            with self._reading() as conn:
                if not inspect(conn).has_table("integrity_heads"):
                    raise IntegrityError(f"no memsvc store with integrity at {self._shown}")
                privileged = conn.execute(text(
                    "SELECT rolsuper OR rolbypassrls FROM pg_roles "
                    "WHERE rolname = current_user")).scalar_one()
                if not privileged:
                    raise IntegrityError(
                        "memsvc verify needs a superuser or BYPASSRLS role to see every "
                        f"tenant of {self._shown}")
                self.guard = open_integrity(url, conn, lambda tenant: self._reading())
        except DBAPIError as exc:
            self.engine.dispose()
            raise IntegrityError(f"cannot open {self._shown}: {exc.orig}") from exc
        except BaseException:
            self.engine.dispose()
            raise

    @property
    def _shown(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with self.engine.execution_options(isolation_level="REPEATABLE READ").begin() as conn:
            yield conn

    def audit(self) -> list[Finding]:
        with self._reading() as conn:
            return whole_store.audit(conn, self.guard)

    def rekey(self) -> int:
        with self.engine.begin() as conn:
            conn.execute(text("LOCK TABLE integrity_heads IN EXCLUSIVE MODE"))
            n = whole_store.rekey(conn, self.guard)
            heads = whole_store.heads_of(conn)
        self.guard.witness.replace(heads)
        return n

    def reset_witness(self) -> int:
        with self._reading() as conn:
            return whole_store.reset_witness(conn, self.guard)

    def close(self) -> None:
        self.engine.dispose()
