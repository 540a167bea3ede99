# GroupViT-S, zero-shot semantic segmentation on COCO-Object val2017 (81 classes with background).
# Paper mIoU: 24.3 (gcc_yfcc checkpoint), 27.5 (gcc_redcaps).
#   mim test mmseg configs/groupvit/groupvit_s_coco_object.py --checkpoint group_vit_gcc_yfcc_30e-879422e0.pth
_base_ = [
    "../_base_/models/groupvit_segmentor.py",
    "../_base_/datasets/coco_object.py",
    "../_base_/default_runtime.py",
]
model = dict(benchmark="coco_object")  # COCO's own names, background threshold 0.95
