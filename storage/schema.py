"""SQLAlchemy 2 tables of the store. The virtual tables (FTS5, vec0) live in the migration.

Every row carries its tenant, and the store adds the tenant to every statement it builds:
isolation is a property of the storage layer, not of whoever calls it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored as fixed-width UTC text, so SQL comparisons sort correctly.

    The text is ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` with the year always four digits: 27
    characters for every year from 1 to 9999, so text order is time order. (strftime's
    ``%Y`` does not pad years below 1000, and ``fromisoformat`` cannot read ``5-06-01…``
    back: rows older versions wrote that way are still read.)
    """

    impl = String(27)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        naive = value.astimezone(UTC).replace(tzinfo=None)
        return naive.isoformat(timespec="microseconds") + "Z"

    def process_result_value(self, value: str | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # fromisoformat reads the stored form (…Z, Python ≥ 3.11) an order of magnitude
        # faster than strptime, which was a third of fetching a search's records
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return _read_unpadded_year(value)


def _read_unpadded_year(value: str) -> datetime:
    """A time written by the strftime writer for a year below 1000 (``5-06-01T…Z``)."""
    year, dash, rest = value.partition("-")
    if not (dash and year.isdigit() and len(year) < 4):
        raise ValueError(f"not a stored time: {value!r}")
    return datetime.fromisoformat(year.zfill(4) + dash + rest)


def scope_token(tenant: str, user_id: str | None) -> str:
    """One FTS5 token naming a tenant+user, so BM25 can be restricted to them inside MATCH."""
    digest = hashlib.sha1(f"{tenant}\x1f{user_id or ''}".encode(), usedforsecurity=False)
    return "s" + digest.hexdigest()[:20]


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class MemoryRow(Base):
    __tablename__ = "memories"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(26), unique=True)
    tenant: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str | None] = mapped_column(String(256))
    agent_id: Mapped[str | None] = mapped_column(String(256))
    session_id: Mapped[str | None] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    predicate: Mapped[str | None] = mapped_column(Text)
    object: Mapped[str | None] = mapped_column(Text)
    entities: Mapped[list[str]] = mapped_column(JSON, default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    invalidated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source_message_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    extractor: Mapped[str] = mapped_column(String(64))
    extractor_version: Mapped[str] = mapped_column(String(32))
    confidence: Mapped[float] = mapped_column(Float, default=1.0)
    status: Mapped[str] = mapped_column(String(16))
    superseded_by: Mapped[str | None] = mapped_column(String(26))
    importance: Mapped[float] = mapped_column(Float, default=0.5)
    access_count: Mapped[int] = mapped_column(Integer, default=0)
    last_accessed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    content_hash: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=1)
    fts_scope: Mapped[str] = mapped_column(String(24))  # see scope_token()
    # provenance (memsvc.model.trust, migration 0006): writing key, channel, trust level
    writer: Mapped[str] = mapped_column(String(64), default="local")
    channel: Mapped[str] = mapped_column(String(16), default="user")
    trust: Mapped[int] = mapped_column(Integer, default=3)
    # integrity (memsvc.storage.integrity): position in the owner's chain, MAC, key id
    chain_seq: Mapped[int | None] = mapped_column(Integer)
    mac: Mapped[str | None] = mapped_column(String(64))
    mac_key: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        Index("ix_memories_tenant_id", "tenant", "id", unique=True),
        Index("ix_memories_user", "tenant", "user_id", "status"),
        Index("ix_memories_agent", "tenant", "agent_id", "status"),
        Index("ix_memories_session", "tenant", "session_id", "status"),
        Index("ix_memories_hash", "tenant", "content_hash"),
    )


class MessageRow(Base):
    __tablename__ = "messages"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(26), unique=True)
    tenant: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str | None] = mapped_column(String(256))
    agent_id: Mapped[str | None] = mapped_column(String(256))
    session_id: Mapped[str | None] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(256))
    content: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    chain_seq: Mapped[int | None] = mapped_column(Integer)
    mac: Mapped[str | None] = mapped_column(String(64))
    mac_key: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (Index("ix_messages_scope", "tenant", "user_id", "session_id"),)


class HistoryRow(Base):
    __tablename__ = "history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(128))
    memory_id: Mapped[str] = mapped_column(String(26))
    event: Mapped[str] = mapped_column(String(16))
    old: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    new: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # the chain a history entry is in: its memory's user ('' for none), kept here because
    # the memory row may be gone (hard delete)
    chain_user: Mapped[str | None] = mapped_column(String(256))
    chain_seq: Mapped[int | None] = mapped_column(Integer)
    mac: Mapped[str | None] = mapped_column(String(64))
    mac_key: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        Index("ix_history_memory", "tenant", "memory_id"),
        Index("ix_history_chain", "tenant", "chain_user"),
    )


