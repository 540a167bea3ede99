"""Text side of a training sample: the caption plus noun prompts for the multi-label loss.

A caption "A man riding a horse on the beach" gives the words (man, horse, beach,
riding); up to ``k`` of them are each put into a random ImageNet template
("a photo of the small horse.") and slots left over are filled with the caption
itself, so every sample has ``1 + k`` texts.

Words come from NLTK: ``word_tokenize`` + ``pos_tag``, keeping nouns (NN, NNS,
NNP, NNPS) and verbs (VB*). NLTK needs two data packages (``punkt_tab`` and
``averaged_perceptron_tagger_eng``). When they are missing we try
``nltk.download`` once per process, then fall back to a data-free heuristic and
say so in a warning: prompts get noisier, training does not stop.
"""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache

import torch

__all__ = ["CaptionTransform", "extract_nouns", "extract_words", "nltk_backend"]

_NOUN_TAGS = frozenset({"NN", "NNS", "NNP", "NNPS"})
# Forms of be / have / do carry no visual content; VB* would keep them.
_AUXILIARIES = frozenset(
    "be am is are was were been being 's 're 'm have has had having do does did doing "
    "can could will would shall should may might must".split()
)
_NLTK_PACKAGES = {
    "punkt_tab": "tokenizers/punkt_tab/english/",
    "averaged_perceptron_tagger_eng": "taggers/averaged_perceptron_tagger_eng/",
}

FALLBACK_WARNING = (
    "NLTK data (punkt_tab, averaged_perceptron_tagger_eng) is missing and could not be downloaded: "
    "noun prompts now come from a data-free heuristic (stop-word list + suffix rules) that also keeps "
    "many adjectives and adverbs and misses verbs, so the multi-label prompts are noisier. "
    "Fix: python -m nltk.downloader punkt_tab averaged_perceptron_tagger_eng, or set NLTK_DATA."
)


def _has_nltk_data(resource: str) -> bool:
    import nltk

    try:
        nltk.data.find(resource)
        return True
    except LookupError:
        return False


@lru_cache(maxsize=1)
def nltk_backend() -> str:
    """Which extractor this process uses: ``"nltk"``, ``"nltk-line"`` or ``"fallback"``.

    ``"nltk-line"``: the tagger is there but ``punkt_tab`` is not, so the text is
    tokenised as one line (``preserve_line=True``, no sentence splitting). Resolved
    once per process; missing packages are downloaded at most once (quietly; any
    error, e.g. no network, is swallowed).
    """
    try:
        import nltk  # noqa: F401
    except ImportError:
        warnings.warn(FALLBACK_WARNING, stacklevel=2)
        return "fallback"
    missing = [name for name, res in _NLTK_PACKAGES.items() if not _has_nltk_data(res)]
    for name in missing:
        try:
            import nltk

            nltk.download(name, quiet=True, raise_on_error=True)
        except Exception:  # no network, read-only disk, ...: fall through to the checks below
            pass
    if not _has_nltk_data(_NLTK_PACKAGES["averaged_perceptron_tagger_eng"]):
        warnings.warn(FALLBACK_WARNING, stacklevel=2)
        return "fallback"
    return "nltk" if _has_nltk_data(_NLTK_PACKAGES["punkt_tab"]) else "nltk-line"


# --------------------------------------------------------------------------- data-free fallback

_STOP_WORDS = (
    frozenset(
        """a an the this that these those some any each every no all both either neither many much few
    several more most other another such own same one two three four five six seven eight nine ten
    i me my mine we us our you your he him his she her it its they them their there here what which
    who whom whose where when why how not nor and or but so yet if then than as of at by for from in
    into on onto off out over under up down with within without about above below across after
    against along among around before behind beneath beside besides between beyond near through
    toward towards upon via very too also just only really quite almost again still even ever
    big small large little tiny huge tall short long old new young good bad great nice pretty
    beautiful red orange yellow green blue purple pink brown black white grey gray dark light bright
    golden silver wooden full empty open closed hot cold wet dry high low left right top bottom
    front back inside outside together alone""".split()
    )
    | _AUXILIARIES
)
_ADJECTIVE_SUFFIXES = ("ly", "ful", "ous", "ive", "able", "ible", "less", "ish", "ic", "al")


