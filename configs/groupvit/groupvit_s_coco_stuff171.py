# GroupViT-S, zero-shot semantic segmentation on COCO-Stuff 164k val (171 classes, no background).
# Not a paper setting: one of the extra benchmarks of the open-vocabulary projects (TCL, NACLIP).
# The words fed to the text encoder: configs/class_names/coco_stuff171.txt (label order).
#   mim test mmseg configs/groupvit/groupvit_s_coco_stuff171.py --checkpoint group_vit_gcc_yfcc_30e-879422e0.pth
_base_ = [
    "../_base_/models/groupvit_segmentor.py",
    "../_base_/datasets/coco_stuff171.py",
    "../_base_/default_runtime.py",
]
model = dict(
    class_file="{{ fileDirname }}/../class_names/coco_stuff171.txt",
    background=False,  # every label is a class: no background channel
)
