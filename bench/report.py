"""Regenerate the benchmark-v2 sections of ``docs/results.md`` from the results file alone.

Input: ``bench/results/distill_v2.jsonl`` (``bench/runlog.py``: run, teacher and cost records).
Output: one section per suite and budget (steps, teacher cache, data root) with

* the teacher row and every arm's mean +- sample std over seeds;
* per method the **paired** difference arm - baseline over the seeds both ran (a seed fixes the
  student's init and the data order for every arm), its mean and 95 % confidence interval from
  Student's t with n - 1 degrees of freedom; "helps" only when the interval lies above 0, "hurts"
  when below, "no evidence" otherwise;
* the share of the student-teacher gap recovered: mean paired difference / (teacher - baseline
  mean over the same seeds), its interval the difference's interval over the same gap (the
  teacher's and the baseline mean's own noise are not in it);
* the cost columns of ``bench/cost.py`` records (parameters, MACs per frame, CPU latency, step
  overhead with a live and a cached teacher) and a plot of accuracy against MACs;
* a calibration table (baseline and teacher per step budget) when a suite was run at several.

The calibration curves of ``bench/calibrate.py`` (its own results file,
``bench/results/calibration.jsonl``) follow. The text above the first section and below
``## Earlier benchmark (v1)`` is kept::

    python3 bench/report.py [--results bench/results/distill_v2.jsonl] [--out docs/results.md]
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import runlog  # noqa: E402  (bench/runlog.py)

V1 = "## Earlier benchmark (v1)"
V2 = "## Benchmark v2"
TITLE = "# kd3d results"

# two-sided 95 % Student t quantiles t_{0.975, dof}, dof 1..30 (used when scipy is absent;
# tests/bench/test_report.py checks them against scipy)
T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
        2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
        2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)


def t_quantile(dof: int) -> float:
    """t_{0.975, dof}: scipy when installed, else the table (1.96 beyond 30 dof is not used: the
    normal value understates the interval; above 30 the table's last entry is a close upper value)."""
    if dof < 1:
        return float("nan")
    try:
        from scipy.stats import t

        return float(t.ppf(0.975, dof))
    except ImportError:
        return T975[min(dof, len(T975)) - 1]


def paired(arm: dict[int, float], base: dict[int, float]) -> dict:
    """Paired difference arm - baseline over the seeds present in both (NaN metrics dropped).

    Returns n, mean, sd (n - 1), the 95 % t interval (lo, hi; NaN when n < 2) and the verdict."""
    seeds = sorted(s for s in arm if s in base and math.isfinite(arm[s]) and math.isfinite(base[s]))
    d = [arm[s] - base[s] for s in seeds]
    n = len(d)
    if n == 0:
        return {"n": 0, "seeds": [], "mean": float("nan"), "sd": float("nan"), "lo": float("nan"),
                "hi": float("nan"), "verdict": "no runs"}
    mean = statistics.fmean(d)
    sd = statistics.stdev(d) if n > 1 else float("nan")
    half = t_quantile(n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
    lo, hi = mean - half, mean + half
    verdict = "n < 2" if n < 2 else ("helps" if lo > 0 else "hurts" if hi < 0 else "no evidence")
    return {"n": n, "seeds": seeds, "mean": mean, "sd": sd, "lo": lo, "hi": hi, "verdict": verdict}


def gap_recovered(diff: dict, teacher: float, base_mean: float) -> tuple[float, float, float]:
    """(share, lo, hi) of the gap teacher - baseline mean recovered; NaN when there is no gap."""
    gap = teacher - base_mean
    if not (math.isfinite(gap) and gap > 0):
        return float("nan"), float("nan"), float("nan")
    return diff["mean"] / gap, diff["lo"] / gap, diff["hi"] / gap


# ---------------------------------------------------------------------------------- grouping
def _section_key(rec: dict) -> tuple:
    o = rec.get("overrides", {})
    return rec["suite"], rec["steps"], bool(o.get("teacher_cache")), o.get("data.root", "")


def group(records: list[dict]) -> dict:
    """{section key: {"runs": {arm: {seed: record}}, "teachers": [records]}}; a run recorded
    twice (same id) counts once (the last line)."""
    by_id = {r["id"]: r for r in records if r.get("kind") in ("run", "teacher")}
    teachers = [r for r in by_id.values() if r["kind"] == "teacher"]
    out: dict = {}
    for r in by_id.values():
        if r["kind"] != "run":
            continue
        sec = out.setdefault(_section_key(r), {"runs": {}, "teachers": []})
        sec["runs"].setdefault(r["arm"], {})[r["seed"]] = r
    for key, sec in out.items():  # the teacher the runs name (a teacher may serve several suites)
        recs = [r for arm in sec["runs"].values() for r in arm.values()]
        wanted = [r.get("teacher") or r.get("suite_teacher") for r in recs]
        wanted = [w for w in wanted if w] or [{"suite": key[0]}]
        for t in teachers:
            if any(t["config"] == w.get("config") and t["steps"] == w.get("steps") or t["suite"] == w.get("suite")
                   for w in wanted):
                sec["teachers"].append(t)
    return out


def costs(records: list[dict]) -> dict:
    """{(suite, arm): latest cost record}; size records (teacher, baseline) also under
    ("config", name), so a suite sharing a model with a measured one finds its size."""
    out = {}
    for r in records:
        if r.get("kind") == "cost":
            out[(r["suite"], r["arm"])] = r
            if "params" in r:
                out[("config", r["config"])] = r
    return out


def _metric(rec: dict, name: str, heldout: bool = False) -> float:
    m = (rec.get("heldout") or {}).get("metrics", {}) if heldout else rec.get("metrics", {})
    v = m.get(name)
    return float(v) if isinstance(v, (int, float)) else float("nan")


def _f(x: float, fmt: str = ".4f") -> str:
    return "-" if x is None or not math.isfinite(x) else format(x, fmt)


def _mean_sd(vals: list[float]) -> str:
    v = [x for x in vals if math.isfinite(x)]
    if not v:
        return "-"
    return f"{statistics.fmean(v):.4f} +- {statistics.stdev(v):.4f}" if len(v) > 1 else f"{v[0]:.4f}"


def _ci(d: dict, scale: float = 1.0, fmt: str = "+.4f") -> str:
    if d["n"] == 0:
        return "-"
    if d["n"] < 2:
        return f"{format(d['mean'] * scale, fmt)} (n = 1)"
    return f"{format(d['mean'] * scale, fmt)} [{format(d['lo'] * scale, fmt)}, {format(d['hi'] * scale, fmt)}]"


def _ms(x: float) -> str:
    return _f(x, ".0f" if x >= 100 else ".3g")


def _cost_cols(cost: dict, key: tuple, student_key: tuple, config: str | None = None) -> list[str]:
    c, s = cost.get(key), cost.get(student_key) or cost.get(("config", config))
    size = c if c and "params" in c else s  # a distilled arm deploys the baseline's student: its size/latency
    cols = [_f(size["params"] / 1e6, ".3g") if size else "-", _f(size["macs_total"] / 1e9, ".3g") if size else "-",
            _ms(size.get("latency_ms", float("nan"))) if size else "-"]
    ov = [c.get("overhead_live") if c else None, c.get("overhead_cached") if c else None]
    cols += [f"{x:.2f}x" if isinstance(x, (int, float)) and math.isfinite(x) else "-" for x in ov]
    return cols


def section(key: tuple, sec: dict, cost: dict, *, heldout: bool = False, plot_dir: Path | None = None,
            source: str = "distill_v2.jsonl") -> list[str]:
    suite, steps, cached, root = key
    runs, teachers = sec["runs"], sec["teachers"]
    any_rec = next(iter(next(iter(runs.values())).values()))
    names = any_rec.get("metric_names") or sorted(any_rec["metrics"])
    teacher = teachers[-1] if teachers else None
    arms = ["baseline"] + sorted(a for a in runs if a != "baseline")
    vals = {a: {m: {s: _metric(r, m, heldout) for s, r in runs.get(a, {}).items()} for m in names} for a in arms}
    tval = {m: (_metric(teacher, m, heldout) if teacher else float("nan")) for m in names}
    where = "held-out set" if heldout else "val split"
    title = f"{V2}: suite `{suite}`, {steps} steps" + (", teacher cache" if cached else "") + (" (held-out)" if heldout else "")
    seeds = sorted({s for a in runs.values() for s in a})
    commits = sorted({r.get("commit", "?") for a in runs.values() for r in a.values()})
    lines = [title, "",
             f"Generated by `bench/report.py` from `{source}` alone; {where}. "
             f"Seeds {seeds}; commits {', '.join(commits)}; data root `{root or 'the configs'}`.  ",
             (f"Teacher `{teacher['config']}` ({teacher['steps']} steps)." if teacher else "Teacher: not in the results file yet.")
             + (f" {any_rec.get('note')}" if any_rec.get("note") else ""), ""]
    if heldout and "heldout" in any_rec:
        lines[2] += f"Held-out: `{any_rec['heldout']['root']}` split `{any_rec['heldout']['split']}`.  "
    head = "| model | n | " + " | ".join(f"{m} (mean +- sd)" for m in names) + \
           " | params M | GMAC/frame | CPU ms/frame | step live | step cached |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    lines.append(f"| teacher | {1 if teacher else 0} | " + " | ".join(_f(tval[m]) for m in names) + " | "
                 + " | ".join(_cost_cols(cost, (suite, "teacher"), (suite, "teacher"),
                                         teacher["config"] if teacher else None)[:3]) + " | | |")
    base_cfg = next(iter(runs.get("baseline", {}).values()), {}).get("config")
    for a in arms:
        n = len(runs.get(a, {}))
        lines.append(f"| {a} | {n} | " + " | ".join(_mean_sd(list(vals[a][m].values())) for m in names) + " | "
                     + " | ".join(_cost_cols(cost, (suite, a), (suite, "baseline"), base_cfg)) + " |")
    lines += ["", "Paired difference arm - baseline over the seeds both ran: mean [95 % CI, Student t with n - 1 "
                  "degrees of freedom]; gap recovered = difference / (teacher - baseline mean) in % (interval: the "
                  "difference's, over the same gap).", ""]
    head = "| method | n | " + " | ".join(f"diff {m} [95 % CI] | {m}: helps? | {m} gap recovered %" for m in names) + " |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for a in arms[1:]:
        cols = []
        for m in names:
            d = paired(vals[a][m], vals["baseline"][m])
            base_mean = statistics.fmean([vals["baseline"][m][s] for s in d["seeds"]]) if d["n"] else float("nan")
            g, glo, ghi = gap_recovered(d, tval[m], base_mean)
            gtxt = "-" if not math.isfinite(g) else (f"{100 * g:+.0f} [{100 * glo:+.0f}, {100 * ghi:+.0f}]"
                                                     if math.isfinite(glo) else f"{100 * g:+.0f}")
            cols += [_ci(d), d["verdict"], gtxt]
        lines.append(f"| {a} | {len(runs.get(a, {}))} | " + " | ".join(cols) + " |")
    lines += variants(vals, arms, names)
    lines += components(runs, arms, heldout)
    lines += ["", "Per seed (" + " / ".join(names) + "):", "",
              "| arm | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
    for a in arms:
        cells = [" / ".join(_f(vals[a][m].get(s, float("nan"))) for m in names) if s in runs.get(a, {}) else "-"
                 for s in seeds]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    if plot_dir is not None and not heldout:
        sizes = {"teacher": cost.get((suite, "teacher")) or cost.get(("config", teacher["config"] if teacher else None)),
                 "baseline": cost.get((suite, "baseline")) or cost.get(("config", base_cfg))}
        png = plot(plot_dir, key, names[0], tval[names[0]], vals, arms, sizes)
        lines += ["", f"![suite {suite}: {names[0]} (mean +- sd over seeds) against counted MACs per frame; the students share one MAC count, arms are offset sideways to stay legible]({png.name})" if png else
                  "Accuracy-cost plot: no `bench/cost.py` record for this suite yet."]
    return lines


def parent_method(arm: str, arms: list[str]) -> str | None:
    """The method an arm ``METHOD-VARIANT`` (``bench/distill.py --arm``) varies, when ``METHOD`` is an arm too."""
    for m in sorted((a for a in arms if a != "baseline" and a != arm), key=len, reverse=True):
        if arm.startswith(m + "-"):
            return m
    return None


_VARIANT_VERDICT = {"helps": "better", "hurts": "worse"}  # paired() verdicts, read as variant vs its method


def variants(vals: dict, arms: list[str], names: list[str]) -> list[str]:
    """Paired difference of each variant arm (``METHOD-VARIANT``) against its method, over the seeds both
    ran: whether the change the variant makes (one weight, one term dropped) moves the result."""
    pairs = [(a, m) for a in arms[1:] if (m := parent_method(a, arms))]
    if not pairs:
        return []
    lines = ["", "Variants against their method: paired difference variant - method over the seeds both ran, "
                 "mean [95 % CI, Student t] (a variant changes one setting of its method, see the status above).", "",
             "| variant | method | n | " + " | ".join(f"diff {m} [95 % CI] | {m}: better?" for m in names) + " |",
             "|---|---|---|" + "---|---|" * len(names)]
    for a, m in pairs:
        ds = [paired(vals[a][k], vals[m][k]) for k in names]
        lines.append(f"| {a} | {m} | {ds[0]['n']} | "
                     + " | ".join(f"{_ci(d)} | {_VARIANT_VERDICT.get(d['verdict'], d['verdict'])}" for d in ds) + " |")
    return lines


TP_ERRORS = ("mATE", "mASE", "mAOE", "mAVE", "mAAE")  # nuScenes true-positive errors (lower is better)


def components(runs: dict, arms: list[str], heldout: bool = False) -> list[str]:
    """Paired differences of the nuScenes true-positive errors, for suites that record them: where an
    NDS difference comes from (NDS = (5 mAP + sum of the five max(0, 1 - error)) / 10)."""
    recs = [r for a in runs.values() for r in a.values()]
    if len(arms) < 2 or not recs or not all(
            all(math.isfinite(_metric(r, e, heldout)) for e in TP_ERRORS) for r in recs):
        return []
    vals = {a: {e: {s: _metric(r, e, heldout) for s, r in runs.get(a, {}).items()} for e in TP_ERRORS} for a in arms}
    lines = ["", "Where the NDS difference comes from: paired difference arm - baseline of each true-positive "
                 "error (lower is better; a negative value is a gain), mean [95 % CI, Student t].", "",
             "| method | n | " + " | ".join(TP_ERRORS) + " |", "|---|---|" + "---|" * len(TP_ERRORS)]
    for a in arms[1:]:
        ds = [paired(vals[a][e], vals["baseline"][e]) for e in TP_ERRORS]
        lines.append(f"| {a} | {ds[0]['n']} | " + " | ".join(_ci(d, fmt="+.3f") for d in ds) + " |")
    return lines


def calibration(groups: dict) -> list[str]:
    """Baseline mean and teacher per step budget, for suites run at several budgets."""
    by_suite: dict = {}
    for key, sec in groups.items():
        by_suite.setdefault(key[0], []).append((key, sec))
    lines = []
    for suite, secs in sorted(by_suite.items()):
        if len({k[1] for k, _ in secs}) < 2:
            continue
        names = next(iter(next(iter(secs[0][1]["runs"].values())).values())).get("metric_names", [])
        lines += [f"{V2}: calibration of suite `{suite}`", "",
                  "| steps | teacher cache | baseline n | " + " | ".join(f"baseline {m}" for m in names) + " |",
                  "|---|---|---|" + "---|" * len(names)]
        for key, sec in sorted(secs, key=lambda x: x[0][1]):
            b = sec["runs"].get("baseline", {})
            lines.append(f"| {key[1]} | {'yes' if key[2] else 'no'} | {len(b)} | "
                         + " | ".join(_mean_sd([_metric(r, m) for r in b.values()]) for m in names) + " |")
        lines.append("")
    return lines


def plot(out_dir: Path, key: tuple, metric: str, teacher: float, vals: dict, arms: list[str], sizes: dict) -> Path | None:
    """Accuracy (mean +- sd over seeds) against GMAC per frame: teacher and students.
    ``sizes``: {"teacher", "baseline"} -> cost record or None."""
    suite = key[0]
    if sizes.get("baseline") is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.4), dpi=120)
    sx = sizes["baseline"]["macs_total"] / 1e9
    for i, a in enumerate(arms):
        v = [x for x in vals[a][metric].values() if math.isfinite(x)]
        if not v:
            continue
        ax.errorbar([sx * (1 + 0.03 * i)], [statistics.fmean(v)], yerr=[statistics.stdev(v) if len(v) > 1 else 0.0],
                    fmt="o", capsize=3, label=a)
    if sizes.get("teacher") is not None and math.isfinite(teacher):
        ax.scatter([sizes["teacher"]["macs_total"] / 1e9], [teacher], marker="*", s=120, color="#d83b3b",
                   label="teacher", zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("GMAC per frame (counted)")
    ax.set_ylabel(metric)
    ax.set_title(f"suite {suite}, {key[1]} steps")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"results_v2_{suite}_{key[1]}{'_cache' if key[2] else ''}.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def render(records: list[dict], plot_dir: Path | None = None, source: str = "distill_v2.jsonl") -> str:
    """The benchmark-v2 text (every section) for ``records``."""
    groups, cost = group(records), costs(records)
    lines: list[str] = []
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2], k[3])):
        lines += section(key, groups[key], cost, plot_dir=plot_dir, source=source) + [""]
        sec = groups[key]
        if any("heldout" in r for a in sec["runs"].values() for r in a.values()):
            lines += section(key, sec, cost, heldout=True, source=source) + [""]
    lines += calibration(groups)
    return "\n".join(lines).rstrip() + "\n"


