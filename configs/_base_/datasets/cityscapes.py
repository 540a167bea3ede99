# Cityscapes val (500 images, 2048 x 1024), the 19 train ids, 255 ignored.
# Layout (mmseg's tools/dataset_converters/cityscapes.py): leftImg8bit/val/<city>/*_leftImg8bit.png and
# gtFine/val/<city>/*_gtFine_labelTrainIds.png.
dataset_type = "CheckedCityscapesDataset"
data_root = "data/cityscapes"
# Short side resized to 448 keeping the aspect ratio (896 x 448): the paper's test size for GroupViT-S.
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
        data_prefix=dict(img_path="leftImg8bit/val", seg_map_path="gtFine/val"),
        pipeline=test_pipeline,
    ),
)
val_dataloader = test_dataloader
test_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
val_evaluator = test_evaluator
