"""Tables of the benchmark notebook: ablation over seeds (mean ± std and a 95% interval), head vs tail topics,
the margin sweep, QA, and the paper's reported numbers side by side. Written as CSV, Markdown and LaTeX
(booktabs), and gathered in the run's `metrics.json`."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

from mamc.config import REPO_ROOT, TUNABLE, Config
from mamc.data.attributes import ATTRIBUTES, retrieval_ceiling
from mamc.data.prepare import load_rows
from mamc.evaluate import mean_ci
from mamc.manifest import write_json, write_text
from mamc.report.claims import claims_table
from mamc.run import Run, load_run_config
from mamc.runs import (
    INHERITED,
    ablation_name,
    ablation_runs,
    chosen_values,
    dose_runs,
    knob_sources,
    knobs_of,
    sweep_runs,
    tuning_results,
    weighted_samples,
)

METRICS = {
    "t2v R@1": ("t2v", "R@1"), "t2v R@5": ("t2v", "R@5"), "t2v R@10": ("t2v", "R@10"), "t2v MdR": ("t2v", "MdR"),
    "v2t R@1": ("v2t", "R@1"), "v2t R@5": ("v2t", "R@5"), "v2t R@10": ("v2t", "R@10"), "v2t MdR": ("v2t", "MdR"),
}
RETRIEVAL = list(METRICS)
PAPER_RESULTS = REPO_ROOT / "data_manifests" / "paper_results.json"


def run_results(cfg: Config) -> pd.DataFrame:
    """One row per (method, seed) of the ablation with every test metric."""
    run, rows = Run(cfg), []
    for name, method, seed in ablation_runs(cfg):
        test = run.read("test", name)
        row = {"method": method, "seed": seed}
        row.update({k: test[d][m] for k, (d, m) in METRICS.items()})
        row.update({"DSL t2v R@1": test["dsl"]["t2v"]["R@1"], "head t2v R@1": test["head_t2v_R@1"],
                    "tail t2v R@1": test["tail_t2v_R@1"]})
        if run.path("qa", name).exists():
            qa = run.read("qa", name)
            row.update({"QA open acc": qa["open"]["acc"], **({"QA MC acc": qa["mc"]["acc"]} if qa["mc"] else {})})
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


def _flat(table: pd.DataFrame) -> pd.DataFrame:
    """A named index becomes ordinary columns, as in a paper's table (no tuple-valued row labels)."""
    return table.reset_index() if table.index.name or isinstance(table.index, pd.MultiIndex) else table


def _tested(counts: dict) -> str:
    """What a test set held, as evaluated: captions, videos, and rows left out because their video is unusable."""
    out = f"{counts['n_test']} captions of {counts['n_test_videos']} videos"
    return out + (f"; {counts['n_test_unusable']} rows without a usable video left out" if counts["n_test_unusable"] else "")


def _ceiling(ceiling: dict | None) -> str:
    """The attainable t2v figures beside a table, where the data's ground truth gives them."""
    if not ceiling:
        return ""
    return (f" Attainable t2v ceiling (an oracle reading each caption against every clip's true attributes, ties broken "
            f"at random): R@1 {ceiling['R@1']:.1f}, R@5 {ceiling['R@5']:.1f}, R@10 {ceiling['R@10']:.1f}: the "
            f"{ceiling['clips']} test clips have {ceiling['distinct attribute sets']} distinct attribute sets, and captions "
            "may omit the size.")


def write_table(table: pd.DataFrame, out_dir: str | Path, name: str, caption: str) -> list[Path]:
    """`name.csv`, `name.md` and `name.tex` (booktabs) in out_dir, laid out as by `_flat`."""
    flat = _flat(table)
    paths = [Path(out_dir) / f"{name}.{ext}" for ext in ("csv", "md", "tex")]
    write_text(paths[0], flat.to_csv(index=False))
    write_text(paths[1], f"{caption}\n\n{flat.to_markdown(index=False)}\n")
    latex = flat.style.hide(axis="index").format(na_rep="--", precision=2).to_latex(
        hrules=True, caption=caption, label=f"tab:{name}", position="t")
    write_text(paths[2], latex.replace("±", r"$\pm$"))
    return paths


