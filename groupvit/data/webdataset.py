"""Image-text pairs streamed from webdataset tar shards in the img2dataset layout.

A shard holds ``KEY.jpg`` (or ``.jpeg`` / ``.png`` / ``.webp``) and ``KEY.txt`` per
sample (img2dataset's ``.json`` and other members are ignored). Several sources
(e.g. CC3M, CC12M, YFCC) are mixed at random, each given as a brace pattern such
as ``/data/cc12m/{00000..01242}.tar``.

Per source: shard list -> split by rank -> split by DataLoader worker -> shard
order shuffled -> tar reading -> sample shuffle buffer (raw bytes, cheap) ->
decode + transforms. Unreadable shards, tar errors, samples without an image or
caption and undecodable images are skipped and counted (``skipped`` in the next
sample); they never stop training. The count is of errors: a missing shard counts
1, a shard cut short counts 1-2 (webdataset reports the member read and the tar
iteration) although the rest of that shard is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any

import torch
import webdataset as wds
from webdataset.shardlists import expand_urls

from groupvit.data.skips import SkipCounter, decode_image

__all__ = ["IMAGE_EXTENSIONS", "build_webdataset", "expand_sources"]

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


def expand_sources(sources: str | Sequence[str]) -> list[list[str]]:
    """Shard URLs per source; each source is a brace pattern (``a-{000..009}.tar``, ``::`` joins)."""
    if isinstance(sources, str):
        sources = [sources]
    expanded = [expand_urls(pattern) for pattern in sources]
    for pattern, urls in zip(sources, expanded):
        if not urls:
            raise ValueError(f"source {pattern!r} expands to no shards")
    return expanded


def _decode_samples(
    samples: Iterable[dict[str, Any]],
    skips: SkipCounter,
    transform: Callable[[Any], torch.Tensor] | None,
    text_transform: Callable[[str], torch.Tensor] | None,
) -> Iterator[dict[str, Any]]:
    """Raw tar samples -> ``{"image", "text", "skipped"}``; bad samples are counted, not raised.

    One good sample is held back until the next one (or the end of the stream) so
    that skips after a worker's last sample, e.g. a broken final shard, are still
    reported: they are added to that last sample.
    """
    held: dict[str, Any] | None = None
    for sample in samples:
        where = f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}"
        image_key = next((ext for ext in IMAGE_EXTENSIONS if ext in sample), None)
        if image_key is None or "txt" not in sample:
            members = sorted(k for k in sample if not k.startswith("__"))
            skips.skip(f"{where}: no image or no txt member (has {members})")
            continue
        try:
            image = decode_image(sample[image_key])
            caption = sample["txt"].decode("utf-8")
        except Exception as exc:  # any decoder error: skip, count, go on
            skips.skip(f"{where}.{image_key}: {type(exc).__name__}: {exc}")
            continue
        if held is not None:
            yield held
        held = {
            "image": transform(image) if transform else image,
            "text": text_transform(caption) if text_transform else caption,
            "skipped": skips.pop(),
        }
    if held is not None:
        held["skipped"] += skips.pop()
        yield held


def _source_pipeline(
    urls: list[str],
    transform: Callable[[Any], torch.Tensor] | None,
    text_transform: Callable[[str], torch.Tensor] | None,
    shuffle: int,
    resampled: bool,
    seed: int,
) -> wds.DataPipeline:
    skips = SkipCounter()
    if resampled:
        # every worker draws shards with replacement from the whole list, forever
        stages: list[Any] = [wds.ResampledShards(urls, seed=seed)]
    else:
        stages = [wds.SimpleShardList(urls), wds.split_by_node, wds.split_by_worker]
        if shuffle > 0:
            stages.append(wds.shuffle(len(urls), initial=len(urls)))  # shard order, per worker
    stages.append(wds.tarfile_to_samples(handler=skips.handler))
    if shuffle > 0:
        stages.append(wds.shuffle(shuffle, initial=min(shuffle, 100)))
    stages.append(partial(_decode_samples, skips=skips, transform=transform, text_transform=text_transform))
    return wds.DataPipeline(*stages)


def build_webdataset(
    sources: str | Sequence[str],
    transform: Callable[[Any], torch.Tensor] | None = None,
    text_transform: Callable[[str], torch.Tensor] | None = None,
    shuffle: int = 1000,
    weights: Sequence[float] | None = None,
    resampled: bool = False,
    epoch_size: int | None = None,
    seed: int = 0,
) -> wds.DataPipeline:
    """Iterable dataset over one or more sources of img2dataset shards.

    Args:
        sources: one brace pattern per source (a single str is one source).
        transform: PIL RGB image -> Tensor [3, S, S] (e.g. ``build_train_transform``); None keeps PIL.
        text_transform: caption -> LongTensor [1 + K, 77] (e.g. ``CaptionTransform``); None keeps str.
        shuffle: sample shuffle-buffer size per worker and source (0: no shuffling at all).
        weights: mixing probabilities of the sources; default: proportional to their shard
            counts, i.e. roughly to their sizes, as if the sources were concatenated.
        resampled: draw shards with replacement, forever (each worker differently); use
            with ``epoch_size`` or an iteration-based loop. Needed when a source has fewer
            shards than ranks x workers. Otherwise shards are split across ranks
            (``torch.distributed``) and DataLoader workers, and an epoch ends when every
            source is exhausted.
        epoch_size: samples per epoch *per worker* (``with_epoch``); None: natural end.
        seed: seed of the resampled shard draw.

    Returns:
        A ``wds.DataPipeline`` (an ``IterableDataset``) of ``{"image", "text", "skipped"}``.
    """
    per_source = expand_sources(sources)
    if weights is not None and len(weights) != len(per_source):
        raise ValueError(f"{len(weights)} weights for {len(per_source)} sources")
    pipelines = [
        _source_pipeline(urls, transform, text_transform, shuffle, resampled, seed + i)
        for i, urls in enumerate(per_source)
    ]
    if len(pipelines) == 1:
        dataset = pipelines[0]
    else:
        probs = list(weights) if weights is not None else [float(len(urls)) for urls in per_source]
        # longest=True: a finite epoch goes on until every source is used up
        dataset = wds.DataPipeline(wds.RandomMix(pipelines, probs, longest=True))
    if epoch_size is not None:
        dataset = dataset.with_epoch(epoch_size)
    return dataset
