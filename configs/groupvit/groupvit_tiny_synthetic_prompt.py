# Prompt tuning of the shipped synthetic model: every model weight frozen, only the class prompts
# learn, from k labelled images per class (docs/prompt_tuning.md). The product is
# work_dir/prompts.safetensors (a few kB), which `mim test ... --cfg-options model.prompts=FILE`,
# tools/demo.py --prompts FILE and ZeroShotSegmenter(model, names, prompts=FILE) take.
# Labelled images (a generated set, never the val set):
#   python tools/make_synthetic_data.py --out data/pool --num-train 0 --num-val 2000 --seed 3
#   mim train mmseg configs/groupvit/groupvit_tiny_synthetic_prompt.py --work-dir work_dirs/prompt
#   --cfg-options train_dataloader.dataset.k=4 model.prompt_kind=context (k=None: every image)
_base_ = ["../_base_/default_runtime.py"]
runner_type = "GroupViTRunner"

checkpoint = "checkpoints/groupvit_tiny_synthetic.pth"  # the frozen model the prompts belong to
labelled_root = "data/pool/val"  # mmseg layout: img_dir/val, ann_dir/val
val_root = "data/synthetic_val/val"  # zero-shot mIoU with the tuned prompts (data/tune/val for choices)
k = 16  # labelled images per class; None: all images of labelled_root
sample_seed = 0  # which k images per class
prompt_kind = "embedding"  # "embedding": the class embeddings; "context": CoOp context vectors
shared_context = True  # "context": one context for every class (False: one per class)
max_iters = 300
batch_size = 8
lr = 1e-2
short_side = 320  # the preset's evaluation size (config.inference.short_side)
synthetic_classes = ("background", "apple", "house", "star", "tree", "fish", "car", "ball", "flower")

model = dict(
    type="PromptTuningModel",
    model_name="groupvit_tiny_synthetic",
    checkpoint=checkpoint,
    class_names=synthetic_classes,  # label order, background first
    prompt_kind=prompt_kind,
    context_init="a photo of a",  # the context starts as the zero-shot template
    shared_context=shared_context,
    templates="simple",
    background=True,
    top_k=5,
    test_cfg=dict(mode="whole"),
    data_preprocessor=dict(
        type="GroupViTDataPreProcessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
    ),
)

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,  # the frozen image side is computed once per image and kept in the model
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="groupvit_labelled_collate"),
    dataset=dict(
        type="FewShotSegDataset",
        data_root=labelled_root,
        classes=synthetic_classes,
        k=k,
        seed=sample_seed,
        short_side=short_side,
    ),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        type="CheckedSegDataset",
        data_root=val_root,
        data_prefix=dict(img_path="img_dir/val", seg_map_path="ann_dir/val"),
        img_suffix=".png",
        seg_map_suffix=".png",
        metainfo=dict(classes=synthetic_classes),
        pipeline=[
            dict(type="LoadImageFromFile"),
            dict(type="Resize", scale=(short_side, short_side), keep_ratio=True),
            dict(type="LoadAnnotations"),
            dict(type="PackSegInputs"),
        ],
    ),
)
val_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# Only the prompts have requires_grad; weight decay would pull them towards 0, away from the text
# embeddings' sphere.
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=lr, weight_decay=0.0))
param_scheduler = [dict(type="CosineAnnealingLR", eta_min=lr * 0.01, by_epoch=False, begin=0, end=max_iters)]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters)

default_hooks = dict(
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=max_iters, max_keep_ckpts=1),
)
custom_hooks = [dict(type="DatasetMetaHook"), dict(type="PromptExportHook", filename="prompts.safetensors")]
randomness = dict(seed=0)
