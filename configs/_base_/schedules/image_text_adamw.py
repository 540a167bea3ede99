# What the image-text training configs share: GroupViT's runner, AdamW (the paper's optimiser) without
# weight decay on norms, biases and GroupViT.no_weight_decay(), gradient clipping, SyncBN in DDP.
# A config built on it sets its learning rates (optim_wrapper.optimizer.lr / weight_decay), its
# param_scheduler (warm-up and cosine written for its max_iters: they follow train_cfg.max_iters from
# the command line, see mmseg_plugins/runner.py), train_cfg's lengths and the checkpoint interval.
# --resume picks the newest readable checkpoint and continues its random state; atomic checkpoints
runner_type = "GroupViTRunner"
optim_wrapper = dict(
    type="OptimWrapper",  # fp32; on a GPU "AmpOptimWrapper" with dtype="bfloat16" (or --amp)
    optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.05, betas=(0.9, 0.999), eps=1e-8),
    # no weight decay on norms, biases and GroupViT.no_weight_decay(): position embeddings,
    # group tokens and the two logit scales
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            "pos_embed": dict(decay_mult=0.0),
            "positional_embedding": dict(decay_mult=0.0),
            "group_token": dict(decay_mult=0.0),
            "logit_scale": dict(decay_mult=0.0),
        },
    ),
    clip_grad=dict(max_norm=5.0),
)
train_cfg = dict(type="ImageTextTrainLoop")  # max_iters and val_interval: the config's
# SyncBN for the projection heads' BatchNorm (global-batch statistics), on GPUs (NCCL) and on CPUs
# (gloo: tools/train.py starts it on CPU-only machines) alike.
model_wrapper_cfg = dict(
    type="GroupViTDistributedDataParallel",
    sync_bn=True,
    find_unused_parameters=False,
)
