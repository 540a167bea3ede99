"""Drawing of predictions and per-stage groups: plain arrays first, then the tiny model's output."""

import numpy as np
import pytest
import torch
from PIL import Image

import groupvit
from groupvit.class_names import COCO_OBJECT_CLASSES, CONTEXT_CLASSES, VOC_CLASSES, get_class_names
from groupvit.visualization import (
    BOUNDARY_COLOR,
    MODES,
    boundary_mask,
    class_palette,
    connected_components,
    draw_groups,
    draw_labels,
    draw_prediction,
    group_palette,
    label_positions,
    output_names,
    render,
    render_result,
)
from groupvit.visualization.draw import default_font_size
from groupvit.visualization.figure import legend_entries, resize_map


def _distinct_colors(
    picture: np.ndarray, exclude: tuple[int, int, int] | None = None
) -> set[tuple[int, ...]]:
    colors = {tuple(int(v) for v in c) for c in picture.reshape(-1, 3)}
    colors.discard(exclude)
    return colors


def _scene() -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """A 96 x 128 image, a label map with two separate 'cat' segments and one 'dog', two group maps."""
    yy, xx = np.mgrid[:96, :128]
    image = np.stack([xx * 2, yy * 2, np.full_like(xx, 90)], -1).astype(np.uint8)
    labels = np.zeros((96, 128), dtype=np.int64)
    labels[10:50, 10:60] = 8  # cat
    labels[60:90, 90:125] = 8  # another cat, not touching the first
    labels[55:90, 10:60] = 12  # dog
    stage1 = (yy // 24) * 4 + xx // 32  # 16 groups
    stage2 = (xx >= 64).astype(np.int64) + 2 * (yy >= 48)  # 4 groups
    return image, labels, [stage1, stage2]


def test_class_lists() -> None:
    assert (len(VOC_CLASSES), len(CONTEXT_CLASSES), len(COCO_OBJECT_CLASSES)) == (21, 60, 81)
    for names in (VOC_CLASSES, CONTEXT_CLASSES, COCO_OBJECT_CLASSES):
        assert names[0] == "background" and len(set(names)) == len(names)
    assert {"table", "plant", "monitor"} <= set(VOC_CLASSES)
    assert get_class_names("voc") is VOC_CLASSES
    with pytest.raises(ValueError, match="unknown dataset"):
        get_class_names("ade")


def test_palettes() -> None:
    voc = class_palette(21)
    assert voc[0].tolist() == [0, 0, 0] and voc[1].tolist() == [128, 0, 0]
    assert voc[6].tolist() == [0, 128, 128] and voc[7].tolist() == [192, 0, 0]  # VOC's grey 7th skipped
    assert len(_distinct_colors(class_palette(300))) == 300
    groups = group_palette(256)
    assert groups.shape == (256, 3) and groups.dtype == np.uint8
    assert len(_distinct_colors(groups)) == 256
    assert BOUNDARY_COLOR not in _distinct_colors(groups)


def test_no_class_colour_is_grey_or_near_the_background() -> None:
    """Flower (the synthetic scenes' 8th class) was drawn in grey; no class colour may be near grey
    (max - min channel below 64) or near the background's black (RGB distance below 100)."""
    colors = class_palette(1000).astype(np.int64)
    chroma = colors.max(axis=1) - colors.min(axis=1)
    assert chroma[1:].min() >= 64 and np.linalg.norm(colors[1:], axis=1).min() >= 100
    assert colors[0].tolist() == [0, 0, 0] and len(_distinct_colors(colors)) == 1000
    synthetic = colors[:9]  # background apple house star tree fish car ball flower
    assert synthetic[8].tolist() == [64, 128, 0]


def test_connected_components_four_connectivity() -> None:
    checker = np.array([[0, 1], [1, 0]])
    ids, count = connected_components(checker)
    assert count == 4 and len(np.unique(ids)) == 4  # diagonal neighbours are not connected
    ids, count = connected_components(np.array([[1, 1, 0], [0, 1, 0], [1, 1, 0]]))
    assert count == 3  # the 1s form one snake, the 0s two pieces
    expected = np.array([[2, 2, 0], [1, 2, 0], [2, 2, 0]])  # the 0s first (raster order), then the 1s
    np.testing.assert_array_equal(ids, expected)
    ids, count = connected_components(np.zeros((0, 3), dtype=np.int64))
    assert count == 0 and ids.shape == (0, 3)


def test_boundary_mask() -> None:
    label_map = np.zeros((4, 6), dtype=np.int64)
    label_map[:, 3:] = 1
    edge = boundary_mask(label_map)
    assert edge[:, 2].all() and edge.sum() == 4
    assert boundary_mask(label_map, thickness=2).sum() == 8


def test_label_positions_one_per_segment() -> None:
    _, labels, _ = _scene()
    positions = label_positions(labels, ignore_index=0)
    assert sorted(p.label for p in positions) == [8, 8, 12]  # both cat segments, one dog, no background
    for p in positions:
        assert labels[p.y, p.x] == p.label
    # A speck below min_area is skipped, unless it is the only segment of its class.
    speck = labels.copy()
    speck[0:2, 100:102] = 8
    speck[0:2, 120:122] = 3
    got = sorted(p.label for p in label_positions(speck, min_area=10))
    assert got == [3, 8, 8, 12]


def test_draw_labels_marks_every_segment() -> None:
    image, labels, _ = _scene()
    palette = class_palette(21)
    blended = draw_prediction(image, labels, palette)
    positions = label_positions(labels)
    drawn = draw_labels(blended, labels, VOC_CLASSES, palette, positions=positions, font_size=10)
    assert drawn.shape == blended.shape
    for p in positions:
        window = (slice(max(0, p.y - 3), p.y + 4), slice(max(0, p.x - 3), p.x + 4))
        assert (drawn[window] != blended[window]).any(), f"no text drawn for segment at {p}"
    # Default placement labels the same segments (they are all larger than the font).
    default = draw_labels(blended, labels, VOC_CLASSES, palette, font_size=10)
    np.testing.assert_array_equal(default, drawn)
    assert (drawn[0:5, 70:85] == blended[0:5, 70:85]).all()  # far from any label: untouched


def test_draw_labels_skips_segments_below_the_area_share() -> None:
    image, labels, _ = _scene()
    palette = class_palette(21)
    blended = draw_prediction(image, labels, palette)
    # the second cat (1,050 of 12,288 pixels) is below 10% of the image; the first cat (2,000) and
    # the dog (1,750) are not, and the largest segment of a class is always named
    kept = [p for p in label_positions(labels) if p.area >= 1229]
    assert sorted((p.label, p.area) for p in kept) == [(8, 2000), (12, 1750)]
    expected = draw_labels(blended, labels, VOC_CLASSES, palette, positions=kept, font_size=10)
    got = draw_labels(blended, labels, VOC_CLASSES, palette, font_size=10, min_area_fraction=0.1)
    np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(got, draw_labels(blended, labels, VOC_CLASSES, palette, font_size=10))


def test_prediction_leaves_background_unblended() -> None:
    image, labels, _ = _scene()
    out = draw_prediction(image, labels, class_palette(21), alpha=0.5)
    bg = labels == 0
    np.testing.assert_array_equal(out[bg], image[bg])
    assert (out[~bg] != image[~bg]).any(axis=-1).all()


@pytest.mark.parametrize("stage", [0, 1])
def test_groups_one_color_per_group(stage: int) -> None:
    image, _, group_maps = _scene()
    gray = np.full_like(image, 128)
    group_map = group_maps[stage]
    picture = draw_groups(gray, group_map)
    interior = ~boundary_mask(group_map)
    expected = len(np.unique(group_map[interior]))
    assert expected == len(np.unique(group_map))
    assert len(_distinct_colors(picture, exclude=BOUNDARY_COLOR)) == expected
    assert (picture[boundary_mask(group_map)] == BOUNDARY_COLOR).all()
    assert len(_distinct_colors(draw_groups(None, group_map, boundary_color=None))) == expected


def test_render_every_mode_sizes() -> None:
    image, labels, group_maps = _scene()
    half = [g[::2, ::2] for g in group_maps]  # maps at inference size are fitted to the image
    pictures = render(image, labels[::2, ::2], half, VOC_CLASSES)
    assert list(pictures) == output_names(MODES, 2)
    assert list(pictures) == [
        "input", "pred", "input_pred", "input_pred_label", "stage1", "stage2", "first_group", "final_group",
        "overview",
    ]  # fmt: skip
    for name, picture in pictures.items():
        assert isinstance(picture, Image.Image)
        if name != "overview":
            assert picture.size == (128, 96), name
    assert pictures["pred"].mode == "P"
    np.testing.assert_array_equal(np.asarray(pictures["pred"]), resize_map(labels[::2, ::2], (96, 128)))
    assert pictures["pred"].getpalette()[3 * 8 : 3 * 9] == class_palette(21)[8].tolist()
    np.testing.assert_array_equal(np.asarray(pictures["input"]), image)
    np.testing.assert_array_equal(np.asarray(pictures["first_group"]), np.asarray(pictures["stage1"]))
    np.testing.assert_array_equal(np.asarray(pictures["final_group"]), np.asarray(pictures["stage2"]))
    overview = pictures["overview"]
    assert overview.height > 224 and overview.width > 4 * 224 * 128 // 96  # four panels + legend


def test_render_errors() -> None:
    image, labels, _ = _scene()
    with pytest.raises(ValueError, match="unknown visualisation mode"):
        render(image, labels, [], VOC_CLASSES, modes=["groups"])
    with pytest.raises(ValueError, match="need at least one group map"):
        render(image, labels, [], VOC_CLASSES, modes=["overview"])
    assert list(render(image, labels, [], VOC_CLASSES, modes=["input_pred"])) == ["input_pred"]


def test_legend_lists_present_classes_by_area() -> None:
    _, labels, _ = _scene()
    assert legend_entries(labels, VOC_CLASSES) == [0, 8, 12]


def test_tiny_model_output_renders() -> None:
    """The zero-shot output of a random-weight tiny model, drawn in every mode."""
    model = groupvit.create_model("groupvit_tiny").eval()
    names = ["cat", "dog", "grass"]
    seg = groupvit.ZeroShotSegmenter(model, names, background=True, bg_thresh=0.0)
    images = torch.randn(2, 3, 64, 80)
    result = seg.predict(images)
    group_maps = seg.group_maps(images)
    rgb = np.full((64, 80, 3), 128, dtype=np.uint8)
    for index in range(2):
        pictures = render_result(rgb, result, group_maps, ["background", *names], index=index)
        assert list(pictures) == output_names(MODES, len(group_maps))
        assert all(p.size == (80, 64) for n, p in pictures.items() if n != "overview")
        for stage, maps in enumerate(group_maps, start=1):
            group_map = maps[index].numpy()
            picture = np.asarray(pictures[f"stage{stage}"])
            interior_groups = len(np.unique(group_map[~boundary_mask(group_map)]))
            assert len(_distinct_colors(picture, exclude=BOUNDARY_COLOR)) == interior_groups
        labels = result.labels[index].numpy()
        positions = label_positions(labels, ignore_index=0)
        predicted = set(np.unique(labels).tolist()) - {0}
        assert predicted and {p.label for p in positions} == predicted  # every predicted class is labelled
        # The largest segment of each class (always labelled by draw_labels at the default font size) has text on it.
        labelled, blended = np.asarray(pictures["input_pred_label"]), np.asarray(pictures["input_pred"])
        size = default_font_size(*labels.shape)
        largest = label_positions(labels, ignore_index=0, min_area=labels.size + 1, max_depth=size)
        assert {p.label for p in largest} == predicted
        for p in largest:
            window = (slice(max(0, p.y - 2), p.y + 3), slice(max(0, p.x - 2), p.x + 3))
            assert (labelled[window] != blended[window]).any()
