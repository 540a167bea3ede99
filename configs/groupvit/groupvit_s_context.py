# GroupViT-S, zero-shot semantic segmentation on PASCAL Context val (60 classes with background).
# Paper mIoU: 22.4 (gcc_yfcc checkpoint), 23.7 (gcc_redcaps).
#   mim test mmseg configs/groupvit/groupvit_s_context.py --checkpoint group_vit_gcc_yfcc_30e-879422e0.pth
_base_ = ["../_base_/datasets/pascal_context.py", "../_base_/default_runtime.py"]

data_root = "data/VOCdevkit/VOC2010"
test_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = test_dataloader

model = dict(
    type="GroupViTSegmentor",
    model_name="groupvit_s",  # groupvit preset; the checkpoint must fit it
    model_overrides=dict(),  # e.g. dict(vision=dict(drop_path_rate=0.0))
    class_names=None,  # None: the dataset's classes (label order, background first)
    # Dataset names -> the words fed to the text encoder ("a photo of a {}.").
    class_renames=dict(aeroplane="airplane", pottedplant="plant", tvmonitor="monitor"),
    templates="simple",
    background=True,  # label 0 is background, scored by thresholding
    bg_thresh=0.35,
    top_k=5,
    data_preprocessor=dict(
        type="SegDataPreProcessor",
        mean=[123.675, 116.28, 103.53],  # ImageNet, RGB
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
    ),
    test_cfg=dict(mode="slide", crop_size=(448, 448), stride=(224, 224)),
)
