"""Tables of the benchmark notebook: ablation over seeds (mean ± std and a 95% interval), head vs tail topics,
the margin sweep, QA, and the paper's reported numbers side by side. Written as CSV, Markdown and LaTeX
(booktabs), and gathered in the run's `metrics.json`."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mamc.config import REPO_ROOT, Config
from mamc.evaluate import mean_ci
from mamc.experiments import sweep_name
from mamc.manifest import write_json
from mamc.pipeline import log_dir, require
from mamc.train import run_name

METRICS = {
    "t2v R@1": ("t2v", "R@1"), "t2v R@5": ("t2v", "R@5"), "t2v R@10": ("t2v", "R@10"), "t2v MdR": ("t2v", "MdR"),
    "v2t R@1": ("v2t", "R@1"), "v2t R@5": ("v2t", "R@5"), "v2t R@10": ("v2t", "R@10"), "v2t MdR": ("v2t", "MdR"),
}
PAPER_RESULTS = REPO_ROOT / "data_manifests" / "paper_results.json"


def _read(path: Path, producer: str) -> dict:
    return json.loads(require(path, producer).read_text())


def run_results(cfg: Config) -> pd.DataFrame:
    """One row per (method, seed) of the ablation with every test metric."""
    rows = []
    for seed in cfg.seeds:
        for method in cfg.methods:
            logs = log_dir(cfg, run_name(method, seed))
            test = _read(logs / "test.json", "notebook 05's evaluation or `mamc evaluate`")
            row = {"method": method, "seed": seed}
            row.update({k: test[d][m] for k, (d, m) in METRICS.items()})
            row.update({"DSL t2v R@1": test["dsl"]["t2v"]["R@1"], "head t2v R@1": test["head_t2v_R@1"],
                        "tail t2v R@1": test["tail_t2v_R@1"]})
            if (logs / "qa.json").exists():
                qa = _read(logs / "qa.json", "`mamc evaluate`")
                row.update({"QA MC acc": qa["mc"]["acc"], "QA open acc": qa["open"]["acc"]})
            rows.append(row)
    return pd.DataFrame(rows)


def aggregate(results: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """Long table: method, metric, mean, std, lo, hi, n (95% Student-t interval over seeds)."""
    metrics = metrics or [c for c in results.columns if c not in ("method", "seed")]
    out = []
    for method, group in results.groupby("method", sort=False):
        for metric in metrics:
            if metric in group:
                out.append({"method": method, "metric": metric, **mean_ci(group[metric].dropna().tolist())})
    return pd.DataFrame(out)


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.1f}" if pd.isna(std) else f"{mean:.1f} ± {std:.1f}"


def wide(agg: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Methods × metrics with "mean ± std" cells, for display."""
    sub = agg[agg["metric"].isin(metrics)].copy()
    sub["cell"] = [_fmt(m, s) for m, s in zip(sub["mean"], sub["std"])]
    table = sub.pivot(index="method", columns="metric", values="cell")
    return table.reindex(index=list(dict.fromkeys(sub["method"])), columns=[m for m in metrics if m in table])


