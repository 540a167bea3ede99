# Self-training (GLIP): a student learns from image-text pairs with the shipped recipe's losses
# (contrastive + multi-label, fusion off) plus the group-phrase alignment loss on a teacher's
# pseudo phrase masks (GroupPhraseAlignmentLoss of the fusion stage, late fusion: the groups of the
# same forward). docs/self_training.md has the commands and the measurements:
#   groupvit-pseudo-label data/synthetic/train --checkpoint checkpoints/groupvit_tiny_synthetic.pth \
#       --out data/pseudo --threshold 0.5
#   mim train mmseg configs/groupvit/groupvit_tiny_synthetic_selftrain.py
# The teacher's own recipe and budget (600 iterations at batch 128, from scratch); a student that
# fine-tunes the teacher instead: --cfg-options model.checkpoint=checkpoints/groupvit_tiny_synthetic.pth
_base_ = ["./groupvit_tiny_synthetic.py"]

pseudo_root = "data/pseudo"  # --out of groupvit-pseudo-label (grounding.jsonl, images/, ann_dir/)
tune_root = "data/tune"  # validation on the tuning split (seed 1), never on the reported val set

model = dict(
    grounding_weight=1.0,
    grounding_fusion=False,  # the shipped model has no fusion layers: the stage-1 forward's groups
    grounding_loss="bce",
    grounding_scale=10.0,
    grounding_threshold=0.4,  # the preset's min_similarity, as in the fusion stage
    grounding_min_share=0.5,
)
train_dataloader = dict(
    # the image-text pairs with the teacher's masks (GroundingFolderDataset takes the image-text
    # folder's arguments)
    dataset=dict(type="GroundingFolderDataset", data_root=pseudo_root, index="grounding.jsonl"),
)
val_dataloader = dict(dataset=dict(data_root=tune_root + "/val"))
test_dataloader = val_dataloader
