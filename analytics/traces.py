"""Read public VM traces into our units: the Bitbrains GWA-T-12 per-VM CSV files.

Bitbrains format (S. Shen, V. van Beek, A. Iosup, "Statistical Characterization of Business-Critical
Workloads Hosted in Cloud Datacenters", CCGrid 2015; Grid Workloads Archive trace GWA-T-12): one file
per VM, ``;`` followed by a TAB between fields, header::

    Timestamp [ms]; CPU cores; CPU capacity provisioned [MHZ]; CPU usage [MHZ]; CPU usage [%];
    Memory capacity provisioned [KB]; Memory usage [KB]; Disk read throughput [KB/s];
    Disk write throughput [KB/s]; Network received throughput [KB/s]; Network transmitted throughput [KB/s]

Quirks handled here (each counted in :class:`TraceQuality`, nothing dropped silently):

* timestamps are Unix epoch **seconds** despite the ``[ms]`` label (1375308176 = 2013-07-31T22:02:56Z);
* rows with zero cores / zero CPU capacity: the VM was not running (kept as shut-off, no usage);
* provisioned memory 0 while running: a missing reading; the VM keeps its last known size (a file with
  no running row that has a size is refused);
* repeated timestamps (first row kept) and timestamps going backwards (row dropped);
* gaps longer than two sampling steps (kept; the next row is flagged ``gap``);
* CPU usage above capacity, memory used above provisioned (kept as measured, counted);
* CPU capacity and provisioned memory change within a file (VM moved or reconfigured): CPU demand is
  computed per row, ``usage MHz / (capacity MHz / cores)``, in vCPU-equivalents.

A file that is not in this format (missing columns, text where a number belongs, negative numbers)
raises ``InputError`` naming the file, line, field and value. KB is taken as KiB (1024 bytes).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from analytics.rightsizing.base import UsageHistory
from collector.errors import InputError
from collector.model import TRACE_URI_SCHEME, UsagePoint, VmRecord, VmState

KIB = 1024
#: Column names in file order, after stripping whitespace, and the name we give each.
BITBRAINS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Timestamp [ms]", "ts_s"),
    ("CPU cores", "cores"),
    ("CPU capacity provisioned [MHZ]", "cpu_capacity_mhz"),
    ("CPU usage [MHZ]", "cpu_usage_mhz"),
    ("CPU usage [%]", "cpu_usage_pct"),
    ("Memory capacity provisioned [KB]", "memory_kib"),
    ("Memory usage [KB]", "memory_used_kib"),
    ("Disk read throughput [KB/s]", "disk_read_kibps"),
    ("Disk write throughput [KB/s]", "disk_write_kibps"),
    ("Network received throughput [KB/s]", "net_rx_kibps"),
    ("Network transmitted throughput [KB/s]", "net_tx_kibps"),
)
#: Largest value each field may hold, and whether it must be a whole number. Beyond these the trace is
#: not a VM's (ts: 1970..2100 in epoch seconds; cores: libvirt's vCPU limit; memory: 1 PiB).
FIELD_LIMITS: dict[str, tuple[float, bool]] = {
    "ts_s": (4_102_444_800.0, False),
    "cores": (4096.0, True),
    "cpu_capacity_mhz": (1e8, False),
    "cpu_usage_mhz": (1e8, False),
    "memory_kib": (2.0**40, False),
    "memory_used_kib": (2.0**40, False),
}
#: What a running row's numbers must make physical sense as (see ``_check_physical``).
PER_CORE_MHZ = (100.0, 10_000.0)
MAX_USAGE_OVER_CAPACITY = 4.0
MIN_MEMORY_KIB = 1024.0
TRACE_NAMESPACE = uuid.UUID("6d1c1f8e-3c1b-5b8e-9a53-2b0b6c3f7a10")
#: Frame columns produced for each VM (units in the names; NaN = not measured).
FRAME_COLUMNS: tuple[str, ...] = (
    "ts_s", "running", "gap", "cores", "cpu_capacity_mhz", "cpu_vcpus", "memory_bytes", "memory_used_bytes",
    "disk_read_bps", "disk_write_bps", "net_rx_bps", "net_tx_bps",
)


@dataclass(frozen=True, slots=True)
class TraceQuality:
    """Row counts of one trace file: what was read, kept, dropped, and flagged."""

    rows: int
    kept: int
    duplicate_timestamps: int
    out_of_order: int
    not_running: int
    gaps: int
    cpu_above_capacity: int
    memory_above_provisioned: int
    memory_used_zero: int

    @property
    def dropped(self) -> int:
        return self.duplicate_timestamps + self.out_of_order

    def as_dict(self) -> dict[str, int]:
        return {
            "rows": self.rows, "kept": self.kept, "duplicate_timestamps": self.duplicate_timestamps,
            "out_of_order": self.out_of_order, "not_running": self.not_running, "gaps": self.gaps,
            "cpu_above_capacity": self.cpu_above_capacity,
            "memory_above_provisioned": self.memory_above_provisioned, "memory_used_zero": self.memory_used_zero,
        }


@dataclass(frozen=True, slots=True)
class TraceVm:
    """One VM's trace in our units.

    ``frame`` has :data:`FRAME_COLUMNS`, one row per kept timestamp (epoch seconds, ascending).
    ``cores`` is the VM's vCPU count (most common while running), ``memory_bytes`` its provisioned
    memory on the last running row, ``step_s`` the median sampling step.
    """

    name: str
    uuid: str
    path: Path
    frame: pd.DataFrame
    cores: int
    memory_bytes: int
    step_s: float
    quality: TraceQuality

    @property
    def start_s(self) -> float:
        return float(self.frame["ts_s"].iloc[0])

    @property
    def end_s(self) -> float:
        return float(self.frame["ts_s"].iloc[-1])

    def rows_between(self, start_s: float, end_s: float) -> pd.DataFrame:
        """Rows with ``start_s <= ts_s < end_s``."""
        ts = self.frame["ts_s"].to_numpy()
        return self.frame.iloc[np.searchsorted(ts, start_s, "left"):np.searchsorted(ts, end_s, "left")]

    def history(self, start_s: float | None = None, end_s: float | None = None) -> UsageHistory:
        """The usage history between two times (default: all), allocation = largest provisioned in it."""
        start = self.start_s if start_s is None else start_s
        end = self.end_s + self.step_s if end_s is None else end_s
        rows = self.rows_between(start, end)
        running = rows["running"].to_numpy()
        mem_alloc = rows["memory_bytes"].to_numpy()[running]
        memory_bytes = int(mem_alloc.max()) if len(mem_alloc) else self.memory_bytes
        return UsageHistory.from_arrays(
            rows["ts_s"].to_numpy(dtype=np.float64),
            rows["cpu_vcpus"].to_numpy(),
            rows["memory_used_bytes"].to_numpy(),
            vcpus=self.cores,
            memory_bytes=memory_bytes,
            interval_s=self.step_s,
            end_s=end,
        )

    def record(self, *, dataset: str) -> VmRecord:
        """Inventory row for the store (source "import", labels say where the data came from)."""
        return VmRecord(
            uuid=self.uuid,
            name=f"bitbrains-{dataset}-{self.name}",
            uri=f"{TRACE_URI_SCHEME}://bitbrains/{dataset}",
            host="bitbrains",
            state=VmState.RUNNING if bool(self.frame["running"].iloc[-1]) else VmState.SHUTOFF,
            vcpus=self.cores,
            max_vcpus=self.cores,
            memory_bytes=self.memory_bytes,
            max_memory_bytes=int(self.frame["memory_bytes"].max()),
            labels={"trace": "bitbrains", "dataset": dataset, "trace_file": self.path.name},
            first_seen=_utc(self.start_s),
            last_seen=_utc(self.end_s),
            source="import",
        )

    def usage_points(self, *, shift_s: float = 0.0) -> Iterator[UsagePoint]:
        """One stored interval per kept row; ``shift_s`` moves every timestamp (e.g. to end now)."""
        f = self.frame
        cols = [f[c].to_numpy() for c in (
            "ts_s", "running", "gap", "memory_bytes", "cpu_vcpus", "memory_used_bytes", "disk_read_bps",
            "disk_write_bps", "net_rx_bps", "net_tx_bps",
        )]
        step = self.step_s
        for ts, running, gap, mem, cpu, used, dr, dw, rx, tx in zip(*cols, strict=True):
            run = bool(running)
            yield UsagePoint(
                vm_uuid=self.uuid,
                ts=_utc(float(ts) + shift_s),
                state=VmState.RUNNING if run else VmState.SHUTOFF,
                vcpus=self.cores,
                memory_bytes=int(mem) if run and mem > 0 else self.memory_bytes,
                cpu_vcpus=_opt(cpu) if run else None,
                memory_used_bytes=None if not run or np.isnan(used) else int(used),
                disk_read_bps=_opt(dr) if run else None,
                disk_write_bps=_opt(dw) if run else None,
                net_rx_bps=_opt(rx) if run else None,
                net_tx_bps=_opt(tx) if run else None,
                interval_s=step,
                gap=bool(gap),
            )


def _utc(ts_s: float) -> datetime:
    return datetime.fromtimestamp(ts_s, tz=UTC)


def _opt(v: float) -> float | None:
    return None if np.isnan(v) else float(v)


def bitbrains_files(directory: Path | str) -> list[Path]:
    """The ``*.csv`` files of a Bitbrains directory, numeric names in numeric order.

    Raises InputError when the directory is missing or holds no CSV file.
    """
    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"Trace directory {str(d)!r} not found; pass a directory of Bitbrains *.csv files")
    files = [p for p in d.iterdir() if p.is_file() and p.suffix.lower() == ".csv"]
    if not files:
        raise InputError(f"Trace directory {str(d)!r} holds no *.csv file; pass a Bitbrains VM directory "
                         "such as .../rnd/2013-8")
    return sorted(files, key=lambda p: (0, int(p.stem), "") if p.stem.isdigit() else (1, 0, p.stem))


def read_bitbrains_file(path: Path | str, *, dataset: str | None = None) -> TraceVm:
    """Read one Bitbrains VM file. Raises InputError naming file, line, field and value when malformed."""
    path = Path(path)
    dataset = dataset or path.parent.name
    try:
        raw = pd.read_csv(path, sep=";", skipinitialspace=True, engine="c")
        if not all(pd.api.types.is_numeric_dtype(t) for t in raw.dtypes):
            # Something is not a number: re-read as text to name the first bad line and field.
            raw = pd.read_csv(path, sep=";", dtype=str, keep_default_na=False, skipinitialspace=True,
                              engine="c")
    except FileNotFoundError as exc:
        raise InputError(f"Trace file {str(path)!r} not found") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text file ({exc.reason}); pass Bitbrains CSV files") from exc
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"{path}: file is empty; pass a Bitbrains CSV file with a header and rows") from exc
    except pd.errors.ParserError as exc:
        counts = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if counts:
            want, line, saw = counts.groups()
            raise InputError(f"{path}:{line}: {saw} fields where the header has {want}; every line needs exactly "
                             f"{len(BITBRAINS_COLUMNS)} ';'-separated fields -- fix or remove that line") from exc
        raise InputError(f"{path}: not a Bitbrains CSV ({str(exc).strip()}); every line needs "
                         f"{len(BITBRAINS_COLUMNS)} ';'-separated fields") from exc
    if not raw.index.equals(pd.RangeIndex(len(raw))):
        # pandas takes a row with more fields than the header as "index + columns": every column shifts
        raise InputError(f"{path}:{_first_long_line(path)}: more fields than the header's "
                         f"{len(BITBRAINS_COLUMNS)}; every line needs exactly {len(BITBRAINS_COLUMNS)} "
                         "';'-separated fields -- fix or remove that line")
    header = [str(c).strip() for c in raw.columns]
    expected = [c for c, _ in BITBRAINS_COLUMNS]
    if header != expected:
        bad = next((i for i, (a, b) in enumerate(zip(header, expected, strict=False)) if a != b),
                   min(len(header), len(expected)))
        got = header[bad] if bad < len(header) else "(missing)"
        want = expected[bad] if bad < len(expected) else "(none)"
        raise InputError(f"{path}:1: header field {bad + 1} is {got!r}, expected {want!r}; "
                         "is this a Bitbrains GWA-T-12 per-VM file?")
    if raw.empty:
        raise InputError(f"{path}: no data rows after the header; pass a non-empty trace file")
    raw.columns = [name for _, name in BITBRAINS_COLUMNS]
    num = {name: _checked_column(path, label, name, raw[name]) for label, name in BITBRAINS_COLUMNS}
    return _to_trace_vm(path, dataset, num)


def _first_long_line(path: Path) -> int:
    """1-based number of the first line with more ';'-separated fields than the header."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if line.count(";") >= len(BITBRAINS_COLUMNS):
                return number
    return 2


