"""Bring your own teacher: checkpoints of other toolboxes in, kd3d students out (``kd3d convert``).

* :mod:`kd3d.interop.checkpoints`: exact weight-layout transforms (sparse-conv layouts, 1x1
  conv <-> deconv, bias folding, head-row remaps), each tested on hand-built tensors;
* :mod:`kd3d.interop.mapping`: foreign files loaded without running their code, module pairing;
* :mod:`kd3d.interop.mmdet3d` / :mod:`kd3d.interop.openpcdet`: CenterPoint key tables;
* :mod:`kd3d.interop.decode`: imported teachers decode like their source (:class:`SourceDecode`);
* :mod:`kd3d.interop.export`: whole-file import / export (kd3d checkpoint + model config,
  mmdet3d checkpoint + config text).

Layer: with ``models`` (imports models, ops, structures; nothing below imports it).
"""
