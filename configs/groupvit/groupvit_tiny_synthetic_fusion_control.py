# Control of stage 2 (groupvit_tiny_synthetic_fusion.py): the same data, losses and schedule with no
# fusion layers, so the grounding loss trains the dual encoder's groups (late fusion).
#   OMP_NUM_THREADS=1 mim train mmseg configs/groupvit/groupvit_tiny_synthetic_fusion_control.py
_base_ = ["./groupvit_tiny_synthetic_fusion.py"]

model = dict(model_overrides={"fusion.layers": 0})
