"""Opening a run's CSV: a partly written run is refused or continued, a damaged one repaired; the sweeps done."""

from __future__ import annotations

from collections.abc import Callable

from harness.pipeline.results import RunStore, Scan


def refuse_partial(store: RunStore, scan: Scan) -> None:
    """Without ``resume``, a CSV holding part of this run is refused (continue it with ``--resume``).

    Raises:
        ValueError: names the CSV, the rows it holds and the run.
    """
    held = scan.rows[store.tables[0].name]
    if held:
        raise ValueError(f"{store.csv} already holds {held} rows of run {store.run_id} "
                         "(the same parameters) but not all its sweeps. Continue it with --resume, "
                         "or choose another --output or --seed.")


def repair(store: RunStore, note: Callable[[str], None]) -> Scan:
    """Remove duplicate rows, incomplete sweeps and a truncated last line of the run; note what was removed."""
    scan = store.repair()
    removed = [f"{n} duplicate rows" for n in scan.duplicates.values() if n]
    removed += [f"the rows of {len(scan.incomplete)} incomplete sweep(s)"] if scan.incomplete else []
    removed += ["a truncated last line"] if scan.partial_lines else []
    if removed:
        note(f"{store.csv}: removed {', '.join(removed)} of run {store.run_id}; every complete sweep is kept, once")
    return scan


def open_locked(store: RunStore, resume: bool, note: Callable[[str], None]) -> tuple[bool, set[tuple]]:
    """With the run's lock held: whether the run is complete, and the sweeps it holds (repaired with ``resume``).

    Raises:
        ValueError: the CSV holds part of the run and ``resume`` is off (:func:`refuse_partial`).
    """
    scan = store.scan()
    if store.verify_complete(scan):
        if scan.needs_repair:
            repair(store, note)
        return True, set()
    if not resume:
        refuse_partial(store, scan)
        return False, set()
    if store.is_complete():
        store.update_metadata(complete=None)  # rows were removed since it completed
    return False, (repair(store, note) if scan.needs_repair else scan).done
