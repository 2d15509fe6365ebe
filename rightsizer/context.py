"""What every subcommand gets: validated settings, and lazily opened store and catalogue."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import Settings
from rightsizer.output import Output

if TYPE_CHECKING:
    from analytics.catalogue import CsvPriceCatalogue
    from collector.store.promql import PromqlStore
    from collector.store.sqlite import SqliteStore
    from collector.store.writer import WriterLock


@dataclass
class Context:
    """Composition root for one CLI invocation. Opens things once, closes them at exit."""

    settings: Settings
    out: Output
    command: str = ""
    _store: SqliteStore | None = field(default=None, repr=False)
    _catalogue: CsvPriceCatalogue | None = field(default=None, repr=False)
    _source: PromqlStore | None = field(default=None, repr=False)
    _writer: WriterLock | None = field(default=None, repr=False)

    @property
    def db_path(self) -> Path:
        return Path(self.settings.store.path)

    def open_store(self, *, create: bool = True, writer: bool = False) -> SqliteStore:
        """Open (and migrate) the SQLite store; with create=False a missing file is an InputError.

        ``writer=True`` also takes the store's one-writer lock (StoreLockedError when another process holds it).
        """
        if self._store is None:
            from collector.errors import InputError
            from collector.store.sqlite import SqliteStore

            if not create and not self.db_path.exists():
                raise InputError(
                    f"Database {str(self.db_path)!r} does not exist; run 'rightsizer collect' or "
                    "'rightsizer import' first, or pass --db"
                )
            self._store = SqliteStore(
                self.db_path,
                raw_retention_days=self.settings.store.raw_retention_days,
                rollup_retention_days=self.settings.store.rollup_retention_days,
            )
        if writer and self._writer is None:  # after the store is known to be ours: no lock beside foreign files
            from collector.store.writer import WriterLock

            lock = WriterLock(self.db_path, holder=f"rightsizer {self.command}".strip())
            lock.acquire()
            self._writer = lock
        return self._store

    @property
    def is_promql(self) -> bool:
        return self.settings.source.kind == "prometheus"

    def open_source(self, *, create: bool = False) -> SqliteStore | PromqlStore:
        """The history analytics read: the SQLite store, or the PromQL source ([source] kind = "prometheus").

        The PromQL source is checked at once (URL, credentials, API), so a bad one fails before any work.
        """
        if not self.is_promql:
            return self.open_store(create=create)
        if self._source is None:
            from collector.store.promql_factory import promql_client, promql_store

            client = promql_client(self.settings)
            client.labels()  # nothing is opened or written before the API answered
            self._source = promql_store(self.settings, self.open_store(), client)
        return self._source

    def catalogue(self) -> CsvPriceCatalogue:
        if self._catalogue is None:
            from analytics.catalogue import load_catalogue

            self._catalogue = load_catalogue(self.settings.costs.catalogue)
        return self._catalogue

    def close(self) -> None:
        self._source = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._writer is not None:
            self._writer.release()
            self._writer = None
