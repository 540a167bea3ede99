# COCO-Stuff 164k val2017 (5,000 images), 171 classes (80 things + 91 stuff), 255 ignored.
# Layout (mmseg's tools/dataset_converters/coco_stuff164k.py): images/val2017/*.jpg and
# annotations/val2017/*_labelTrainIds.png.
dataset_type = "CheckedCOCOStuffDataset"
data_root = "data/coco_stuff164k"
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
        data_prefix=dict(img_path="images/val2017", seg_map_path="annotations/val2017"),
        pipeline=test_pipeline,
    ),
)
val_dataloader = test_dataloader
test_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
val_evaluator = test_evaluator
