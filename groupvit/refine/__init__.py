"""Test-time refinements of zero-shot segmentation, each off by default (``groupvit.config.RefineConfig``):
PAMR (:mod:`.pamr`), soft pixel-to-group scores (:mod:`.soft_groups`), multi-scale and flip
test-time augmentation (:mod:`.tta`) and per-class synonyms (:mod:`.synonyms`)."""