def _fallback_words(caption: str) -> tuple[list[str], list[str]]:
    from nltk.tokenize import TreebankWordTokenizer  # needs no data package

    tokens = TreebankWordTokenizer().tokenize(caption)
    nouns, verbs = [], []
    for token in tokens:
        word = token.lower()
        if not word.isalpha() or word in _STOP_WORDS or len(word) < 3:
            continue
        if word.endswith(_ADJECTIVE_SUFFIXES):
            continue
        # -ing / -ed words are usually verbs; keep them in the second tier like VB*
        (verbs if word.endswith(("ing", "ed")) else nouns).append(word)
    return nouns, verbs


# --------------------------------------------------------------------------- extraction


def _dedup(words: list[str]) -> list[str]:
    return list(dict.fromkeys(words))


def extract_words(caption: str) -> tuple[list[str], list[str]]:
    """Candidate prompt words of a caption, in caption order, lower-cased, without repeats.

    Returns:
        (nouns: tagged NN / NNS / NNP / NNPS, verbs: tagged VB* minus be / have / do forms).
    """
    caption = re.sub(r"\s+", " ", caption).strip()
    if not caption:
        return [], []
    backend = nltk_backend()
    if backend == "fallback":
        nouns, verbs = _fallback_words(caption)
    else:
        import nltk

        tokens = nltk.word_tokenize(caption, preserve_line=backend == "nltk-line")
        nouns, verbs = [], []
        for token, tag in nltk.pos_tag(tokens):
            word = token.lower()
            # single letters ("i", "a" mis-tagged as NN) and punctuation make no prompt
            if len(word) < 2 or not any(ch.isalpha() for ch in word):
                continue
            if tag in _NOUN_TAGS:
                nouns.append(word)
            elif tag.startswith("VB") and word not in _AUXILIARIES:
                verbs.append(word)
    return _dedup(nouns), [v for v in _dedup(verbs) if v not in nouns]


def extract_nouns(caption: str, k: int | None = None) -> list[str]:
    """Up to ``k`` prompt words of ``caption``: its nouns first, then its verbs (caption order).

    >>> extract_nouns("A man riding a horse on the beach at sunset")
    ['man', 'horse', 'beach', 'sunset', 'riding']
    """
    nouns, verbs = extract_words(caption)
    words = nouns + verbs
    return words if k is None else words[:k]


def _choose(nouns: list[str], verbs: list[str], k: int, rng: random.Random) -> list[str]:
    """k random words, nouns preferred: verbs only fill in when there are fewer than k nouns."""
    if len(nouns) >= k:
        return rng.sample(nouns, k)
    return nouns + rng.sample(verbs, min(k - len(nouns), len(verbs)))


class CaptionTransform:
    """Caption -> token rows ``[caption, prompt_1, ..., prompt_K]``: LongTensor [1 + K, L].

    Args:
        tokenizer: callable ``list[str] -> LongTensor [B, L]``; default ``Tokenizer(77)``.
        num_prompts: K, the number of noun prompts (3 in the paper; 0: caption only).
        templates: a template-set name for ``groupvit.templates.get_templates`` or a list
            of strings with one ``{}`` each.
        rng: ``random.Random`` for word and template choice; default: the ``random``
            module, which PyTorch's DataLoader seeds differently in every worker.
    """

    def __init__(
        self,
        tokenizer: Callable[[list[str]], torch.Tensor] | None = None,
        num_prompts: int = 3,
        templates: str | Sequence[str] = "imagenet",
        rng: random.Random | None = None,
    ) -> None:
        from groupvit.templates import get_templates

        if tokenizer is None:
            from groupvit.tokenizer import Tokenizer

            tokenizer = Tokenizer(context_length=77)
        if num_prompts < 0:
            raise ValueError(f"num_prompts must be >= 0, got {num_prompts}")
        self.tokenizer = tokenizer
        self.num_prompts = num_prompts
        self.templates = list(get_templates(templates))
        self.rng = rng

    def texts(self, caption: str) -> list[str]:
        """The 1 + K strings before tokenisation."""
        rng = self.rng or random
        caption = re.sub(r"\s+", " ", caption).strip()
        words = _choose(*extract_words(caption), self.num_prompts, rng) if self.num_prompts else []
        prompts = [rng.choice(self.templates).format(word) for word in words]
        return [caption, *prompts, *[caption] * (self.num_prompts - len(prompts))]

    def __call__(self, caption: str) -> torch.Tensor:
        return self.tokenizer(self.texts(caption))

    def __repr__(self) -> str:
        return f"CaptionTransform(num_prompts={self.num_prompts}, templates={len(self.templates)})"
