"""What an import did, per table, and the checks after it; printed with rich."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text


@dataclass
class TableReport:
    name: str
    source: int = 0  # rows the source has
    imported: int = 0  # stored by this run
    already: int = 0  # stored by an earlier run (nothing to do)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> rows not stored
    notes: Counter[str] = field(default_factory=Counter)  # reason -> rows stored with a change

    def skip(self, reason: str, count: int = 1) -> None:
        if count > 0:
            self.skipped[reason] += count

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "imported": self.imported,
            "already": self.already,
            "skipped": dict(self.skipped),
            "notes": dict(self.notes),
        }


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    product: str
    dry_run: bool
    tables: dict[str, TableReport] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    # Options written, so the running services can be told to reload them.
    option_keys: list[str] = field(default_factory=list)
    pricing_keys: list[str] = field(default_factory=list)

    def table(self, name: str) -> TableReport:
        return self.tables.setdefault(name, TableReport(name))

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def changed(self) -> int:
        return sum(t.imported for t in self.tables.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "dry_run": self.dry_run,
            "tables": {name: t.as_dict() for name, t in self.tables.items()},
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }


def render(report: Report, console: Console) -> None:
    verb = "would import" if report.dry_run else "imported"
    table = Table(title=f"Import from {report.product}" + (" (dry run)" if report.dry_run else ""))
    for column in ("table", "source rows", verb, "already imported", "not imported"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for item in report.tables.values():
        table.add_row(
            item.name,
            str(item.source),
            str(item.imported),
            str(item.already),
            str(sum(item.skipped.values())),
        )
    console.print(table)
    for item in report.tables.values():
        for reason, count in sorted(item.skipped.items()):
            console.print(f"  [yellow]{item.name}[/]: {count} not imported: {reason}")
        for reason, count in sorted(item.notes.items()):
            console.print(f"  [cyan]{item.name}[/]: {count} imported with a change: {reason}")
    for check in report.checks:
        mark = "[green]ok[/]" if check.ok else "[red]FAILED[/]"
        console.print(f"  check {check.name}: {mark} {check.detail}")


class RateColumn(ProgressColumn):
    """Rows per second of one table."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "", style="progress.data.speed")


def progress_bars(console: Console | None = None) -> Progress:
    return Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        console=console,
    )


class Bars:
    """One bar per table; the importer calls begin/advance, rich draws."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, Any] = {}

    def begin(self, table: str, total: int) -> None:
        self._tasks[table] = self._progress.add_task(table, total=total)

    def advance(self, table: str, count: int) -> None:
        self._progress.advance(self._tasks[table], count)
