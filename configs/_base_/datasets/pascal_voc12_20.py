# PASCAL VOC 2012 val (1,449 images) without background (VOC20): the 21-class label maps with
# background (0) ignored, label i -> the i-th of the 20 classes (reduce_zero_label).
dataset_type = "CheckedPascalVOC20Dataset"
data_root = "data/VOCdevkit/VOC2012"
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
        data_prefix=dict(img_path="JPEGImages", seg_map_path="SegmentationClass"),
        ann_file="ImageSets/Segmentation/val.txt",
        pipeline=test_pipeline,
    ),
)
val_dataloader = test_dataloader
test_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
val_evaluator = test_evaluator
