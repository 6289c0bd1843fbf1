"""bench/report.py: paired statistics against hand-computed values, the t table against scipy,
and the docs/results.md merge (v2 sections regenerated, earlier content kept under its heading)."""
import importlib
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
report = importlib.import_module("report")


def test_paired_difference_hand_values():
    # diffs 0.02, 0.03, 0.04: mean 0.03, sd 0.01, half width t(0.975, 2) * 0.01 / sqrt(3) = 0.0248414
    arm = {0: 0.30, 1: 0.32, 2: 0.35, 3: 0.9}  # seed 3 has no baseline: not paired, dropped
    base = {0: 0.28, 1: 0.29, 2: 0.31, 4: 0.1}
    d = report.paired(arm, base)
    assert d["n"] == 3 and d["seeds"] == [0, 1, 2]
    assert d["mean"] == pytest.approx(0.03) and d["sd"] == pytest.approx(0.01)
    assert d["lo"] == pytest.approx(0.03 - 0.0248414, abs=1e-6) and d["hi"] == pytest.approx(0.0548414, abs=1e-6)
    assert d["verdict"] == "helps"
    # gap: teacher 0.40, baseline mean over the paired seeds 0.293333 -> 0.03 / 0.106667 = 0.28125
    g, lo, hi = report.gap_recovered(d, 0.40, (0.28 + 0.29 + 0.31) / 3)
    assert g == pytest.approx(0.28125) and lo == pytest.approx(0.0051586 / 0.1066667, abs=1e-5)
    # diffs 0.01, -0.01, 0.03: mean 0.01, sd 0.02, half 4.302653 * 0.02 / sqrt(3) = 0.0496828 -> contains 0
    d = report.paired({0: 0.11, 1: 0.19, 2: 0.33}, {0: 0.10, 1: 0.20, 2: 0.30})
    assert (d["lo"], d["hi"]) == pytest.approx((-0.0396828, 0.0596828), abs=1e-6) and d["verdict"] == "no evidence"
    d = report.paired({0: 0.0, 1: 0.1}, {0: 0.5, 1: 0.55})  # diffs -0.5, -0.45: t(1) = 12.706 * 0.035355 / 1.41421
    assert d["hi"] == pytest.approx(-0.475 + 12.706205 * 0.0353553 / math.sqrt(2), abs=1e-5) and d["verdict"] == "hurts"
    d = report.paired({0: 0.2, 1: float("nan")}, {0: 0.1, 1: 0.3})
    assert d["n"] == 1 and d["verdict"] == "n < 2" and math.isnan(d["lo"])
    assert math.isnan(report.gap_recovered(d, 0.05, 0.1)[0])  # teacher below the baseline: no gap


def test_t_table_matches_scipy_and_is_used_without_it(monkeypatch):
    stats = pytest.importorskip("scipy.stats")
    for dof, q in enumerate(report.T975, 1):
        assert q == pytest.approx(stats.t.ppf(0.975, dof), abs=5e-6)
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # import fails -> table
    assert report.t_quantile(2) == 4.302653 and report.t_quantile(4) == 2.776445


def _rec(arm, seed, val, kind="run"):
    return {"kind": kind, "id": f"{kind}:s/{arm}/{seed}", "suite": "s", "arm": arm, "seed": seed, "steps": 10,
            "config": "c", "overrides": {}, "teacher": None if arm in ("baseline", "teacher") else
            {"config": "t", "steps": 5}, "metrics": {"mAP": val, "NDS": val + 0.1}, "metric_names": ["mAP", "NDS"],
            "commit": "abc"}


def test_report_tables_and_merge(tmp_path):
    recs = [dict(_rec("teacher", 0, 0.5, "teacher"), config="t", steps=5)]
    recs += [_rec("baseline", s, v) for s, v in enumerate((0.28, 0.29, 0.31))]
    recs += [_rec("M", s, v) for s, v in enumerate((0.30, 0.32, 0.35))]
    recs.append(_rec("M", 2, 0.35))  # a duplicated line counts once
    text = report.render(recs)
    assert "| teacher | 1 | 0.5000 | 0.6000 |" in text
    assert "| M | 3 | +0.0300 [+0.0052, +0.0548] | helps | +15 [+2, +27] |" in text  # 0.03 / (0.5 - 0.29333) = 14.5 %
    old = "# kd3d results\n\nintro v1\n\n## Base models\n\ntable\n\n### Overhead\n"
    merged = report.merge(old, text)
    assert merged.index("## Benchmark v2") < merged.index("## Earlier benchmark (v1)") < merged.index("### Base models")
    assert "#### Overhead" in merged and "intro v1" in merged
    again = report.merge(merged, text.replace("helps", "HELPS"))  # regenerate: v2 replaced, the rest kept
    assert again.count("## Benchmark v2: suite `s`") == 1 and "HELPS" in again and again.count("### Base models") == 1
    assert again.split("## Benchmark v2")[0] == merged.split("## Benchmark v2")[0]


