"""The benchmarks' timing (analysis.common.timing) on a simulated clock, and the benchmarks' JSON and flags.

The clock is replaced by a counter that only the timed functions advance, so the repeat policy is
tested exactly: when it stops, what spread it reports, when it flags a row.
"""

import json
import statistics

import pytest
import torch

import orthoconv
from orthoconv.analysis.bench import bounds as bench_bounds
from orthoconv.analysis.bench import core as bench
from orthoconv.analysis.common import timing
from orthoconv.analysis.common.timing import RepeatPolicy, relative_spread, time_sides, timed_row, verdict


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def side(self, durations):
        """A function that takes ``durations[i]`` seconds at its i-th call (the last one repeats)."""
        calls = iter(range(10**6))

        def run():
            i = next(calls)
            self.now += durations[min(i, len(durations) - 1)]

        return run


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(timing.time, "perf_counter", fake)
    return fake


def test_relative_spread_is_mad_over_median():
    assert relative_spread([1.0, 1.0, 1.0]) == 0
    assert relative_spread([1.0, 2.0, 3.0]) == 0.5  # median 2, deviations 1, 0, 1
    assert relative_spread([10.0, 10.0, 10.0, 10.0, 1000.0]) == 0  # one outlier does not move it
    assert relative_spread([0.0, 0.0]) == 0


def test_steady_sides_stop_at_the_minimum_and_report_their_median(clock):
    policy = RepeatPolicy(min_repeats=4, max_repeats=50, max_seconds=1e9, min_sample_seconds=0)
    a, b = clock.side([0.5, 0.01]), clock.side([0.03])
    timings = time_sides([a, b], policy)
    assert [t.repeats for t in timings] == [4, 4]  # the warm-up round (0.5 s) is not counted
    assert timings[0].median == pytest.approx(0.01) and timings[1].median == pytest.approx(0.03)
    assert timings[0].spread == pytest.approx(0, abs=1e-9)


def test_a_noisy_side_repeats_up_to_the_limit_and_flags_the_row(clock, monkeypatch):
    monkeypatch.setattr(timing, "load_average", lambda: [0.1, 0.1, 0.1])
    policy = RepeatPolicy(min_repeats=3, max_repeats=9, max_seconds=1e9, tolerance=0.05, min_sample_seconds=0)
    noisy = clock.side([1.0] + [1.0, 2.0, 3.0] * 20)
    timings, quality = timed_row([clock.side([1.0]), noisy], policy)
    assert [t.repeats for t in timings] == [9, 9]
    samples = [1.0, 2.0, 3.0] * 3
    assert relative_spread(samples) == 0.5
    assert timings[1].median == statistics.median(samples) and quality["spread"] == relative_spread(samples)
    assert quality == {"spread": relative_spread(samples), "repeats": 9, "load": 0.1, "flag": "noisy"}
    assert verdict(True, quality["flag"]) == "?" and verdict(False, "loaded") == "no" and verdict(True, "") == "yes"


def test_a_side_that_settles_stops_the_row_early(clock):
    policy = RepeatPolicy(min_repeats=3, max_repeats=100, max_seconds=1e9, tolerance=0.05, min_sample_seconds=0)
    settling = clock.side([1.0, 5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    (timing_,) = time_sides([settling], policy)
    assert timing_.repeats == 3 and timing_.median == 1.0  # samples 5, 1, 1: MAD 0


def test_the_time_budget_ends_a_noisy_row(clock):
    policy = RepeatPolicy(min_repeats=3, max_repeats=1000, max_seconds=10.0, min_sample_seconds=0)
    (timing_,) = time_sides([clock.side([1.0, 2.0, 3.0] * 1000)], policy)
    assert timing_.repeats == 5  # warm-up 1 s, then 2, 3, 1, 2 (9 s: go on), 3 (12 s > 10 s: stop)


def test_fast_functions_are_called_several_times_per_sample(clock):
    policy = RepeatPolicy(min_repeats=2, max_repeats=2, max_seconds=1e9, min_sample_seconds=1e-3)
    calls = []

    def fast():
        calls.append(1)
        clock.now += 1e-5

    (timing_,) = time_sides([fast], policy)
    assert len(calls) == 1 + 2 * 100 and timing_.median == pytest.approx(1e-5)


def test_a_loaded_machine_labels_steady_rows(clock, monkeypatch):
    monkeypatch.setattr(timing, "load_average", lambda: [64.0, 1.0, 1.0])
    monkeypatch.setattr(timing.os, "cpu_count", lambda: 2)
    _, quality = timed_row([clock.side([1.0])], RepeatPolicy(min_repeats=2, min_sample_seconds=0))
    assert quality["flag"] == "loaded" and quality["load"] == 64.0
    _, quality = timed_row([clock.side([1.0, 2.0, 3.0] * 5)], RepeatPolicy(2, 5, 1e9, 0.05, 0))
    assert quality["flag"] == "noisy, loaded" and verdict(True, quality["flag"]) == "?"


def test_bad_policies_are_refused():
    with pytest.raises(ValueError, match="min_repeats"):
        RepeatPolicy(min_repeats=5, max_repeats=4)
    with pytest.raises(ValueError, match="tolerance"):
        RepeatPolicy(tolerance=0)


def check_record(data, path):
    record = data["run"]
    assert record["torch"] == torch.__version__ and record["orthoconv"] == orthoconv.__version__
    assert record["device"].startswith("cpu") and record["arguments"]["json"] == str(path)
    assert record["arguments"]["max_repeats"] == 2 and len(record["load_average"]) == 3
    assert data["policy"]["max_repeats"] == 2
    for row in data["rows"]:
        assert row["flag"] in ("", "noisy", "loaded", "noisy, loaded") and row["spread"] >= 0 and row["repeats"] >= 1


def test_bench_bounds_writes_flagged_rows_and_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_bounds, "QUICK", [(2, 3, 4)])
    path = tmp_path / "bounds.json"
    assert bench_bounds.main(["--quick", "--json", str(path), "--max-repeats", "2", "--max-seconds", "1"]) == 0
    data = json.loads(path.read_text())
    check_record(data, path)
    assert [(r["c"], r["kernel"]) for r in data["rows"]] == [(2, "gaussian"), (2, "smooth")]
    out = capsys.readouterr().out
    assert "rows noisy" in out and "flag" in out


def test_bench_core_writes_flagged_rows_and_the_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "KERNEL_CONFIGS", [(4, 3)])
    monkeypatch.setattr(bench, "TRAIN_SHAPE", (2, 4, 8))
    monkeypatch.setattr(bench, "SPECTRUM_SHAPE", (4, 3, 8))
    path = tmp_path / "core.json"
    assert bench.main(["--quick", "--json", str(path), "--max-repeats", "2", "--max-seconds", "1"]) == 0
    data = json.loads(path.read_text())
    check_record(data, path)
    assert [r["benchmark"] for r in data["rows"]][0] == "kernel fwd+bwd c=4 k=3"
    assert all(r["met"] == (r["ratio"] <= r["target"]) for r in data["rows"])
    assert "rows noisy" in capsys.readouterr().out


def test_benchmarks_refuse_a_missing_device_or_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_bounds.main(["--json", str(tmp_path / "missing" / "x.json")])
    assert exit_.value.code == 2 and "does not exist" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as exit_:
            bench.main(["--device", "cuda"])
        assert exit_.value.code == 2 and "CUDA is not available" in capsys.readouterr().err
