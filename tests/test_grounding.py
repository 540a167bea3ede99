"""Phrase grounding: phrases and spans, masks on hand-built groups, the class-list path, the metric."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import groupvit
from groupvit import phrases as phrases_module
from groupvit.config import GroupViTConfig
from groupvit.data import synthetic
from groupvit.errors import InputError
from groupvit.grounding import PhraseGrounder
from groupvit.grounding_metric import match_phrase, phrase_iou, read_grounding_jsonl
from groupvit.models.groupvit import SegmentationFeatures
from groupvit.phrases import class_list_prompt, parse_prompt
from groupvit.preprocess import EvalTransform

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "groupvit_tiny_synthetic.pth"

needs_tagger = pytest.mark.skipif(
    not phrases_module._has_tagger(),
    reason="NLTK data averaged_perceptron_tagger_eng not found: run "
    "`python -m nltk.downloader averaged_perceptron_tagger_eng` or set NLTK_DATA",
)


def _texts(prompt: str) -> list[tuple[str, tuple[int, int], str]]:
    return [(p.text, p.span, p.query) for p in parse_prompt(prompt)]


@needs_tagger
def test_noun_phrases_of_a_caption_with_their_spans() -> None:
    caption = "A dog chasing two small red balls on the grass."
    assert _texts(caption) == [
        ("A dog", (0, 5), "dog"),
        ("two small red balls", (14, 33), "small red balls"),
        ("the grass", (37, 46), "grass"),
    ]
    for text, (start, end), _ in _texts(caption):
        assert caption[start:end] == text


def test_fallback_chunks_without_the_tagger(monkeypatch) -> None:
    monkeypatch.setattr(phrases_module, "_has_tagger", lambda: False)
    assert _texts("a dog chasing the red ball, on a wooden table") == [
        ("a dog", (0, 5), "dog"),
        ("the red ball", (14, 26), "red ball"),
        ("a wooden table", (31, 45), "wooden table"),
    ]


def test_class_list_prompts_keep_their_items() -> None:
    assert _texts("cat. teddy bear.  grass.") == [
        ("cat", (0, 3), "cat"),
        ("teddy bear", (5, 15), "teddy bear"),
        ("grass", (18, 23), "grass"),
    ]
    assert class_list_prompt(["cat", " teddy  bear"]) == "cat. teddy bear."
    with pytest.raises(InputError, match="at most 4 words"):
        class_list_prompt(["a very long class name here"])


def test_bad_prompts() -> None:
    for empty in ("", "   "):
        with pytest.raises(InputError, match="the caption is empty"):
            parse_prompt(empty)
    assert parse_prompt("and then, so on!") == []  # no noun phrase: nothing to ground, no error


# --------------------------------------------------------------------------- hand-built groups

WORDS = ["red ball", "green tree", "blue car", "ball"]
DIRECTIONS = {  # unit directions of the text embeddings; the groups point along the first two
    "red ball": [1.0, 0.0, 0.0],
    "ball": [0.96, 0.28, 0.0],
    "green tree": [0.0, 1.0, 0.0],
    "blue car": [0.0, 0.0, 1.0],
}


class _HandBuiltModel(nn.Module):
    """Image 4 x 8 pixels, patch grid 2 x 4: groups own columns of patches (given per test)."""

    def __init__(self, group_of_column: list[int], group_dirs: list[list[float]]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.config = GroupViTConfig()
        self.columns, self.dirs = group_of_column, torch.tensor(group_dirs, dtype=torch.float32)
        self.has_fusion = False  # late fusion: the grounder never passes the caption's tokens

    def forward_segmentation(
        self, images: torch.Tensor, text: torch.Tensor | None = None
    ) -> SegmentationFeatures:
        num_groups = len(self.dirs)
        assign = torch.zeros(1, num_groups, 2, 4)
        for column, group in enumerate(self.columns):
            assign[0, group, :, column] = 1.0
        return SegmentationFeatures(
            assignments=(assign.flatten(2),),
            group_embeds=self.dirs[None],
            image_embeds=self.dirs.mean(0, keepdim=True),
            grid_size=(2, 4),
        )

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        return torch.tensor([DIRECTIONS[WORDS[i]] for i in tokens[:, 0].tolist()])

    def logit_scale_value(self) -> torch.Tensor:
        return torch.tensor(100.0)


def _tokenizer(texts: list[str]) -> torch.Tensor:
    return torch.tensor([[WORDS.index(text)] for text in texts])


def _ground(model: nn.Module, caption: str, **kwargs):
    grounder = PhraseGrounder(model.eval(), tokenizer=_tokenizer, templates=["{}"], **kwargs)
    return grounder.ground(torch.zeros(3, 4, 8), caption)


def test_masks_follow_the_groups_and_all_instances_share_a_phrase(monkeypatch) -> None:
    monkeypatch.setattr(phrases_module, "_has_tagger", lambda: False)
    # columns 0 and 3: two ball groups; column 1: the tree; column 2: a group like no phrase
    model = _HandBuiltModel([0, 1, 2, 3], [[1, 0, 0], [0, 1, 0], [-0.6, -0.8, 0], [1, 0, 0]])
    result = _ground(model, "a red ball and a green tree with a blue car", bg_thresh=0.5, min_similarity=0.3)
    assert [(p.text, p.span) for p in result.phrases] == [
        ("a red ball", (0, 10)),
        ("a green tree", (15, 27)),
        ("a blue car", (33, 43)),
    ]
    ball, tree, car = result.phrases
    column = torch.arange(8)[None].expand(4, 8) // 2  # pixel -> patch column
    assert torch.equal(ball.mask, (column == 0) | (column == 3))  # both balls
    assert torch.equal(tree.mask, column == 1)
    assert not car.mask.any() and 0.0 <= car.score < 0.01  # unclaimed: an empty mask and a score
    assert ball.score > 0.99 and tree.score > 0.99
    expected = torch.zeros(4, 8, dtype=torch.long)
    expected[column == 0] = expected[column == 3] = 1
    expected[column == 1] = 2  # column 2 (cosine -0.6 / -0.8 with everything) is background
    assert torch.equal(result.labels, expected)


def test_without_the_similarity_gate_every_group_takes_a_phrase(monkeypatch) -> None:
    monkeypatch.setattr(phrases_module, "_has_tagger", lambda: False)
    model = _HandBuiltModel([0, 1, 2, 3], [[1, 0, 0], [0, 1, 0], [-0.6, -0.8, 0], [1, 0, 0]])
    result = _ground(model, "a red ball and a green tree with a blue car", bg_thresh=0.5, min_similarity=-1.0)
    assert result.labels[:, 4:6].eq(3).all()  # the softmax over three phrases picks the car


def test_phrases_with_the_same_words_share_mask_and_score(monkeypatch) -> None:
    monkeypatch.setattr(phrases_module, "_has_tagger", lambda: False)
    model = _HandBuiltModel([0, 0, 1, 1], [[1, 0, 0], [0, 1, 0]])
    result = _ground(model, "a ball near the ball under a green tree", bg_thresh=0.5)
    first, second, tree = result.phrases
    assert torch.equal(first.mask, second.mask) and first.score == second.score
    assert first.mask[:, :4].all() and not first.mask[:, 4:].any()
    assert set(result.labels.unique().tolist()) == {1, 3}  # the first of the two, and the tree


def test_no_noun_phrase_gives_an_all_background_map(monkeypatch) -> None:
    model = _HandBuiltModel([0, 0, 1, 1], [[1, 0, 0], [0, 1, 0]])
    result = _ground(model, "and then, so on!")
    assert result.phrases == [] and torch.equal(result.labels, torch.zeros(4, 8, dtype=torch.long))


# --------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return groupvit.create_model("groupvit_tiny").eval()


@pytest.fixture(scope="module")
def synthetic_model() -> nn.Module:
    return groupvit.create_model("groupvit_tiny_synthetic", checkpoint=SHIPPED).eval()


def test_class_list_prompt_gives_the_zero_shot_labels(synthetic_model: nn.Module) -> None:
    names = list(synthetic.CATEGORIES)
    segmenter = groupvit.ZeroShotSegmenter(synthetic_model, names, bg_thresh=0.95, mode="whole")
    grounder = PhraseGrounder(synthetic_model, bg_thresh=0.95, min_similarity=-1.0)  # the protocol exactly
    transform = EvalTransform(160)
    for index in range(3):
        image, _, _ = synthetic.render_scene(np.random.default_rng([7, index]), 64)
        pixels = transform(image)
        expected = segmenter.predict(pixels[None]).labels[0]
        result = grounder.ground(pixels, class_list_prompt(names))
        assert [p.text for p in result.phrases] == names
        assert torch.equal(result.labels, expected)
        assert len(expected.unique()) >= 2  # background and at least one object: the test can fail


def test_image_inputs_give_labels_at_the_image_size(tiny_model: nn.Module, tmp_path) -> None:
    array = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "x.png")
    grounder = PhraseGrounder(tiny_model)
    by_path = grounder.ground(tmp_path / "x.png", "a cat on a mat")
    by_array = grounder.ground(array, "a cat on a mat")
    by_pil = grounder.ground(Image.fromarray(array), "a cat on a mat")
    assert by_path.labels.shape == (50, 70) and by_path.phrases[0].mask.shape == (50, 70)
    assert torch.equal(by_path.labels, by_array.labels) and torch.equal(by_path.labels, by_pil.labels)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match="cannot read image .*bad.png"):
        grounder.ground(tmp_path / "bad.png", "a cat")
    with pytest.raises(InputError, match="NaN"):
        grounder.ground(torch.full((3, 8, 8), float("nan")), "a cat")


# --------------------------------------------------------------------------- metric


def test_metric_pieces() -> None:
    assert match_phrase((10, 19), [(0, 5), (8, 19), (20, 30)]) == 1
    assert match_phrase((10, 19), [(0, 5), (20, 30)]) is None
    labels = np.array([[0, 3, 3], [255, 3, 1]])
    mask = np.array([[True, True, False], [True, True, False]])
    assert phrase_iou(mask, labels, 3) == pytest.approx(2 / 4)  # the 255 pixel does not count


def test_grounding_jsonl_errors(tmp_path) -> None:
    with pytest.raises(InputError, match="grounding file not found"):
        read_grounding_jsonl(tmp_path / "none.jsonl")
    (tmp_path / "g.jsonl").write_text('{"image": "img_dir/val/0.png", "caption": "a"}\n')
    with pytest.raises(InputError, match="g.jsonl:1: expected"):
        read_grounding_jsonl(tmp_path / "g.jsonl")
    (tmp_path / "g.jsonl").write_text(
        '{"image": "img_dir/val/0.png", "caption": "a cat", "phrases": [{"span": [2, 5], "label": 3}]}\n'
    )
    (record,) = read_grounding_jsonl(tmp_path / "g.jsonl")
    assert record.label_map == tmp_path / "ann_dir" / "val" / "0.png" and record.phrases == (((2, 5), 3),)


# --------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def val_scenes(tmp_path_factory) -> Path:
    """Four synthetic val scenes with grounding.jsonl, as tools/make_synthetic_data.py writes them."""
    root = tmp_path_factory.mktemp("scenes")
    tool = Path(__file__).resolve().parents[1] / "tools" / "make_synthetic_data.py"
    argv = [sys.executable, str(tool), "--out", str(root), "--num-train", "0", "--num-val", "4"]
    subprocess.run(argv, check=True, capture_output=True)
    return root / "val"


def test_ground_cli_writes_picture_masks_and_json(val_scenes: Path, tmp_path: Path, capsys) -> None:
    from groupvit.cli import ground

    image = val_scenes / "img_dir" / "val" / "000001.png"
    caption = "A drawing of a flower, a car and a golden star in front of a blanket."
    out = tmp_path / "out"
    assert (
        ground.main([str(image), "--caption", caption, "--checkpoint", str(SHIPPED), "--out", str(out)]) == 0
    )
    record = json.loads((out / "000001.json").read_text())
    assert record["caption"] == caption
    objects = {"a flower", "a car", "a golden star"}  # among the distractors ("A drawing", "a blanket")
    assert [p["text"] for p in record["phrases"] if p["text"] in objects] == [
        "a flower",
        "a car",
        "a golden star",
    ]
    for phrase in record["phrases"]:
        assert caption[slice(*phrase["span"])] == phrase["text"]
        mask = np.asarray(Image.open(out / phrase["mask"])) > 0
        assert mask.shape == (64, 64) and mask.mean() == pytest.approx(phrase["pixel_share"], abs=1e-4)
    picture = Image.open(out / "000001_grounding.png")
    assert picture.width == 384 and picture.height > 384  # 64 px upscaled 6x, the caption below
    assert "PhraseGrounder(" in capsys.readouterr().err


def test_ground_cli_bad_inputs(val_scenes: Path, tmp_path: Path, capsys) -> None:
    from groupvit.cli import ground

    good = val_scenes / "img_dir" / "val" / "000000.png"
    (tmp_path / "bad.png").write_bytes(b"not an image")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        json.dumps({"image": str(good), "caption": "two trees"}) + "\n"
        + json.dumps({"image": "bad.png", "caption": "a tree"}) + "\n"
        + json.dumps({"image": str(good), "caption": "  "}) + "\n"
        + json.dumps({"image": str(good), "caption": "and then, so on"}) + "\n"
    )  # fmt: skip
    out = tmp_path / "out"
    assert ground.main(["--captions", str(pairs), "--checkpoint", str(SHIPPED), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "skipping " + str(tmp_path / "bad.png") + ": cannot read image" in err
    assert "skipping " + str(good) + ": the caption is empty" in err
    assert "the caption 'and then, so on' has no noun phrase: nothing grounded" in err
    assert "grounded 2 image(s), skipped 2" in err
    pairs.write_text('{"image": "x.png"}\n')
    assert ground.main(["--captions", str(pairs), "--checkpoint", str(SHIPPED)]) == 2
    assert capsys.readouterr().err.strip() == (
        f'groupvit-ground: error: {pairs}:1: expected {{"image": ..., "caption": ...}}, got \'{{"image": "x.png"}}\''
    )
    with pytest.raises(SystemExit):
        ground.main([str(good), "--checkpoint", str(SHIPPED)])  # neither --caption nor --captions
    assert "give either --caption" in capsys.readouterr().err


def test_eval_grounding_on_shipped_model(val_scenes: Path, tmp_path: Path) -> None:
    from groupvit.cli import eval_grounding

    summary_path = tmp_path / "g.json"
    argv = [str(val_scenes / "grounding.jsonl"), "--checkpoint", str(SHIPPED), "--json", str(summary_path)]
    assert eval_grounding.main(argv) == 0
    summary = json.loads(summary_path.read_text())
    assert summary["images"] == 4 and summary["phrases"] == 7 and summary["parse_misses"] == 0
    assert summary["phrase_miou"] > 30.0  # the shipped model grounds most of these phrases


def test_eval_grounding_short_side(val_scenes: Path, tmp_path: Path, capsys) -> None:
    from groupvit.cli import eval_grounding

    summary_path = tmp_path / "g.json"
    argv = [str(val_scenes / "grounding.jsonl"), "--checkpoint", str(SHIPPED), "--json", str(summary_path)]
    assert eval_grounding.main(argv + ["--short-side", "64"]) == 0
    summary = json.loads(summary_path.read_text())
    assert "short_side=64," in summary["grounder"] and summary["phrases"] == 7
    assert eval_grounding.main(argv + ["--short-side", "4"]) == 2
    assert capsys.readouterr().err.strip() == (
        "groupvit-eval-grounding: error: --short-side 4: must be at least the model's patch size, 8 px"
    )
