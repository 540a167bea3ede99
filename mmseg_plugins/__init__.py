"""mmsegmentation plugins for GroupViT: load with ``custom_imports=dict(imports=["mmseg_plugins"])``.

``compat`` is imported first: it makes mmseg / mmcv-lite / mmengine import and run on current
PyTorch before anything below imports mmseg.
"""

from mmseg_plugins import compat  # noqa: F401  (must stay first)
from mmseg_plugins.datasets import (
    CheckedPascalContextDataset,
    CheckedPascalContextDataset59,
    CheckedPascalVOCDataset,
    CheckedSegDataset,
    COCOObjectDataset,
)
from mmseg_plugins.segmentor import DatasetMetaHook, GroupViTSegmentor
from mmseg_plugins.transforms import PresetResize
from mmseg_plugins.visualizer import GroupViTVisualizationHook, GroupViTVisualizer

__all__ = [
    "COCOObjectDataset",
    "CheckedPascalContextDataset",
    "CheckedPascalContextDataset59",
    "CheckedPascalVOCDataset",
    "CheckedSegDataset",
    "DatasetMetaHook",
    "GroupViTSegmentor",
    "GroupViTVisualizationHook",
    "GroupViTVisualizer",
    "PresetResize",
]
from mmseg_plugins import (  # noqa: E402, F401  (training)
    distributed,
    hooks,
    loops,
    prompt_tuning,
    rng_state,
    runner,
    train_data,
    train_model,
    user_errors,  # noqa: E402
)

# mim test / mim train run mmseg's scripts, which import this package through the configs'
# custom_imports: their user errors end with one line (user_errors.py says why and how)
user_errors.install()
