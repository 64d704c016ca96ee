"""An independent audit of a run folder: every number that RESULTS.md, metrics.json and the data card report,
recomputed by a short, plain computation from the raw artifacts and compared with what was reported.

Written apart from the reporting code on purpose (nothing from `mamc.report`, `mamc.runs` or `mamc.evaluate`): it
reads `logs/*/summary.json`, `logs/*/test.json` (every query's rank), `logs/*/qa.json`, `logs/*/samples.csv`,
`data/manifest.jsonl`, the caption files, `checkpoints/*/best_weight_net.safetensors` and `config.json`, and
restates each rule from the docs in a few lines. The one thing it borrows is `parse_attributes`, the corpus
language's reader (tested on its own), for the caption scores and the ceiling.

    python -m tests.audit RUN_DIR      # prints every check, exits 1 on a mismatch
"""
from __future__ import annotations

import csv
import json
import math
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from scipy.stats import t as student_t

from mamc.data.attributes import parse_attributes

ATTRS = ("color", "direction", "shape", "size")
KNOB = {"margin": "margin", "additive": "margin", "meta": "meta_lr"}  # methods that search a knob of their own
SNAPSHOT = re.compile(r"_c\d+$")


def interval(values: list[float]) -> dict:
    """Mean, sample std, 95% Student-t interval, n."""
    n = len(values)
    mean = sum(values) / n if n else math.nan
    if n < 2:
        return {"mean": mean, "std": math.nan, "lo": math.nan, "hi": math.nan, "n": n}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = student_t.ppf(0.975, n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "lo": mean - half, "hi": mean + half, "n": n}


def seeds_for_half_width(std: float, half: float) -> int | None:
    """The fewest seeds (2 to 1000) whose 95% interval would be ±`half` at this spread."""
    if not math.isfinite(std):
        return None
    return next((n for n in range(2, 1001) if student_t.ppf(0.975, n - 1) * std / math.sqrt(n) <= half), None)


def verdict(ci: dict) -> str:
    if ci["n"] < 2:
        return "inconclusive"
    return "supported" if ci["lo"] > 0 else "not supported" if ci["hi"] <= 0 else "inconclusive"


def recall(ranks: list[int], k: int) -> float:
    return 100.0 * sum(r <= k for r in ranks) / len(ranks)


def median(ranks: list[int]) -> float:
    s = sorted(ranks)
    mid = len(s) // 2
    return float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def recall_1(rank_a: int, rank_b: int) -> float:
    """A query's top-1 hit under a minus under b, in points."""
    return 100.0 * ((rank_a <= 1) - (rank_b <= 1))


def log_rank_gain(rank_a: int, rank_b: int) -> float:
    """Halvings of the right video's rank from b to a."""
    return math.log2(rank_b / rank_a)