def merge(old: str, v2: str) -> str:
    """``docs/results.md`` with its v2 sections replaced by ``v2``: the intro (text before the first
    v2 section) and everything from ``## Earlier benchmark (v1)`` on are kept. A file without that
    heading is v1 content: it moves under the heading, its headings one level down."""
    if V1 in old:
        top, _, earlier = old.partition(V1)
        intro = top.split(f"\n{V2}")[0].rstrip() if f"\n{V2}" in top else top.rstrip()
        return f"{intro}\n\n{v2.rstrip()}\n\n{V1}{earlier.rstrip()}\n"
    if f"\n{V2}" in old:  # v2 sections, no v1 part
        return f"{old.split(chr(10) + V2)[0].rstrip()}\n\n{v2.rstrip()}\n"
    body = old.strip()
    if body.startswith(TITLE):
        body = body[len(TITLE):].lstrip()
    demoted = "\n".join("#" + ln if ln.startswith("##") else ln for ln in body.splitlines())
    intro = (f"{TITLE}\n\nBenchmark v2 (specified in `docs/benchmark.md`): the sections below are generated by "
             "`bench/report.py` from `bench/results/distill_v2.jsonl` alone; do not edit them by hand.")
    if not demoted.strip():
        return f"{intro}\n\n{v2.rstrip()}\n"
    return f"{intro}\n\n{v2.rstrip()}\n\n{V1}\n\n{demoted}\n"


