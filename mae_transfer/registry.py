"""A minimal name -> factory registry (used for MAE models and transfer backbones)."""

from __future__ import annotations

import difflib
from typing import Any, Callable, TypeVar

from .errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


class Registry:
    """Factories by name; ``kind`` names what they build in error messages ("backbone", "MAE model")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., Any]] = {}

    def register(
        self, name: str | None = None, arch: dict[str, Any] | None = None, builds: type | None = None
    ) -> Callable[[F], F]:
        """Decorator registering ``fn`` under ``name`` (default: the function's name). ``arch``: the model
        shape the factory builds, kept as ``fn.arch`` so that it can be read without building the model;
        ``builds``: the class the factory constructs, kept as ``fn.builds``."""

        def wrap(fn: F) -> F:
            key = name or fn.__name__
            if arch is not None:
                fn.arch = arch  # type: ignore[attr-defined]
            if builds is not None:
                fn.builds = builds  # type: ignore[attr-defined]
            if key in self._factories and self._factories[key] is not fn:
                raise ValueError(
                    f"{self.kind} {key!r} is already registered by {self._factories[key].__module__}"
                )
            self._factories[key] = fn
            return fn

        return wrap

    def get(self, name: str) -> Callable[..., Any]:
        try:
            return self._factories[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._factories, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(
                f"unknown {self.kind} {name!r}{hint}; registered: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories
