"""first_come_voxelize on a hand-made cloud: expected voxels derived by hand from the rules."""
import torch

from kd3d.ops.voxelize import first_come_voxelize

# grid 4 x 4 x 2 over [0, 2) x [0, 2) x [0, 2), voxels 0.5 x 0.5 x 1; feature 3 = point id
PTS = torch.tensor([
    [0.6, 1.1, 0.2, 0.0], [0.1, 0.1, 0.1, 1.0], [0.7, 1.2, 0.3, 2.0], [0.8, 1.3, 0.4, 3.0],
    [1.9, 1.9, 1.9, 4.0], [0.9, 1.4, 0.5, 5.0], [0.55, 1.45, 0.9, 6.0], [2.5, 0.1, 0.1, 7.0],
    [1.2, 0.3, 1.5, 8.0], [0.5, 1.0, 0.0, 9.0], [-0.01, 0.2, 0.2, 10.0], [0.2, 0.2, 2.0, 11.0]])
KW = dict(voxel_size=[0.5, 0.5, 1.0], point_range=[0, 0, 0, 2, 2, 2], grid_size=[4, 4, 2])


def test_first_come_order_caps_and_range():
    vox, coords, num = first_come_voxelize(PTS, max_points=3, max_voxels=10, **KW)
    # voxel (x1, y2, z0) holds ids 0 2 3 5 6 9 (0.5 and 1.0 are lower edges: inside); first 3 kept.
    # 7 (x 2.5), 10 (x < 0), 11 (z = 2.0, the upper edge) are outside
    assert coords.tolist() == [[0, 2, 1], [0, 0, 0], [1, 3, 3], [1, 0, 2]]
    assert num.tolist() == [3, 1, 1, 1] and coords.dtype == num.dtype == torch.int32
    assert vox[0, :, 3].tolist() == [0.0, 2.0, 3.0]
    assert vox[1, 0, 3] == 1.0 and vox[2, 0, 3] == 4.0 and vox[3, 0, 3] == 8.0
    assert (vox[1:, 1:] == 0).all()
    # max_voxels: the first two voxels by first appearance; points of later voxels are dropped
    vox2, coords2, num2 = first_come_voxelize(PTS, max_points=10, max_voxels=2, **KW)
    assert coords2.tolist() == [[0, 2, 1], [0, 0, 0]] and num2.tolist() == [6, 1]
    assert vox2[0, :6, 3].tolist() == [0.0, 2.0, 3.0, 5.0, 6.0, 9.0]
