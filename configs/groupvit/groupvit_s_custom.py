# GroupViT-S, zero-shot semantic segmentation on your own dataset, in mmseg's layout:
#   <data_root>/<img_dir>/<name><img_suffix>   images
#   <data_root>/<ann_dir>/<name><seg_map_suffix>   label maps: 8-bit PNG (grey or palette), value i = classes[i],
#                                                 255 = ignored
# Write your class names below, in label order. With background=True, label 0 is background (not fed
# to the text encoder, scored by thresholding) and classes[0] is its display name.
#   mim test mmseg configs/groupvit/groupvit_s_custom.py --checkpoint group_vit_gcc_yfcc_30e-879422e0.pth
# Edit the values below (a --cfg-options override must name the final key, e.g.
# test_dataloader.dataset.data_root=DIR, since these variables are resolved when the file is read).
_base_ = ["../_base_/models/groupvit_segmentor.py", "../_base_/default_runtime.py"]

data_root = "data/my_dataset"
img_dir = "images/val"
ann_dir = "annotations/val"
img_suffix = ".jpg"
seg_map_suffix = ".png"
split_file = ""  # optional: a text file with one <name> per line (relative to data_root); "" = every image
classes = ("background", "cat", "dog")  # label value i -> classes[i]
img_scale = (2048, 448)  # short side 448, keeping the aspect ratio

test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=img_scale, keep_ratio=True),
    dict(type="LoadAnnotations"),
    dict(type="PackSegInputs"),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        type="CheckedSegDataset",
        data_root=data_root,
        data_prefix=dict(img_path=img_dir, seg_map_path=ann_dir),
        ann_file=split_file,
        img_suffix=img_suffix,
        seg_map_suffix=seg_map_suffix,
        metainfo=dict(classes=classes),
        reduce_zero_label=False,
        pipeline=test_pipeline,
    ),
)
val_dataloader = test_dataloader
test_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
val_evaluator = test_evaluator

# Label 0 is background (scored by thresholding at the preset's config.inference.bg_thresh); change
# with model.background=False (every label a class) or model.bg_thresh=0.9.
model = dict(class_renames=dict())  # e.g. dict(tvmonitor="monitor"): the words fed to the text encoder
