"""``kd3d convert``: bring your own teacher in, take your student out.

    kd3d convert import centerpoint_mmdet3d.pth --from mmdet3d --out teachers/cp_voxel.pth
    kd3d convert import cp_openpcdet.pth --from openpcdet --out teachers/cp_pcdet.pth
    kd3d convert export work_dirs/run/checkpoints/ckpt_step300.pth --model centerpoint_voxel \\
        --model-kwargs '{"scale": "nuscenes", "width": 0.5, "with_attrs": false}' --out exported/
"""
from __future__ import annotations

import argparse
import json
import textwrap

from kd3d.interop.checkpoints import SPARSE_LAYOUTS

_IMPORT_HELP = """\
Convert a CenterPoint checkpoint of another toolbox into a kd3d teacher: writes OUT (a kd3d
checkpoint {"model": weights, "meta": ...} with its OUT.sha256 sidecar) and OUT.model.json, the
model config to give DistillConfig (teacher_model = its "name", teacher_kwargs = its "kwargs",
teacher_checkpoint = OUT). The imported model decodes like its source (top-500 per task,
score > threshold, post-centre range, the source's NMS, test voxel cap); kd3d's own models keep
kd3d's decode defaults.

Sources (--from):
  mmdet3d    MMDetection3D 1.x and 0.x CenterPoint, voxel (centerpoint_voxel01_second_secfpn:
             residual sparse encoder, z 41) or pillar (centerpoint_pillar02_second_secfpn:
             11-feature pillar net); the file's "state_dict" (mmengine / mmcv runner files)
  openpcdet  OpenPCDet CenterPoint (VoxelResBackBone8x or PillarVFE + BaseBEVBackbone +
             CenterHead); the file's "model_state"
The voxel/pillar kind, the residual or plain sparse encoder and the width come from the
checkpoint's keys and shapes.
"""

_EXPORT_HELP = """\
Export a kd3d LiDAR CenterPoint (voxel or pillar, any width; a distillation checkpoint exports
its student) to MMDetection3D 1.x: OUT/NAME_mmdet3d.pth ({"state_dict", "meta"}, loads with
strict=True; sparse kernels in spconv 2 layout with _metadata version 2) and
OUT/NAME_mmdet3d_config.py (the mmdet3d config that builds the same network, with mmdet3d's
CenterPoint test settings). Pillar models must use pfn="mmdet3d" (kd3d's 10-feature pillar net
has no mmdet3d counterpart); the nuScenes attribute branch, absent from mmdet3d, is left out.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _IMPORT_HELP + "\n" + _EXPORT_HELP
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("import", help="mmdet3d / OpenPCDet CenterPoint checkpoint -> kd3d teacher",
                       description=_IMPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="the source .pth file (read without running code it references)")
    p.add_argument("--from", dest="source", required=True, choices=("mmdet3d", "openpcdet"),
                   help="the toolbox that wrote the checkpoint")
    p.add_argument("--out", required=True, help="kd3d checkpoint to write (OUT.sha256 and OUT.model.json beside it)")
    p.add_argument("--mmdet3d-version", choices=("1.x", "0.x"), default=None,
                   help="mmdet3d major version of the checkpoint (default: from its meta; 0.x heads stored dims "
                        "as (w, l, h) and yaw as -yaw - pi/2, remapped exactly)")
    layouts = "; ".join(f"{k} = {v}" for k, v in SPARSE_LAYOUTS.items())
    p.add_argument("--sparse-layout", choices=sorted(SPARSE_LAYOUTS), default=None,
                   help="sparse-conv kernel layout of the checkpoint, when it records none (default: mmdet3d's "
                        f"_metadata version; OpenPCDet: what the asymmetric convs prove). {layouts}")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--conv-for-no-stride", dest="conv_for_no_stride", action="store_true", default=None,
                   help="the source neck's stride-1 layers are Conv2d (use_conv_for_no_stride=True; mmdet3d's "
                        "default here): their 1x1 kernels are transposed into kd3d's ConvTranspose2d")
    g.add_argument("--deconv-for-no-stride", dest="conv_for_no_stride", action="store_false",
                   help="the source neck's stride-1 layers are ConvTranspose2d (OpenPCDet's default here)")
    p.add_argument("--width", type=float, default=None,
                   help="channel multiplier of the network (default: the head's shared conv width / 64)")
    p.add_argument("--model-kwargs", default=None,
                   help="JSON object merged into the kd3d model kwargs (e.g. point_range, voxel_size, "
                        "layer_nums, class_names, tasks, decode) for non-default source configs")
    e = sub.add_parser("export", help="kd3d LiDAR CenterPoint student -> mmdet3d checkpoint + config",
                       description=_EXPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("checkpoint", help="kd3d checkpoint (a training or distillation checkpoint)")
    e.add_argument("--model", default=None,
                   help="kd3d model name or 'module:callable' of the checkpoint's network (e.g. centerpoint_voxel)")
    e.add_argument("--model-kwargs", default="{}", help="JSON object of the model's keyword arguments")
    e.add_argument("--model-json", default=None,
                   help='a {"name", "kwargs"} JSON file instead of --model/--model-kwargs (e.g. OUT.model.json)')
    e.add_argument("--out", required=True, help="folder for NAME_mmdet3d.pth and NAME_mmdet3d_config.py")
    e.add_argument("--name", default="student", help="file name stem (default: student)")


def _json_object(text: str | None, flag: str) -> dict:
    if not text:
        return {}
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{flag}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{flag}: expected a JSON object, got {type(obj).__name__}")
    return obj


def run(args: argparse.Namespace) -> int:
    from kd3d.interop import export as ex

    if args.action == "import":
        rep = ex.import_teacher(args.checkpoint, args.out, source=args.source, version=args.mmdet3d_version,
                                sparse_layout=args.sparse_layout, conv_for_no_stride=args.conv_for_no_stride,
                                width=args.width, overrides=_json_object(args.model_kwargs, "--model-kwargs"))
        cfg = rep["model_config"]
        print(f"wrote {rep['checkpoint']} ({rep['keys']} tensors) and {rep['model_json']}")
        details = {k: v for k, v in rep.items() if k not in ("model_config", "checkpoint", "model_json", "keys")}
        print(f"conversion: {json.dumps(details)}")
        print(textwrap.dedent(f"""\
            use it as a teacher:
              teacher_model={cfg['name']!r},
              teacher_kwargs={json.dumps(cfg['kwargs'])},
              teacher_checkpoint={rep['checkpoint']!r}"""))
        return 0
    if args.model_json:
        with open(args.model_json) as f:
            cfg = _json_object(f.read(), "--model-json")
    elif args.model:
        cfg = {"name": args.model, "kwargs": _json_object(args.model_kwargs, "--model-kwargs")}
    else:
        raise ValueError("kd3d convert export: give --model (and --model-kwargs) or --model-json")
    model = ex.load_kd3d_model(cfg, args.checkpoint)
    rep = ex.export_student(model, args.out, name=args.name)
    print(f"wrote {rep['checkpoint']} ({rep['keys']} tensors) and {rep['config']}")
    if rep["left_out"]:
        print(f"left out (no mmdet3d counterpart): {len(rep['left_out'])} tensors, e.g. {rep['left_out'][:3]}")
    return 0
