"""Term builders take channel counts and voxel geometry from the models' feature specs; explicit
values remain for building without models and must agree with the specs when both are given."""
import pytest
import torch
from toy_models import TinyBEVDetector, TinySparseNet

from kd3d.distill.build import build_distiller
from kd3d.distill.config import DistillConfig
from kd3d.distill.methods import MethodDescriptor, build_terms, register, unregister
from kd3d.distill.specs import build_terms_for_models
from kd3d.structures import BEVGrid

GRID = BEVGrid(-8, -8, 8, 8, 1.0, 1.0)


def _pair():
    torch.manual_seed(0)
    return TinyBEVDetector(grid=GRID, width=4), TinyBEVDetector(grid=GRID, width=8)


@pytest.mark.parametrize("method, kwargs, adapter, channels", [
    ("bevdistill", {"feature_key": "bev_neck", "instance_weight": 0}, "bevdistill_dense", (8, 16)),
    ("unidistill", {"teacher_modality": "lidar", "student_modality": "camera"}, "unidistill_feature", (4, 8)),
    ("distillbev", {"levels": ["bev_stage2"], "a_sp": 0}, "distillbev_bev_stage2", (8, 16)),
    ("generic", {"terms": [{"name": "fit", "loss": "mse", "student_key": "bev", "teacher_key": "bev"}]},
     "generic_fit", (4, 8)),
])
def test_adapter_channels_come_from_the_specs(method, kwargs, adapter, channels):
    student, teacher = _pair()
    _, adapters = build_terms_for_models(method, kwargs, student=student, teacher=teacher)
    conv = adapters[adapter].conv
    assert (conv.in_channels, conv.out_channels) == channels


def test_build_distiller_needs_no_channels_in_the_config():
    student, teacher = _pair()
    cfg = DistillConfig(method="unidistill", allow_untrained_teacher=True,
                        method_kwargs={"teacher_modality": "lidar", "student_modality": "camera"})
    d = build_distiller(cfg, student=student, teacher=teacher)
    conv = d.adapters["unidistill_feature"].conv
    assert (conv.in_channels, conv.out_channels) == (4, 8)


def test_hand_typed_channels_must_agree_with_the_specs():
    student, teacher = _pair()
    kw = {"teacher_modality": "lidar", "student_modality": "camera", "student_channels": 4, "teacher_channels": 8}
    build_terms_for_models("unidistill", kw, student=student, teacher=teacher)  # agreeing values are accepted
    with pytest.raises(ValueError, match=r"unidistill: teacher_channels=16 but the teacher's 'bev' has 8 channels"):
        build_terms_for_models("unidistill", {**kw, "teacher_channels": 16}, student=student, teacher=teacher)
    with pytest.raises(ValueError, match=r"distillbev: the student has no feature 'bev_stage9'"):
        build_terms_for_models("distillbev", {"levels": ["bev_stage9"]}, student=student, teacher=teacher)
    with pytest.raises(ValueError, match="specs come from the models"):
        build_terms_for_models("unidistill", {**kw, "student_specs": {}}, student=student, teacher=teacher)


def test_without_models_channels_are_required():
    with pytest.raises(ValueError, match="student_channels is required when the terms are built without a student"):
        build_terms("bevdistill")
    with pytest.raises(ValueError, match="levels must be a list of feature keys"):
        build_terms("distillbev", levels="bev_neck")
    terms, adapters = build_terms("distillbev", levels={"bev_neck": (4, 8)}, a_sp=0)
    assert adapters["distillbev_bev_neck"].conv.in_channels == 4 and len(terms) == 1


def test_pvd_voxel_geometry_from_the_teacher_spec():
    torch.manual_seed(0)
    student, teacher = TinySparseNet(width=4), TinySparseNet(width=8)
    terms, _ = build_terms_for_models("pvd", {"voxel_affinity_weight": 1.0}, student=student, teacher=teacher)
    (loss,) = [t.loss for t in terms if t.name == "pvd/voxel_affinity"]
    assert loss.voxel_size == TinySparseNet.VOXEL and loss.point_range == TinySparseNet.RANGE
    with pytest.raises(ValueError, match=r"pvd: voxel_size=\[0.25, 0.25, 0.25\] but the teacher's 'voxel'"):
        build_terms_for_models("pvd", {"voxel_affinity_weight": 1.0, "voxel_size": [0.25] * 3},
                               student=student, teacher=teacher)


def test_generic_channel_free_losses_get_no_adapter():
    student, teacher = _pair()
    spec = {"name": "at", "loss": "at", "student_key": "bev_neck", "teacher_key": "bev_neck"}
    _, adapters = build_terms_for_models("generic", {"terms": [spec]}, student=student, teacher=teacher)
    assert adapters == {}


def test_a_method_without_spec_parameters_still_builds():
    """An out-of-tree term builder that takes no ``*_specs`` keywords is called without them."""
    from kd3d.distill.distiller import DistillTerm
    from kd3d.distill.losses import MSELoss

    def plain_terms(*, key: str = "heatmap"):
        return [DistillTerm("plain", key, key, MSELoss())], {}

    register(MethodDescriptor("plain_for_specs_test", plain_terms))
    try:
        student, teacher = _pair()
        terms, _ = build_terms_for_models("plain_for_specs_test", {}, student=student, teacher=teacher)
        assert [t.name for t in terms] == ["plain"]
    finally:
        unregister("plain_for_specs_test")
