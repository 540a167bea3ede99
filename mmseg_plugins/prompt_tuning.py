"""Prompt tuning with ``mim train``: k labelled images per class, a frozen GroupViT, learned prompts.

* :class:`FewShotSegDataset`: k images per class of a segmentation set in mmseg layout, drawn
  with a seed;
* :class:`PromptTuningModel`: the frozen model (``requires_grad`` off, always in eval mode, so
  BatchNorm statistics never move) and a :class:`groupvit.prompt_tuning.PromptLearner`; the image
  side of every labelled image is computed once and kept;
* :class:`PromptExportHook`: writes the prompt file (``groupvit.prompts``) at the end of training.

The maths lives in :mod:`groupvit.prompt_tuning`; this module only wires it to mmengine.
"""

from __future__ import annotations

import logging
import os.path as osp
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import FUNCTIONS
from mmseg.registry import DATASETS, HOOKS, MODELS
from PIL import Image
from torch.utils.data import Dataset

from groupvit.errors import InputError
from groupvit.factory import get_tokenizer
from groupvit.preprocess import EvalTransform
from groupvit.presets import get_model_config, list_models
from groupvit.prompt_tuning import PromptLearner, group_log_probs, group_targets, prompt_tuning_loss
from groupvit.prompts import PromptSet, model_fingerprint, save_prompts
from groupvit.templates import get_templates
from groupvit.zero_shot_functional import pixel_group_ids
from mmseg_plugins.segmentor import GroupViTSegmentor

__all__ = ["FewShotSegDataset", "PromptExportHook", "PromptTuningModel", "labelled_collate"]


def choose_few_shot(
    labels_present: Sequence[set[int]], num_classes: int, k: int | None, seed: int
) -> list[int]:
    """Indices of k images per class 1..num_classes - 1 (all images when ``k`` is None).

    Classes in order; an image already chosen counts for every class it shows, the rest of a class's
    k are drawn at random from the unchosen images that show it (fewer when fewer exist).
    """
    if k is None:
        return list(range(len(labels_present)))
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label in range(1, num_classes):
        showing = [i for i, present in enumerate(labels_present) if label in present]
        missing = k - sum(1 for i in chosen if label in labels_present[i])
        free = [i for i in showing if i not in chosen]
        if missing > 0 and free:
            chosen += sorted(rng.choice(free, size=min(missing, len(free)), replace=False).tolist())
    return chosen


@DATASETS.register_module()
class FewShotSegDataset(Dataset):
    """k labelled images per class of a segmentation set in mmseg layout (``img_dir`` / ``ann_dir``).

    Each sample: ``dict(image=[3, h, w] float, normalised at ``short_side``, label=LongTensor [H, W]
    at the label map's size, index=int)``, ``index`` the image's position in the whole folder.

    Args:
        data_root: folder holding ``img_path`` and ``seg_map_path``.
        img_path / seg_map_path: image and label-map folders under ``data_root`` (same stems, ``.png``
            labels: 0 = background, i = classes[i], 255 = ignore).
        classes: label names, background first.
        k: images per class; None: every image.
        seed: seed of the draw.
        short_side: images are resized to this short side (the preset's evaluation size).
    """

    def __init__(
        self,
        data_root: str,
        classes: Sequence[str],
        img_path: str = "img_dir/val",
        seg_map_path: str = "ann_dir/val",
        k: int | None = 4,
        seed: int = 0,
        short_side: int = 448,
    ) -> None:
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise InputError(f"k must be a positive number of images per class or None (all), got {k!r}")
        images, labels = Path(data_root, img_path), Path(data_root, seg_map_path)
        if not images.is_dir() or not labels.is_dir():
            raise InputError(f"labelled set {data_root}: needs folders {img_path} and {seg_map_path}")
        pairs = [(p, labels / f"{p.stem}.png") for p in sorted(images.iterdir()) if p.is_file()]
        lacking = [str(label) for _, label in pairs if not label.is_file()]
        if lacking or not pairs:
            raise InputError(
                f"labelled set {data_root}: no label map {lacking[0]}" if lacking else f"{images} is empty"
            )
        present = [set(np.unique(np.asarray(Image.open(label))).tolist()) for _, label in pairs]
        # indices into the whole folder: the frozen image side is kept under them (one image, one key)
        self.indices = choose_few_shot(present, len(classes), k, seed)
        self.pairs = [pairs[i] for i in self.indices]
        self.k = k
        self.transform = EvalTransform(short_side)
        self.metainfo = dict(classes=tuple(classes))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        image, label = self.pairs[index]
        return dict(
            image=self.transform(image),
            label=torch.from_numpy(np.asarray(Image.open(label), dtype=np.int64)),
            index=self.indices[index],
        )


@FUNCTIONS.register_module(name="groupvit_labelled_collate")
def labelled_collate(batch: list[dict]) -> dict:
    """Samples -> ``dict(inputs=[B, 3, h, w], data_samples=dict(labels=[B, H, W], index=[B]))``."""
    return dict(
        inputs=torch.stack([s["image"] for s in batch]),
        data_samples=dict(
            labels=torch.stack([s["label"] for s in batch]), index=torch.tensor([s["index"] for s in batch])
        ),
    )


