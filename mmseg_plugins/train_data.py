"""Image-text training data for mmengine: registered wrappers around ``groupvit.data``.

Both datasets yield ``groupvit.data`` samples (``image`` [3, S, S] normalised,
``text`` [1 + K, L], ``skipped``); :func:`image_text_collate` stacks them into
the batch that :class:`~mmseg_plugins.train_model.GroupViTTrainModel` takes.
Every augmentation and text setting is a constructor argument, so configs show
them all.
"""

from __future__ import annotations

from typing import Any

import torch
from mmengine.dataset import InfiniteSampler
from mmengine.registry import FUNCTIONS
from mmseg.registry import DATA_SAMPLERS, DATASETS
from torch.utils.data import Dataset, IterableDataset

_DEFAULT_IMAGE = dict(image_size=224)
_DEFAULT_TEXT = dict(num_prompts=3, templates="imagenet")


def _text_transform(text: dict | None, tokenizer: Any) -> Any:
    from groupvit.data import CaptionTransform

    return CaptionTransform(tokenizer, **(_DEFAULT_TEXT if text is None else text))


def _transforms(image: dict | None, text: dict | None, context_length: int) -> tuple[Any, Any]:
    from groupvit import get_tokenizer
    from groupvit.data import build_train_transform

    image_tf = build_train_transform(**(_DEFAULT_IMAGE if image is None else image))
    return image_tf, _text_transform(text, get_tokenizer(context_length))


class _MapDataset(Dataset):
    """A map-style ``groupvit.data`` dataset (``self.dataset``) as mmengine's loaders see it."""

    dataset: Any

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> dict:
        return self.dataset[idx]


@DATASETS.register_module()
class ImageTextFolderDataset(_MapDataset):
    """Map-style image-caption folder (``captions.jsonl`` / ``captions.csv`` index).

    Args:
        data_root: folder holding the index and the images it names.
        index: index file name inside ``data_root``.
        image_transform: keyword arguments of ``groupvit.data.build_train_transform``.
        text_transform: keyword arguments of ``groupvit.data.CaptionTransform``
            (``num_prompts``, ``templates``).
        context_length: tokenizer context length.
    """

    def __init__(
        self,
        data_root: str,
        index: str = "captions.jsonl",
        image_transform: dict | None = None,
        text_transform: dict | None = None,
        context_length: int = 77,
    ) -> None:
        from groupvit.data import ImageTextFolder

        image_tf, text_tf = _transforms(image_transform, text_transform, context_length)
        self.dataset = ImageTextFolder(data_root, index=index, transform=image_tf, text_transform=text_tf)
        self.metainfo: dict = {}


