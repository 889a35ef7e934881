"""Connecting to PostgreSQL: migrations as the owner, everything else as an unprivileged role.

Row-level security is only a guarantee for a role that is neither a superuser nor BYPASSRLS,
so the store never works as one:

- The URL's role is the *owner*. Opening a store runs the PostgreSQL migration chain
  (storage/postgres/migrations) as that role, under an advisory lock so concurrent opens of
  a fresh database do not race.
- If that role is privileged (superuser or BYPASSRLS, as ``postgres`` of the embedded server
  is), the store creates ``memsvc_app`` (LOGIN NOSUPERUSER NOBYPASSRLS), grants it row access
  to the tables, and connects as it for all work: the same URL with the user swapped, which
  needs trust or peer authentication (the embedded server's Unix socket) — on a server with
  password authentication, give the store an unprivileged role's URL instead.
- If the URL's role is already unprivileged, the store works as it; it owns the tables and
  FORCE ROW LEVEL SECURITY still applies the policies to it.

The tables live in the connection's current schema, so one database can hold several stores
side by side (``?options=-csearch_path%3Dname,public`` in the URL; the tests use a schema
each). The extensions (pgvector, unaccent) belong to the database: migration pg0001 puts new
ones in ``public`` (where the embedded server keeps pgvector), so keep that schema on the path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg.types import TypeInfo
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from memsvc.model.errors import StoreError
from memsvc.storage.postgres.tables import register_binary_vectors

MIGRATIONS = Path(__file__).parent / "migrations"
APP_ROLE = "memsvc_app"
# any constant: serialises migrations and role grants of concurrent opens of one database
_MIGRATION_LOCK = 0x6D656D737663


def migration_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _engine(url: Any) -> Engine:
    """The pooled engine of a migrated store; each of its connections speaks pgvector's
    binary vector format (storage/postgres/tables.py says why)."""
    engine = create_engine(url, pool_size=8, max_overflow=16)
    vector_type: list[TypeInfo] = []

    @event.listens_for(engine, "connect")
    def _register_vectors(dbapi_conn: Any, _record: Any) -> None:
        info = register_binary_vectors(dbapi_conn, vector_type[0] if vector_type else None)
        vector_type[:1] = [info]

    return engine


def libpq_url(url: URL) -> str:
    """The same database as a libpq URI (psycopg itself, procrastinate, LISTEN): the
    engine's URL without SQLAlchemy's driver suffix, password included."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _psycopg_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {exc}") from exc
    if parsed.drivername != "postgresql+psycopg":
        shown = parsed.render_as_string(hide_password=True)
        raise StoreError(f"a PostgreSQL store needs a postgresql+psycopg:// URL, not {shown!r}")
    return parsed


def open_engine(url: str, embedding_dim: int, *, app_role: str = APP_ROLE) -> Engine:
    """Migrate the database at `url` and return the engine the store works through."""
    parsed = _psycopg_url(url)
    owner = create_engine(parsed, poolclass=NullPool)
    try:
        with owner.connect() as conn, conn.begin():
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            _upgrade(conn, embedding_dim)
            privileged = conn.execute(text(
                "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
            )).scalar_one()
            if privileged:
                _ensure_app_role(conn, app_role)
    except DBAPIError as exc:
        raise StoreError(f"cannot open the PostgreSQL store: {_first_line(exc)}") from exc
    finally:
        owner.dispose()
    if not privileged:
        return _engine(parsed)
    return _engine(_as_role(parsed, app_role))


def _as_role(url: URL, role: str) -> URL:
    """`url` for `role`, without the owner's password.

    `URL.set(password=None)` would keep it: SQLAlchemy reads None there as "unchanged", and the
    app role would then present the owner's secret to the server.
    """
    return URL.create(url.drivername, username=role, password=None, host=url.host,
                      port=url.port, database=url.database, query=url.query)


def _first_line(exc: DBAPIError) -> str:
    """The server's message without its DETAIL/HINT lines; a missing pgvector named as such."""
    message = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else repr(exc)
    if 'extension "vector"' in message:
        return f"pgvector cannot be enabled in this database ({message})"
    return message


def store_exists(url: str) -> bool:
    """Does the database at `url` hold a store (its `store_meta` table)? Reads only, so a
    source that is not a store is refused without creating one; StoreError when the
    server cannot be reached."""
    engine = create_engine(_psycopg_url(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT to_regclass('store_meta') IS NOT NULL")).scalar_one()
    except DBAPIError as exc:
        raise StoreError(f"cannot open the PostgreSQL store: {_first_line(exc)}") from exc
    finally:
        engine.dispose()


def _upgrade(conn: Connection, embedding_dim: int) -> None:
    """Bring the database to the newest schema; a no-op (one query) when it already is."""
    cfg = migration_config()
    head = ScriptDirectory.from_config(cfg).get_current_head()
    if MigrationContext.configure(conn).get_current_revision() != head:
        cfg.attributes["connection"] = conn
        cfg.attributes["embedding_dim"] = embedding_dim
        command.upgrade(cfg, "head")
    stored = conn.execute(
        text("SELECT value FROM store_meta WHERE key = 'embedding_dim'")
    ).scalar_one()
    if int(stored) != embedding_dim:
        raise StoreError(
            f"this store holds {stored}-dimensional vectors but the embedder makes "
            f"{embedding_dim}; open it with the embedder it was created with"
        )


def _ensure_app_role(conn: Connection, role: str) -> None:
    """Create the unprivileged role and grant it row access, unless that is already done.

    Checked on every open (one query) so tables added by a later migration get their grants.
    """
    ok = conn.execute(text(
        "SELECT coalesce(bool_and(has_table_privilege(r.oid, c.oid, "
        "'SELECT,INSERT,UPDATE,DELETE')), false) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_roles r ON r.rolname = :role "
        "WHERE c.relkind = 'r' AND n.nspname = current_schema() "
        "AND c.relname NOT IN ('alembic_version', 'store_meta')"
    ), {"role": role}).scalar_one()
    if ok:
        return
    quote = conn.dialect.identifier_preparer.quote
    quoted = quote(role)
    schema = quote(conn.execute(text("SELECT current_schema()")).scalar_one())
    # roles belong to the cluster, so another database's open may create it at the same time
    literal = role.replace("'", "''")
    conn.exec_driver_sql(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{literal}') THEN "
        f"CREATE ROLE {quoted} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; "
        "END IF; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )
    conn.exec_driver_sql(
        f"GRANT USAGE ON SCHEMA {schema} TO {quoted}; "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {quoted}; "
        f"REVOKE INSERT, UPDATE, DELETE ON alembic_version, store_meta FROM {quoted}; "
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {quoted}"
    )


def set_tenant(conn: Connection, tenant: str) -> None:
    """Scope the current transaction to `tenant` for the row-level security policies.

    `set_config(..., true)` is SET LOCAL with a bound value (psycopg binds server-side, and
    SET cannot take parameters): it ends with the transaction, so a pooled connection never
    carries one request's tenant into the next.
    """
    conn.execute(text("SELECT set_config('memsvc.tenant', :t, true)"), {"t": tenant})
