"""PVD on the sparse-UNet segmenter: 0.5x student from the 1.0x teacher; pointwise and
voxelwise KL plus supervoxel affinity on ``point_feats`` (16 vs 32 channels; affinities need no
adapter) and on the decoder voxels ``voxel`` (inter-point and inter-voxel affinity, the same
weight 1.0; voxel centres from the teacher's feature specs). What each term computes against
the paper: docs/methods.md (PVD). Train ``synth/seg_teacher`` first."""
from kd3d.distill import DistillConfig
from kd3d.engine.config import load_base, override

STUDENT = load_base("synth/seg_student_050")
TEACHER = load_base("synth/seg_teacher")

CONFIG = override(STUDENT, {
    "name": "synth_seg_student_050_pvd",
    "distill": DistillConfig(
        method="pvd", teacher_model=TEACHER.model.name, teacher_kwargs=dict(TEACHER.model.kwargs),
        teacher_checkpoint=f"work_dirs/{TEACHER.name}",
        method_kwargs={"temperature": 1.0, "num_supervoxels": 16, "points_per_supervoxel": 64,
                       "voxel_affinity_weight": 1.0},
    ),
})
