"""The page: Gradio Blocks wired to :mod:`groupvit.app.engine` and :mod:`groupvit.app.views`.

Every handler turns an :class:`~groupvit.errors.InputError` into a message in the status box (and a
toast) and leaves the other outputs as they were; any other exception is logged with its traceback
on the server and shown as one line, so the page never shows a stack trace and the server keeps
serving.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from groupvit.app.engine import (
    AppModel,
    Prediction,
    ground,
    load_app_model,
    open_image,
    segment,
    share_rows,
    write_downloads,
)
from groupvit.app.examples import SYNTHETIC_VOCABULARY, Example
from groupvit.app.views import PREDICTION_VIEW, render_views, view_names
from groupvit.errors import InputError
from groupvit.presets import list_models

__all__ = ["CLASSES_TASK", "GROUNDING_TASK", "build_app"]

CLASSES_TASK = "Class names"
GROUNDING_TASK = "Caption (phrase grounding)"
AUTO_PRESET = "read off the checkpoint"
_CSS = "#status p { font-weight: 600; } #shares table { width: 100%; }"
_log = logging.getLogger("groupvit.app")


def _on_page(outputs: int) -> Callable[[Callable[..., tuple]], Callable[..., tuple]]:
    """Handler wrapper: its first output is the status box; on an error only that one changes."""

    def decorate(handler: Callable[..., tuple]) -> Callable[..., tuple]:
        @functools.wraps(handler)
        def wrapped(*args):
            try:
                return handler(*args)
            except InputError as e:
                message = " ".join(str(e).split())
            except Exception:  # a bug: its traceback goes to the server log, one line to the page
                _log.exception("groupvit-app: %s failed", handler.__name__)
                message = "internal error (the traceback is in the server's log); try another input"
            gr.Warning(message)
            return (f"⚠️ {message}", *(gr.skip() for _ in range(outputs - 1)))

        return wrapped

    return decorate


def _markdown_cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (user-typed class names and phrases)."""
    return "".join(f"\\{c}" if c in "\\`*_[]<>|#" else c for c in text)


def shares_markdown(prediction: Prediction) -> str:
    """The labels (or phrases) found and their share of the image's pixels, as a Markdown table."""
    rows = share_rows(prediction)
    found = {name for name, _ in rows}
    if "phrases" in prediction.record:  # every phrase, also those no group claimed
        rows += [(p["text"], 0.0) for p in prediction.record["phrases"] if p["text"] not in found]
    head = "| label | pixel share |\n| --- | ---: |\n"
    return head + "\n".join(f"| {_markdown_cell(name)} | {share:.1%} |" for name, share in rows)


