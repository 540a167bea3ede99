"""GroupViTSegmentor: same predictions as groupvit's zero-shot output, class names, checkpoint layouts."""

# isort: off
import mmseg_plugins  # noqa: F401  (compat layer before any mmseg import)

# isort: on
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmengine.runner.checkpoint import load_checkpoint
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

import groupvit
from groupvit.checkpoint import convert_state_dict
from groupvit.errors import InputError
from mmseg_plugins.segmentor import DatasetMetaHook, GroupViTSegmentor

register_all_modules(init_default_scope=True)  # build in the mmseg scope, as under the Runner
MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
CLASSES = ("background", "cat", "dog", "diningtable")
RENAMES = {"diningtable": "table"}


def _segmentor(test_cfg: dict | None = None, **kwargs) -> GroupViTSegmentor:
    cfg = dict(
        type="GroupViTSegmentor",
        model_name="groupvit_tiny",
        class_renames=RENAMES,
        bg_thresh=0.5,
        top_k=2,
        data_preprocessor=dict(type="SegDataPreProcessor", mean=MEAN, std=STD, bgr_to_rgb=True, pad_val=0),
        test_cfg=test_cfg or dict(mode="whole"),
    )
    cfg.update(kwargs)
    return MODELS.build(cfg).eval()


@pytest.fixture(scope="module")
def shared_weights() -> dict:
    torch.manual_seed(0)
    model = groupvit.create_model("groupvit_tiny")
    with torch.no_grad():
        # Sharper assignments and temperature than at random init, so that pixels fall into different
        # final groups and the labels mix background and classes instead of being constant.
        model.logit_scale.fill_(4.0)
        for name, param in model.named_parameters():
            if name.endswith(("grouping.assign.q_proj.weight", "grouping.assign.k_proj.weight")):
                param.mul_(8.0)
    return model.state_dict()


