"""Parameters of the session-wide synthetic datasets built in ``conftest.py``."""
SYNTH_NUSC = dict(scenes=2, samples_per_scene=3, seed=3, image_size=(320, 180), sweeps=2, progress=False)
SYNTH_KITTI = dict(frames=4, seed=5, image_size=(414, 125), progress=False)
