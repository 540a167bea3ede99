# Runtime shared by every GroupViT config, evaluation and training (mmengine Runner, mmseg scope).
default_scope = "mmseg"
# Loads mmseg_plugins (compat layer first, then GroupViTSegmentor, datasets, hooks) in every process.
custom_imports = dict(imports=["mmseg_plugins"], allow_failed_imports=False)
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="nccl"),
)
vis_backends = [dict(type="LocalVisBackend")]
# `--show-dir DIR` turns on drawing: under DIR/vis_data/vis_image/, per image, mmseg's ground truth |
# prediction overlay and one picture of the groups of each grouping stage (modes, see
# groupvit.visualization.MODES; modes=() draws the overlay only).
visualizer = dict(
    type="GroupViTVisualizer", vis_backends=vis_backends, name="visualizer", alpha=0.5, modes=("all_groups",)
)
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50, log_metric_by_epoch=False),
    # training only (mmengine registers both in any case): the schedule and iteration checkpoints
    # (a training config sets the interval)
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", by_epoch=False, save_last=True, max_keep_ckpts=3),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    # draw=False: --show / --show-dir switch it on; interval: draw every n-th image.
    visualization=dict(type="GroupViTVisualizationHook", draw=False, interval=1),
)
custom_hooks = [
    dict(type="SkippedSamplesHook", interval=50),  # training: corrupt samples skipped, in the log
    dict(type="DatasetMetaHook"),  # the evaluated dataset's metainfo (class names) -> model, before val/test
]
log_processor = dict(by_epoch=False)
log_level = "INFO"
load_from = None
resume = False
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