def md_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown table of a document: (header, rows of cells)."""
    tables, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif block:
            tables.append((block[0], block[2:]))
            block = []
    return tables


def table_with(text: str, first: str, column: str) -> dict[str, dict[str, str]]:
    """The table whose header starts with `first` and has `column`, keyed by its first cell."""
    for header, rows in md_tables(text):
        if header[0] == first and column in header:
            return {r[0]: dict(zip(header, r)) for r in rows}
    raise KeyError(f"no table with columns {first!r} and {column!r}")


class Audit:
    """Recomputes a run's reported numbers; `checks` holds (what, reported, recomputed, agrees)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.cfg = self._json("config.json")
        self.metrics = self._json("metrics.json")
        self.results = (self.root / "RESULTS.md").read_text()
        self.rows = [json.loads(line) for line in (self.root / "data" / "manifest.jsonl").read_text().splitlines() if line]
        self.summaries = {p.parent.name: json.loads(p.read_text()) for p in (self.root / "logs").glob("*/summary.json")}
        self.checks: list[tuple[str, object, object, bool]] = []

    def _json(self, rel: str) -> dict:
        return json.loads((self.root / rel).read_text())

    def check(self, what: str, reported, recomputed, digits: int | None = None, rel: float = 1e-9) -> None:
        """Numbers agree to `rel`, or, shown with `digits` decimals, to the rounding; NaN and None agree with each other."""
        def same(a, b):
            if isinstance(a, dict) and isinstance(b, dict):
                return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
            if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
                return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
            a, b = (math.nan if v is None else v for v in (a, b))  # pandas writes a missing number as NaN
            if isinstance(a, str) or isinstance(b, str):
                return str(a) == str(b)
            a, b = float(a), float(b)
            if math.isnan(a) or math.isnan(b):
                return math.isnan(a) and math.isnan(b)
            if digits is not None:  # shown rounded: within half a unit of the last digit (a tie may go either way)
                return abs(a - b) <= 0.5 * 10 ** -digits + 1e-9
            return abs(a - b) <= rel * max(1.0, abs(b))
        self.checks.append((what, reported, recomputed, same(reported, recomputed)))

    # ---- the data -------------------------------------------------------------------------------------------
    def train_counts(self) -> Counter:
        return Counter(r["topic"] for r in self.rows if r["split"] == "train")

    def groups(self) -> dict[str, str]:
        """Head: the most frequent half of the topics in training (ties by name; the smaller half when odd), then
        test-only topics, by name, at the end."""
        counts = self.train_counts()
        ranked = sorted(counts, key=lambda t: (-counts[t], t))
        ranked += sorted({r["topic"] for r in self.rows if r["split"] == "test"} - set(counts))
        return {t: "head" if i < len(ranked) // 2 else "tail" for i, t in enumerate(ranked)}

    def audit_data_card(self) -> None:
        counts, card = self.train_counts(), (self.root / "data" / "DATA_CARD.md").read_text()
        listed = table_with(card, "topic", "clips")
        self.check("data card: train topics in frequency order (ties by name)", list(listed),
                   sorted(counts, key=lambda t: (-counts[t], t)))
        for topic, row in listed.items():
            self.check(f"data card: clips of {topic}", int(row["clips"]), counts[topic])
        corpus = self._json("data/corpus.json")["splits"]
        for split, row in table_with(card, "split", "clips").items():
            rows = [r for r in self.rows if r["split"] == split]
            self.check(f"data card: {split} clips", int(row["clips"]), len(rows))
            self.check(f"corpus.json: {split} topics", corpus[split]["topics"], dict(Counter(r["topic"] for r in rows)) or {})
            wrong = sum(r.get("aligned") is False for r in rows)
            self.check(f"data card: {split} misaligned", row["misaligned"],
                       f"{wrong} ({100 * wrong / len(rows):.1f}%)" if rows else row["misaligned"])

    # ---- the runs -------------------------------------------------------------------------------------------
    def runs_of(self, method: str, seed: int) -> list[str]:
        return sorted(n for n, s in self.summaries.items()
                      if s["method"] == method and s["seed"] == seed and not SNAPSHOT.search(n))

    def chosen(self) -> dict[str, dict[str, float]]:
        """The knob each searching method keeps: the best validation R-sum on the first seed (ties: the smaller
        value); a method whose knob was set has one run. `mama` takes its parts' choices."""
        first, out = self.cfg["seeds"][0], {}
        needed = set(self.cfg["methods"]) | ({"margin", "meta"} if "mama" in self.cfg["methods"] else set())
        for method, knob in KNOB.items():
            runs = self.runs_of(method, first) if method in needed else []
            if runs:
                best = max(runs, key=lambda n: (self.summaries[n]["best"]["val/rsum"], -self.summaries[n][knob]))
                out[method] = {knob: self.summaries[best][knob]}
        if "mama" in self.cfg["methods"]:
            out["mama"] = {"margin": out["margin"]["margin"], "meta_lr": out["meta"]["meta_lr"]}
        return out

    def ablation(self) -> dict[tuple[str, int], str]:
        """(method, seed) → its ablation run: the run of that method and seed at the chosen knob values."""
        chosen, out = self.chosen(), {}
        for method in self.cfg["methods"]:
            for seed in self.cfg["seeds"]:
                runs = [n for n in self.runs_of(method, seed)
                        if all(self.summaries[n][k] == v for k, v in chosen.get(method, {}).items())]
                assert len(runs) == 1, f"{method} seed {seed}: runs {runs}"
                out[method, seed] = runs[0]
        return out

    def test_metrics(self, name: str) -> dict[str, float]:
        """Every per-run figure, from the run's per-query ranks and the manifest's topics."""
        ranks = self._json(f"logs/{name}/test.json")["ranks"]
        topic = {r["video_id"]: r["topic"] for r in self.rows if r["split"] == "test"}
        groups = self.groups()
        out = {"ranks": ranks}
        for d in ("t2v", "v2t"):
            out |= {f"{d} R@{k}": recall(ranks[d], k) for k in (1, 5, 10)} | {f"{d} MdR": median(ranks[d])}
        by_topic, by_group = defaultdict(list), defaultdict(list)
        for vid, rank in zip(ranks["query_video_ids"], ranks["t2v"]):
            by_topic[topic[vid]].append(rank)
            by_group[groups[topic[vid]]].append(rank)
        out["per topic"] = {t: recall(r, 1) for t, r in by_topic.items()}
        out |= {f"{g} t2v R@1": recall(by_group[g], 1) if by_group[g] else math.nan for g in ("head", "tail")}
        qa = self.root / "logs" / name / "qa.json"
        if qa.exists():
            q = json.loads(qa.read_text())
            out["QA open acc"] = q["open"]["acc"]
            if q["mc"]:
                out["QA MC acc"] = q["mc"]["acc"]
        return out

    def audit_runs(self, runs: dict[tuple[str, int], str]) -> dict[tuple[str, int], dict]:
        """Per run: test.json's own figures and metrics.json's `runs` against the ranks."""
        values = {key: self.test_metrics(name) for key, name in runs.items()}
        for (method, seed), v in values.items():
            test = self._json(f"logs/{runs[method, seed]}/test.json")
            for d in ("t2v", "v2t"):
                for m in ("R@1", "R@5", "R@10", "MdR"):
                    self.check(f"test.json {runs[method, seed]} {d} {m}", test[d][m], v[f"{d} {m}"])
            self.check(f"test.json {runs[method, seed]} per-topic R@1", test["per_topic_t2v_R@1"], v["per topic"])
            for g in ("head", "tail"):
                self.check(f"test.json {runs[method, seed]} {g} R@1", test[f"{g}_t2v_R@1"], v[f"{g} t2v R@1"])
        reported = {(r["method"], r["seed"]): r for r in self.metrics["runs"]}
        self.check("metrics.json runs: which (method, seed)", sorted(reported), sorted(values))
        for key, v in values.items():
            for metric, value in reported.get(key, {}).items():
                if metric in v:
                    self.check(f"metrics.json runs {key} {metric}", value, v[metric])
        return values

    def audit_ablation(self, values: dict[tuple[str, int], dict]) -> None:
        """metrics.json's ablation and the RESULTS.md tables of means ± std."""
        tables = [table_with(self.results, "method", "t2v R@1"), table_with(self.results, "method", "tail t2v R@1")]
        if "QA open acc" in self.results:
            tables.append(table_with(self.results, "method", "QA open acc"))
        for method in self.cfg["methods"]:
            for metric in values[method, self.cfg["seeds"][0]]:
                if metric in ("per topic", "ranks"):
                    continue
                ci = interval([values[method, s][metric] for s in self.cfg["seeds"]])
                for k in ("mean", "std", "lo", "hi", "n"):
                    self.check(f"metrics.json ablation {method} {metric} {k}", self.metrics["ablation"][method][metric][k], ci[k])
                for table in tables:
                    if metric in table.get(method, {}):
                        shown = [float(x) for x in table[method][metric].split(" ± ")]
                        self.check(f"RESULTS.md {method} {metric}", shown, [ci["mean"], ci["std"]][: len(shown)], digits=1)

    def audit_readings(self, values: dict) -> None:
        """Each reading line of RESULTS.md: the method's mean, its paired difference from InfoNCE, the interval of
        that difference and the side it lies on."""
        seeds = self.cfg["seeds"]
        for metric in ("t2v R@1", "v2t R@1", "tail t2v R@1", "QA MC acc", "QA open acc"):
            head = f"Reading of **{metric}** against `infonce`"
            if metric not in values["infonce", seeds[0]]:
                continue
            self.check(f"RESULTS.md reads {metric}", head in self.results, True)
            block = self.results.split(head, 1)[1].split("\n\n", 2)[1]
            for method in self.cfg["methods"]:
                if method == "infonce":
                    continue
                ci = interval(self.paired(values, method, "infonce", metric))
                mean = sum(values[method, s][metric] for s in seeds) / len(seeds)
                if ci["n"] < 2:
                    said = "one seed only, so no interval: treat the difference as unconfirmed"
                else:
                    side = "higher than" if ci["lo"] > 0 else "lower than" if ci["hi"] < 0 else \
                        "not distinguishable at this number of seeds from"
                    said = f"[{ci['lo']:+.1f}, {ci['hi']:+.1f}]: {side} `infonce`"
                line = f"- `{method}`: {mean:.1f} ({ci['mean']:+.1f} points); {said}."
                self.check(f"RESULTS.md reading {metric} {method}", line in block.splitlines(), True)

    def paired(self, values: dict, method: str, base: str, metric: str = "t2v R@1") -> list[float]:
        return [values[method, s][metric] - values[base, s][metric] for s in self.cfg["seeds"]]

    def rarity_slopes(self, values: dict, method: str, per_query) -> list[float]:
        """Per seed: least-squares slope, on −log10 training share, of each topic's mean over its test queries of
        `per_query`(rank under `method`, rank under InfoNCE)."""
        counts = self.train_counts()
        total = sum(counts.values())
        topic = {r["video_id"]: r["topic"] for r in self.rows if r["split"] == "test"}
        out = []
        for s in self.cfg["seeds"]:
            a, b = values[method, s]["ranks"], values["infonce", s]["ranks"]
            gains = defaultdict(list)
            for vid, x, y in zip(a["query_video_ids"], a["t2v"], b["t2v"]):
                gains[topic[vid]].append(per_query(x, y))
            topics = [t for t in gains if t in counts]
            x = np.array([-math.log10(counts[t] / total) for t in topics])
            y = np.array([np.mean(gains[t]) for t in topics])
            out.append(float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()))
        return out

    def samples(self, name: str) -> list[dict]:
        """The second half of a run's per-sample log (steps ≥ half the last logged step)."""
        with open(self.root / "logs" / name / "samples.csv") as f:
            rows = list(csv.DictReader(f))
        last = max(int(r["step"]) for r in rows)
        return [r for r in rows if int(r["step"]) >= last * 0.5]

    def ends_below_peak(self, runs: dict) -> list[float]:
        """Per seed: how far both ends of the weighting MLP's curve (best step, 5th–95th percentile of the second
        half's losses, 101 points) lie below its peak, in percent of the peak."""
        method = "mama" if "mama" in self.cfg["methods"] else "meta"
        out = []
        for s in self.cfg["seeds"]:
            w = load_file(self.root / "checkpoints" / runs[method, s] / "best_weight_net.safetensors")
            losses = np.array([float(r["loss"]) for r in self.samples(runs[method, s])])
            grid = np.linspace(np.quantile(losses, 0.05), np.quantile(losses, 0.95), 101)
            hidden = np.maximum(grid[:, None] @ w["net.0.weight"].T + w["net.0.bias"], 0)
            curve = 1 / (1 + np.exp(-(hidden @ w["net.2.weight"].T + w["net.2.bias"])[:, 0]))
            out.append(100 * min(curve.max() - curve[0], curve.max() - curve[-1]) / curve.max())
        return out

    def audit_claims(self, values: dict, runs: dict) -> None:
        have = set(self.cfg["methods"])
        parts = [m for m in ("margin", "meta", "vlm") if m in have]
        per_seed = {}
        if {"margin", "infonce"} <= have:
            per_seed["C1"] = self.paired(values, "margin", "infonce")
        if {"meta", "infonce"} <= have:
            per_seed["C2"] = self.rarity_slopes(values, "meta", recall_1)
            per_seed["C2b"] = self.rarity_slopes(values, "meta", log_rank_gain)
            if "vlm" in have:
                per_seed["C2c"] = self.rarity_slopes(values, "vlm", log_rank_gain)
        if {"vlm", "infonce"} <= have:
            per_seed["C3"] = self.paired(values, "vlm", "infonce")
        if {"meta", "mama"} & have:
            per_seed["C4"] = self.ends_below_peak(runs)
        if "mama" in have and parts:
            per_seed["C5"] = [values["mama", s]["t2v R@1"] - max(values[m, s]["t2v R@1"] for m in parts)
                              for s in self.cfg["seeds"]]
        reported = {c["claim"].split()[0]: c for c in self.metrics["claims"]}
        table = {k.split()[0]: v for k, v in table_with(self.results, "claim", "verdict").items()}
        self.check("claims reported", sorted(reported), sorted(per_seed))
        for claim, xs in per_seed.items():
            ci = interval(xs)
            expected = {"effect": ci["mean"], "lo": ci["lo"], "hi": ci["hi"], "± (95%)": (ci["hi"] - ci["lo"]) / 2,
                        "seeds": ci["n"], "seeds for ±1": seeds_for_half_width(ci["std"], 1.0),
                        "seeds for its sign": seeds_for_half_width(ci["std"], abs(ci["mean"])) if ci["mean"] else None,
                        "verdict": verdict(ci)}
            for k, v in expected.items():
                # C4 evaluates the MLP: float32 in the kit, float64 here.
                self.check(f"metrics.json {claim} {k}", reported[claim][k], v, rel=1e-5 if claim == "C4" else 1e-9)
                cell = table[claim][k]
                self.check(f"RESULTS.md {claim} {k}", cell if isinstance(v, str) else float(cell or "nan"), v, digits=2)

    def audit_sweep(self) -> None:
        if "margin" not in self.cfg["methods"]:
            self.check("RESULTS.md has no margin sweep without the margin method", "## Margin sweep" in self.results, False)
            return
        first, shown = self.cfg["seeds"][0], table_with(self.results, "margin", "tail t2v R@1")
        for m in self.cfg["margin_sweep"]:
            name = f"infonce_s{first}" if m == 0 else f"margin_s{first}_m{m:g}"
            v = self.test_metrics(name)
            row = next(r for r in self.metrics["margin_sweep"] if r["margin"] == m)
            for metric in ("t2v R@1", "v2t R@1", "t2v R@5", "head t2v R@1", "tail t2v R@1"):
                self.check(f"metrics.json sweep m={m:g} {metric}", row[metric], v[metric])
                self.check(f"RESULTS.md sweep m={m:g} {metric}", float(shown[f"{m:g}"][metric]), v[metric], digits=2)

    def audit_training(self, runs: dict) -> None:
        """The training table (means over seeds, runs at plateau) and the tuning table, from the summaries."""
        shown = table_with(self.results, "method", "runs at plateau")
        for method in self.cfg["methods"]:
            ss = [self.summaries[runs[method, s]] for s in self.cfg["seeds"]]
            mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
            self.check(f"RESULTS.md {method} selected step", float(shown[method]["selected step"]),
                       mean([s["best"]["step"] for s in ss]), digits=0)
            self.check(f"RESULTS.md {method} last step", float(shown[method]["last step"]),
                       mean([s["last_step"] for s in ss]), digits=0)
            self.check(f"RESULTS.md {method} val rsum", float(shown[method]["val rsum"]),
                       mean([s["best"]["val/rsum"] for s in ss]), digits=1)
            self.check(f"RESULTS.md {method} runs at plateau", shown[method]["runs at plateau"],
                       f"{sum(bool(s['plateau']) for s in ss)}/{len(ss)}")
        stalled = [(runs[m, s], self.summaries[runs[m, s]]["best"]["step"]) for m in self.cfg["methods"]
                   for s in self.cfg["seeds"] if self.summaries[runs[m, s]]["best"]["step"] <= self.cfg["eval_every"]]
        listed = re.findall(r"^- `([^`]+)`: best validation at step (\d+), its first; test t2v R@1 ([\d.]+)\.$",
                            self.results, flags=re.M)
        self.check("RESULTS.md runs that never improved", sorted((n, int(b)) for n, b, _ in listed), sorted(stalled))
        for name, _, r1 in listed:
            self.check(f"RESULTS.md stalled {name} t2v R@1", float(r1), self.test_metrics(name)["t2v R@1"], digits=1)
        chosen = self.chosen()
        tuned = [m for m in KNOB if KNOB[m] in self.cfg["tuned"] and m in chosen]
        if tuned and "| knob" in self.results:
            rows = [r for h, rs in md_tables(self.results) if h[:2] == ["method", "knob"] for r in rs]
            expected = sorted((m, KNOB[m], float(self.summaries[n][KNOB[m]]), round(self.summaries[n]["best"]["val/rsum"], 1),
                               self.summaries[n]["best"]["step"], self.summaries[n][KNOB[m]] == chosen[m][KNOB[m]])
                              for m in tuned for n in self.runs_of(m, self.cfg["seeds"][0]))
            self.check("RESULTS.md tuning table", sorted((r[0], r[1], float(r[2]), float(r[3]), int(r[4]), r[5] == "True")
                                                         for r in rows), expected)

    def audit_weighting(self, runs: dict) -> None:
        """The learned weights per kind of pair and the head/tail loss control, from the per-sample logs."""
        groups = self.groups()
        if "tail − head" not in self.results:
            return
        control = table_with(self.results, "method", "tail − head")
        weights = table_with(self.results, "run", "head topics")
        for method in self.cfg["methods"]:
            per_seed = defaultdict(list)
            for s in self.cfg["seeds"]:
                rows = self.samples(runs[method, s])
                for g in ("head", "tail"):
                    per_seed[g].append(np.mean([float(r["loss"]) for r in rows if groups[r["topic"]] == g]))
                if method in ("meta", "mama"):
                    shown = weights[runs[method, s]]
                    for g in ("head", "tail"):
                        mean = np.mean([float(r["weight"]) for r in rows if groups[r["topic"]] == g])
                        self.check(f"RESULTS.md weights {runs[method, s]} {g}", float(shown[f"{g} topics"]), mean, digits=2)
                    for source in ("original", "vlm"):
                        for aligned, kind in (("True", "clean"), ("False", "misaligned")):
                            part = [float(r["weight"]) for r in rows if r["source"] == source and r["aligned"] == aligned]
                            if part:
                                self.check(f"RESULTS.md weights {runs[method, s]} {source}/{kind}",
                                           float(shown[f"{source}/{kind}"]), np.mean(part), digits=2)
            head, tail = np.mean(per_seed["head"]), np.mean(per_seed["tail"])
            self.check(f"RESULTS.md loss control {method} head", float(control[method]["head loss"]), head, digits=3)
            self.check(f"RESULTS.md loss control {method} tail", float(control[method]["tail loss"]), tail, digits=3)
            self.check(f"RESULTS.md loss control {method} tail − head", float(control[method]["tail − head"]),
                       tail - head, digits=3)

    def caption_score(self, folder: Path) -> dict[str, float]:
        """Percent of a caption folder's training captions stating each attribute right (and all four)."""
        truth = {r["video_id"]: r["attributes"] for r in self.rows if r["split"] == "train"}
        said = [(json.loads(line), None) for p in sorted(folder.glob("captions*.jsonl")) for line in p.read_text().splitlines() if line]
        parsed = [(parse_attributes(c["caption"]), truth[c["video_id"]]) for c, _ in said if c["video_id"] in truth]
        out = {a: 100 * sum(p[a] == t[a] for p, t in parsed) / len(parsed) for a in ATTRS}
        return out | {"all": 100 * sum(all(p[a] == t[a] for a in ATTRS) for p, t in parsed) / len(parsed), "n": len(parsed)}

    def audit_captions(self, values: dict) -> None:
        """The captioner's accuracy table and the dose-response (accuracy and paired gain per snapshot)."""
        final = self.caption_score(self.root / "data")
        shown = table_with(self.results, "captions", "all")
        row = shown[f"VLM, {final['n']} {self.cfg['dataset']} training videos"]
        for a in ("all", *ATTRS):
            self.check(f"RESULTS.md captioner {a}", float(row[a]), final[a], digits=1)
        steps = [k for k in self.cfg["dose_captioner_steps"] if 0 < k < self.cfg["captioner_steps"]]
        if not steps:
            return
        dose = table_with(self.results, "captioner steps", "gain")
        reported = {r["captioner steps"]: r for r in self.metrics["dose_response"]}
        for k in [*steps, self.cfg["captioner_steps"]]:
            score = final if k == self.cfg["captioner_steps"] else self.caption_score(self.root / "data" / "dose" / f"step{k}")
            gains = [(values["vlm", s]["t2v R@1"] if k == self.cfg["captioner_steps"]
                      else self.test_metrics(f"vlm_s{s}_c{k}")["t2v R@1"]) - values["infonce", s]["t2v R@1"]
                     for s in self.cfg["seeds"]]
            ci = interval(gains)
            expected = {"captions all right (%)": score["all"], **{f"{a} (%)": score[a] for a in ATTRS},
                        "gain": ci["mean"], "lo": ci["lo"], "hi": ci["hi"], "seeds": ci["n"]}
            for key, v in expected.items():
                self.check(f"metrics.json dose {k} {key}", reported[k][key], v)
                self.check(f"RESULTS.md dose {k} {key}", float(dose[str(k)][key]), v, digits=2)

    def audit_draws(self) -> None:
        """The captioner-draw table: each captioner's paired vlm − infonce gain on the training seeds all draws
        share, from each run folder's own ranks, and the spread across captioners stated in its caption."""
        if "captioner_draws" not in self.metrics:
            return
        rows = self.metrics["captioner_draws"]
        audits = [self if r["run"] == self.root.name else Audit(self.root.parent / r["run"]) for r in rows]
        seeds = sorted(set.intersection(*(set(a.cfg["seeds"]) for a in audits)))
        gains = []
        for row, audit in zip(rows, audits):
            runs = audit.ablation()
            ci = interval([audit.test_metrics(runs["vlm", s])["t2v R@1"] - audit.test_metrics(runs["infonce", s])["t2v R@1"]
                           for s in seeds])
            gains.append(ci["mean"])
            for k, v in {"gain": ci["mean"], "lo": ci["lo"], "hi": ci["hi"]}.items():
                self.check(f"metrics.json captioner draw {row['run']} {k}", row[k], v)
            self.check(f"metrics.json captioner draw {row['run']} seeds", row["seeds"], len(seeds))
        spread = interval(gains)["std"]
        self.check("RESULTS.md captioner draws spread", f"standard deviation is {spread:.2f} points" in self.results, True)

    def audit_ceiling(self) -> None:
        """The oracle's expected R@k: a caption consistent with n test clips (what it states, and the colour
        change) finds its own at rank ≤ k with probability min(1, k/n)."""
        test = [r for r in self.rows if r["split"] == "test"]
        clips = list({r["video_id"]: r["attributes"] for r in test}.values())
        n = []
        for r in test:
            said = parse_attributes(r["caption"])
            n.append(sum(all(said[a] is None or said[a] == c[a] for a in ATTRS)
                         and c.get("change_to") == r["attributes"].get("change_to") for c in clips))
        expected = {f"R@{k}": 100 * sum(min(1.0, k / x) for x in n) / len(n) for k in (1, 5, 10)}
        expected |= {"clips": len(clips), "distinct attribute sets": len({json.dumps(c, sort_keys=True) for c in clips})}
        for key, v in expected.items():
            self.check(f"metrics.json ceiling {key}", self.metrics["t2v_ceiling"][key], v)
        self.check("RESULTS.md ceiling", f"R@1 {expected['R@1']:.1f}, R@5 {expected['R@5']:.1f}, R@10 {expected['R@10']:.1f}"
                   in self.results, True)

    def run(self) -> list[tuple[str, object, object, bool]]:
        self.audit_data_card()
        runs = self.ablation()
        values = self.audit_runs(runs)
        self.audit_ablation(values)
        self.audit_readings(values)
        self.audit_claims(values, runs)
        self.audit_sweep()
        self.audit_training(runs)
        self.audit_weighting(runs)
        self.audit_captions(values)
        self.audit_draws()
        self.audit_ceiling()
        return self.checks


def main(root: str) -> int:
    checks = Audit(root).run()
    wrong = [c for c in checks if not c[3]]
    for what, reported, recomputed, ok in checks:
        if not ok:
            print(f"MISMATCH {what}: reported {reported!r}, recomputed {recomputed!r}")
    print(f"{len(checks) - len(wrong)} of {len(checks)} reported numbers agree with the recomputation")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
