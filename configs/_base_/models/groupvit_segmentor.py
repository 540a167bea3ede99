# The zero-shot GroupViT segmentor of the evaluation configs (mmseg_plugins/segmentor.py). A config
# built on it states what makes it different: the benchmark (whose class renames and background
# threshold come from groupvit/class_names.py), the preset, background or not, the test mode.
model = dict(
    type="GroupViTSegmentor",
    model_name="groupvit_s",  # groupvit preset; the checkpoint must fit it
    model_overrides=dict(),  # e.g. dict(vision=dict(drop_path_rate=0.0))
    class_names=None,  # None: the dataset's classes (label order, background first)
    # "voc" / "context" / "coco_object": that benchmark's class renames (dataset name -> word fed to
    # the text encoder) and background threshold, the paper's. Unset here, class_renames=dict(...)
    # and bg_thresh=0.9 replace them (default without a benchmark: no renames and the preset's
    # config.inference.bg_thresh).
    benchmark=None,
    templates="simple",
    background=True,  # label 0 is background, scored by thresholding
    top_k=5,
    data_preprocessor=dict(
        type="SegDataPreProcessor",
        mean=[123.675, 116.28, 103.53],  # ImageNet, RGB
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
    ),
    # the paper's sliding windows of twice the training size (448 px, stride 224) for GroupViT-S
    test_cfg=dict(mode="slide", crop_size=(448, 448), stride=(224, 224)),
)
