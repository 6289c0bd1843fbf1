"""KITTI 3D object configs (Car / Pedestrian / Cyclist, official-protocol evaluation)."""
