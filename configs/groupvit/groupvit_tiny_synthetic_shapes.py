# GroupViT-tiny on the shape-only synthetic scenes (tools/make_synthetic_data.py --cues shape): the
# category is the outline alone, colour / texture / size / rotation / background are drawn
# independently of it. The colour recipe's config with a convolutional stem (preset
# groupvit_tiny_synthetic_shapes, "stem": "conv") and the shape class list. Best so far, not yet a
# working recipe: the contrastive loss leaves chance (the patch stem's does not), but the groups
# collapse to one and zero-shot mIoU stays at the all-background level (docs/shapes.md). Data first:
#   python tools/make_synthetic_data.py --out data/shapes --cues shape
#   OMP_NUM_THREADS=1 mim train mmseg configs/groupvit/groupvit_tiny_synthetic_shapes.py
_base_ = ["./groupvit_tiny_synthetic.py"]

data_root = "data/shapes"
synthetic_classes = ("background", "triangle", "star", "heart", "ring", "moon", "cross", "diamond", "arrow")

model = dict(model_name="groupvit_tiny_synthetic_shapes")  # groupvit/model_configs/*.json
train_dataloader = dict(dataset=dict(data_root=data_root + "/train"))
val_dataloader = dict(dataset=dict(data_root=data_root + "/val", metainfo=dict(classes=synthetic_classes)))
test_dataloader = val_dataloader