def _reference(model, image_bgr: torch.Tensor, ori_shape: tuple, **segmenter_kwargs) -> torch.Tensor:
    """groupvit's own zero-shot output for one uint8 BGR image [3, h, w], resized to ``ori_shape``."""
    rgb = image_bgr.flip(0).float()
    x = (rgb - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    seg = groupvit.ZeroShotSegmenter(model, ["cat", "dog", "table"], **segmenter_kwargs)
    scores = seg.predict(x[None]).scores
    return F.interpolate(scores, size=ori_shape, mode="bilinear", align_corners=False)[0]


@pytest.mark.parametrize(
    "test_cfg, segmenter_kwargs",
    [
        (dict(mode="whole"), dict(mode="whole")),
        (dict(mode="slide", crop_size=(32, 32), stride=(16, 16)), dict(mode="slide", window=32, stride=16)),
    ],
)
def test_predictions_equal_groupvit_zero_shot(
    shared_weights: dict, test_cfg: dict, segmenter_kwargs: dict
) -> None:
    segmentor = _segmentor(test_cfg, class_names=CLASSES)
    segmentor.model.load_state_dict(shared_weights)
    assert segmentor._segmenter is None  # nothing text-side is computed before the first predict

    generator = torch.Generator().manual_seed(1)
    images = [torch.randint(0, 256, (3, 48, 80), generator=generator, dtype=torch.uint8) for _ in range(2)]
    ori_shapes = [(60, 100), (48, 80)]
    samples = [
        SegDataSample(metainfo=dict(img_shape=tuple(img.shape[1:]), ori_shape=ori))
        for img, ori in zip(images, ori_shapes)
    ]
    results = segmentor.test_step(dict(inputs=images, data_samples=samples))

    common = dict(background=True, bg_thresh=0.5, top_k=2)
    for image, ori, result in zip(images, ori_shapes, results):
        expected = _reference(segmentor.model, image, ori, **common, **segmenter_kwargs)
        assert result.seg_logits.data.shape == (4, *ori)
        torch.testing.assert_close(result.seg_logits.data, expected)
        assert torch.equal(result.pred_sem_seg.data, expected.argmax(0, keepdim=True))
        assert result.pred_sem_seg.data.shape == (1, *ori)
    labels = torch.cat([r.pred_sem_seg.data.flatten() for r in results])
    assert len(labels.unique()) > 1  # not a degenerate all-background / single-class output
    assert segmentor.segmenter.class_names == ("cat", "dog", "table")


def test_class_names_from_dataset_metainfo_with_renames() -> None:
    segmentor = _segmentor()
    with pytest.raises(ValueError, match="has no class names.*DatasetMetaHook"):
        segmentor.text_class_names()

    dataset = SimpleNamespace(metainfo=dict(classes=CLASSES, palette=[[0, 0, 0]] * 4))
    runner = SimpleNamespace(
        model=segmentor, test_loop=SimpleNamespace(dataloader=SimpleNamespace(dataset=dataset))
    )
    DatasetMetaHook().before_test(runner)
    assert segmentor.dataset_meta["classes"] == CLASSES
    assert segmentor.text_class_names() == ("cat", "dog", "table")
    assert segmentor.segmenter.num_classes == 4

    no_background = _segmentor(background=False, class_renames=dict(cat="kitten"))
    no_background.dataset_meta = dict(classes=("cat", "dog"))
    assert no_background.text_class_names() == ("kitten", "dog")

    shifted = _segmentor()  # a 59-class list with background=True would drop "aeroplane": say so
    shifted.dataset_meta = dict(classes=("aeroplane", "bag", "bed"))
    with pytest.warns(UserWarning, match="treats label 0 \\('aeroplane'\\) as background"):
        assert shifted.text_class_names() == ("bag", "bed")

    runner.test_loop.dataloader.dataset = SimpleNamespace(metainfo=dict(classes=None))
    with pytest.raises(ValueError, match="has no class names .*metainfo=dict\\(classes="):
        DatasetMetaHook().before_test(runner)


def test_bad_test_cfg() -> None:
    with pytest.raises(ValueError, match="crop_size"):
        _segmentor(dict(mode="slide"))
    with pytest.raises(ValueError, match="'whole' or 'slide'"):
        _segmentor(dict(mode="tiles"))


@pytest.mark.parametrize("layout", ["official", "hf", "ours", "segmentor"])
def test_checkpoint_layouts_load_through_mmengine(tmp_path: Path, shared_weights: dict, layout: str) -> None:
    if layout == "official":  # the release: {"model": state_dict, ...} with Conv1d projector weights
        payload = {"model": convert_state_dict(shared_weights, dst="official"), "epoch": 30}
    elif layout == "hf":
        payload = convert_state_dict(shared_weights, dst="hf")
    elif layout == "ours":
        payload = dict(shared_weights)
    else:  # an mmengine checkpoint of the segmentor itself
        source = _segmentor()
        source.model.load_state_dict(shared_weights)
        payload = {"state_dict": source.state_dict(), "meta": {}}
    path = tmp_path / f"{layout}.pth"
    torch.save(payload, path)

    segmentor = _segmentor(class_names=CLASSES)
    segmentor.segmenter.class_embeddings  # noqa: B018  (cached before loading: must be refreshed after)
    load_checkpoint(segmentor, str(path), map_location="cpu", strict=False)
    loaded = segmentor.model.state_dict()
    for key, value in shared_weights.items():
        if layout == "hf" and key == "multi_label_logit_scale":
            continue  # HF files have none; the model keeps its init
        torch.testing.assert_close(loaded[key], value, msg=key)
    assert segmentor._segmenter is None


def test_checkpoint_of_another_model_fails_with_the_keys(tmp_path: Path, shared_weights: dict) -> None:
    foreign = tmp_path / "deeplab.pth"
    torch.save(
        {
            "state_dict": {
                "backbone.conv1.weight": torch.zeros(2, 3, 3, 3),
                "decode_head.bias": torch.zeros(2),
            }
        },
        foreign,
    )
    with pytest.raises(
        RuntimeError, match="(?s)does not fit model 'groupvit_tiny'.*unexpected keys.*backbone.conv1"
    ):
        load_checkpoint(_segmentor(), str(foreign), map_location="cpu")

    other_size = tmp_path / "tiny.pth"
    torch.save({"model": convert_state_dict(shared_weights, dst="official")}, other_size)
    wider = _segmentor(model_overrides={"embed_dim": 16})
    with pytest.raises(RuntimeError, match="(?s)does not fit.*shape mismatches.*image_projector"):
        load_checkpoint(wider, str(other_size), map_location="cpu")


def test_checkpoint_of_another_preset_names_the_option(tmp_path: Path) -> None:
    """`mim test` with a checkpoint of another preset: one line that says which option picks it."""
    path = tmp_path / "synthetic.pth"
    torch.save(groupvit.create_model("groupvit_tiny_synthetic").state_dict(), path)
    with pytest.raises(InputError) as info:
        load_checkpoint(_segmentor(), str(path), map_location="cpu")
    assert str(info.value) == (
        "the checkpoint is for preset 'groupvit_tiny_synthetic', not model.model_name='groupvit_tiny': "
        "add --cfg-options model.model_name=groupvit_tiny_synthetic"
    )
