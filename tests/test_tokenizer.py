"""CLIP BPE tokenizer and prompt templates."""

import pytest
import torch

from groupvit.templates import IMAGENET_TEMPLATES, SIMPLE_TEMPLATES, SUBSET_TEMPLATES, get_templates
from groupvit.tokenizer import Tokenizer

SOT, EOT = 49406, 49407


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer()


def test_exact_ids(tokenizer: Tokenizer) -> None:
    out = tokenizer("a photo of a cat.")
    assert out.dtype == torch.long and out.shape == (1, 77)
    assert out[0, :9].tolist() == [SOT, 320, 1125, 539, 320, 2368, 269, EOT, 0]
    assert out[0, 8:].eq(0).all()
    # Cleaning: case and surrounding / repeated whitespace do not change the ids.
    assert torch.equal(tokenizer("  A   PHOTO of a Cat. "), out)


def test_batch_rows_and_attributes(tokenizer: Tokenizer) -> None:
    out = tokenizer(["a photo of a dog.", "cat", ""])
    assert out.shape == (3, 77)
    assert out[1, :3].tolist() == [SOT, 2368, EOT]
    assert out[2, :3].tolist() == [SOT, EOT, 0]  # empty text: just sot + eot
    assert torch.equal(out[0], tokenizer(("a photo of a dog.",))[0])
    assert tokenizer.vocab_size == 49408
    assert (tokenizer.sot_token_id, tokenizer.eot_token_id) == (SOT, EOT)
    # The text tower pools at argmax(id): that must be the eot position in every row.
    lengths = torch.tensor([len(tokenizer.encode(t)) + 1 for t in ["a photo of a dog.", "cat", ""]])
    assert torch.equal(out.argmax(dim=-1), lengths)


def test_truncation_keeps_eot(tokenizer: Tokenizer) -> None:
    caption = " ".join(["cat"] * 100)
    out = tokenizer(caption)
    assert out.shape == (1, 77)
    assert out[0, 0] == SOT and out[0, -1] == EOT
    assert out[0, 1:-1].eq(2368).all()  # 75 BPE tokens kept, in order
    assert out.argmax(dim=-1).item() == 76
    # Exactly 75 BPE tokens fit without truncation; 76 are cut to 75.
    assert torch.equal(tokenizer(" ".join(["cat"] * 75)), out)
    assert torch.equal(tokenizer(" ".join(["cat"] * 76)), out)


def test_short_context_length() -> None:
    tok = Tokenizer(context_length=5)
    assert tok("a photo of a cat.").tolist() == [[SOT, 320, 1125, 539, EOT]]
    with pytest.raises(ValueError, match="context_length"):
        Tokenizer(context_length=1)


def test_rejects_non_strings(tokenizer: Tokenizer) -> None:
    with pytest.raises(TypeError, match="str"):
        tokenizer(["cat", 3])  # type: ignore[list-item]


def test_template_sets() -> None:
    assert SIMPLE_TEMPLATES == ("a photo of a {}.",)
    assert len(SUBSET_TEMPLATES) == 7 and len(IMAGENET_TEMPLATES) == 80
    assert len(set(IMAGENET_TEMPLATES)) == 80
    assert set(SUBSET_TEMPLATES) <= set(IMAGENET_TEMPLATES)
    assert SUBSET_TEMPLATES[0] == "itap of a {}." and SUBSET_TEMPLATES[-1] == "a photo of the small {}."
    assert IMAGENET_TEMPLATES[0] == "a bad photo of a {}." and IMAGENET_TEMPLATES[-1] == "a tattoo of the {}."
    assert all(t.count("{}") == 1 for t in IMAGENET_TEMPLATES)
    assert get_templates("simple") == ["a photo of a {}."]
    assert get_templates("ImageNet") == list(IMAGENET_TEMPLATES)
    assert get_templates("subset") == list(SUBSET_TEMPLATES)
    custom = get_templates(("a {} here", "{}"))
    assert custom == ["a {} here", "{}"]
    custom.append("x {}")  # a copy: the module constants stay untouched
    assert get_templates("simple") == ["a photo of a {}."]


def test_template_matches_open_clip() -> None:
    # open_clip ships the same public CLIP lists as callables; check our written-out copy.
    metadata = pytest.importorskip("open_clip.zero_shot_metadata")
    assert list(IMAGENET_TEMPLATES) == [f("{}") for f in metadata.OPENAI_IMAGENET_TEMPLATES]
    assert list(SUBSET_TEMPLATES) == [f("{}") for f in metadata.SIMPLE_IMAGENET_TEMPLATES]


@pytest.mark.parametrize(
    ("arg", "error", "match"),
    [
        ("coco", ValueError, "unknown template set 'coco'"),
        ([], ValueError, "must not be empty"),
        (["a photo of a cat."], ValueError, "exactly one"),
        (["a {} and a {}."], ValueError, "exactly one"),
        (["a {name}."], ValueError, "exactly one"),
        (["a {0}."], ValueError, "exactly one"),
        (["a { {}."], ValueError, "exactly one"),
        ([1], TypeError, "sequence of str"),
        (None, TypeError, "sequence of str"),
    ],
)
def test_template_errors(arg: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        get_templates(arg)  # type: ignore[arg-type]
