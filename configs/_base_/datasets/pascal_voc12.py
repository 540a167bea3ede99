# PASCAL VOC 2012 val (1,449 images), 21 classes: background + 20, label 255 ignored.
# Layout (the VOCdevkit tarball): JPEGImages/*.jpg, SegmentationClass/*.png, ImageSets/Segmentation/val.txt.
dataset_type = "CheckedPascalVOCDataset"
data_root = "data/VOCdevkit/VOC2012"
# Short side resized to 448 keeping the aspect ratio (long side capped at 2048), as in the paper.
img_scale = (2048, 448)
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=img_scale, keep_ratio=True),
    # Labels load after Resize: the metric compares at the original size.
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
        data_prefix=dict(img_path="JPEGImages", seg_map_path="SegmentationClass"),
        ann_file="ImageSets/Segmentation/val.txt",
        pipeline=test_pipeline,
    ),
)
val_dataloader = test_dataloader
test_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
val_evaluator = test_evaluator