def _rel(path) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else p.name


def calibration_curves(path: str | Path) -> str:
    """``bench/calibrate.py``'s tables (teacher and baseline student against the step budget)
    from its results file, under a v2 heading; empty when the file has no runs."""
    path = Path(path)
    if not any(r.get("kind") == "calibration" for r in runlog.read_records(path)):
        return ""
    import calibrate  # bench/calibrate.py

    return f"{V2}: calibration curves\n\n" + calibrate.report(path).rstrip() + "\n"


def write(results: str | Path, out: str | Path, calibration: str | Path | None = None) -> str:
    """Regenerate ``out``'s v2 sections from ``results`` (and the calibration results file)."""
    out = Path(out)
    v2 = render(runlog.read_records(results), plot_dir=out.parent, source=_rel(results))
    if calibration is not None:
        v2 = (v2.rstrip() + "\n\n" + calibration_curves(calibration)).strip() + "\n"
    if not v2.strip():
        v2 = f"{V2}\n\nNo runs in `{Path(results).name}` yet.\n"
    old = out.read_text() if out.exists() else f"{TITLE}\n"
    text = merge(old, v2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=str(runlog.DEFAULT_RESULTS))
    p.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    p.add_argument("--calibration", default=str(ROOT / "bench" / "results" / "calibration.jsonl"),
                   help="bench/calibrate.py's results file (its curves are rendered too; '' to skip)")
    args = p.parse_args(argv)
    write(args.results, args.out, args.calibration or None)
    print(f"{args.out} regenerated from {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
