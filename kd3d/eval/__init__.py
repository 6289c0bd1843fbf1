"""Evaluation equal to the official tools, vectorised.

* nuScenes detection (NDS, mAP, TP errors; ``detection_cvpr_2019``):
  :func:`kd3d.eval.nuscenes_det.evaluate_nuscenes` (devkit tables + split + submission) and
  :func:`kd3d.eval.nuscenes_det.evaluate_boxes` (in-memory :class:`kd3d.eval.formats.NuscBoxes`).
  Submission I/O: :mod:`kd3d.eval.formats` (``boxes_from_kd3d``, ``write_submission``,
  ``load_submission``). GT loading and filtering: :mod:`kd3d.eval.nuscenes_gt`.
* nuScenes-lidarseg mIoU: :func:`kd3d.eval.nuscenes_seg.evaluate_lidarseg` / ``evaluate_arrays``.
* KITTI 2D/BEV/3D/AOS AP (R11, R40): :func:`kd3d.eval.kitti.evaluate_kitti` / ``evaluate_labels``.

Submodules import lazily; importing ``kd3d.eval`` loads nothing heavy.
"""
