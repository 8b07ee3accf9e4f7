"""Progress reporting: what long work (measuring, counting, evaluating) tells the user, whoever renders it.

Library functions take an optional ``Progress``; the CLI passes a rich display
(``convbench.results.console.progress_display``), tests and Python callers pass nothing or ``Silent()``.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """What the measuring loop reports; the CLI renders it with rich, tests pass nothing."""

    def phase(self, description: str, total: int | None) -> None: ...

    def advance(self, steps: int = 1) -> None: ...


class Silent:
    """A progress display that shows nothing (library calls and tests)."""

    def phase(self, description: str, total: int | None) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass
