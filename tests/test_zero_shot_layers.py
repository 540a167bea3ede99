"""The zero-shot layers: pure functions under one stateful class, no module re-exporting another's
names, no import cycle in the package; predict_with_groups gives the labels and group maps of one
forward pass."""

import ast
import importlib
from pathlib import Path

import pytest
import torch
from test_zero_shot import FakeGroupViT

from groupvit.config import RefineConfig
from groupvit.errors import InputError
from groupvit.zero_shot import ZeroShotSegmenter
from groupvit.zero_shot_functional import resize_group_ids, stage_group_maps

PACKAGE = Path(__file__).resolve().parents[1] / "groupvit"
CLASSES = ["cat", "dog", "tree", "sky"]


def _tokenizer(texts: list[str]) -> torch.Tensor:
    """Distinct token rows per text (FakeGroupViT sums token embeddings)."""
    return torch.tensor([[sum(map(ord, t)) % 49000 + 1, len(t) + 1] for t in texts])


@pytest.mark.parametrize("mode, size", [("whole", (48, 80)), ("slide", (48, 80)), ("slide", (32, 32))])
def test_predict_with_groups_is_predict_labels_and_group_maps(mode: str, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = FakeGroupViT().eval()
    seg = ZeroShotSegmenter(
        model, CLASSES, _tokenizer, bg_thresh=0.3, top_k=2, mode=mode, window=32, stride=16
    )
    images = torch.randn(2, 3, *size)
    out_size = (size[0] + 7, size[1] - 5)
    model.image_shapes.clear()
    got = seg.predict_with_groups(images, output_size=out_size)
    passes = model.image_shapes[:]
    assert torch.equal(got.labels, seg.predict_labels(images, output_size=out_size))
    features = model.forward_segmentation(images)
    expected = [
        resize_group_ids(m, features.grid_size, out_size) for m in stage_group_maps(features.assignments)
    ]
    assert len(got.group_maps) == 2 and all(torch.equal(a, b) for a, b in zip(got.group_maps, expected))
    assert got.labels.shape == (2, *out_size) and got.features.grid_size == features.grid_size
    if seg.single_pass(size):  # one forward pass for both
        assert passes == [(2, 3, *size)]
    else:  # the windows, then the whole image for the groups
        assert passes[0] == (2, 3, *size) and len(passes) == 1 + 2 * 4  # 2 x 4 windows of 32, stride 16
    without_size = seg.predict_with_groups(images)
    assert all(torch.equal(a, b) for a, b in zip(without_size.group_maps, seg.group_maps(images)))


@pytest.mark.parametrize(
    "refine",
    [
        RefineConfig(soft_groups=True),
        RefineConfig(scales=(0.75, 1.0), flip=True),
        RefineConfig(pamr_iterations=2, soft_groups=True),
    ],
)
def test_predict_with_groups_applies_the_refinements(refine: RefineConfig) -> None:
    """Soft groups, test-time views and PAMR change predict_with_groups' labels as predict_labels'."""
    torch.manual_seed(1)
    model = FakeGroupViT().eval()
    seg = ZeroShotSegmenter(model, CLASSES, _tokenizer, bg_thresh=0.3, top_k=2, mode="whole", refine=refine)
    images = torch.randn(2, 3, 48, 64)
    got = seg.predict_with_groups(images, output_size=(50, 60))
    assert torch.equal(got.labels, seg.predict_labels(images, output_size=(50, 60)))


def test_predict_with_groups_needs_an_image() -> None:
    seg = ZeroShotSegmenter(FakeGroupViT().eval(), CLASSES, _tokenizer)
    with pytest.raises(InputError, match="predict_with_groups needs at least one image, got an empty batch"):
        seg.predict_with_groups(torch.zeros(0, 3, 16, 16))


def _imports(path: Path) -> set[str]:
    """groupvit modules a file imports, at module level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("groupvit.") or n == "groupvit"}


def test_no_import_cycle_in_the_package() -> None:
    """checkpoint <-> factory was one (lazy imports on both sides); the package __init__ (lazy
    public surface) is left out."""
    modules = {
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in PACKAGE.rglob("*.py")
    }
    graph = {m: {i for i in _imports(p) if i in modules and i != "groupvit"} for m, p in modules.items()}

    def reach(start: str) -> set[str]:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(graph.get(m, ()))
        return seen

    cycles = sorted(m for m in graph if m in reach(m) and m != "groupvit")
    assert cycles == [], cycles


@pytest.mark.parametrize(
    "module", ["groupvit.zero_shot", "groupvit.zero_shot_functional", "groupvit.sliding_window"]
)
def test_zero_shot_modules_export_only_their_own_names(module: str) -> None:
    mod = importlib.import_module(module)
    foreign = [name for name in mod.__all__ if getattr(getattr(mod, name), "__module__", module) != module]
    assert foreign == [], foreign


def test_prompts_and_synonyms_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="give prompts or synonyms, not both"):
        ZeroShotSegmenter(
            FakeGroupViT().eval(),
            CLASSES,
            _tokenizer,
            synonyms=[[c] for c in CLASSES],
            prompts=tmp_path / "p",
        )
