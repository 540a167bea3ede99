"""Shard lists and tar reading for webdataset sources in the img2dataset layout.

:func:`expand_sources` turns brace patterns into shard lists and checks them when the dataset is
built: a pattern none of whose local files exists stops with an :class:`~groupvit.errors.InputError`
naming it; the missing files of a pattern that has some are left out with one warning
(img2dataset leaves such gaps where a shard failed to download). Remote URLs (``pipe:``,
``http://`` ...) are not checked.

:func:`read_shard` reads one shard into raw samples, ``{"__key__", "__url__", "<ext>": bytes}``.
A shard that cannot be opened raises :class:`ShardError`; a tar cut short or corrupt ends with one
sample marked ``"__error__"``: the sample that was being read (a file that is no tar at all is a
``ShardError``). The samples after the break are never seen, so they are not counted.
"""

from __future__ import annotations

import logging
import os.path as osp
import tarfile
from collections.abc import Iterator, Sequence
from typing import Any

from webdataset.gopen import gopen
from webdataset.shardlists import expand_urls
from webdataset.tariterators import base_plus_ext

from groupvit.errors import InputError

__all__ = ["ShardError", "expand_sources", "read_shard"]

logger = logging.getLogger(__name__)

_REMOTE_PREFIXES = ("pipe:", "http:", "https:", "s3:", "gs:", "sftp:", "ftps:", "scp:", "ais:")


class ShardError(OSError):
    """A shard that could not be opened at all (missing, unreadable, a failing ``pipe:`` command)."""


def _local_path(url: str) -> str | None:
    """The file a shard URL names, or None for a remote one."""
    if url.startswith("file:"):
        return url[len("file:") :].removeprefix("//")
    if url.startswith(_REMOTE_PREFIXES) or url == "-":
        return None
    return url


def _check_pattern(pattern: str, urls: list[str]) -> list[str]:
    if not urls:
        raise InputError(
            f"shard source {pattern!r} expands to no shards (brace patterns: 'dir/{{000..099}}.tar')"
        )
    local = [(url, _local_path(url)) for url in urls]
    missing = [url for url, path in local if path is not None and not osp.isfile(path)]
    if len(missing) == len(urls):
        raise InputError(
            f"shard source {pattern!r} matches no file: none of its {len(urls)} shards exists "
            f"(first: {urls[0]!r}); check the folder and the brace range"
        )
    if missing:
        logger.warning(
            "shard source %r: %d of its %d shards do not exist and are left out (first: %r)",
            pattern,
            len(missing),
            len(urls),
            missing[0],
        )
        absent = set(missing)
        urls = [url for url in urls if url not in absent]
    return urls


def expand_sources(sources: str | Sequence[str]) -> list[list[str]]:
    """Existing shard URLs per source; each source is a brace pattern (``a-{000..009}.tar``, ``::`` joins).

    Raises:
        InputError: no source given, or a source whose pattern matches no existing file.
    """
    if isinstance(sources, str):
        sources = [sources]
    if not sources:
        raise InputError("no shard sources given: set sources=['/data/cc3m/{00000..00331}.tar', ...]")
    return [_check_pattern(pattern, list(expand_urls(pattern))) for pattern in sources]


def read_shard(url: str) -> Iterator[dict[str, Any]]:
    """Raw samples of one tar shard, members grouped by key (``a/b.jpg`` + ``a/b.txt`` -> key ``a/b``).

    Yields:
        ``{"__key__", "__url__", ext: bytes, ...}`` per sample (extensions lower-cased); after a tar
        error, one last sample with ``"__error__"`` (the reason) for the sample that was being read.

    Raises:
        ShardError: the shard cannot be opened, or breaks before its first member.
    """
    try:
        stream = gopen(url)
    except Exception as exc:  # missing file, permissions, a failing pipe: the shard as a whole
        raise ShardError(f"{url}: cannot open: {type(exc).__name__}: {exc}") from exc
    pending: dict[str, Any] | None = None  # the sample whose members are being read
    try:
        with stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                key, ext = base_plus_ext(member.name)
                if not member.isreg() or key is None or osp.basename(member.name).startswith("__"):
                    continue
                if pending is not None and key != pending["__key__"]:
                    yield pending
                    pending = None
                if pending is None:
                    pending = {"__key__": key, "__url__": url}
                pending[ext.lower()] = tar.extractfile(member).read()
                tar.members = []  # streaming: keep no headers of members already read
    except (tarfile.TarError, OSError, EOFError) as exc:
        if pending is None:  # not a tar at all, or broken before its first member
            raise ShardError(f"{url}: not a readable tar: {type(exc).__name__}: {exc}") from exc
        yield {**pending, "__error__": f"shard cut short or corrupt: {type(exc).__name__}: {exc}"}
        return
    if pending is not None:
        yield pending
