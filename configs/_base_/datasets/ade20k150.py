# ADE20K val (SceneParsing, 2,000 images), 150 classes: label 0 ('other') ignored (reduce_zero_label).
# Layout (ADEChallengeData2016): images/validation/*.jpg and annotations/validation/*.png.
dataset_type = "CheckedADE20KDataset"
data_root = "data/ade/ADEChallengeData2016"
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
        data_prefix=dict(img_path="images/validation", seg_map_path="annotations/validation"),
        pipeline=test_pipeline,
    ),
)
val_dataloader = test_dataloader
test_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
val_evaluator = test_evaluator
