"""mmseg side of the pictures: GroupViTVisualizer, GroupViTVisualizationHook and ``--show-dir``."""

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS, VISUALIZERS
from mmseg.structures import SegDataSample
from PIL import Image

import mmseg_plugins  # noqa: F401  (compat layer first)
from groupvit.visualization import BOUNDARY_COLOR, boundary_mask, class_palette
from mmseg_plugins.segmentor import GROUP_MAPS_FIELD
from mmseg_plugins.visualizer import GroupViTVisualizer

CLASSES = ("background", "red", "green")
PALETTE = [[0, 0, 0], [200, 0, 0], [0, 200, 0]]
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
_names = itertools.count()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def _mmseg_scope() -> None:
    from mmseg.utils import register_all_modules  # imported after mmseg_plugins: needs its compat layer

    register_all_modules(
        init_default_scope=True
    )  # model parts resolve in the mmseg scope, as under the Runner


def _visualizer(save_dir: Path, **kwargs) -> GroupViTVisualizer:
    vis = VISUALIZERS.build(
        dict(
            type="GroupViTVisualizer",
            name=f"vis_test_{next(_names)}",  # mmengine keeps one instance per name
            vis_backends=[dict(type="LocalVisBackend")],
            save_dir=str(save_dir),
            alpha=0.5,
            **kwargs,
        )
    )
    vis.dataset_meta = dict(classes=CLASSES, palette=PALETTE)
    return vis


