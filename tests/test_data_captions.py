"""Noun extraction on real-looking captions, the data-free fallback, CaptionTransform rows."""

import random

import pytest
import torch

from groupvit.data import captions
from groupvit.data.captions import CaptionTransform, extract_nouns, extract_words
from groupvit.templates import IMAGENET_TEMPLATES
from groupvit.tokenizer import Tokenizer

REAL_CAPTIONS = {
    "A man riding a horse on the beach at sunset": {"man", "horse", "beach", "sunset"},
    "Two dogs playing with a frisbee in the park.": {"dogs", "frisbee", "park"},
    "a plate of pasta with tomatoes and basil on a wooden table": {"plate", "pasta", "tomatoes", "table"},
    "Aerial view of the city skyline at night, New York": {"view", "city", "skyline", "night", "york"},
    "young woman holding an umbrella while walking down a rainy street": {"woman", "umbrella", "street"},
    "Close up of a red apple isolated on white background": {"apple", "background"},
}


@pytest.fixture
def tokenizer() -> Tokenizer:
    return Tokenizer(context_length=77)


@pytest.fixture
def fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(captions, "nltk_backend", lambda: "fallback")


@pytest.mark.nltk_data
def test_uses_nltk_with_shared_data() -> None:
    # tests/conftest.py points NLTK_DATA at ../shared/nltk_data
    assert captions.nltk_backend() == "nltk"


@pytest.mark.nltk_data
@pytest.mark.parametrize("caption", list(REAL_CAPTIONS))
def test_extract_nouns_real_captions(caption: str) -> None:
    words = extract_nouns(caption)
    assert REAL_CAPTIONS[caption] <= set(words), words
    assert not {"a", "the", "on", "of", "with", "an", "at", "is"} & set(words)


def test_nouns_before_verbs_and_k() -> None:
    nouns, verbs = extract_words("A man riding a horse on the beach at sunset")
    assert nouns == ["man", "horse", "beach", "sunset"]
    assert verbs == ["riding"]
    assert extract_nouns("A man riding a horse on the beach at sunset", k=2) == ["man", "horse"]
    # auxiliaries are dropped even though they are tagged VB*
    assert "is" not in extract_words("The cat is sleeping on a sofa")[1]
    assert extract_nouns("") == [] and extract_nouns("   ") == []


def test_fallback_extractor(fallback: None) -> None:
    words = extract_nouns("A man riding a horse on the beach at sunset")
    assert words[:4] == ["man", "horse", "beach", "sunset"] and "riding" in words
    words = extract_nouns("Two dogs playing with a frisbee in the park.")
    assert {"dogs", "frisbee", "park"} <= set(words)
    assert not {"two", "with", "the", "in"} & set(words)


def test_missing_nltk_data_tries_download_then_warns(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import nltk

    calls = []

    def no_network(name, **kwargs):
        calls.append(name)
        raise OSError("no network")

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    monkeypatch.setattr(nltk, "download", no_network)
    captions.nltk_backend.cache_clear()
    try:
        with pytest.warns(UserWarning, match="noun prompts now come from a data-free heuristic"):
            assert captions.nltk_backend() == "fallback"
        assert sorted(calls) == ["averaged_perceptron_tagger_eng", "punkt_tab"]
        assert captions.nltk_backend() == "fallback" and len(calls) == 2  # resolved once per process
        assert {"horse", "beach"} <= set(extract_nouns("A man riding a horse on the beach"))
    finally:
        captions.nltk_backend.cache_clear()


def test_caption_transform_rows(tokenizer: Tokenizer) -> None:
    transform = CaptionTransform(tokenizer, num_prompts=3, rng=random.Random(0))
    caption = "A man riding a horse on the beach at sunset"
    texts = transform.texts(caption)
    assert texts[0] == caption and len(texts) == 4
    # three distinct nouns (nouns preferred over the verb), each in an ImageNet template
    candidates = {t.format(w): w for t in IMAGENET_TEMPLATES for w in ("man", "horse", "beach", "sunset")}
    used = [candidates[prompt] for prompt in texts[1:]]
    assert len(set(used)) == 3
    tokens = transform(caption)
    assert tokens.shape == (4, 77) and tokens.dtype == torch.long
    assert torch.equal(tokens[0], tokenizer([caption])[0])


def test_caption_fills_missing_prompts(tokenizer: Tokenizer) -> None:
    transform = CaptionTransform(tokenizer, num_prompts=3, rng=random.Random(0))
    texts = transform.texts("a sunset")
    assert texts[0] == "a sunset" and texts[2:] == ["a sunset", "a sunset"]
    assert "sunset" in texts[1] and texts[1] != "a sunset"
    assert transform.texts("of the and")[1:] == ["of the and"] * 3
    assert CaptionTransform(tokenizer, num_prompts=0)("a dog").shape == (1, 77)


def test_caption_transform_uses_verbs_only_when_short(tokenizer: Tokenizer) -> None:
    transform = CaptionTransform(tokenizer, num_prompts=3, templates=["{}"], rng=random.Random(1))
    assert sorted(transform.texts("A man riding a horse")[1:]) == ["horse", "man", "riding"]
    for seed in range(5):
        transform.rng = random.Random(seed)
        assert "riding" not in transform.texts("A man riding a horse on the beach")[1:]