def _checked_column(path: Path, label: str, name: str, column: pd.Series) -> np.ndarray:
    """The column as float64; raises InputError naming the first line whose value is out of range."""
    if pd.api.types.is_numeric_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64)
    else:
        values = pd.to_numeric(column.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    limit, whole = FIELD_LIMITS.get(name, (np.inf, False))
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values < 0) | (values > limit)
        if whole:
            bad |= values != np.floor(values)
    if not bad.any():
        return np.asarray(values, dtype=np.float64)
    i = int(np.flatnonzero(bad)[0])
    raw_value = column.iloc[i]
    shown: object = ("" if pd.isna(raw_value) else float(raw_value)
                     if isinstance(raw_value, int | float | np.number) else str(raw_value).strip())
    kind = "a whole number" if whole else "a number"
    bounds = f"from 0 to {limit:g}" if np.isfinite(limit) else "that is not negative"
    raise InputError(f"{path}:{i + 2}: field {label!r} value {shown!r} is not {kind} {bounds}; "
                     "fix or remove that line")


def _check_physical(path: Path, lines: np.ndarray, running: np.ndarray, col: dict[str, np.ndarray]) -> None:
    """Refuse a running row whose numbers no VM can have, naming its line (``lines``: kept row -> file row).

    Each field alone may be in range while the row is not: a capacity of 1e-300 MHz for 4,096 cores made
    2.8e306 vCPUs of demand. Per core the clock must be ``PER_CORE_MHZ``; the usage at most
    ``MAX_USAGE_OVER_CAPACITY`` times the capacity (Bitbrains rows reach 1.07); a provisioned memory, when
    given, at least ``MIN_MEMORY_KIB``.
    """
    cores, cap, usage, memory = col["cores"], col["cpu_capacity_mhz"], col["cpu_usage_mhz"], col["memory_kib"]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_core = np.where(running, cap / np.where(cores > 0, cores, 1), np.nan)
        slow_or_fast = running & ((per_core < PER_CORE_MHZ[0]) | (per_core > PER_CORE_MHZ[1]))
        over_used = running & (usage > MAX_USAGE_OVER_CAPACITY * cap)
        tiny_memory = running & (memory > 0) & (memory < MIN_MEMORY_KIB)
    found = [(int(np.flatnonzero(mask)[0]), k) for k, mask in enumerate((slow_or_fast, over_used, tiny_memory))
             if mask.any()]
    if not found:
        return
    i, kind = min(found)  # the first such line in the file
    why = (f"CPU capacity {cap[i]:g} MHz over {cores[i]:g} cores is {per_core[i]:.3g} MHz per core, outside "
           f"{PER_CORE_MHZ[0]:g}..{PER_CORE_MHZ[1]:g}" if kind == 0 else
           f"CPU usage {usage[i]:g} MHz is over {MAX_USAGE_OVER_CAPACITY:g} times the capacity {cap[i]:g} MHz"
           if kind == 1 else f"provisioned memory {memory[i]:g} KB is under {MIN_MEMORY_KIB:g} KB")
    raise InputError(f"{path}:{int(lines[i]) + 2}: {why}, which no VM has; fix or remove that line")


