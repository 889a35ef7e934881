"""A Hypothesis property run on both backends with its own number of examples on each.

Why: `backend` is a parametrized fixture (tests/conftest.py), but Hypothesis reads one
`settings` per test function, so a property parametrized over both backends would run as many
examples on PostgreSQL (a round trip per statement) as on SQLite. `on_backends` builds the
property once per backend from the same body and strategies, and exposes one pytest test
taking `backend`, so the suite stays parametrized (not copied) and the PostgreSQL run short.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis.strategies import SearchStrategy


def on_backends(base: settings, examples: Mapping[str, int],
                **strategies: SearchStrategy[Any]) -> Callable[[Callable[..., None]], Any]:
    """`@on_backends(PROPERTY, {"sqlite": 40, "postgres": 15}, value=st...)` on a test body
    whose other parameters are fixtures."""

    def wrap(body: Callable[..., None]) -> Callable[..., None]:
        runs = {name: settings(base, max_examples=n)(given(**strategies)(body))
                for name, n in examples.items()}

        def test(backend: str, **fixtures: Any) -> None:
            runs[backend](**fixtures)

        params = [p for p in inspect.signature(body).parameters.values()
                  if p.name not in strategies and p.name != "backend"]
        test.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("backend", inspect.Parameter.POSITIONAL_OR_KEYWORD), *params])
        test.__name__, test.__doc__ = body.__name__, body.__doc__
        test.__module__ = body.__module__
        return test

    return wrap