def _sample(height: int = 40, width: int = 56, with_groups: bool = True) -> tuple[np.ndarray, SegDataSample]:
    image = np.full((height, width, 3), 120, dtype=np.uint8)
    labels = torch.zeros(1, height, width, dtype=torch.long)
    labels[:, : height // 2, : width // 2] = 1
    labels[:, height // 2 :, width // 2 :] = 2
    sample = SegDataSample(metainfo=dict(img_shape=(height, width), ori_shape=(height, width)))
    sample.pred_sem_seg = PixelData(data=labels)
    if with_groups:
        yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        stage1 = (yy // 10) * 4 + xx // 14  # 16 groups
        stage2 = (xx >= width // 2).long()  # 2 groups
        sample.set_field(PixelData(data=torch.stack([stage1, stage2])), GROUP_MAPS_FIELD)
    return image, sample


def _colors(path: Path) -> set[tuple[int, ...]]:
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    return {tuple(int(v) for v in c) for c in pixels} - {BOUNDARY_COLOR}


def test_visualizer_writes_overlay_and_group_pictures(tmp_path: Path) -> None:
    vis = _visualizer(tmp_path)
    image, sample = _sample()
    vis.add_datasample("img.jpg", image, sample, step=3)
    out = tmp_path / "vis_data" / "vis_image"
    assert sorted(p.name for p in out.iterdir()) == [
        "img.jpg_3.png",
        "img.jpg_stage1_3.png",
        "img.jpg_stage2_3.png",
    ]
    for name in ("img.jpg_stage1_3.png", "img.jpg_stage2_3.png"):
        assert Image.open(out / name).size == (56, 40)
    maps = sample.get(GROUP_MAPS_FIELD).data.numpy()
    for stage, group_map in enumerate(maps, start=1):
        # The input is one grey, so every group is one colour (boundaries aside).
        assert len(_colors(out / f"img.jpg_stage{stage}_3.png")) == len(
            np.unique(group_map[~boundary_mask(group_map)])
        )


def test_visualizer_out_file_and_extra_modes(tmp_path: Path) -> None:
    vis = _visualizer(tmp_path / "unused", modes=("all_groups", "overview", "input_pred_label"))
    image, sample = _sample()
    vis.add_datasample("x", image, sample, out_file=str(tmp_path / "shown" / "a.png"))
    got = sorted(p.name for p in (tmp_path / "shown").iterdir())
    assert got == ["a.png", "a_input_pred_label.png", "a_overview.png", "a_stage1.png", "a_stage2.png"]
    assert Image.open(tmp_path / "shown" / "a_input_pred_label.png").size == (56, 40)


def test_visualizer_without_group_maps_draws_only_what_it_can(tmp_path: Path) -> None:
    vis = _visualizer(tmp_path, modes=("all_groups", "input_pred"))
    image, sample = _sample(with_groups=False)
    vis.add_datasample("plain", image, sample)
    got = sorted(p.name for p in (tmp_path / "vis_data" / "vis_image").iterdir())
    assert got == ["plain_0.png", "plain_input_pred_0.png"]


def test_visualizer_rejects_unknown_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        _visualizer(tmp_path, modes=("groups",))


def test_segmentor_gives_labels_and_groups_of_one_forward_pass() -> None:
    """While drawing (with_group_maps), predict() adds per-stage group maps at the original size
    from the forward pass of the labels; the labels are those of the plain predict()."""
    model = MODELS.build(
        dict(
            type="GroupViTSegmentor",
            model_name="groupvit_tiny",
            class_names=CLASSES,
            data_preprocessor=dict(type="SegDataPreProcessor", mean=MEAN, std=STD, bgr_to_rgb=True),
            test_cfg=dict(mode="whole"),
        )
    ).eval()
    image = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    meta = dict(img_shape=(64, 96), ori_shape=(48, 72))
    plain = model.test_step(dict(inputs=[image], data_samples=[SegDataSample(metainfo=meta)]))[0]
    calls = []
    forward = model.model.forward_segmentation
    model.model.forward_segmentation = lambda x: calls.append(tuple(x.shape)) or forward(x)
    model.with_group_maps = True
    drawn = model.test_step(dict(inputs=[image], data_samples=[SegDataSample(metainfo=meta)]))[0]
    assert calls == [(1, 3, 64, 96)]  # one forward pass for labels and groups
    maps = drawn.get(GROUP_MAPS_FIELD).data
    assert maps.shape == (2, 48, 72) and maps.dtype == torch.long  # groupvit_tiny: two stages
    assert maps[0].max() < 8 and maps[1].max() < 4  # 8 then 4 groups
    torch.testing.assert_close(drawn.pred_sem_seg.data, plain.pred_sem_seg.data, rtol=0, atol=0)


def _load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"groupvit_tool_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_dataset(root: Path) -> None:
    (root / "img").mkdir(parents=True)
    (root / "ann").mkdir()
    for index, (height, width) in enumerate([(48, 64), (40, 40)]):
        image = np.zeros((height, width, 3), dtype=np.uint8)
        image[:, : width // 2] = (200, 30, 30)
        image[:, width // 2 :] = (30, 200, 30)
        labels = np.ones((height, width), dtype=np.uint8)
        labels[:, width // 2 :] = 2
        Image.fromarray(image).save(root / "img" / f"s{index}.png")
        Image.fromarray(labels).save(root / "ann" / f"s{index}.png")


def test_show_dir_writes_overlays_and_group_pictures(tmp_path: Path) -> None:
    """``tools/test.py CONFIG CKPT --show-dir DIR`` (same config handling as ``mim test``) on a tiny model."""
    from mmengine.runner import Runner

    _write_dataset(tmp_path / "data")
    config = tmp_path / "tiny_show.py"
    config.write_text(
        f"_base_ = [{str(ROOT / 'configs' / '_base_' / 'default_runtime.py')!r}]\n"
        + SHOW_DIR_CONFIG.format(data_root=str(tmp_path / "data"), classes=CLASSES, mean=MEAN, std=STD)
    )
    checkpoint = tmp_path / "tiny.pth"
    torch.save({"state_dict": {}}, checkpoint)
    test_tool = _load_tool("test")
    show_dir = tmp_path / "show"
    args = test_tool.parse_args(
        [str(config), str(checkpoint), "--show-dir", str(show_dir), "--work-dir", str(tmp_path / "work")]
    )
    cfg = test_tool.build_config(args)
    cfg.load_from = None  # random tiny weights: nothing to load
    Runner.from_cfg(cfg).test()

    written = {p.name: p for p in show_dir.rglob("*.png")}
    for index, size in ((0, (64, 48)), (1, (40, 40))):
        overlay = f"test_s{index}.png_0.png"
        assert overlay in written, sorted(written)
        for stage in (1, 2):
            group_picture = written[f"test_s{index}.png_stage{stage}_0.png"]
            assert Image.open(group_picture).size == size
    assert len(written) == 6


@pytest.mark.slow
def test_show_dir_of_the_synthetic_config_draws_groups(tmp_path: Path, synthetic_val: Path) -> None:
    """``mim test`` of the shipped synthetic config with ``--show-dir``: the overlay and the group
    picture of its one stage, per image, on the shipped model."""

    shipped = ROOT / "checkpoints" / "groupvit_tiny_synthetic.pth"
    val = synthetic_val
    data = tmp_path / "val"
    for sub in ("img_dir/val", "ann_dir/val"):
        (data / sub).mkdir(parents=True)
        for name in ("000000.png", "000001.png"):
            (data / sub / name).write_bytes((val / sub / name).read_bytes())
    test_tool = _load_tool("test")
    show_dir = tmp_path / "show"
    args_list = (
        [str(ROOT / "configs" / "groupvit" / "groupvit_tiny_synthetic.py"), str(shipped)]
        + ["--show-dir", str(show_dir), "--work-dir", str(tmp_path / "work")]
        + ["--cfg-options", f"test_dataloader.dataset.data_root={data}", "test_dataloader.num_workers=0"]
        + [
            "test_dataloader.persistent_workers=False",
            f"train_dataloader.dataset.data_root={tmp_path / 'none'}",
            # mmengine keeps one visualizer per name, and the name defaults to the runner's
            # timestamp: an earlier test's runner of the same second would lend its save dir
            f"visualizer.name=show_dir_{tmp_path.name}",
        ]
    )
    assert test_tool.main([str(a) for a in args_list]) == 0  # no training folder needed
    written = sorted(p.name for p in show_dir.rglob("*.png"))
    assert written == [f"test_{n}.png_{k}0.png" for n in ("000000", "000001") for k in ("", "stage1_")]
    with Image.open(next(show_dir.rglob("test_000000.png_stage1_0.png"))) as picture:
        assert picture.size == (64, 64)


SHOW_DIR_CONFIG = """
model = dict(
    type="GroupViTSegmentor",
    model_name="groupvit_tiny",
    bg_thresh=0.5,
    data_preprocessor=dict(type="SegDataPreProcessor", mean={mean}, std={std}, bgr_to_rgb=True),
)
test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        type="BaseSegDataset",
        data_root={data_root!r},
        data_prefix=dict(img_path="img", seg_map_path="ann"),
        img_suffix=".png",
        seg_map_suffix=".png",
        metainfo=dict(classes={classes}),
        pipeline=[
            dict(type="LoadImageFromFile"),
            dict(type="Resize", scale=(256, 64), keep_ratio=True),
            dict(type="LoadAnnotations"),
            dict(type="PackSegInputs"),
        ],
    ),
)
test_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
val_dataloader = test_dataloader
val_evaluator = test_evaluator
visualizer = dict(
    type="GroupViTVisualizer", vis_backends=[dict(type="LocalVisBackend")], name="show_dir_test", modes=("all_groups",)
)
default_hooks = dict(visualization=dict(type="GroupViTVisualizationHook", draw=False, interval=1))
"""


def test_visualizer_draws_classes_in_the_palette_without_greys(tmp_path: Path) -> None:
    """mmseg's VOC palette draws "car" (7) in grey (128, 128, 128); the visualiser uses ours."""
    from mmseg.datasets import PascalVOCDataset

    vis = _visualizer(tmp_path, modes=())
    meta = PascalVOCDataset.METAINFO
    assert list(meta["palette"][7]) == [128, 128, 128]
    vis.dataset_meta = dict(classes=meta["classes"], palette=meta["palette"])
    palette = np.asarray(vis.dataset_meta["palette"])
    np.testing.assert_array_equal(palette, class_palette(21))
    assert (palette[1:].max(axis=1) - palette[1:].min(axis=1)).min() >= 64


def test_test_loop_option_names_the_segmentor_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The README once said test_cfg=dict(mode=...): on the command line that is mmengine's TestLoop."""
    _write_dataset(tmp_path / "data")
    config = tmp_path / "tiny.py"
    config.write_text(
        f"_base_ = [{str(ROOT / 'configs' / '_base_' / 'default_runtime.py')!r}]\n"
        + SHOW_DIR_CONFIG.format(data_root=str(tmp_path / "data"), classes=CLASSES, mean=MEAN, std=STD)
    )
    checkpoint = tmp_path / "tiny.pth"
    torch.save({"state_dict": {}}, checkpoint)
    argv = [
        str(config),
        str(checkpoint),
        "--work-dir",
        str(tmp_path / "work"),
        "--cfg-options",
        "test_cfg.mode=whole",
    ]
    assert _load_tool("test").main(argv) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "test.py: error: test_cfg.mode is not an option of mmengine's TestLoop; the segmentor's test mode is "
        "model.test_cfg (e.g. --cfg-options model.test_cfg.mode=...)"
    )