def _to_trace_vm(path: Path, dataset: str, num: dict[str, np.ndarray]) -> TraceVm:
    ts = num["ts_s"]
    n_rows = len(ts)
    # Keep the first row of each timestamp and drop rows that go back in time.
    running_max = np.maximum.accumulate(ts)
    prev_max = np.r_[-np.inf, running_max[:-1]]
    out_of_order = ts < prev_max
    duplicate = (ts == prev_max) & ~out_of_order
    keep = ~(out_of_order | duplicate)
    col = {k: v[keep] for k, v in num.items()}
    ts = col["ts_s"]
    cores = col["cores"]
    cap = col["cpu_capacity_mhz"]
    running = (cores > 0) & (cap > 0)
    if not running.any():
        raise InputError(f"{path}: no row with CPU cores and capacity above zero; the VM never ran, "
                         "remove the file")
    _check_physical(path, np.flatnonzero(keep), running, col)
    # provisioned memory 0 on a running row is a missing reading, not a VM without memory
    sized = running & (col["memory_kib"] > 0)
    if not sized.any():
        raise InputError(f"{path}: provisioned memory is 0 on every row where the VM runs; a VM's trace needs its "
                         "memory size, remove the file")
    nominal_cores = int(pd.Series(cores[running]).mode().iloc[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        cpu_vcpus = np.where(running, col["cpu_usage_mhz"] / (cap / np.where(cores > 0, cores, 1)), np.nan)
    # allocations are whole KiB in libvirt; round fractional trace values up so a VM never shrinks
    memory_bytes = np.ceil(col["memory_kib"]) * KIB
    mem_used = np.where(running, col["memory_used_kib"] * KIB, np.nan)
    steps = np.diff(ts)
    step_s = float(np.median(steps)) if len(steps) else 300.0
    gap = np.r_[False, steps > 2 * step_s]
    last_sized = int(np.flatnonzero(sized)[-1])
    frame = pd.DataFrame({
        "ts_s": ts.astype(np.int64),
        "running": running,
        "gap": gap,
        "cores": cores.astype(np.int64),
        "cpu_capacity_mhz": cap,
        "cpu_vcpus": cpu_vcpus,
        "memory_bytes": memory_bytes,
        "memory_used_bytes": mem_used,
        "disk_read_bps": np.where(running, col["disk_read_kibps"] * KIB, np.nan),
        "disk_write_bps": np.where(running, col["disk_write_kibps"] * KIB, np.nan),
        "net_rx_bps": np.where(running, col["net_rx_kibps"] * KIB, np.nan),
        "net_tx_bps": np.where(running, col["net_tx_kibps"] * KIB, np.nan),
    })
    quality = TraceQuality(
        rows=n_rows,
        kept=int(keep.sum()),
        duplicate_timestamps=int(duplicate.sum()),
        out_of_order=int(out_of_order.sum()),
        not_running=int((~running).sum()),
        gaps=int(gap.sum()),
        cpu_above_capacity=int((running & (col["cpu_usage_mhz"] > cap * (1 + 1e-6))).sum()),
        memory_above_provisioned=int((running & (col["memory_used_kib"] > col["memory_kib"])).sum()),
        memory_used_zero=int((running & (col["memory_used_kib"] == 0)).sum()),
    )
    return TraceVm(
        name=path.stem,
        uuid=str(uuid.uuid5(TRACE_NAMESPACE, f"bitbrains/{dataset}/{path.name}")),
        path=path,
        frame=frame,
        cores=nominal_cores,
        memory_bytes=int(memory_bytes[last_sized]),
        step_s=step_s,
        quality=quality,
    )


def read_bitbrains_dir(
    directory: Path | str, *, progress: Callable[[Sequence[Path]], Sequence[Path]] | None = None
) -> list[TraceVm]:
    """Read every VM file of a Bitbrains directory (all or nothing).

    ``progress`` may wrap the file list (e.g. ``tqdm``). Raises InputError on the first bad file.
    """
    files = bitbrains_files(directory)
    dataset = Path(directory).name
    iterable = progress(files) if progress is not None else files
    return [read_bitbrains_file(p, dataset=dataset) for p in iterable]


def quality_rows(vms: Sequence[TraceVm]) -> list[dict[str, object]]:
    """One report row per VM file with its row counts (what was kept, dropped and flagged)."""
    return [{"file": vm.path.name, "vm": vm.name, "cores": vm.cores, **vm.quality.as_dict()} for vm in vms]
