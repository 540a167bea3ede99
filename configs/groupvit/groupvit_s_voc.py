# GroupViT-S, zero-shot semantic segmentation on PASCAL VOC 2012 val (21 classes with background).
# Paper mIoU: 52.3 (gcc_yfcc checkpoint), 50.8 (gcc_redcaps).
#   mim test mmseg configs/groupvit/groupvit_s_voc.py --checkpoint group_vit_gcc_yfcc_30e-879422e0.pth
_base_ = [
    "../_base_/models/groupvit_segmentor.py",
    "../_base_/datasets/pascal_voc12.py",
    "../_base_/default_runtime.py",
]
model = dict(benchmark="voc")  # VOC's words ("table", "plant", "monitor") and background threshold 0.95