def sweep_results(cfg: Config) -> pd.DataFrame:
    run, rows = Run(cfg), []
    for name, run_cfg in sweep_runs(cfg):
        test = run.read("test", name)
        rows.append({"margin": run_cfg.margin, "t2v R@1": test["t2v"]["R@1"], "v2t R@1": test["v2t"]["R@1"],
                     "t2v R@5": test["t2v"]["R@5"], "head t2v R@1": test["head_t2v_R@1"], "tail t2v R@1": test["tail_t2v_R@1"]})
    return pd.DataFrame(rows)


def paper_column(metrics: dict) -> dict[str, float]:
    """The kit's full-MAMA figures of a `paper`-profile run, keyed by benchmark: test t2v R@1 for its retrieval
    dataset, open-ended QA accuracy for its QA dataset; empty for other profiles."""
    mama = metrics.get("ablation", {}).get("mama", {})
    if metrics.get("profile") != "paper":
        return {}
    pairs = ((metrics.get("dataset"), "t2v R@1"), (metrics.get("qa_dataset"), "QA open acc"))
    return {name: round(mama[key]["mean"], 1) for name, key in pairs if name and key in mama}


def paper_table(kit: dict[str, float] | None = None) -> pd.DataFrame:
    """The paper's headline numbers (with source) beside the kit's `paper`-profile figures, blank where there
    are none: the current run's, and those of run folders named explicitly (`build_tables(..., compare=…)`)."""
    paper = json.loads(PAPER_RESULTS.read_text())
    df = pd.DataFrame(paper["rows"])
    df["mamc (paper profile)"] = [(kit or {}).get(b) for b in df["benchmark"]]
    return df.set_index("benchmark")


def weighting_table(cfg: Config) -> pd.DataFrame:
    """Mean normalised weight per kind of pair in the second half of training, for every meta-weighted run:
    clean vs misaligned original pairs, head vs tail topics, and VLM captions."""
    rows = []
    for name, method, _ in ablation_runs(cfg):
        if method not in ("meta", "mama"):
            continue
        df = weighted_samples(cfg, name)
        row = {"run": name}
        for (source, aligned), part in df.groupby(["source", "aligned"], dropna=False):
            kind = "alignment unknown" if pd.isna(aligned) else "clean" if aligned else "misaligned"
            row[f"{source}/{kind}"] = part["weight"].mean()
        for group, part in df.groupby("group"):
            row[f"{group} topics"] = part["weight"].mean()
        rows.append(row)
    return pd.DataFrame(rows).set_index("run").round(2) if rows else pd.DataFrame()


def loss_by_group(cfg: Config) -> pd.DataFrame:
    """Mean per-pair training loss of head and tail topics for every method (second half of training, mean over
    seeds). The control for the weighting's head/tail reading: the MLP sees only a pair's loss, so head and tail
    pairs of equal loss get equal weight, and any weight gap is a loss gap — which plain InfoNCE shows batch
    composition alone produces (head-topic pairs meet more same-topic negatives in a batch)."""
    rows = []
    for name, method, _ in ablation_runs(cfg):
        means = weighted_samples(cfg, name).groupby("group")["loss"].mean()
        rows.append({"method": method, **{f"{g} loss": means.get(g) for g in ("head", "tail")}})
    df = pd.DataFrame(rows).groupby("method", sort=False).mean()
    return df.assign(**{"tail − head": df["tail loss"] - df["head loss"]}).round(3)


def dose_response(cfg: Config) -> pd.DataFrame:
    """Caption augmentation against captioner strength: for the trained embedded captioner and each weaker snapshot
    of it, its accuracy on the benchmark's training videos and the gain of `vlm` over `infonce` in test t2v R@1
    (paired by seed: mean and 95% Student-t interval). Empty without snapshots or without both methods."""
    if not cfg.dose_snapshots or not {"vlm", "infonce"} <= set(cfg.methods):
        return pd.DataFrame()
    run = Run(cfg)
    t2v = lambda name: run.read("test", name)["t2v"]["R@1"]  # noqa: E731
    runs = {step: [(s, name) for name, s, c in dose_runs(cfg) if c.captioner_snapshot == step] for step in cfg.dose_snapshots}
    runs[0] = [(s, ablation_name(cfg, "vlm", s)) for s in cfg.seeds]
    rows = []
    for step, named in sorted(runs.items(), key=lambda kv: kv[0] or cfg.captioner_steps):
        quality = Run(replace(cfg, captioner_snapshot=step)).read("caption quality")["generated"]
        ci = mean_ci([t2v(name) - t2v(ablation_name(cfg, "infonce", s)) for s, name in named])
        rows.append({"captioner steps": step or cfg.captioner_steps, "captions all right (%)": quality["all"],
                     **{f"{a} (%)": quality[a] for a in ATTRIBUTES}, "gain": ci["mean"], "lo": ci["lo"], "hi": ci["hi"],
                     "seeds": ci["n"]})
    return pd.DataFrame(rows)