def test_cost_columns_and_plot(tmp_path):
    recs = [dict(_rec("teacher", 0, 0.5, "teacher"), config="t", steps=5)]
    recs += [_rec("baseline", s, 0.3 + 0.01 * s) for s in range(2)] + [_rec("M", s, 0.35) for s in range(2)]
    recs += [{"kind": "cost", "suite": "other", "arm": "teacher", "config": "t", "params": 2_000_000,
              "macs_total": 3.0e9, "latency_ms": 512.4},  # measured in another suite: found by config
             {"kind": "cost", "suite": "s", "arm": "baseline", "config": "c", "params": 250_000, "macs_total": 4.5e8,
              "latency_ms": 20.25},
             {"kind": "cost", "suite": "s", "arm": "M", "config": "m", "overhead_live": 2.5, "overhead_cached": 1.04}]
    text = report.render(recs, plot_dir=tmp_path)
    assert "| teacher | 1 | 0.5000 | 0.6000 | 2 | 3 | 512 | | |" in text
    assert "| baseline | 2 | 0.3050 +- 0.0071 | 0.4050 +- 0.0071 | 0.25 | 0.45 | 20.2 | - | - |" in text
    assert "| M | 2 | 0.3500 +- 0.0000 | 0.4500 +- 0.0000 | 0.25 | 0.45 | 20.2 | 2.50x | 1.04x |" in text
    assert (tmp_path / "results_v2_s_10.png").stat().st_size > 1000


def test_true_positive_error_components(tmp_path):
    def with_errors(rec, ate, ave):
        rec["metrics"].update(mATE=ate, mASE=0.3, mAOE=0.4, mAVE=ave, mAAE=0.2)
        return rec

    recs = [dict(_rec("teacher", 0, 0.5, "teacher"), config="t", steps=5)]
    recs += [with_errors(_rec("baseline", s, 0.3), 0.9, 1.0) for s in range(3)]
    # mAVE diffs -0.2, -0.3, -0.4: mean -0.3, sd 0.1, half 4.302653 * 0.1 / sqrt(3) = 0.248414
    # mATE diffs +0.01, -0.01, +0.03: mean +0.01, sd 0.02, half 0.0496828
    recs += [with_errors(_rec("M", s, 0.3), 0.9 + d_ate, 1.0 + d_ave)
             for s, (d_ate, d_ave) in enumerate(((0.01, -0.2), (-0.01, -0.3), (0.03, -0.4)))]
    text = report.render(recs)
    assert "| M | 3 | +0.010 [-0.040, +0.060] | +0.000 [+0.000, +0.000] | +0.000 [+0.000, +0.000] | " \
           "-0.300 [-0.548, -0.052] | +0.000 [+0.000, +0.000] |" in text
    # records without the errors (a segmentation suite, or older records): no table
    plain = [dict(_rec("teacher", 0, 0.5, "teacher"), config="t", steps=5)] + \
        [_rec(a, s, 0.3) for a in ("baseline", "M") for s in range(2)]
    assert "true-positive error" not in report.render(plain)


def test_variant_against_its_method():
    recs = [dict(_rec("teacher", 0, 0.5, "teacher"), config="t", steps=5)]
    recs += [_rec("baseline", s, 0.3) for s in range(3)]
    recs += [_rec("M", s, v) for s, v in enumerate((0.28, 0.29, 0.27))]
    recs += [_rec("M-light", s, v) for s, v in enumerate((0.30, 0.32, 0.30))]  # diffs vs M: +0.02, +0.03, +0.03
    recs += [_rec("Other-x", s, 0.31) for s in range(3)]  # no arm "Other": not a variant
    text = report.render(recs)
    # mean 0.026667, sd 0.005774, half 4.302653 * 0.005774 / sqrt(3) = 0.014342
    assert "| M-light | M | 3 | +0.0267 [+0.0123, +0.0410] | better |" in text
    assert "| Other-x | " not in text.split("Variants against their method")[1].split("\n\n")[1]
    assert report.parent_method("M-light", ["baseline", "M", "M-light"]) == "M"
    assert report.parent_method("M", ["baseline", "M", "M-light"]) is None
    # no variants: no table
    assert "Variants against" not in report.render([r for r in recs if r["arm"] != "M-light"])
