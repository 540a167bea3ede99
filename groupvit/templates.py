"""Prompt templates that turn a class name into a sentence for the text tower.

- ``simple``: the single template GroupViT uses for zero-shot segmentation.
- ``subset``: the 7-template ensemble CLIP selected for ImageNet.
- ``imagenet``: CLIP's 80 ImageNet templates, also used to build the noun prompts of
  the multi-label training loss.
"""

from collections.abc import Sequence
from string import Formatter

from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

__all__ = ["SIMPLE_TEMPLATES", "SUBSET_TEMPLATES", "IMAGENET_TEMPLATES", "TEMPLATE_SETS", "get_templates"]

SIMPLE_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)

# open_clip's ImageNet prompt lists (callables of the class name) as format strings: the 7 CLIP
# selected and the 80 of CLIP's ImageNet evaluation, in their order.
SUBSET_TEMPLATES: tuple[str, ...] = tuple(t("{}") for t in SIMPLE_IMAGENET_TEMPLATES)
IMAGENET_TEMPLATES: tuple[str, ...] = tuple(t("{}") for t in OPENAI_IMAGENET_TEMPLATES)

TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "simple": SIMPLE_TEMPLATES,
    "subset": SUBSET_TEMPLATES,
    "imagenet": IMAGENET_TEMPLATES,
}


def _num_slots(template: str) -> int:
    """Number of ``{}`` fields, or -1 if ``template.format(name)`` would fail ("{x}", "{0}", "{")."""
    try:
        fields = [f for _, f, spec, conv in Formatter().parse(template) if f is not None]
    except ValueError:
        return -1
    return len(fields) if all(f == "" for f in fields) else -1


def get_templates(name_or_list: str | Sequence[str]) -> list[str]:
    """Resolve a template set by name, or validate a user-given list of templates.

    Args:
        name_or_list: ``"simple"``, ``"subset"`` or ``"imagenet"``; or a sequence of
            format strings, each holding exactly one ``{}`` slot for the class name.

    Returns:
        A new list of template strings (safe to modify).

    Raises:
        ValueError: unknown set name, empty list, or a template without exactly one ``{}``.
        TypeError: anything other than a str or a sequence of str.
    """
    if isinstance(name_or_list, str):
        key = name_or_list.lower()
        if key not in TEMPLATE_SETS:
            raise ValueError(
                f"unknown template set {name_or_list!r}; choose one of {sorted(TEMPLATE_SETS)} "
                "or pass a list of templates such as ['a photo of a {}.']"
            )
        return list(TEMPLATE_SETS[key])
    if not isinstance(name_or_list, Sequence) or not all(isinstance(t, str) for t in name_or_list):
        raise TypeError(
            f"templates must be a set name or a sequence of str, got {type(name_or_list).__name__}"
        )
    templates = list(name_or_list)
    if not templates:
        raise ValueError("templates must not be empty")
    for template in templates:
        if _num_slots(template) != 1:
            raise ValueError(f"template {template!r} must contain exactly one '{{}}' slot for the class name")
    return templates
