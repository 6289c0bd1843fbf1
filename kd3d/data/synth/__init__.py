"""Synthetic driving datasets written in the real nuScenes and KITTI formats.

Procedural streets (road, sidewalks, terrain, buildings, trees, the 10 nuScenes detection
classes moving at constant speed) observed by a ray-cast spinning LiDAR and ray-cast pinhole
cameras. Deterministic per seed. The output is read unchanged by the official nuscenes-devkit
and by kd3d's loaders::

    from kd3d.data.synth import generate_nuscenes, generate_kitti

    summary = generate_nuscenes("/tmp/nusc", scenes=2, samples_per_scene=5, seed=0,
                                image_size=(320, 180), sweeps=2, progress=False)
    # NuScenes(version=summary["version"], dataroot=summary["dataroot"])
    generate_kitti("/tmp/kitti", frames=8, seed=0, image_size=(621, 188))

Command line: ``kd3d synth --format nuscenes --out DIR --scenes 2 --samples-per-scene 5``.

The world model is :class:`SynthScene` (``kd3d.data.synth.scene``); ``lidar.cast_sweep`` and
``camera.render`` simulate the sensors and also return per-point / per-pixel class and object
ids, and ``rig`` holds the sensor calibrations.
"""
from kd3d.data.synth.nuscenes_writer import generate_nuscenes
from kd3d.data.synth.scene import SynthScene

__all__ = ["generate_nuscenes", "generate_kitti", "SynthScene"]


def generate_kitti(out_dir, **kwargs) -> dict:
    """See :func:`kd3d.data.synth.kitti_writer.generate_kitti`."""
    from kd3d.data.synth.kitti_writer import generate_kitti as _gen

    return _gen(out_dir, **kwargs)