def _t2v_r1(cfg: Config, method: str, seed: int) -> float:
    return Run(cfg).read("test", ablation_name(cfg, method, seed))["t2v"]["R@1"]


def captioner_draws(cfg: Config, draws: list[str | Path]) -> pd.DataFrame:
    """C3 under other draws of the captioner: for this run's captioner and each run folder in `draws` (the same
    data, another `captioner_seed`), the gain of `vlm` over `infonce` in test t2v R@1 on the training seeds the
    draws share, paired by seed, and how often its captions get all four attributes right. The spread of the
    gains across captioners is variation that intervals over training seeds alone do not contain."""
    configs = [cfg, *(load_run_config(d) for d in draws)]
    seeds = sorted(set.intersection(*(set(c.seeds) for c in configs)))
    rows = []
    for c in configs:
        run = Run(c)
        ci = mean_ci([_t2v_r1(c, "vlm", s) - _t2v_r1(c, "infonce", s) for s in seeds])
        quality = run.path("caption quality")
        rows.append({"captioner seed": c.caption_seed, "run": c.run_path.name,
                     "captions all right (%)": json.loads(quality.read_text())["generated"]["all"] if quality.exists() else None,
                     "gain": ci["mean"], "lo": ci["lo"], "hi": ci["hi"], "seeds": ci["n"]})
    return pd.DataFrame(rows)


def knob_values(cfg: Config) -> dict[str, dict[str, dict]]:
    """method → {knob: {"value", "how"}}: each knob's value and whether it was tuned on validation or set."""
    chosen = chosen_values(cfg)
    return {m: {k: {"value": chosen[m][k], "how": how} for k, how in knob_sources(cfg, m).items()}
            for m in cfg.methods if knobs_of(m)}


def training_table(cfg: Config) -> pd.DataFrame:
    """Per method: its knobs (each tuned or set), the selected (best-on-validation) step and the last step, mean
    over seeds, and how many runs ended at their plateau rather than at the step limit. Timings are not results:
    they are in the summaries and `environment.json`."""
    run, rows = Run(cfg), []
    for name, method, _ in ablation_runs(cfg):
        s = run.read("summary", name)
        rows.append({"method": method, "selected step": s["best"]["step"], "last step": s.get("last_step", s["steps"]),
                     "plateau": bool(s.get("plateau")), "val rsum": s["best"]["val/rsum"]})
    df = pd.DataFrame(rows).groupby("method", sort=False)
    out = df[["selected step", "last step", "val rsum"]].mean().round({"selected step": 0, "last step": 0, "val rsum": 1})
    out = out.astype({"selected step": int, "last step": int})
    knobs = knob_values(cfg)
    shown = {m: ", ".join(f"{k} {v['value']:g} ({v['how']})" for k, v in knobs.get(m, {}).items()) or "—" for m in out.index}
    return out.assign(**{"runs at plateau": df["plateau"].sum().astype(int).astype(str) + "/" + df.size().astype(str)}
                      ).assign(knobs=[shown[m] for m in out.index])


def stalled_runs(cfg: Config) -> str:
    """A reading of the ablation runs whose best validation was their first (after `eval_every` steps): they
    learnt nothing after it, a collapse that the means over seeds would otherwise hide."""
    run, lines = Run(cfg), []
    for name, _, _ in ablation_runs(cfg):
        best = run.read("summary", name)["best"]["step"]
        if best <= cfg.eval_every:
            test = run.path("test", name)
            score = f"; test t2v R@1 {run.read('test', name)['t2v']['R@1']:.1f}" if test.exists() else ""
            lines.append(f"- `{name}`: best validation at step {best}, its first{score}.")
    if not lines:
        return f"Every run improved on its first validation (step {cfg.eval_every})."
    return ("Runs that never improved on their first validation, a collapse (they count in every mean and interval "
            "here):\n\n" + "\n".join(lines))


