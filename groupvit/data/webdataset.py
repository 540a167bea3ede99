"""Image-text pairs streamed from webdataset tar shards in the img2dataset layout.

A shard holds ``KEY.jpg`` (or ``.jpeg`` / ``.png`` / ``.webp``) and ``KEY.txt`` per sample
(img2dataset's ``.json`` and other members are ignored). Several sources (e.g. CC3M, CC12M,
YFCC) are mixed at random, each given as a brace pattern such as ``/data/cc12m/{00000..01242}.tar``.

Per source: shard order (drawn with replacement, or this process's and worker's share, shuffled)
-> tar reading -> sample shuffle buffer (raw bytes, cheap) -> decode + transforms; then the sources
are mixed. Every random choice comes from one ``random.Random`` per iteration, seeded by
(``seed``, rank, DataLoader worker, pass number), so two runs with the same seed read the same
samples in the same order and ranks and workers read different ones.

What is skipped and counted (``skipped`` of the next sample; the count is of samples): a sample
without an image or caption, an undecodable image, a caption that is not UTF-8 or is empty, and
the sample a cut-short tar broke in (the rest of that shard is lost, unseen and uncounted). A
shard that cannot be opened is logged, not counted (it holds an unknown number of samples).
What stops with an :class:`~groupvit.errors.InputError`: a pattern that matches no file (when the
dataset is built), and a source every shard of which has been read without one usable sample
(instead of drawing shards forever).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.utils import pytorch_worker_info

from groupvit.data.shards import ShardError, expand_sources, read_shard
from groupvit.data.skips import SkipCounter, decode_image
from groupvit.errors import InputError

__all__ = ["IMAGE_EXTENSIONS", "ImageTextStream", "build_webdataset", "expand_sources"]

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


class _SourceCheck:
    """Tells when every shard of a source has been read since the last usable sample, so a resampled
    stream over shards that are all bad stops instead of drawing them forever.

    A shard is bad when a read gives no raw sample, or when one of its samples fails to decode; the
    record counts once every shard is bad and has been read to its end; a good sample clears it. Decoding comes after the shuffle buffer, where good samples of a
    shard may still wait: the record is trusted when the buffer is empty (the end of a finite pass)
    or after ``patience`` consecutive failures (10 buffer sizes: a waiting sample is drawn out of
    the buffer with probability 1 / size per step, so it is still there with probability e^-10).
    """

    def __init__(self, pattern: str, num_shards: int, can_raise: bool, buffer_size: int) -> None:
        self.pattern, self.num_shards, self.can_raise = pattern, num_shards, can_raise
        self.patience = 10 * max(buffer_size, 1)
        self.bad: set[str] = set()  # shards with nothing usable since the last good sample
        self.done: set[str] = set()  # shards read to their end since the last good sample
        self.failures = 0  # consecutive unusable samples
        self.buffered = 0  # raw samples read but not yet decoded
        self.last_reason = ""

    def count_raw(self, samples: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for sample in samples:
            self.buffered += 1
            yield sample

    def shard_done(self, url: str, num_raw: int, reason: str = "no sample in it") -> None:
        self.done.add(url)
        if num_raw == 0:
            self.bad.add(url)
            self.last_reason = reason
        self._check()

    def decoded(self, url: str, reason: str | None) -> None:
        self.buffered -= 1
        if reason is None:
            self.bad.clear()
            self.done.clear()
            self.failures = 0
            return
        self.bad.add(url)
        self.failures += 1
        self.last_reason = reason
        self._check()

    def _check(self) -> None:
        if not self.can_raise or len(self.bad) < self.num_shards or len(self.done) < self.num_shards:
            return
        if self.buffered == 0 or self.failures >= self.patience:
            raise InputError(
                f"shard source {self.pattern!r}: all {self.num_shards} shards were read and none gave a "
                f"usable sample (last: {self.last_reason}); the warnings above name each problem"
            )


def _shuffled(samples: Iterable[dict[str, Any]], size: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """A shuffle buffer of ``size`` samples: each incoming sample swaps out a random one."""
    buffer: list[dict[str, Any]] = []
    for sample in samples:
        if len(buffer) < size:
            buffer.append(sample)
            continue
        i = rng.randrange(size)
        buffer[i], sample = sample, buffer[i]
        yield sample
    rng.shuffle(buffer)
    yield from buffer


def _mix(streams: list[Iterator[dict[str, Any]]], probs: list[float], rng: random.Random) -> Iterator[dict]:
    """Samples of several streams, each drawn from stream ``i`` with probability ``probs[i]``, until all end."""
    streams, probs = list(streams), list(probs)
    while streams:
        i = rng.choices(range(len(streams)), weights=probs)[0]
        try:
            yield next(streams[i])
        except StopIteration:
            del streams[i], probs[i]


class ImageTextStream(IterableDataset):
    """Iterable dataset of ``{"image", "text", "skipped"}`` over webdataset sources; see :func:`build_webdataset`."""

    def __init__(
        self,
        sources: str | Sequence[str],
        transform: Callable[[Any], torch.Tensor] | None = None,
        text_transform: Callable[[str], torch.Tensor] | None = None,
        shuffle: int = 1000,
        weights: Sequence[float] | None = None,
        resampled: bool = False,
        epoch_size: int | None = None,
        seed: int = 0,
    ) -> None:
        self.patterns = [sources] if isinstance(sources, str) else list(sources)
        self.urls = expand_sources(self.patterns)
        if weights is not None and len(weights) != len(self.urls):
            raise InputError(f"{len(weights)} weights for {len(self.urls)} sources: give one per source")
        # default: proportional to the shard counts, i.e. roughly to the sizes, as if concatenated
        self.probs = list(weights) if weights is not None else [float(len(u)) for u in self.urls]
        self.transform, self.text_transform = transform, text_transform
        self.shuffle, self.resampled, self.epoch_size, self.seed = shuffle, resampled, epoch_size, int(seed)
        self.skips = SkipCounter()
        self._passes = 0  # __iter__ calls on this copy of the dataset (one per epoch in a worker)

    def _iteration_seed(self) -> str:
        """(seed, rank, worker, pass) of this iteration, as the string ``random.Random`` hashes (sha512).

        Persistent DataLoader workers keep their copy, so its pass counter tells the epochs apart;
        fresh workers get a fresh copy each epoch, and then the base seed torch draws for every
        DataLoader iterator (from the run-seeded generator of the main process) does.
        """
        rank, _, worker, _ = pytorch_worker_info()
        info = get_worker_info()
        loader_seed = info.seed - info.id if info is not None else 0
        self._passes += 1
        return f"{self.seed}/{rank}/{worker}/{loader_seed}/{self._passes}"

    def _shard_order(self, urls: list[str], rng: random.Random) -> Iterator[str]:
        if self.resampled:  # every worker draws from the whole list, with replacement, forever
            while True:
                yield rng.choice(urls)
        rank, world, worker, workers = pytorch_worker_info()
        share = urls[rank::world][worker::workers]
        if self.shuffle > 0:
            rng.shuffle(share)
        yield from share

    def _raw_samples(self, urls: list[str], check: _SourceCheck, rng: random.Random) -> Iterator[dict]:
        for url in self._shard_order(urls, rng):
            num_raw, reason = 0, "no sample in it"
            try:
                for sample in check.count_raw(read_shard(url)):
                    num_raw += 1
                    yield sample
            except ShardError as exc:
                reason = str(exc)
                self.skips.shard_error(reason)
            check.shard_done(url, num_raw, reason)

    def _decoded(self, raw: Iterable[dict[str, Any]], check: _SourceCheck) -> Iterator[dict[str, Any]]:
        for sample in raw:
            url = sample["__url__"]
            where = f"{url}:{sample['__key__']}"
            reason = self._problem(sample, where)
            if reason is None:
                image_key = next(ext for ext in IMAGE_EXTENSIONS if ext in sample)
                try:
                    image = decode_image(sample[image_key])
                    caption = sample["txt"].decode("utf-8").strip()
                except Exception as exc:  # any decoder error: skip, count, go on
                    reason = f"{where}.{image_key}: {type(exc).__name__}: {exc}"
                else:
                    reason = None if caption else f"{where}.txt: empty caption"
            check.decoded(url, reason)
            if reason is not None:
                self.skips.skip(reason)
                continue
            yield {
                "image": self.transform(image) if self.transform else image,
                "text": self.text_transform(caption) if self.text_transform else caption,
            }

    @staticmethod
    def _problem(sample: dict[str, Any], where: str) -> str | None:
        if "__error__" in sample:
            return f"{where}: {sample['__error__']}"
        if "txt" not in sample or not any(ext in sample for ext in IMAGE_EXTENSIONS):
            members = sorted(k for k in sample if not k.startswith("__"))
            return f"{where}: no image or no txt member (has {members})"
        return None

    def _source(self, i: int, base_seed: str, can_raise: bool) -> Iterator[dict[str, Any]]:
        rng = random.Random(f"{base_seed}/source{i}")
        check = _SourceCheck(self.patterns[i], len(self.urls[i]), can_raise, self.shuffle)
        raw = self._raw_samples(self.urls[i], check, rng)
        if self.shuffle > 0:
            raw = _shuffled(raw, self.shuffle, rng)
        return self._decoded(raw, check)

    def _with_skip_counts(self, samples: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Attach the skip count; one sample is held back so skips after the last one still count."""
        held: dict[str, Any] | None = None
        for sample in samples:
            if held is not None:
                yield held
            held = {**sample, "skipped": self.skips.pop()}
        if held is not None:
            held["skipped"] += self.skips.pop()
            yield held

    def __iter__(self) -> Iterator[dict[str, Any]]:
        base_seed = self._iteration_seed()
        _, world, _, workers = pytorch_worker_info()
        # a finite pass split over ranks and workers sees only its share: a share with nothing
        # usable may be bad luck, not bad data, so only a whole pass (or a resampled draw) may stop
        can_raise = self.resampled or world * workers == 1
        streams = [self._source(i, base_seed, can_raise) for i in range(len(self.urls))]
        if len(streams) == 1:
            samples = streams[0]
        else:
            samples = _mix(streams, self.probs, random.Random(f"{base_seed}/mix"))
        if self.epoch_size is not None:
            samples = islice(samples, self.epoch_size)
        return self._with_skip_counts(samples)


