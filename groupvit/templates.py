"""Prompt templates that turn a class name into a sentence for the text tower.

- ``simple``: the single template GroupViT uses for zero-shot segmentation.
- ``subset``: the 7-template ensemble CLIP selected for ImageNet.
- ``imagenet``: CLIP's 80 ImageNet templates, also used to build the noun prompts of
  the multi-label training loss.
"""

from collections.abc import Sequence
from string import Formatter

__all__ = ["SIMPLE_TEMPLATES", "SUBSET_TEMPLATES", "IMAGENET_TEMPLATES", "TEMPLATE_SETS", "get_templates"]

SIMPLE_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)

SUBSET_TEMPLATES: tuple[str, ...] = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)

IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)

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