def tuning_caption(cfg: Config) -> str:
    inherited = "; ".join(f"`{m}` takes " + ", ".join(f"{k} from `{src}`" for k, src in knobs.items())
                          for m, knobs in INHERITED.items() if m in cfg.methods)
    fixed = ", ".join(f"{k} = {getattr(cfg, k):g}" for k in TUNABLE if k not in cfg.tuned)
    return (f"Tuning on validation, seed {cfg.seeds[0]}: each method with a knob of its own tries the same number of "
            f"values and keeps the best validation R-sum (nothing is chosen on test); τ = {cfg.temperature:g} is shared. "
            f"{inherited}." + (f" Set by the user, not tuned: {fixed}." if fixed else ""))


def build_tables(cfg: Config, compare: list[str | Path] = (), draws: list[str | Path] = ()) -> dict:
    """Write every table under `tables/`, the run's `metrics.json` and `RESULTS.md`; returns the metrics. The
    paper side-by-side fills its kit column from this run when it is a `paper`-profile run, and from the run
    folders in `compare`; `draws` are run folders with other captioner draws (`captioner_draws`) — nothing else
    is read."""
    run = Run(cfg)
    results = run_results(cfg)
    agg = aggregate(results)
    sweep = sweep_results(cfg)
    tested = run.read("test", ablation_runs(cfg)[0][0])
    counts = {"n_test": tested["n_test"], "n_test_videos": tested["n_test_videos"],
              "n_test_unusable": tested.get("n_test_unusable", 0)}
    ceiling = retrieval_ceiling(load_rows(cfg, "test"))
    metrics = {"profile": cfg.profile, "dataset": cfg.dataset, "qa_dataset": cfg.qa_dataset, "seeds": list(cfg.seeds), **counts,
               "t2v_ceiling": ceiling,
               "runs": results.to_dict(orient="records"),
               "ablation": {m: {r["metric"]: {k: r[k] for k in ("mean", "std", "lo", "hi", "n")} for _, r in g.iterrows()}
                            for m, g in agg.groupby("method", sort=False)},
               "margin_sweep": sweep.to_dict(orient="records"), "chosen": chosen_values(cfg), "knobs": knob_values(cfg)}
    kit = paper_column(metrics)
    for other in compare:
        kit.update(paper_column(json.loads((Path(other) / "metrics.json").read_text())))
    tables = {
        "ablation_retrieval": (wide(agg, RETRIEVAL), f"Text-video retrieval on the {cfg.dataset} test set "
                               f"({_tested(counts)}), mean ± std over seeds {list(cfg.seeds)}.{_ceiling(ceiling)}"),
        "head_tail": (wide(agg, ["head t2v R@1", "tail t2v R@1", "DSL t2v R@1"]),
                      "t2v R@1 on head topics (the most frequent half by training clips) and tail topics, and with "
                      f"dual-softmax re-scoring (DSL, an inference-time variant), mean ± std over seeds {list(cfg.seeds)}."
                      f"{_ceiling(ceiling)}"),
        "ablation_ci": (agg[["method", "metric", "mean", "std", "lo", "hi", "n"]].round(2),
                        f"Every metric with its 95% Student-t interval over seeds.{_ceiling(ceiling)}"),
        "training": (training_table(cfg), f"Training to the plateau: each run validates every {cfg.eval_every} steps and "
                     f"ends once the mean R-sum of its last {cfg.plateau_window} validations has not improved for "
                     f"{cfg.patience} validations (at most {cfg.steps} steps; a run that reaches the limit is not at its "
                     "plateau); the selected step is its best single validation. Mean over seeds."),
        "paper_side_by_side": (paper_table(kit), "The paper's reported results beside this kit's paper-profile runs."),
    }
    if not sweep.empty:
        tables["margin_sweep"] = (sweep.round(2), f"Subtractive margin sweep on test (seed {cfg.seeds[0]}; the margin is "
                                  f"chosen on validation, see the tuning table).{_ceiling(ceiling)}")
    tuning = tuning_results(cfg)
    if not tuning.empty:
        shown = tuning.round({"val rsum": 1}).assign(value=tuning["value"].map("{:g}".format))  # 1e-05, not 0.00
        tables["tuning"] = (shown, tuning_caption(cfg))
    claims = claims_table(cfg, results)
    if not claims.empty:
        tables["claims"] = (claims.round(2), "The paper's claims on this run: effect (paired by seed), 95% Student-t "
                            "interval and its half-width (the precision reached; the goal is ±1 point of t2v R@1), the "
                            "seeds that ±1 would need at the seed-to-seed spread measured and those an interval clear "
                            "of zero would need if the effect and spread measured held, verdict (supported / not "
                            f"supported / inconclusive at this precision) and why.{_ceiling(ceiling)}")
        metrics["claims"] = claims.to_dict(orient="records")
    dose = dose_response(cfg)
    if not dose.empty:
        tables["dose_response"] = (dose.round(2), "Caption augmentation against captioner strength: the embedded "
                                   "captioner after each number of training steps (snapshots of one training), its accuracy "
                                   f"on the {cfg.dataset} training videos, and the gain of `vlm` over `infonce` in test t2v "
                                   "R@1, paired by seed, with its 95% interval.")
        metrics["dose_response"] = dose.to_dict(orient="records")
    if draws:
        table = captioner_draws(cfg, draws)
        spread = table["gain"].std(ddof=1)
        tables["captioner_draws"] = (table.round(2), (
            "C3 under other draws of the captioner (the same data, another `captioner_seed`): the gain of `vlm` over "
            "`infonce` in test t2v R@1 on the training seeds all of them trained (`seeds`), paired by seed, with its 95% "
            f"interval. Across the {len(table)} captioners the gain's standard deviation is {spread:.2f} points: "
            "variation that an interval over training seeds with one captioner does not contain."))
        metrics["captioner_draws"] = table.to_dict(orient="records")
    if "QA open acc" in results:
        tables["qa"] = (wide(agg, ["QA MC acc", "QA open acc"]), f"Video QA accuracy (%) on the {cfg.qa_dataset} QA split "
                        "(open-ended: argmax over the answer vocabulary; multiple choice where questions list candidates), "
                        f"mean ± std over seeds {list(cfg.seeds)}.")
    for name, (table, caption) in tables.items():
        write_table(table, run.tables, name, caption)
    write_text(run.tables / "runs.csv", results.to_csv(index=False))
    write_json(run.path("metrics"), metrics)
    write_text(run.root / "RESULTS.md", results_markdown(cfg, metrics, tables))
    return metrics


