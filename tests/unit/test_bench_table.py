"""The bench's table and JSON when a live load measured nothing (``--export-rate 0``): "-" and null, never NaN; how
late its load generator ran, per live run; and its collector held off while it measures."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest

from bench.__main__ import live_p99s, table, verdicts
from bench.live import percentile, steady_generator, summary_ms


def _live(exports: list[float]) -> dict[str, Any]:
    post = summary_ms([0.004, 0.005])
    return {
        "registries": 1,
        "submissions": {"offered_per_s": 200.0, "achieved_per_s": 199.0, "sent": 2, "errors": {}, "post": post},
        "to_ledger_row": summary_ms([0.05, 0.1]),
        "to_decision_in_ledger": summary_ms([0.08, 0.2]),
        "exports": {"offered_per_s": 0.0, "achieved_per_s": 0.0, "sent": len(exports), "errors": {}},
        "export_to_ledger_row": summary_ms(exports),
        "export_outcomes": {},
        "exports_missing": 0,
        "lookups": {"offered_per_s": 500.0, "achieved_per_s": 500.0, "errors": {}, "latency": summary_ms([])},
        "cpu_ms_per_submission": {"applications": 1.9, "review": 1.5, "registry": 1.5},
        "machine_cpu_busy": 0.9,
        "quiet_before_load": {
            "waited_s": 14.0,
            "busy": 0.12,
            "busy_below": 0.2,
            "writes_mb_s": 0.5,
            "writes_below_mb_s": 2.0,
        },
        "peak_rss_mb": {"applications": 86.0, "review": 89.0, "registry": 88.0},
    }


def test_nothing_measured_is_null_not_nan() -> None:
    assert percentile([], 99) is None
    assert summary_ms([]) == {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    assert summary_ms([0.2, 0.1])["p99_ms"] == 200.0


def test_a_live_run_without_exports_prints_dashes_and_writes_strict_json() -> None:
    result: dict[str, Any] = {"sizes": [], "live": _live(exports=[])}
    result["targets"] = verdicts(result)
    printed = table(result)

    assert "| export → ledger row p50 / p95 / p99, ms | - / - / - |" in printed
    assert "| GET /licenses/{n} at 500 rps (achieved 500) p50 / p99, ms | - / - |" in printed
    assert "| submission → ledger row p50 / p95 / p99, ms | 50 / 100 / 100 |" in printed
    quiet = "| waited before the load for cores under 20% busy and disk writes under 2 MB/s, s "
    quiet += "| 14.0 (then 12%, 0.5 MB/s) |"
    assert quiet in printed
    assert "nan" not in printed.lower()
    assert result["targets"]["lookup p99 ms at 500 rps"]["met"] is None
    assert result["targets"]["live submission-to-ledger p99 ms"]["met"] is True
    json.dumps(result, allow_nan=False)  # raises on NaN, as a strict JSON reader would


def test_each_live_run_shows_how_late_its_load_generator_ran() -> None:
    first, second = _live(exports=[0.03]), _live(exports=[])
    first["submissions"]["client_lateness"] = summary_ms([0.001, 0.002])
    first["exports"]["client_lateness"] = summary_ms([0.056])  # a pause of the generator's own
    first["lookups"]["client_lateness"] = summary_ms([0.003])
    result: dict[str, Any] = {"sizes": [], "live": first, "live_runs": [live_p99s(first), live_p99s(second)]}
    result["targets"] = verdicts(result)
    printed = table(result)

    assert result["live_runs"][0]["late_ms"] == 56.0
    assert result["live_runs"][1]["late_ms"] is None  # nothing measured: "-", never a zero
    assert "| live run | row p99, ms | decision p99, ms | lookup p99, ms | load generator late, max ms |" in printed
    assert "| 1 | 100 | 200 | - | 56.0 |" in printed
    assert "| 2 | 100 | 200 | - | - |" in printed


def test_the_load_generator_collects_no_garbage_while_it_measures() -> None:
    gc.unfreeze()  # the bench's process freezes nothing of its own
    assert gc.isenabled()
    with pytest.raises(RuntimeError), steady_generator():
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0  # what existed before the load is out of every collection
        raise RuntimeError("the load failed")
    assert gc.isenabled()  # and after it, whatever ended it
    assert gc.get_freeze_count() == 0