def build_webdataset(
    sources: str | Sequence[str],
    transform: Callable[[Any], torch.Tensor] | None = None,
    text_transform: Callable[[str], torch.Tensor] | None = None,
    shuffle: int = 1000,
    weights: Sequence[float] | None = None,
    resampled: bool = False,
    epoch_size: int | None = None,
    seed: int = 0,
) -> ImageTextStream:
    """Iterable dataset over one or more sources of img2dataset shards.

    Args:
        sources: one brace pattern per source (a single str is one source).
        transform: PIL RGB image -> Tensor [3, S, S] (e.g. ``build_train_transform``); None keeps PIL.
        text_transform: caption -> LongTensor [1 + K, 77] (e.g. ``CaptionTransform``); None keeps str.
        shuffle: sample shuffle-buffer size per worker and source (0: no shuffling at all).
        weights: mixing probabilities of the sources; default: proportional to their shard
            counts, i.e. roughly to their sizes, as if the sources were concatenated.
        resampled: draw shards with replacement, forever (each rank and worker differently); use
            with ``epoch_size`` or an iteration-based loop. Needed when a source has fewer
            shards than ranks x workers. Otherwise shards are split across ranks
            (``torch.distributed``) and DataLoader workers, and an epoch ends when every
            source is exhausted.
        epoch_size: samples per epoch *per worker*; None: the natural end.
        seed: seed of every random choice of the stream (shard draws and order, shuffle buffer,
            source mixing), combined with the rank, the worker and the pass.

    Returns:
        An ``IterableDataset`` of ``{"image", "text", "skipped"}``.

    Raises:
        InputError: a source that matches no file, or weights that do not fit the sources (here);
            a source with no usable sample in any shard (while iterating).
    """
    return ImageTextStream(sources, transform, text_transform, shuffle, weights, resampled, epoch_size, seed)
