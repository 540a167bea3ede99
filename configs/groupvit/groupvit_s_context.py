# GroupViT-S, zero-shot semantic segmentation on PASCAL Context val (60 classes with background).
# Paper mIoU: 22.4 (gcc_yfcc checkpoint), 23.7 (gcc_redcaps).
#   mim test mmseg configs/groupvit/groupvit_s_context.py --checkpoint group_vit_gcc_yfcc_30e-879422e0.pth
_base_ = [
    "../_base_/models/groupvit_segmentor.py",
    "../_base_/datasets/pascal_context.py",
    "../_base_/default_runtime.py",
]
model = dict(benchmark="context")  # Context's words ("airplane", "plant", ...) and background threshold 0.35
