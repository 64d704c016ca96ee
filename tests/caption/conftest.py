"""Fixtures of the caption tests."""
import pytest

from mamc.caption.tiny import build_captioner


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """An untrained tiny LLaVA saved with save_pretrained (fast; the notebook trains the real embedded one)."""
    path = tmp_path_factory.mktemp("tiny_llava")
    processor, model = build_captioner(["a red ball moves to the left.", "In a sentence, describe the process in the video."], 32)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
