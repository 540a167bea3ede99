# PASCAL Context val (5,105 images), 60 classes: background + 59 (label 0 = background).
# Layout: VOC2010 JPEGImages/*.jpg; SegmentationClassContext/*.png and ImageSets/SegmentationContext/val.txt
# written by tools/prepare_data/pascal_context.py.
dataset_type = "CheckedPascalContextDataset"
data_root = "data/VOCdevkit/VOC2010"
# Short side resized to 448 keeping the aspect ratio (long side capped at 2048), as in the paper.
img_scale = (2048, 448)
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
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path="JPEGImages", seg_map_path="SegmentationClassContext"),
        ann_file="ImageSets/SegmentationContext/val.txt",
        pipeline=test_pipeline,
    ),
)
val_dataloader = test_dataloader
test_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
val_evaluator = test_evaluator
