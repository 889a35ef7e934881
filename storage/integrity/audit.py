"""What `memsvc verify` needs from a backend: a whole-store audit, re-signing, the witness.

A protocol, so the CLI opens an auditor through `memsvc.storage.factory.open_auditor` and
never imports a backend.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from memsvc.storage.integrity.checks import Finding


@runtime_checkable
class IntegrityAuditor(Protocol):
    def audit(self) -> list[Finding]:
        """Every integrity finding in the store (all tenants); [] when it is intact."""
        ...

    def rekey(self) -> int:
        """Re-sign everything with the current key after a clean audit (IntegrityError
        otherwise); returns how many rows were re-signed."""
        ...

    def reset_witness(self) -> int:
        """Make the witness agree with the store as it is; returns how many scopes."""
        ...

    def close(self) -> None: ...
