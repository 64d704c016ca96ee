"""Tables rendered from fixed inputs, and the ablation's reading computed from the numbers."""
import pandas as pd
import pytest

from mamc.report.tables import aggregate, paper_table, reading, wide, write_table


@pytest.fixture
def results():
    return pd.DataFrame({"method": ["infonce"] * 3 + ["mama"] * 3, "seed": [0, 1, 2] * 2,
                         "t2v R@1": [10.0, 11.0, 12.0, 20.0, 21.0, 22.0], "v2t R@1": [5.0, 5.0, 5.0, 5.0, 6.0, 7.0]})


def test_aggregate_and_wide(results):
    agg = aggregate(results)
    row = agg[(agg.method == "mama") & (agg.metric == "t2v R@1")].iloc[0]
    assert row["mean"] == 21.0 and row["std"] == 1.0 and row["n"] == 3
    table = wide(agg, ["t2v R@1", "v2t R@1"])
    assert table.loc["infonce", "t2v R@1"] == "11.0 ± 1.0" and table.loc["mama", "v2t R@1"] == "6.0 ± 1.0"


def test_write_table_in_three_formats(results, tmp_path):
    paths = write_table(wide(aggregate(results), ["t2v R@1"]), tmp_path, "abl", "Caption.")
    csv, md, tex = (p.read_text() for p in paths)
    assert "mama" in csv and "| mama" in md and md.startswith("Caption.")
    assert "\\toprule" in tex and "\\bottomrule" in tex and "$\\pm$" in tex and "\\label{tab:abl}" in tex


def test_tables_read_like_a_papers(results, tmp_path):
    """The index becomes named columns: no tuple-valued row labels, a header cell for every column."""
    long = aggregate(results).set_index(["method", "metric"])[["mean", "std"]]
    md = write_table(long, tmp_path, "ci", "Caption.")[1].read_text().splitlines()
    assert md[2].split("|")[1:4] == [" method   ", " metric   ", "   mean "] and "('" not in "".join(md)


def _metrics(results):
    agg = aggregate(results)
    return {"seeds": sorted(set(results["seed"])), "runs": results.to_dict(orient="records"),
            "ablation": {m: {r["metric"]: dict(r) for _, r in g.iterrows()} for m, g in agg.groupby("method")}}


def test_reading_pairs_by_seed(results):
    """Seed-to-seed spread shared by both methods cancels: intervals of the means overlap, the paired difference
    does not reach zero."""
    shifted = results.assign(**{"t2v R@1": [10.0, 14.0, 18.0, 11.0, 15.5, 19.0]})
    assert "`mama`: 15.2 (+1.2 points); [+0.4, +1.9]: higher than `infonce`." in reading(_metrics(shifted))
    assert "`mama`: 6.0 (+1.0 points); [-1.5, +3.5]: not distinguishable at this number of seeds from `infonce`." in \
        reading(_metrics(results), "v2t R@1")
    lower = results.assign(method=["mama"] * 3 + ["infonce"] * 3)
    assert "`mama`: 11.0 (-10.0 points); [-10.0, -10.0]: lower than `infonce`." in reading(_metrics(lower))
    assert "one seed only" in reading(_metrics(results[results["seed"] == 0]))


def test_paper_numbers_ship_with_their_source():
    table = paper_table({"MSR-VTT": 31.5})
    assert table.loc["MSRVTT-QA", "mama"] == 46.4 and table.loc["ActivityNet", "previous_best"] == 55.7
    assert table.loc["MSR-VTT", "mamc (paper profile)"] == 31.5 and pd.isna(table.loc["DiDeMo", "mamc (paper profile)"])
    assert table[["mama", "previous_best"]].notna().all().all() and (table["mama"] > table["previous_best"]).all()


def test_only_paper_profile_runs_fill_the_kit_column():
    from mamc.report.tables import paper_column

    paper = {"profile": "paper", "dataset": "MSR-VTT", "qa_dataset": "MSRVTT-QA",
             "ablation": {"mama": {"t2v R@1": {"mean": 44.44}, "QA open acc": {"mean": 40.0}}}}
    assert paper_column(paper) == {"MSR-VTT": 44.4, "MSRVTT-QA": 40.0}
    assert paper_column(dict(paper, ablation={"mama": {"t2v R@1": {"mean": 44.44}}})) == {"MSR-VTT": 44.4}
    assert paper_column(dict(paper, profile="default")) == {}
