"""PVD (point-to-voxel KD) on the sparse-UNet segmenter, nuScenes-lidarseg (GPU).

Pair: teacher ``nuscenes/seg_unet`` (1.0x) -> student ``nuscenes/seg_unet_w050`` (0.5x
channels, the paper's student; same 0.1 m voxel grid). Terms: pointwise KL on
``point_logits`` and voxelwise KL on ``voxel_logits`` (17 classes both, temperature 1),
supervoxel affinity on ``point_feats`` (16 vs 32 channels) and on the decoder voxels ``voxel``
(voxel centres from the teacher's 0.1 m grid, read from its feature specs) -- cosine-affinity
matrices, so no adapter; 16 supervoxels per scan drawn with the difficulty-aware probabilities,
64 points / voxels each. Every weight 1.0 (the inter-voxel affinity gets the inter-point
affinity's weight: the paper distils both as one component), and the supervoxel counts
are our choice; docs/methods.md (PVD) says what each term computes against the paper. Same
data as the teacher (lidarseg labels, key frame).

Train the teacher first; its work dir is the checkpoint::

    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/seg_unet
    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/distill_pvd
"""
from kd3d.distill import DistillConfig
from kd3d.engine.config import load_base, override

TEACHER = load_base("nuscenes/seg_unet")
STUDENT = load_base("nuscenes/seg_unet_w050")

CONFIG = override(STUDENT, {
    "name": "nusc_seg_unet_w050_pvd",
    "distill": DistillConfig(
        method="pvd", teacher_model=TEACHER.model.name, teacher_kwargs=dict(TEACHER.model.kwargs),
        teacher_checkpoint=f"work_dirs/{TEACHER.name}",
        method_kwargs={"temperature": 1.0, "point_kl_weight": 1.0, "voxel_kl_weight": 1.0,
                       "affinity_weight": 1.0, "num_supervoxels": 16, "points_per_supervoxel": 64,
                       "voxel_affinity_weight": 1.0, "voxel_key": "voxel"},
    ),
})
