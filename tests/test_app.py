"""groupvit-app without a browser: the engine against the library on the shipped model, the error
messages, and the server answering a bad request and then a good one."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import groupvit
from groupvit.app import engine, views
from groupvit.app.examples import SYNTHETIC_VOCABULARY, write_examples
from groupvit.checkpoint_io import save_state_dict
from groupvit.cli.records import summary_record
from groupvit.errors import InputError
from groupvit.grounding import PhraseGrounder
from groupvit.preprocess import EvalTransform
from groupvit.visualization import render

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "groupvit_tiny_synthetic.pth"
CLASSES = ["background", *SYNTHETIC_VOCABULARY.split(", ")]


@pytest.fixture(scope="module")
def app() -> engine.AppModel:
    return engine.load_app_model(SHIPPED)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory):
    return write_examples(tmp_path_factory.mktemp("examples"), count=2)


def library_labels(model, image: Image.Image) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """What groupvit-demo computes for this image (slide at the preset's short side, groups whole)."""
    seg = groupvit.ZeroShotSegmenter(model, CLASSES[1:], bg_thresh=0.95, mode="slide", window=320, stride=160)
    pixels = EvalTransform(320)(image)[None]
    labels = seg.predict_labels(pixels, output_size=(image.height, image.width))[0]
    return labels, tuple(g[0] for g in seg.group_maps(pixels))


def test_model_description(app: engine.AppModel) -> None:
    assert app.name == "groupvit_tiny_synthetic" and app.synthetic
    text = app.description()
    assert "`groupvit_tiny_synthetic` (3.3 M parameters, patch 8, inference short side 320 px)" in text
    assert "checkpoints/groupvit_tiny_synthetic.pth" in text and "**synthetic model**" in text


def test_examples_are_the_val_scenes(scenes, synthetic_val: Path) -> None:
    assert scenes[1].caption == "A drawing of a flower, a car and a golden star in front of a blanket."
    images = synthetic_val / "img_dir" / "val"
    for example in scenes:
        assert np.array_equal(
            np.asarray(Image.open(example.path)), np.asarray(Image.open(images / example.path.name))
        )


def test_segment_equals_the_library_and_the_demo_record(app, scenes, tmp_path: Path) -> None:
    image = engine.open_image(scenes[1].path)
    prediction = engine.segment(app, image, SYNTHETIC_VOCABULARY, 0.95, "000001")
    labels, groups = library_labels(app.model, image)
    assert torch.equal(prediction.labels, labels)
    assert all(torch.equal(a, b) for a, b in zip(prediction.group_maps, groups))
    assert prediction.record == summary_record("000001.png", labels, groups, CLASSES, 320, "slide")
    shares = dict(engine.share_rows(prediction))
    assert set(shares) == {"background", "car", "flower", "star"}
    assert shares["car"] == pytest.approx(float((labels == 6).float().mean()))
    png, record = engine.write_downloads(prediction, tmp_path)
    assert np.array_equal(np.asarray(Image.open(png)), labels.numpy())  # palette indices are the labels
    assert json.loads(record.read_text()) == json.loads(json.dumps(prediction.record))
    overview, view = views.render_views(prediction, "prediction", 0.01)
    expected = render(np.asarray(image), labels, groups, CLASSES, ["overview"], min_label_area=0.01)
    assert np.array_equal(np.asarray(overview), np.asarray(expected["overview"]))
    assert view.size == (320, 320)  # the 64 px scene enlarged 5x for the names
    _, stage = views.render_views(prediction, "stage 1", 0.01)
    assert not np.array_equal(np.asarray(view), np.asarray(stage))
    with pytest.raises(ValueError, match=r"unknown view 'stage 2'; choose from \['prediction', 'stage 1'\]"):
        views.render_views(prediction, "stage 2", 0.01)


@pytest.mark.nltk_data
def test_ground_equals_the_grounder(app, scenes) -> None:
    image = engine.open_image(scenes[1].path)
    prediction = engine.ground(app, image, scenes[1].caption, 0.0, "000001")
    expected = PhraseGrounder(app.model, bg_thresh=0.0).ground(image, scenes[1].caption)
    assert torch.equal(prediction.labels, expected.labels)
    assert prediction.class_names[0] == "background"
    assert [p["text"] for p in prediction.record["phrases"]] == [p.text for p in expected.phrases]
    found = {name for name, share in engine.share_rows(prediction)}
    assert {"a flower", "a car", "a golden star"} <= found


def test_bad_inputs_are_one_line_messages(app, scenes, tmp_path: Path) -> None:
    image = engine.open_image(scenes[0].path)
    with pytest.raises(InputError, match=r"^empty vocabulary: type the class names to find"):
        engine.segment(app, image, " , ", 0.95)
    with pytest.raises(InputError, match=r"^empty vocabulary: no class name besides 'background'"):
        engine.segment(app, image, "background", 0.95)
    with pytest.raises(InputError, match=r"^empty caption"):
        engine.ground(app, image, "  ", 0.0)
    with pytest.raises(InputError, match=r"^background threshold must be in \[0, 1\], got 1.5"):
        engine.segment(app, image, "car", 1.5)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(InputError, match=r"^notes.png is not an image PIL can read"):
        engine.open_image(text)
    big = tmp_path / "big.png"
    Image.new("RGB", (5000, 4000)).save(big)
    with pytest.raises(InputError, match=r"^big.png is 5000 x 4000 \(20.0 MP\); the app takes up to 16.8 MP"):
        engine.open_image(big)
    thin = Image.new("RGB", (20000, 8))  # 800000 x 320 at the model's short side: 256 MP of floats
    with pytest.raises(
        InputError, match=r"^a 20000 x 8 image is too elongated: at the model's short side 320 px"
    ):
        engine.segment(app, thin, "car", 0.95)
    with pytest.raises(InputError, match=r"^a 20000 x 8 image is too elongated"):
        engine.ground(app, thin, "a car", 0.0)


def test_a_checkpoint_that_does_not_fit(tmp_path: Path) -> None:
    other = tmp_path / "tiny.pth"
    save_state_dict(groupvit.create_model("groupvit_tiny").state_dict(), other)
    with pytest.raises(
        InputError,
        match=r"tiny.pth: checkpoint does not fit model 'groupvit_tiny_synthetic' .*like preset 'groupvit_tiny'",
    ):
        engine.load_app_model(other, "groupvit_tiny_synthetic")
    with pytest.raises(InputError, match=r"^unknown model 'groupvit_xl'; choose from"):
        engine.load_app_model(other, "groupvit_xl")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=str(junk)):
        engine.load_app_model(junk)


def test_page_handlers_turn_errors_into_one_status_line(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("gradio", reason="gradio is not installed (pip install 'groupvit[app]')")
    from groupvit.app.ui import _on_page

    @_on_page(outputs=3)
    def bad_input():
        raise InputError("empty vocabulary: type the class names")

    @_on_page(outputs=2)
    def bug():
        raise KeyError("oops")

    with pytest.warns(UserWarning):  # gr.Warning outside a request is a Python warning
        status, *rest = bad_input()
    assert status == "⚠️ empty vocabulary: type the class names" and len(rest) == 2
    with pytest.warns(UserWarning):
        status, _ = bug()
    assert status == "⚠️ internal error (the traceback is in the server's log); try another input"
    assert "KeyError: 'oops'" in caplog.text  # the traceback went to the server's log


def test_the_work_folder_goes_when_the_process_ends() -> None:
    """Examples and downloads live in a temporary folder that the app removes at exit."""
    import subprocess
    import sys

    code = "from groupvit.cli.app import work_dir; w = work_dir(); (w / 'x.png').write_bytes(b'1'); print(w)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    folder = Path(out.stdout.strip())
    assert folder.name.startswith("groupvit-app-") and not folder.exists()
