"""The data card lists topics by training frequency, ties by name, whatever order the rows came in."""
from mamc.config import load_config
from mamc.data.card import by_frequency, dataset_card


def test_ties_are_broken_by_name_not_by_arrival():
    assert by_frequency({"white triangle": 22, "purple cross": 22, "blue": 30, "aa": 1}) == \
        ["blue", "purple cross", "white triangle", "aa"]


def test_the_card_table_follows_that_order(tmp_path):
    rows = [{"video_id": f"v{i}", "split": "train", "topic": t, "caption": "c", "video": "x.mp4"}
            for i, t in enumerate(["zebra", "zebra", "apple", "apple", "mango", "mango", "mango"])]
    card = dataset_card(rows, load_config("smoke", run_dir=str(tmp_path)), tmp_path / "manifest.jsonl")
    listed = [line.split("|")[1].strip() for line in card.split("## Training concepts")[1].splitlines() if line.count("|") == 3]
    assert listed[2:] == ["mango", "apple", "zebra"]
