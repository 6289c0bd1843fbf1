"""Check the partial mmcv build (side venv; tools/mmdet3d_fixtures/build_mmcv_voxelization.sh runs it): mmcv.ops.Voxelization on small clouds.

Every kept point lies in its voxel; a voxel keeps its first max_points points in input order; at
most max_voxels voxels, the first ones in order of first appearance (mmcv's docstring: "max_voxels
may drop points"; points of later voxels are dropped); dynamic mode gives each point its voxel,
-1 outside the range.
"""
import numpy as np
import torch
from mmcv.ops import Voxelization
from mmcv.ops.voxelize import voxelization

torch.manual_seed(0)
vs, rng = [0.5, 0.5, 1.0], [0.0, 0.0, 0.0, 2.0, 2.0, 2.0]
# 4 x 4 x 2 grid; six points in voxel (x1, y2, z0) (more than max_points = 4), one point out of range
pts = torch.tensor([
    [0.6, 1.1, 0.2, 0.0], [0.1, 0.1, 0.1, 1.0], [0.7, 1.2, 0.3, 2.0], [0.8, 1.3, 0.4, 3.0],
    [1.9, 1.9, 1.9, 4.0], [0.9, 1.4, 0.5, 5.0], [0.55, 1.45, 0.9, 6.0], [0.99, 1.01, 0.0, 7.0],
    [2.5, 0.1, 0.1, 8.0], [1.2, 0.3, 1.5, 9.0]], dtype=torch.float32)
vox, coors, num = voxelization(pts, vs, rng, 4, 100)
assert len(vox) == 4, len(vox)
# order of first appearance: (x1,y2,z0) first, then (0,0,0), (3,3,1), (2,0,1); coors are z, y, x
assert coors.tolist() == [[0, 2, 1], [0, 0, 0], [1, 3, 3], [1, 0, 2]], coors.tolist()
assert num.tolist() == [4, 1, 1, 1], num.tolist()
assert vox[0, :, 3].tolist() == [0.0, 2.0, 3.0, 5.0]  # first 4 of ids 0, 2, 3, 5, 6, 7
for v in range(len(vox)):
    p = vox[v, :num[v], :3]
    cell = torch.floor((p - torch.tensor(rng[:3])) / torch.tensor(vs)).int()
    assert (cell == coors[v].flip(0)).all(), (v, cell, coors[v])
    assert (vox[v, num[v]:] == 0).all()
# max_voxels: only the first 2 voxels by first appearance; points of the others are dropped
vox2, coors2, num2 = voxelization(pts, vs, rng, 4, 2)
assert coors2.tolist() == coors.tolist()[:2] and num2.tolist() == [4, 1]
# the module form (as mmdet3d's preprocessor uses it) picks max_voxels[1] in eval mode
layer = Voxelization(vs, rng, 4, max_voxels=(1, 3)).eval()
assert len(layer(pts)[0]) == 3 and len(layer.train()(pts)[0]) == 1
# dynamic
dyn = voxelization(pts, vs, rng, -1, -1)
assert dyn[8].tolist() == [-1, -1, -1] and dyn[0].tolist() == [0, 2, 1] and dyn[9].tolist() == [1, 0, 2]
# a larger random cloud against a loop written from the documented rules
g = np.random.default_rng(1)
big = torch.from_numpy(g.uniform(-0.3, 2.3, size=(5000, 4)).astype(np.float32))
vb, cb, nb = voxelization(big, vs, rng, 3, 20)
seen, keep = {}, {}
for i, p in enumerate(big.numpy()):
    c = np.floor((p[:3] - np.float32(0)) / np.float32(vs)).astype(int)
    if (c < 0).any() or (c >= [4, 4, 2]).any():
        continue
    key = tuple(c[::-1])
    if key not in seen:
        if len(seen) >= 20:
            continue
        seen[key] = len(seen); keep[key] = []
    if len(keep[key]) < 3:
        keep[key].append(i)
assert [tuple(c) for c in cb.tolist()] == list(seen)
for key, v in seen.items():
    assert nb[v] == len(keep[key]) and torch.equal(vb[v, :nb[v]], big[keep[key]])
import mmcv._ext_vox  # noqa: E402
print("mmcv", __import__("mmcv").__version__, "voxelization checks passed:", mmcv._ext_vox.__file__)
