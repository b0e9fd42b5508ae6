"""The neutral callback lower layers report progress through; only ``ui/`` draws."""

from __future__ import annotations

from typing import Any, Protocol


class Events(Protocol):
    def notice(self, message: str) -> None: ...
    def warning(self, message: str) -> None: ...
    def phase_start(self, name: str) -> None: ...
    def phase_end(self, name: str, seconds: float, detail: str = "") -> None: ...
    def task_start(self, description: str, total: int | None, unit: str = "items") -> None: ...
    def task_advance(self, items: int, nbytes: int) -> None: ...
    def task_end(self) -> None: ...
    def summary(self, row: dict[str, Any], run_dir: str, unmeasured: dict[str, str]) -> None: ...


class NullEvents:
    """Events that go nowhere (library use, tests)."""

    def notice(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def phase_start(self, name: str) -> None:
        pass

    def phase_end(self, name: str, seconds: float, detail: str = "") -> None:
        pass

    def task_start(self, description: str, total: int | None, unit: str = "items") -> None:
        pass

    def task_advance(self, items: int, nbytes: int) -> None:
        pass

    def task_end(self) -> None:
        pass

    def summary(self, row: dict[str, Any], run_dir: str, unmeasured: dict[str, str]) -> None:
        pass