class StoreMetaRow(Base):
    """Facts about the file itself (embedding model and dimension) checked on open."""

    __tablename__ = "store_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


memories = MemoryRow.__table__
messages = MessageRow.__table__
history = HistoryRow.__table__
store_meta = StoreMetaRow.__table__


class ApiKeyRow(Base):
    """An API key of the REST server: only its hash is kept; it maps a caller to a tenant."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the highest trust its writes get (memsvc.model.trust), and the one user it may act
    # for (None: any user of its tenant); migration 0006
    trust: Mapped[int] = mapped_column(Integer, default=3)
    user_id: Mapped[str | None] = mapped_column(String(256))


api_keys = ApiKeyRow.__table__


class EntityRow(Base):
    """A named thing (person, pet, place, ...) of one user/agent scope, with its aliases.

    `user_id` / `agent_id` are '' rather than NULL so the unique key really is unique.
    """

    __tablename__ = "entities"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(256))
    agent_id: Mapped[str] = mapped_column(String(256))
    norm: Mapped[str] = mapped_column(String(256))
    name: Mapped[str] = mapped_column(String(256))
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("tenant", "user_id", "agent_id", "norm", name="uq_entities_scope_norm"),
    )


class MemoryEntityRow(Base):
    """A memory mentions an entity. Erased with the memory (ON DELETE CASCADE)."""

    __tablename__ = "memory_entities"

    memory_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("memories.id", ondelete="CASCADE"), primary_key=True
    )
    entity_pk: Mapped[int] = mapped_column(
        Integer, ForeignKey("entities.pk", ondelete="CASCADE"), primary_key=True, index=True
    )
    tenant: Mapped[str] = mapped_column(String(128))


class EntityRelationRow(Base):
    """subject —predicate→ object between two entities, as stated by one memory."""

    __tablename__ = "entity_relations"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(128))
    src_pk: Mapped[int] = mapped_column(
        Integer, ForeignKey("entities.pk", ondelete="CASCADE"), index=True
    )
    dst_pk: Mapped[int] = mapped_column(
        Integer, ForeignKey("entities.pk", ondelete="CASCADE"), index=True
    )
    predicate: Mapped[str] = mapped_column(Text)
    memory_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("memories.id", ondelete="CASCADE"), index=True
    )


class GraphStateRow(Base):
    """One counter per (tenant, user) bumped by every link change: cache invalidation."""

    __tablename__ = "graph_state"

    tenant: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


entities = EntityRow.__table__
memory_entities = MemoryEntityRow.__table__
entity_relations = EntityRelationRow.__table__
graph_state = GraphStateRow.__table__


class ChainEntryRow(Base):
    """One change in a (tenant, user) scope's append-only integrity chain (see
    memsvc.storage.integrity.chain): what changed and the MAC it was written with."""

    __tablename__ = "integrity_chain"

    tenant: Mapped[str] = mapped_column(String(128), primary_key=True)
    scope: Mapped[str] = mapped_column(String(256), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(300))
    event: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64))
    tag: Mapped[str] = mapped_column(String(64))
    mac_key: Mapped[str] = mapped_column(String(16))

    __table_args__ = (Index("ix_integrity_chain_ref", "tenant", "ref", "scope", "seq", "digest"),)


class ChainHeadRow(Base):
    """A scope's chain head: length, last tag, live row counts, signed (a witness outside
    the store keeps length and tag too)."""

    __tablename__ = "integrity_heads"

    tenant: Mapped[str] = mapped_column(String(128), primary_key=True)
    scope: Mapped[str] = mapped_column(String(256), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    tag: Mapped[str] = mapped_column(String(64))
    base: Mapped[int] = mapped_column(Integer)
    base_tag: Mapped[str] = mapped_column(String(64))
    memories: Mapped[int] = mapped_column(Integer)
    messages: Mapped[int] = mapped_column(Integer)
    history: Mapped[int] = mapped_column(Integer)
    mac_key: Mapped[str] = mapped_column(String(16))
    mac: Mapped[str] = mapped_column(String(64))


integrity_chain = ChainEntryRow.__table__
integrity_heads = ChainHeadRow.__table__