def results_markdown(cfg: Config, metrics: dict, tables: dict[str, tuple[pd.DataFrame, str]]) -> str:
    """RESULTS.md of a run: every table with its automatic reading, written from the numbers alone (docs/RESULTS.md
    is a copy of the default run's)."""
    md = lambda t: _flat(t).to_markdown(index=False)  # noqa: E731
    parts = [
        f"# Results of a `{cfg.profile}` run", "",
        f"Written by `mamc reproduce` (notebook 05, or `mamc evaluate`) from the run folder's `tables/`, `metrics.json` "
        f"and `logs/`; dataset `{cfg.dataset}`, seeds {list(cfg.seeds)}; every run trains until its validation R-sum "
        f"plateaus, at most {cfg.steps} steps. Nothing here is written by hand: the readings compare each method with InfoNCE "
        "using 95% Student-t intervals over seeds.", "",
        *(["## Claims", "", tables["claims"][1], "", md(tables["claims"][0]), ""] if "claims" in tables else []),
        "## Training and tuning", "", tables["training"][1], "", md(tables["training"][0]), "", stalled_runs(cfg), "",
        *([tables["tuning"][1], "", md(tables["tuning"][0]), ""] if "tuning" in tables else []),
        "## Retrieval", "", tables["ablation_retrieval"][1], "", md(tables["ablation_retrieval"][0]), "",
        reading(metrics, "t2v R@1"), "", reading(metrics, "v2t R@1"), "",
        "## Head and tail topics, DSL", "", tables["head_tail"][1], "", md(tables["head_tail"][0]), "",
        reading(metrics, "tail t2v R@1"), "",
        *(["## Margin sweep", "", tables["margin_sweep"][1], "", md(tables["margin_sweep"][0]), ""]
          if "margin_sweep" in tables else []),
    ]
    if "qa" in tables:
        parts += ["## Video QA", "", tables["qa"][1], "", md(tables["qa"][0]), ""]
        parts += [part for m in ("QA MC acc", "QA open acc")
                  if any(m in v for v in metrics["ablation"].values()) for part in (reading(metrics, m), "")]
    weights = weighting_table(cfg)
    if not weights.empty:
        parts += ["## What the learned weighting does", "",
                  "Mean normalised weight (1 = average) per kind of training pair, second half of training.", "",
                  md(weights), "",
                  "The weighting MLP sees only a pair's loss: head and tail pairs of equal loss get equal weight, so a "
                  "head/tail weight gap is a loss gap. Plain InfoNCE shows the gap that batch composition alone makes "
                  "(head-topic pairs meet more same-topic negatives); read the weights above against it. Mean training "
                  "loss per pair, second half of training, mean over seeds:", "", md(loss_by_group(cfg)), ""]
    accuracy = captioner_accuracy(cfg)
    if not accuracy.empty:
        parts += ["## The captioner", "", CAPTIONER_CAPTION, "", accuracy.to_markdown(index=False), ""]
    if "dose_response" in tables:
        parts += ["## Caption augmentation against captioner strength", "", tables["dose_response"][1], "",
                  md(tables["dose_response"][0]), ""]
    if "captioner_draws" in tables:
        parts += ["## The captioner's draw", "", tables["captioner_draws"][1], "", md(tables["captioner_draws"][0]), ""]
    return "\n".join(parts)