def write_table(table: pd.DataFrame, out_dir: str | Path, name: str, caption: str) -> list[Path]:
    """`name.csv`, `name.md` and `name.tex` (booktabs) in out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.{ext}" for ext in ("csv", "md", "tex")]
    table.to_csv(paths[0])
    paths[1].write_text(f"{caption}\n\n{table.to_markdown()}\n", encoding="utf-8")
    latex = table.style.format(na_rep="--").to_latex(hrules=True, caption=caption, label=f"tab:{name}", position="t")
    paths[2].write_text(latex.replace("±", r"$\pm$"), encoding="utf-8")
    return paths


def sweep_results(cfg: Config) -> pd.DataFrame:
    rows = []
    for m in cfg.margin_sweep:
        test = _read(log_dir(cfg, sweep_name(cfg, m)) / "test.json", "`mamc evaluate`")
        rows.append({"margin": m, "t2v R@1": test["t2v"]["R@1"], "v2t R@1": test["v2t"]["R@1"],
                     "t2v R@5": test["t2v"]["R@5"], "head t2v R@1": test["head_t2v_R@1"], "tail t2v R@1": test["tail_t2v_R@1"]})
    return pd.DataFrame(rows)


def paper_profile_results(runs_root: Path = REPO_ROOT / "runs") -> dict[str, float]:
    """Full-MAMA figures of every finished `paper`-profile run under `runs/`, keyed by benchmark name: test
    t2v R@1 for retrieval datasets, open-ended QA accuracy for QA datasets."""
    found = {}
    for path in sorted(Path(runs_root).glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        config = json.loads((path.parent / "config.json").read_text()) if (path.parent / "config.json").exists() else {}
        mama = metrics.get("ablation", {}).get("mama", {})
        if metrics.get("profile") != "paper" or not mama:
            continue
        key = "QA open acc" if "QA" in config.get("dataset", "") else "t2v R@1"
        if key in mama:
            found[config.get("dataset", "?")] = round(mama[key]["mean"], 1)
    return found


def paper_table(kit: dict[str, float] | None = None) -> pd.DataFrame:
    """The paper's headline numbers (with source) beside the kit's `paper`-profile figures, blank where no
    such run exists."""
    paper = json.loads(PAPER_RESULTS.read_text())
    df = pd.DataFrame(paper["rows"])
    df["mamc (paper profile)"] = [(kit or {}).get(b) for b in df["benchmark"]]
    return df.set_index("benchmark")


def build_tables(cfg: Config) -> dict:
    """Write every table under `tables/` and the run's `metrics.json`; returns the metrics."""
    out = cfg.run_path / "tables"
    results = run_results(cfg)
    agg = aggregate(results)
    retrieval = ["t2v R@1", "t2v R@5", "t2v R@10", "t2v MdR", "v2t R@1", "v2t R@5", "v2t R@10", "v2t MdR"]
    write_table(wide(agg, retrieval), out, "ablation_retrieval",
                f"Text-video retrieval on the embedded test set ({cfg.n_test} pairs), mean ± std over seeds {list(cfg.seeds)}.")
    write_table(wide(agg, ["head t2v R@1", "tail t2v R@1", "DSL t2v R@1"]), out, "head_tail",
                "t2v R@1 on head and tail topics, and with dual-softmax re-scoring (DSL, an inference-time variant).")
    if "QA MC acc" in results:
        write_table(wide(agg, ["QA MC acc", "QA open acc"]), out, "qa", "Video QA accuracy (%) on the embedded QA split.")
    interval = agg.assign(interval=[f"[{lo:.1f}, {hi:.1f}]" for lo, hi in zip(agg["lo"], agg["hi"])])
    write_table(interval.set_index(["method", "metric"])[["mean", "std", "lo", "hi", "n"]].round(2), out, "ablation_ci",
                "Every metric with its 95% Student-t interval over seeds.")
    sweep = sweep_results(cfg)
    write_table(sweep.set_index("margin").round(2), out, "margin_sweep", f"Subtractive margin sweep (seed {cfg.seeds[0]}).")
    write_table(paper_table(paper_profile_results()), out, "paper_side_by_side", "The paper's reported results beside this kit's paper-profile runs.")
    results.to_csv(out / "runs.csv", index=False)
    metrics = {"profile": cfg.profile, "seeds": list(cfg.seeds), "n_test": cfg.n_test,
               "runs": results.to_dict(orient="records"),
               "ablation": {m: {r["metric"]: {k: r[k] for k in ("mean", "std", "lo", "hi", "n")} for _, r in g.iterrows()}
                            for m, g in agg.groupby("method", sort=False)},
               "margin_sweep": sweep.to_dict(orient="records")}
    write_json(cfg.run_path / "metrics.json", metrics)
    return metrics


def reading(metrics: dict, metric: str = "t2v R@1", baseline: str = "infonce") -> str:
    """A plain-language reading of the ablation computed from the numbers (never written by hand): each
    method against the baseline, with whether the difference is larger than the seed-to-seed spread."""
    abl = metrics["ablation"]
    if baseline not in abl:
        return f"No `{baseline}` run to compare with."
    base = abl[baseline][metric]
    lines = [f"Reading of **{metric}** (mean over {base['n']} seed(s)) against `{baseline}` ({base['mean']:.1f}):", ""]
    for method, values in abl.items():
        if method == baseline or metric not in values:
            continue
        v = values[metric]
        diff = v["mean"] - base["mean"]
        if v["n"] < 2:
            verdict = "one seed only, so no interval: treat the difference as unconfirmed"
        elif v["lo"] > base["hi"] or v["hi"] < base["lo"]:
            verdict = "the 95% intervals do not overlap"
        else:
            verdict = "the 95% intervals overlap: not distinguishable at this number of seeds"
        lines.append(f"- `{method}`: {v['mean']:.1f} ({diff:+.1f} points); {verdict}.")
    return "\n".join(lines)
