"""Noun phrases of a grounding prompt, with their character spans (GLIP's phrase-grounding input).

A prompt is either a free caption ("a dog chasing a red ball on the grass"), whose noun-phrase
chunks become the phrases, or a class list in GLIP's detection form ("cat. dog. grass."), whose
items are the phrases verbatim. Chunks come from an NLTK ``RegexpParser`` grammar over the POS
tags (optional determiner or possessive, numbers and adjectives, then nouns); without the tagger's
data a data-free fallback cuts the caption at function words and punctuation, with a warning, as
the training-side noun extraction does (:mod:`groupvit.data.captions`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from groupvit.errors import InputError

__all__ = ["NounPhrase", "class_list_prompt", "extract_noun_phrases", "parse_prompt"]

# Items of a class-list prompt have at most this many words: "cat. dog. teddy bear." is a class
# list, "A dog chases a red ball." is a caption.
MAX_CLASS_WORDS = 4

# Three rules, applied in order. (1) A participle between modifiers and nouns ("a blooming flower";
# "chasing balls" with nothing before it is a verb). (2) Determiner / possessive, an adverb,
# numbers and adjectives, a past participle ("potted plant"), then nouns. (3) The tagger calls a
# head noun with no noun after it an adjective ("the little fish lying", "a tree sitting"), so a
# determiner or number with adjectives alone is a phrase too.
_GRAMMAR = r"""NP: {<DT|PRP\$|CD|JJ.*>+<RB>?<VBG><NN.*>+}
    {<DT|PRP\$>?<RB>?<CD|JJ.*>*<VBN>?<NN.*>+}
    {<DT|PRP\$|CD>+<RB>?<JJ.*>+}"""
_LEADING_TAGS = (
    "DT",
    "PRP$",
    "CD",
    "RB",
)  # dropped from the text fed to the encoder ("two balls" -> "balls")

_DETERMINERS = frozenset(
    "a an the this that these those my your his her its our their some any each every no one two "
    "three four five six seven eight nine ten".split()
)
# Words that end a phrase in the fallback: prepositions, conjunctions, pronouns, auxiliaries.
_BREAK_WORDS = frozenset(
    """and or but nor so yet if then than as of at by for from in into on onto off out over under up
    down with within without about above below across after against along among around before behind
    beneath beside between beyond near through toward towards upon via is are was were be been being
    am has have had do does did can could will would shall should may might must i me we us you he
    him she it they them there here what which who whom whose where when why how not very too also
    just only really while""".split()
)
FALLBACK_WARNING = (
    "NLTK's tagger data (averaged_perceptron_tagger_eng) is missing: noun phrases now come from a "
    "data-free heuristic that cuts the caption at function words, so phrases may include verbs. "
    "Fix: python -m nltk.downloader averaged_perceptron_tagger_eng, or set NLTK_DATA."
)


class NounPhrase(NamedTuple):
    """One phrase of a prompt."""

    text: str  # prompt[start:end], as written
    span: tuple[int, int]  # character offsets [start, end) into the prompt
    query: str  # the words fed to the text encoder (leading determiners and numbers dropped)


def class_list_prompt(class_names: Sequence[str]) -> str:
    """``["cat", "dog"] -> "cat. dog."``: the prompt whose phrases are exactly these names."""
    names = [" ".join(str(name).split()) for name in class_names]
    if not names or not all(names):
        raise InputError(f"a class list needs non-empty names, got {list(class_names)!r}")
    bad = [name for name in names if "." in name or len(name.split()) > MAX_CLASS_WORDS]
    if bad:
        raise InputError(f"class names must have at most {MAX_CLASS_WORDS} words and no '.', got {bad!r}")
    return " ".join(f"{name}." for name in names)


def parse_prompt(prompt: str) -> list[NounPhrase]:
    """The phrases of ``prompt``: class-list items if it is one, else the caption's noun phrases.

    A class list is one or more items, each ending with ``"."`` and at most ``MAX_CLASS_WORDS``
    words long ("person. bicycle. car."). An empty prompt is an :class:`InputError`; a caption
    with no noun phrase gives ``[]``.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(
            f"the caption is empty ({prompt!r}): give a sentence or a class list like 'cat. dog.'"
        )
    items = _class_list_items(prompt)
    return items if items is not None else extract_noun_phrases(prompt)


def _class_list_items(prompt: str) -> list[NounPhrase] | None:
    if not prompt.rstrip().endswith("."):
        return None
    items = []
    for match in re.finditer(r"[^.]+", prompt):
        text = match.group().strip()
        if not text:
            continue
        if len(text.split()) > MAX_CLASS_WORDS:
            return None
        start = match.start() + match.group().index(text)
        items.append(NounPhrase(text, (start, start + len(text)), " ".join(text.split())))
    return items or None


def extract_noun_phrases(caption: str) -> list[NounPhrase]:
    """Noun-phrase chunks of a caption in order, e.g. "a small red ball", "the grass"."""
    from nltk.tokenize import TreebankWordTokenizer  # needs no data package

    spans = list(TreebankWordTokenizer().span_tokenize(caption))
    words = [caption[s:e] for s, e in spans]
    if not words:
        return []
    chunks = _tagged_chunks(words) if _has_tagger() else _fallback_chunks(words)
    phrases = []
    for first, last, query_first in chunks:
        start, end = spans[first][0], spans[last][1]
        query = " ".join(words[query_first : last + 1])
        phrases.append(NounPhrase(caption[start:end], (start, end), query))
    return phrases


@lru_cache(maxsize=1)
def _has_tagger() -> bool:
    from groupvit.data.captions import nltk_backend

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the training-side warning talks about prompts
        backend = nltk_backend()
    if backend == "fallback":
        warnings.warn(FALLBACK_WARNING, stacklevel=4)
        return False
    return True


def _tagged_chunks(words: list[str]) -> list[tuple[int, int, int]]:
    """(first token, last token, first token of the query) of each NP chunk."""
    import nltk

    tagged = nltk.pos_tag(words)
    tree = nltk.RegexpParser(_GRAMMAR).parse([(str(i), tag) for i, (_, tag) in enumerate(tagged)])
    chunks = []
    for subtree in tree.subtrees(lambda t: t.label() == "NP"):
        leaves = [(int(index), tag) for index, tag in subtree.leaves()]
        query = next(
            (i for i, tag in leaves if tag not in _LEADING_TAGS), leaves[-1][0]
        )  # the nouns always remain
        chunks.append((leaves[0][0], leaves[-1][0], query))
    return chunks


def _fallback_chunks(words: list[str]) -> list[tuple[int, int, int]]:
    """Runs of content words (with a leading determiner) between function words and punctuation."""
    chunks, first, query = [], None, None
    for i, word in enumerate([*words, "."]):
        lower = word.lower()
        # "-ing" words are mostly verbs in captions ("a dog chasing a ball")
        content = word.isalpha() and lower not in _BREAK_WORDS | _DETERMINERS and not lower.endswith("ing")
        if content:
            first = i if first is None else first
            query = i if query is None else query
            continue
        if query is not None:
            chunks.append((first, i - 1, query))
        first, query = (i, None) if lower in _DETERMINERS else (None, None)
    return chunks
