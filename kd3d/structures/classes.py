"""Class tables: nuScenes detection classes and attributes, nuScenes-lidarseg 32 -> 16 mapping,
KITTI classes. The single definition of every label convention in kd3d."""
from __future__ import annotations

# nuScenes detection classes, in the devkit's order (detection_cvpr_2019).
NUSC_DET_CLASSES: tuple[str, ...] = (
    "car", "truck", "bus", "trailer", "construction_vehicle",
    "pedestrian", "motorcycle", "bicycle", "traffic_cone", "barrier",
)

# Class evaluation range in metres (xy distance to the ego vehicle, strictly below).
NUSC_CLASS_RANGE: dict[str, float] = {
    "car": 50.0, "truck": 50.0, "bus": 50.0, "trailer": 50.0, "construction_vehicle": 50.0,
    "pedestrian": 40.0, "motorcycle": 40.0, "bicycle": 40.0, "traffic_cone": 30.0, "barrier": 30.0,
}

# General nuScenes category name -> detection class (categories not listed are not detected).
NUSC_CATEGORY_TO_DET: dict[str, str] = {
    "movable_object.barrier": "barrier",
    "vehicle.bicycle": "bicycle",
    "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus",
    "vehicle.car": "car",
    "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle",
    "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian",
    "movable_object.trafficcone": "traffic_cone",
    "vehicle.trailer": "trailer",
    "vehicle.truck": "truck",
}

# The eight nuScenes attributes, in the order of the official attribute table.
NUSC_ATTRIBUTES: tuple[str, ...] = (
    "vehicle.moving", "vehicle.stopped", "vehicle.parked",
    "cycle.with_rider", "cycle.without_rider",
    "pedestrian.sitting_lying_down", "pedestrian.standing", "pedestrian.moving",
)

# Attributes allowed per detection class ("" means the class carries no attribute).
NUSC_CLASS_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "car": ("vehicle.moving", "vehicle.stopped", "vehicle.parked"),
    "truck": ("vehicle.moving", "vehicle.stopped", "vehicle.parked"),
    "bus": ("vehicle.moving", "vehicle.stopped", "vehicle.parked"),
    "trailer": ("vehicle.moving", "vehicle.stopped", "vehicle.parked"),
    "construction_vehicle": ("vehicle.moving", "vehicle.stopped", "vehicle.parked"),
    "pedestrian": ("pedestrian.sitting_lying_down", "pedestrian.standing", "pedestrian.moving"),
    "motorcycle": ("cycle.with_rider", "cycle.without_rider"),
    "bicycle": ("cycle.with_rider", "cycle.without_rider"),
    "traffic_cone": (),
    "barrier": (),
}

# Default attribute written for a class when a model predicts none.
NUSC_DEFAULT_ATTRIBUTE: dict[str, str] = {
    "car": "vehicle.parked", "truck": "vehicle.parked", "bus": "vehicle.moving",
    "trailer": "vehicle.parked", "construction_vehicle": "vehicle.parked",
    "pedestrian": "pedestrian.moving", "motorcycle": "cycle.without_rider",
    "bicycle": "cycle.without_rider", "traffic_cone": "", "barrier": "",
}

# nuScenes-lidarseg: the 32 general classes with their label index (category.json `index`).
NUSC_LIDARSEG_CATEGORIES: tuple[str, ...] = (
    "noise", "animal", "human.pedestrian.adult", "human.pedestrian.child",
    "human.pedestrian.construction_worker", "human.pedestrian.personal_mobility",
    "human.pedestrian.police_officer", "human.pedestrian.stroller",
    "human.pedestrian.wheelchair", "movable_object.barrier", "movable_object.debris",
    "movable_object.pushable_pullable", "movable_object.trafficcone",
    "static_object.bicycle_rack", "vehicle.bicycle", "vehicle.bus.bendy", "vehicle.bus.rigid",
    "vehicle.car", "vehicle.construction", "vehicle.emergency.ambulance",
    "vehicle.emergency.police", "vehicle.motorcycle", "vehicle.trailer", "vehicle.truck",
    "flat.driveable_surface", "flat.other", "flat.sidewalk", "flat.terrain", "static.manmade",
    "static.other", "static.vegetation", "vehicle.ego",
)

# The 16 lidarseg challenge classes; index 0 is "ignore".
NUSC_LIDARSEG_CLASSES: tuple[str, ...] = (
    "ignore", "barrier", "bicycle", "bus", "car", "construction_vehicle", "motorcycle",
    "pedestrian", "traffic_cone", "trailer", "truck", "driveable_surface", "other_flat",
    "sidewalk", "terrain", "manmade", "vegetation",
)

_FINE_TO_COARSE_NAME: dict[str, str] = {
    "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian",
    "movable_object.barrier": "barrier",
    "movable_object.trafficcone": "traffic_cone",
    "vehicle.bicycle": "bicycle",
    "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus",
    "vehicle.car": "car",
    "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle",
    "vehicle.trailer": "trailer",
    "vehicle.truck": "truck",
    "flat.driveable_surface": "driveable_surface",
    "flat.other": "other_flat",
    "flat.sidewalk": "sidewalk",
    "flat.terrain": "terrain",
    "static.manmade": "manmade",
    "static.vegetation": "vegetation",
}

# 32-class index -> 16-class index (0 = ignore).
NUSC_LIDARSEG_FINE_TO_COARSE: tuple[int, ...] = tuple(
    NUSC_LIDARSEG_CLASSES.index(_FINE_TO_COARSE_NAME.get(name, "ignore"))
    for name in NUSC_LIDARSEG_CATEGORIES
)

# KITTI object classes kd3d detects, and the devkit's evaluated classes.
KITTI_CLASSES: tuple[str, ...] = ("Car", "Pedestrian", "Cyclist")
KITTI_ALL_CLASSES: tuple[str, ...] = (
    "Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc", "DontCare",
)