@DATASETS.register_module()
class ImageTextWebDataset(IterableDataset):
    """Stream of webdataset shards (img2dataset layout: ``key.jpg`` + ``key.txt``).

    Shards are split across processes and data-loader workers by
    ``groupvit.data.build_webdataset``; use it with ``sampler=None`` in the
    data loader config. The stream restarts (reshuffled) when it runs out.

    Args:
        sources: one brace pattern per source, e.g.
            ``"/data/cc3m/{00000..00331}.tar"``; sources are mixed.
        length: nominal samples per process and epoch, what ``len()`` reports.
            mmengine reads the data loader's length to build its schedulers
            (``epoch_length``); the stream itself does not stop there. Usually
            the pairs in all sources divided by the number of processes.
        image_transform / text_transform / context_length: as for
            :class:`ImageTextFolderDataset`.
        shuffle: size of the sample shuffle buffer (0 disables it).
        seed: seed of the stream (shard draws, shuffling, mixing; combined with rank and worker).
            None: the run's seed, ``randomness.seed``, which mmengine's Runner has just given
            ``torch.manual_seed`` when it builds the dataset, so ``--cfg-options
            randomness.seed=N`` changes the stream too.
        **kwargs: further keyword arguments of ``build_webdataset``.
    """

    def __init__(
        self,
        sources: list[str] | str,
        length: int,
        image_transform: dict | None = None,
        text_transform: dict | None = None,
        context_length: int = 77,
        shuffle: int = 1000,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        from groupvit.data import build_webdataset

        if isinstance(sources, str):
            sources = [sources]
        seed = torch.initial_seed() if seed is None else seed
        image_tf, text_tf = _transforms(image_transform, text_transform, context_length)
        self.dataset = build_webdataset(
            list(sources), image_tf, text_tf, shuffle=shuffle, seed=seed, **kwargs
        )
        self.length = int(length)
        self.metainfo: dict = {}

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        return iter(self.dataset)


@DATASETS.register_module()
class GroundingFolderDataset(_MapDataset):
    """Image-caption pairs with phrase masks (``groupvit.data.grounding.GroundingFolder``).

    Takes :class:`ImageTextFolderDataset`'s arguments, so a config swaps one for the other by
    ``type`` and ``index``; the image transform's geometry (``image_size``, ``scale``,
    ``interpolation``) is applied to image and label map alike, and photometric augmentation,
    which the grounding data does not apply, must be off.

    Args:
        data_root: folder holding the index, the images and ``ann_dir``.
        index: a ``grounding.jsonl`` in ``data_root`` (``tools/make_synthetic_data.py
            --train-grounding`` writes ``train/grounding.jsonl``; self-training writes pseudo-labels
            in the same format).
        image_transform: keyword arguments of ``groupvit.data.build_train_transform``.
        text_transform: keyword arguments of ``groupvit.data.CaptionTransform``.
        phrase_templates: template set of the phrase texts (grounding's ``"simple"``).
        context_length: tokenizer context length.
    """

    def __init__(
        self,
        data_root: str,
        index: str = "grounding.jsonl",
        image_transform: dict | None = None,
        text_transform: dict | None = None,
        phrase_templates: str = "simple",
        context_length: int = 77,
    ) -> None:
        from groupvit import get_tokenizer
        from groupvit.data.grounding import GroundingFolder
        from groupvit.errors import InputError

        image = dict(_DEFAULT_IMAGE if image_transform is None else image_transform)
        photometric = {k: image.pop(k) for k in ("auto_augment", "color_jitter", "re_prob") if k in image}
        if any(photometric.values()):
            raise InputError(
                f"GroundingFolderDataset applies no photometric augmentation, got {photometric}: set them "
                "to None / 0.0 in image_transform"
            )
        tokenizer = get_tokenizer(context_length)
        text_tf = _text_transform(text_transform, tokenizer)
        self.dataset = GroundingFolder(
            f"{data_root}/{index}",
            text_transform=text_tf,
            tokenizer=tokenizer,
            templates=phrase_templates,
            **image,
        )
        self.metainfo: dict = {}


@DATASETS.register_module()
def ImageTextPairs(  # noqa: N802 (a dataset type name in configs)
    data_root: str | None = None,
    shards: list[str] | str | None = None,
    index: str = "captions.jsonl",
    length: int = 10000,
    image_transform: dict | None = None,
    text_transform: dict | None = None,
    context_length: int = 77,
    shuffle: int = 1000,
    resampled: bool = True,
) -> ImageTextFolderDataset | ImageTextWebDataset:
    """A caption folder or webdataset shards, whichever of ``data_root`` / ``shards`` is given.

    One dataset entry for both forms, so that the command line alone picks the data:
    ``--cfg-options train_dataloader.dataset.data_root=DIR`` or ``train_dataloader.dataset.shards=PATTERN``
    (the config sets neither). Pair it with ``sampler=dict(type="ImageTextSampler")``, which gives the
    folder an infinite shuffling sampler and the stream none (it splits itself across processes).

    Args:
        data_root: folder with ``index`` (:class:`ImageTextFolderDataset`).
        shards: brace pattern(s) of webdataset shards (:class:`ImageTextWebDataset`).
        index: the folder's index file name.
        length: shards only: nominal pairs per process and epoch (``len()``; the schedules here count
            iterations, so it is only reported).
        shuffle / resampled: shards only, as for :class:`ImageTextWebDataset`.
        image_transform / text_transform / context_length: as for both.

    Raises:
        InputError: both or neither of ``data_root`` and ``shards`` given.
    """
    from groupvit.errors import InputError

    if data_root is not None and shards is not None:
        raise InputError(
            f"training data: both train_dataloader.dataset.data_root={data_root!r} and "
            f".shards={shards!r} are given; add train_dataloader.dataset.data_root=None to train on the shards"
        )
    if data_root is None and shards is None:
        raise InputError(
            "training data: neither train_dataloader.dataset.data_root (a folder with "
            f"{index}) nor train_dataloader.dataset.shards (a webdataset .tar brace pattern) is given"
        )
    transforms = dict(
        image_transform=image_transform, text_transform=text_transform, context_length=context_length
    )
    if data_root is not None:
        return ImageTextFolderDataset(data_root, index=index, **transforms)
    return ImageTextWebDataset(shards, length, shuffle=shuffle, resampled=resampled, **transforms)


@DATA_SAMPLERS.register_module()
def ImageTextSampler(  # noqa: N802 (a sampler type name in configs)
    dataset: Dataset, shuffle: bool = True, seed: int | None = None
) -> InfiniteSampler | None:
    """mmengine's ``InfiniteSampler`` for a map-style dataset; None for a stream (``IterableDataset``),
    which torch's DataLoader takes no sampler for and which splits itself across processes."""
    if isinstance(dataset, IterableDataset):
        return None
    return InfiniteSampler(dataset, shuffle=shuffle, seed=seed)


@FUNCTIONS.register_module(name="groupvit_image_text_collate")
def image_text_collate(batch: list[dict]) -> dict:
    """Samples -> ``dict(inputs=[B, 3, S, S], data_samples=dict(text=[B, 1 + K, L], skipped=[]))``.

    Grounding samples (``GroundingFolderDataset``) add ``data_samples["grounding"]``:
    ``groupvit.data.grounding.collate_grounding``'s ``label_map``, ``phrase_text``, ``phrase_labels``.
    """
    text = torch.stack([s["text"] for s in batch])
    data_samples = dict(text=text, skipped=torch.tensor(sum(int(s.get("skipped", 0)) for s in batch)))
    if "grounding" in batch[0]:
        from groupvit.data.grounding import collate_grounding

        data_samples["grounding"] = collate_grounding([s["grounding"] for s in batch], text.shape[-1])
    return dict(inputs=torch.stack([s["image"] for s in batch]), data_samples=data_samples)
