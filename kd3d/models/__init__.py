"""Models: LiDAR teachers, camera BEV students, fusion detectors and segmenters."""
