# PASCAL Context val (5,105 images), 59 classes: the 60-class label maps with background (0) ignored.
# Same files as pascal_context.py; the dataset maps 0 -> 255 and i -> i - 1 (reduce_zero_label).
dataset_type = "CheckedPascalContextDataset59"
data_root = "data/VOCdevkit/VOC2010"
# Short side resized to 448 keeping the aspect ratio (long side capped at 2048), as in the paper.
img_scale = (2048, 448)
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=img_scale, keep_ratio=True),
    dict(type="LoadAnnotations"),  # reduce_zero_label comes from the dataset
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
        reduce_zero_label=True,
        pipeline=test_pipeline,
    ),
)
val_dataloader = test_dataloader
test_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
val_evaluator = test_evaluator