def build_app(default: AppModel, examples: list[Example], downloads: Path) -> gr.Blocks:
    """The page around ``default`` (a page may load other weights for itself) with ``examples``;
    the label maps and JSON files of the downloads are written under ``downloads``."""

    def model_of(session: AppModel | None) -> AppModel:
        return default if session is None else session

    @_on_page(outputs=2)
    def preview(path: str | None):
        if path is None:
            return "", None
        return "", open_image(path)

    @_on_page(outputs=7)
    def run(path, task, text, bg_thresh, min_area, view, session):
        if path is None:
            raise InputError("no image: upload one or pick an example below")
        app = model_of(session)
        image, stem = open_image(path), Path(path).stem
        run_task = ground if task == GROUNDING_TASK else segment
        prediction = run_task(app, image, text, bg_thresh, stem)
        views = view_names(len(prediction.group_maps))
        view = view if view in views else PREDICTION_VIEW
        overview, picture = render_views(prediction, view, min_area)
        files = write_downloads(prediction, downloads / uuid.uuid4().hex)
        found = ", ".join(name for name, _ in share_rows(prediction) if name != "background") or "nothing"
        status = f"{image.width} x {image.height} px, `{app.name}`: found {_markdown_cell(found)}"
        return (
            status,
            overview,
            gr.update(choices=views, value=view),
            picture,
            shares_markdown(prediction),
            [str(f) for f in files],
            prediction,
        )

    @_on_page(outputs=3)
    def redraw(prediction, view, min_area):
        if prediction is None:
            return "", None, None
        overview, picture = render_views(prediction, view, min_area)
        return gr.skip(), overview, picture

    @_on_page(outputs=3)
    def switch_task(task, session):
        inference = model_of(session).model.config.inference
        if task == GROUNDING_TASK:
            return (
                "",
                inference.phrase_bg_thresh,
                gr.update(label="Caption", placeholder="a red ball next to a tree"),
            )
        return (
            "",
            inference.bg_thresh,
            gr.update(label="Class names, comma-separated", placeholder="apple, car"),
        )

    @_on_page(outputs=3)
    def load(file, preset):
        if file is None:
            raise InputError("no checkpoint: upload a .pth / .safetensors file first")
        app = load_app_model(file, None if preset == AUTO_PRESET else preset)
        return f"loaded `{app.name}` for this page", app.description(), app

    with gr.Blocks(title="GroupViT app", analytics_enabled=False) as page:
        gr.Markdown("## GroupViT: open-vocabulary segmentation and phrase grounding")
        model_info = gr.Markdown(default.description(), elem_id="model-info")
        session = gr.State(None)  # this page's own AppModel, None: the server's
        prediction = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                image_file = gr.File(
                    label="Image", file_types=["image"], type="filepath", elem_id="image-file"
                )
                preview_image = gr.Image(label="Input", interactive=False, format="png", elem_id="preview")
                task = gr.Radio(
                    [CLASSES_TASK, GROUNDING_TASK], value=CLASSES_TASK, label="Task", elem_id="task"
                )
                text = gr.Textbox(
                    label="Class names, comma-separated",
                    value=SYNTHETIC_VOCABULARY if default.synthetic else "",
                    placeholder="apple, car",
                    elem_id="prompt",
                )
                bg_thresh = gr.Slider(
                    0.0, 1.0, value=default.model.config.inference.bg_thresh, step=0.01,
                    label="Background threshold", elem_id="bg-thresh",
                )  # fmt: skip
                min_area = gr.Slider(
                    0.0, 0.2, value=0.01, step=0.005, label="Minimum segment area named (share of the image)",
                    elem_id="min-area",
                )  # fmt: skip
                run_button = gr.Button("Segment", variant="primary", elem_id="run")
            with gr.Column(scale=2):
                status = gr.Markdown("", elem_id="status")
                overview = gr.Image(label="Overview", interactive=False, format="png", elem_id="overview")
                with gr.Row():
                    view = gr.Radio(view_names(1), value=PREDICTION_VIEW, label="Show", elem_id="view")
                picture = gr.Image(label="View", interactive=False, format="png", elem_id="view-image")
                shares = gr.Markdown(elem_id="shares")
                files = gr.File(
                    label="Downloads: label map PNG and JSON", file_count="multiple", elem_id="downloads"
                )
        gr.Examples(
            [[str(e.path), str(e.path), SYNTHETIC_VOCABULARY, CLASSES_TASK] for e in examples[:2]]
            + [[str(e.path), str(e.path), e.caption, GROUNDING_TASK] for e in examples[2:]],
            inputs=[preview_image, image_file, text, task],
            label="Examples (synthetic val scenes)",
        )
        with gr.Accordion("Other weights (for this page only)", open=False):
            checkpoint = gr.File(
                label="Checkpoint", file_types=[".pth", ".pt", ".bin", ".safetensors", ".ckpt"]
            )
            preset = gr.Dropdown([AUTO_PRESET, *list_models()], value=AUTO_PRESET, label="Preset")
            load_button = gr.Button("Load")

        run_inputs = [image_file, task, text, bg_thresh, min_area, view, session]
        run_outputs = [status, overview, view, picture, shares, files, prediction]
        image_file.change(preview, [image_file], [status, preview_image])
        run_button.click(run, run_inputs, run_outputs)
        text.submit(run, run_inputs, run_outputs)
        bg_thresh.release(run, run_inputs, run_outputs)
        min_area.release(redraw, [prediction, view, min_area], [status, overview, picture])
        view.input(redraw, [prediction, view, min_area], [status, overview, picture])
        task.input(switch_task, [task, session], [status, bg_thresh, text])
        load_button.click(load, [checkpoint, preset], [status, model_info, session])
    return page


def launch_options(downloads: Path, examples_folder: Path) -> dict:
    """Keyword arguments of ``Blocks.launch`` that the page needs (theme, CSS, served folders)."""
    return {"css": _CSS, "allowed_paths": [str(downloads), str(examples_folder)], "show_error": False}