CAPTIONER_CAPTION = ("Percent of captions that state each attribute correctly (missing or ambiguous counts as wrong): the "
                     "embedded captioner on held-out clips of its own corpus and on the benchmark's training videos, beside "
                     "the benchmark's original training captions (whose errors are the corpus's designed misalignment).")


def captioner_snapshots(cfg: Config) -> pd.DataFrame:
    """Held-out accuracy of the embedded captioner after each number of training steps (its snapshots and the end
    of its training), from its `training.json`; empty for any other captioner."""
    path = Run(cfg).path("captioner") / "training.json"
    if not path.exists():
        return pd.DataFrame()
    accuracy = json.loads(path.read_text()).get("heldout_accuracy", {})
    table = pd.DataFrame.from_dict(accuracy, orient="index").round(1)
    return table.rename_axis("captioner steps").sort_index(key=lambda i: i.astype(int))


def captioner_accuracy(cfg: Config) -> pd.DataFrame:
    """Attribute accuracy of the captioner's captions where the run measured it: on held-out clips of the embedded
    captioner's own corpus, and on the benchmark's training videos, beside the original training captions."""
    run, rows = Run(cfg), []
    training = run.path("captioner") / "training.json"
    if training.exists():
        info = json.loads(training.read_text())
        final = info.get("heldout_accuracy", {}).get(str(cfg.captioner_steps))
        if final:
            rows.append({"captions": f"VLM, {info['n_heldout']} held-out clips of its corpus", **final})
    quality = run.path("caption quality")
    if quality.exists():
        q = json.loads(quality.read_text())
        rows += [{"captions": f"VLM, {q['n']} {cfg.dataset} training videos", **q["generated"]},
                 {"captions": f"original, {q['n']} {cfg.dataset} training videos", **q["original"]}]
    return pd.DataFrame(rows).round(1)


def reading(metrics: dict, metric: str = "t2v R@1", baseline: str = "infonce") -> str:
    """A plain-language reading of the ablation computed from the numbers (never written by hand): each method
    against the baseline by its per-seed difference (paired, as the claims are: a seed gives every method the same
    corpus draw, initialisation and batch order), with the 95% Student-t interval of that difference."""
    abl = metrics["ablation"]
    if baseline not in abl:
        return f"No `{baseline}` run to compare with."
    if metric not in abl[baseline] or not abl[baseline][metric]["n"]:
        return f"No **{metric}**: nothing of that kind was tested (e.g. no test rows in that group)."
    per_seed = {(r["method"], r["seed"]): r.get(metric) for r in metrics["runs"]}
    base = abl[baseline][metric]
    lines = [f"Reading of **{metric}** against `{baseline}` ({base['mean']:.1f}), paired by seed: mean over "
             f"{base['n']} seed(s) and the 95% interval of the per-seed difference.", ""]
    for method, values in abl.items():
        if method == baseline or metric not in values:
            continue
        diffs = [per_seed[method, s] - per_seed[baseline, s] for s in metrics["seeds"]
                 if pd.notna(per_seed.get((method, s))) and pd.notna(per_seed.get((baseline, s)))]
        ci = mean_ci(diffs)
        if ci["n"] < 2:
            said = "one seed only, so no interval: treat the difference as unconfirmed"
        else:
            side = ("higher than" if ci["lo"] > 0 else "lower than" if ci["hi"] < 0
                    else "not distinguishable at this number of seeds from")
            said = f"[{ci['lo']:+.1f}, {ci['hi']:+.1f}]: {side} `{baseline}`"
        lines.append(f"- `{method}`: {values[metric]['mean']:.1f} ({ci['mean']:+.1f} points); {said}.")
    return "\n".join(lines)
