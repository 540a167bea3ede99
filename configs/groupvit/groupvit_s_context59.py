# GroupViT-S, zero-shot semantic segmentation on PASCAL Context val, 59-class variant: background
# pixels are ignored and there is no background channel (every pixel gets one of the 59 classes).
# Not a paper setting (the paper reports the 60-class one, groupvit_s_context.py).
#   mim test mmseg configs/groupvit/groupvit_s_context59.py --checkpoint group_vit_gcc_yfcc_30e-879422e0.pth
_base_ = [
    "../_base_/models/groupvit_segmentor.py",
    "../_base_/datasets/pascal_context59.py",
    "../_base_/default_runtime.py",
]
model = dict(
    benchmark="context",  # Context's words; its background threshold is unused here
    background=False,  # no background class: label i is the i-th of the 59 classes
)