@MODELS.register_module()
class PromptTuningModel(GroupViTSegmentor):
    """A frozen GroupViT whose class prompts learn from labelled images; zero-shot segments for val.

    ``mode="loss"``: ``inputs`` [B, 3, h, w], ``data_samples`` ``dict(labels [B, H, W], index [B])``
    -> ``dict(loss_prompt, group_accuracy)`` (:func:`groupvit.prompt_tuning.prompt_tuning_loss`).
    ``mode="predict"``: the segmentor's zero-shot segmentation with the current prompts.

    Args:
        prompt_kind: ``"embedding"`` or ``"context"`` (:class:`groupvit.prompt_tuning.PromptLearner`).
        context_init: the words the context starts from (``"context"``).
        shared_context: one context for all classes (``"context"``).
        **kwargs: :class:`GroupViTSegmentor`'s; ``checkpoint`` (the model the prompts belong to) and
            ``class_names`` (label order, background first when ``background``) are required.
    """

    def __init__(
        self,
        prompt_kind: str = "embedding",
        context_init: str = "a photo of a",
        shared_context: bool = True,
        **kwargs: Any,
    ) -> None:
        if not kwargs.get("checkpoint") or not kwargs.get("class_names"):
            raise InputError(
                "prompt tuning needs model.checkpoint (the frozen weights) and model.class_names"
            )
        super().__init__(**kwargs)
        self.model.eval().requires_grad_(False)
        self.learner = PromptLearner(
            self.model,
            get_tokenizer(),
            self.text_class_names(),
            kind=prompt_kind,
            templates=get_templates(self.templates),
            context_init=context_init,
            shared_context=shared_context,
        )
        self.fingerprint = model_fingerprint(self.model)
        # index -> (group embeds [G, D], image embed [D], group ids [H, W]): the frozen image side
        self._image_side: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def train(self, mode: bool = True) -> PromptTuningModel:
        """The runner's ``train()`` switches the prompts only: the model's BatchNorm stays in eval."""
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, inputs: torch.Tensor, data_samples: Any = None, mode: str = "tensor") -> Any:
        if mode == "loss":
            return self.loss(inputs, data_samples)
        return super().forward(inputs, data_samples, mode)

    def loss(self, inputs: torch.Tensor, data_samples: dict) -> dict[str, torch.Tensor]:
        labels = data_samples["labels"]  # [B, H, W]
        group_embeds, image_embeds, group_ids = self._features(inputs, data_samples["index"].tolist(), labels)
        targets, weights = group_targets(
            group_ids, labels, group_embeds.shape[1], len(self.learner.class_names) + 1
        )
        log_probs = group_log_probs(
            group_embeds,
            image_embeds,
            self.learner(self.model),
            self.model.logit_scale_value(),
            self.bg_thresh,
            self.top_k,
        )
        self._segmenter = None  # the prompts change: validation builds a segmenter with the new ones
        correct = (log_probs.argmax(dim=-1) == targets).float()
        return dict(
            loss_prompt=prompt_tuning_loss(log_probs, targets, weights),
            group_accuracy=(weights * correct).sum() / weights.sum().clamp(min=1.0),
        )

    @torch.no_grad()
    def _features(
        self, inputs: torch.Tensor, indices: list[int], labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised group [B, G, D] and image [B, D] embeddings and group ids [B, H, W] at the
        labels' size; each image through the frozen vision tower once."""
        todo = [row for row, index in enumerate(indices) if index not in self._image_side]
        if todo:
            features = self.model.forward_segmentation(inputs[todo])
            ids = pixel_group_ids(features, tuple(labels.shape[-2:]))
            groups = F.normalize(features.group_embeds, dim=-1)
            images = F.normalize(features.image_embeds, dim=-1)
            for n, row in enumerate(todo):
                self._image_side[indices[row]] = (groups[n], images[n], ids[n])
        parts = [self._image_side[index] for index in indices]
        return tuple(torch.stack(part) for part in zip(*parts))  # type: ignore[return-value]

    def prompt_set(self, **info: Any) -> PromptSet:
        """The current prompts as a :class:`PromptSet` for this model and class list."""
        with torch.no_grad():
            embeds = self.learner(self.model).detach().cpu()
        preset = next((n for n in list_models() if get_model_config(n) == self.model.config), "custom")
        return PromptSet(
            class_names=self.learner.class_names,
            class_embeddings=embeds,
            kind=self.learner.kind,
            model_fingerprint=self.fingerprint,
            preset=preset,
            tensors=self.learner.learned_tensors(),
            info=info,
        )

    def segmenter_prompts(self) -> PromptSet:
        """Validation segments with the prompts as they are now."""
        return self.prompt_set()


@HOOKS.register_module()
class PromptExportHook(Hook):
    """Writes the tuned prompts to ``work_dir/<filename>`` after training (the run's product, like
    its checkpoints: a rerun in the same work_dir replaces it)."""

    priority = "LOW"

    def __init__(self, filename: str = "prompts.safetensors") -> None:
        self.filename = filename
        self._start = 0.0

    def before_train(self, runner: Any) -> None:
        self._start = time.perf_counter()

    def after_train(self, runner: Any) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        dataset = runner.train_dataloader.dataset
        prompts = model.prompt_set(
            iterations=runner.iter,
            images=len(dataset),
            k=getattr(dataset, "k", None),
            train_seconds=round(time.perf_counter() - self._start, 1),
        )
        path = save_prompts(prompts, osp.join(runner.work_dir, self.filename), overwrite=True)
        print_log(
            f"prompts written to {path} ({path.stat().st_size} bytes)", logger="current", level=logging.INFO
        )
