"""A self-contained, offline HTML viewer of one sample: points and boxes on a <canvas>.

No network, no CDN, no WebGL: the page embeds the point cloud (base64 float32 xyz + uint8 RGB)
and the box corners as JSON, and a small JavaScript renderer (:data:`_JS`, written for kd3d)
projects them with a perspective orbit camera, a z-buffer for points and 2D-canvas lines for
boxes. Controls: drag = orbit, shift/right-drag = pan, wheel = zoom; checkboxes toggle points,
GT and predictions; a slider sets the score threshold; buttons switch between a 3D view and a
top (BEV) view. Both initial views look along the ego vehicle's forward axis (from
``lidar2ego``), as :func:`kd3d.vis.bev.render_scene` does: for KITTI / synthetic data +x up and +y left.

A drop-down switches the point colours (height, intensity, time lag, range, lidarseg label).
The URL fragment sets the initial state, e.g. ``sample.html#view=bev&gt=0&pred=1&thr=0.3&color=time``.
"""
from __future__ import annotations

import base64
import html as _html
import json
from pathlib import Path

import numpy as np

from kd3d.vis.bev import _check_dets, ego_forward_yaw
from kd3d.vis.colors import GT_COLOR, PRED_COLOR, class_color, point_colors


def scene_payload(sample, preds: dict | None = None, *, color_by: str = "height", max_points: int = 100_000,
                  class_names=None, seed: int = 0) -> dict:
    """The JSON-able scene the viewer draws.

    ``points``: base64 of (N, 3) float32 LiDAR xyz (randomly subsampled to ``max_points``);
    ``colors``: scheme -> base64 of (N, 3) uint8, for ``color_by`` first, then every other
    scheme the sample supports (height, intensity, time, depth; label when it has lidarseg
    labels, which only covers key-frame points: the others are grey); ``boxes``: list of ``{"kind": "gt"|"pred", "corners":
    (8, 3) LiDAR frame (Boxes3D.corners order), "color", "label", "score"}``.
    """
    pts = np.asarray(sample.points)
    if color_by == "label":
        pts = pts[: sample.num_key_points]
    schemes = [color_by] + [c for c in ("height", "intensity", "time", "depth") if c != color_by]
    if sample.points_label is not None and "label" not in schemes:
        schemes.append("label")
    if len(pts) > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(len(pts), max_points, replace=False))
        pts = pts[idx]
    else:
        idx = np.arange(len(pts))
    colors = {}
    for scheme in schemes:
        if scheme == "label":  # labels cover the key frame only: pad the sweeps' points as unlabelled
            nk = sample.num_key_points
            cols = point_colors(sample.points[:nk], "label", labels=sample.points_label)
            cols = np.concatenate([cols, np.full((len(sample.points) - nk, 3), 128, np.uint8)])[idx]
        else:
            cols = point_colors(pts, scheme)
        colors[scheme] = base64.b64encode(np.ascontiguousarray(cols, dtype=np.uint8).tobytes()).decode("ascii")
    names = list(class_names) if class_names is not None else None

    def label_name(l):
        return names[l] if names is not None and 0 <= l < len(names) else str(int(l))

    boxes = []
    for kind, bx, labels, scores in _box_sets(sample, preds):
        for corners, label, score in zip(bx.corners(), labels, scores):
            col = class_color(label, names) if label >= 0 else (GT_COLOR if kind == "gt" else PRED_COLOR)
            boxes.append({"kind": kind, "corners": np.round(corners, 3).tolist(), "color": list(col),
                          "label": label_name(label), "score": None if score is None else round(float(score), 4)})
    return {
        "token": str(sample.token),
        "n": int(len(pts)),
        "points": base64.b64encode(np.ascontiguousarray(pts[:, :3], dtype="<f4").tobytes()).decode("ascii"),
        "colors": colors,
        "boxes": boxes,
        "color_by": color_by,
        # heading of the ego vehicle's forward axis in the LiDAR frame: the initial views look along it
        "ego_yaw": ego_forward_yaw(np.asarray(sample.lidar2ego) @ np.linalg.inv(sample.bev_aug)),
    }


def _box_sets(sample, preds):
    gt = sample.gt_boxes
    labels = np.asarray(sample.gt_labels, dtype=np.int64) if len(sample.gt_labels) == len(gt) else np.full(len(gt), -1)
    yield "gt", gt, labels, [None] * len(gt)
    dets = _check_dets(preds, "render_html")
    if dets is not None:
        boxes, scores, plabels = dets
        yield "pred", boxes, plabels, scores


def render_html(sample, preds: dict | None = None, *, out=None, color_by: str = "height", max_points: int = 100_000,
                class_names=None, title: str | None = None) -> str:
    """Build the viewer page for a :class:`~kd3d.structures.sample.Sample` (and optional detections,
    a dict with ``boxes`` Boxes3D LiDAR frame, ``scores``, ``labels``). Writes it to ``out`` when
    given; returns the HTML text."""
    payload = scene_payload(sample, preds, color_by=color_by, max_points=max_points, class_names=class_names)
    title = title or f"kd3d sample {sample.token}"
    data = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    page = _TEMPLATE.replace("__TITLE__", _html.escape(title)).replace("__DATA__", data).replace("__JS__", _JS)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    return page


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
html,body{margin:0;height:100%;background:#000;overflow:hidden;font:12px sans-serif;color:#ddd}
#c{display:block;width:100%;height:100%}
#ui{position:absolute;top:6px;left:6px;background:rgba(20,20,20,.85);padding:6px 8px;border-radius:4px}
#ui label{margin-right:8px}#info{position:absolute;bottom:6px;left:6px;background:rgba(20,20,20,.85);padding:4px}
</style></head><body>
<canvas id="c"></canvas>
<div id="ui"><b>__TITLE__</b><br>
<label><input type="checkbox" id="t_points" checked>points</label>
<label><input type="checkbox" id="t_gt" checked>GT</label>
<label><input type="checkbox" id="t_pred" checked>predictions</label>
<label><input type="checkbox" id="t_text" checked>scores</label><br>
score &ge; <input type="range" id="thr" min="0" max="1" step="0.01" value="0"> <span id="thr_v">0.00</span>
<button id="v3d">3D</button><button id="vbev">BEV</button>
colour <select id="scheme"></select></div>
<div id="info"></div>
<script id="scene" type="application/json">__DATA__</script>
<script>__JS__</script>
</body></html>
"""

_JS = r"""
(function(){
'use strict';
var S = JSON.parse(document.getElementById('scene').textContent);
function b64(s){var b=atob(s),u=new Uint8Array(b.length);for(var i=0;i<b.length;i++)u[i]=b.charCodeAt(i);return u;}
var P = new Float32Array(b64(S.points).buffer), N = S.n, CS = {}, C;
Object.keys(S.colors).forEach(function(k){CS[k]=b64(S.colors[k]);});
var cv = document.getElementById('c'), ctx = cv.getContext('2d');
var EY = S.ego_yaw || 0;
var st = {yaw: Math.PI + EY, pitch: 0.5, dist: 45, tx: 10 * Math.cos(EY), ty: 10 * Math.sin(EY), tz: 0, points: true, gt: true, pred: true, text: true, thr: 0,
          color: S.color_by};
function setView(v){ if(v==='bev'){st.yaw=Math.PI+EY;st.pitch=1.5607;st.dist=90;st.tx=0;st.ty=0;}
  else {st.yaw=Math.PI+EY;st.pitch=0.5;st.dist=45;st.tx=10*Math.cos(EY);st.ty=10*Math.sin(EY);} }
// initial state from the URL fragment: view=bev|3d, points/gt/pred/text=0|1, thr=0..1
(location.hash||'').replace(/^#/,'').split('&').forEach(function(kv){
  var p=kv.split('='); if(p.length!==2) return;
  if(p[0]==='view') setView(p[1]);
  else if(p[0]==='thr') st.thr=parseFloat(p[1])||0;
  else if(p[0]==='color') st.color=decodeURIComponent(p[1]);
  else if(p[0] in st) st[p[0]] = p[1]!=='0';
});
function cam(W,H){
  var cp=Math.cos(st.pitch), e=[st.tx+st.dist*cp*Math.cos(st.yaw), st.ty+st.dist*cp*Math.sin(st.yaw), st.tz+st.dist*Math.sin(st.pitch)];
  var f=[st.tx-e[0],st.ty-e[1],st.tz-e[2]], n=Math.hypot(f[0],f[1],f[2]); f=[f[0]/n,f[1]/n,f[2]/n];
  var r=[f[1],-f[0],0]; n=Math.hypot(r[0],r[1])||1; r=[r[0]/n,r[1]/n,0];
  var d=[f[1]*r[2]-f[2]*r[1], f[2]*r[0]-f[0]*r[2], f[0]*r[1]-f[1]*r[0]];
  return {e:e,f:f,r:r,d:d,fl:0.5*W/Math.tan(35*Math.PI/180),W:W,H:H};
}
function toCam(c,x,y,z){var a=x-c.e[0],b=y-c.e[1],g=z-c.e[2];
  return [a*c.r[0]+b*c.r[1]+g*c.r[2], a*c.d[0]+b*c.d[1]+g*c.d[2], a*c.f[0]+b*c.f[1]+g*c.f[2]];}
var NEAR=0.2;
function seg(c,p,q,dash){
  if(p[2]<NEAR&&q[2]<NEAR) return;
  if(p[2]<NEAR||q[2]<NEAR){var t=(NEAR-p[2])/(q[2]-p[2]),m=[p[0]+t*(q[0]-p[0]),p[1]+t*(q[1]-p[1]),NEAR];
    if(p[2]<NEAR)p=m;else q=m;}
  ctx.moveTo(c.fl*p[0]/p[2]+c.W/2, c.fl*p[1]/p[2]+c.H/2); ctx.lineTo(c.fl*q[0]/q[2]+c.W/2, c.fl*q[1]/q[2]+c.H/2);
}
var EDGES=[[0,1],[1,2],[2,3],[3,0],[4,5],[5,6],[6,7],[7,4],[0,4],[1,5],[2,6],[3,7],[0,7],[3,4]];
function draw(){
  var W=cv.width=cv.clientWidth||window.innerWidth, H=cv.height=cv.clientHeight||window.innerHeight;
  var c=cam(W,H), img=ctx.createImageData(W,H), px=img.data, zb=new Float32Array(W*H);
  for(var i=3;i<px.length;i+=4) px[i]=255;
  zb.fill(Infinity);
  var shown=0; C = CS[st.color] || CS[S.color_by];
  if(st.points){ for(var k=0;k<N;k++){
    var q=toCam(c,P[3*k],P[3*k+1],P[3*k+2]); if(q[2]<NEAR) continue;
    var u=Math.floor(c.fl*q[0]/q[2]+W/2), v=Math.floor(c.fl*q[1]/q[2]+H/2), s=q[2]<20?1:0;
    for(var du=0;du<=s;du++) for(var dv=0;dv<=s;dv++){ var uu=u+du, vv=v+dv;
      if(uu<0||vv<0||uu>=W||vv>=H) continue; var o=vv*W+uu; if(q[2]>=zb[o]) continue;
      zb[o]=q[2]; px[4*o]=C[3*k]; px[4*o+1]=C[3*k+1]; px[4*o+2]=C[3*k+2]; shown++; } } }
  ctx.putImageData(img,0,0);
  var nb=0;
  S.boxes.forEach(function(b){
    if(b.kind==='gt'&&!st.gt) return; if(b.kind==='pred'&&(!st.pred||b.score<st.thr)) return;
    var cc=b.corners.map(function(p){return toCam(c,p[0],p[1],p[2]);});
    ctx.beginPath(); ctx.strokeStyle='rgb('+b.color.join(',')+')'; ctx.lineWidth=b.kind==='gt'?3:2;
    ctx.setLineDash(b.kind==='gt'?[]:[6,4]);
    EDGES.forEach(function(e){seg(c,cc[e[0]],cc[e[1]]);}); ctx.stroke(); nb++;
    if(st.text&&b.score!==null&&cc[4][2]>NEAR){ ctx.setLineDash([]); ctx.fillStyle=ctx.strokeStyle; ctx.font='12px sans-serif';
      ctx.fillText(b.label+' '+b.score.toFixed(2), c.fl*cc[4][0]/cc[4][2]+W/2, c.fl*cc[4][1]/cc[4][2]+H/2-4); }
  });
  document.getElementById('info').textContent = S.token+': '+N+' points ('+st.color+'), '+nb+' boxes shown';
  document.body.setAttribute('data-rendered', String(shown));
}
function bind(id,key){var el=document.getElementById(id); el.checked=st[key]; el.onchange=function(){st[key]=el.checked;draw();};}
bind('t_points','points'); bind('t_gt','gt'); bind('t_pred','pred'); bind('t_text','text');
var thr=document.getElementById('thr'); thr.value=st.thr; document.getElementById('thr_v').textContent=st.thr.toFixed(2);
thr.oninput=function(){st.thr=parseFloat(thr.value);document.getElementById('thr_v').textContent=st.thr.toFixed(2);draw();};
var sel=document.getElementById('scheme');
Object.keys(CS).forEach(function(k){var o=document.createElement('option'); o.value=k; o.textContent=k; sel.appendChild(o);});
sel.value = (st.color in CS) ? st.color : S.color_by; sel.onchange=function(){st.color=sel.value; draw();};
document.getElementById('v3d').onclick=function(){setView('3d');draw();};
document.getElementById('vbev').onclick=function(){setView('bev');draw();};
var drag=null;
cv.addEventListener('contextmenu',function(e){e.preventDefault();});
cv.addEventListener('mousedown',function(e){drag={x:e.clientX,y:e.clientY,pan:e.shiftKey||e.button===2};});
window.addEventListener('mouseup',function(){drag=null;});
window.addEventListener('mousemove',function(e){ if(!drag) return; var dx=e.clientX-drag.x, dy=e.clientY-drag.y; drag.x=e.clientX; drag.y=e.clientY;
  if(drag.pan){ var s=st.dist/600, fx=-Math.cos(st.yaw), fy=-Math.sin(st.yaw);  // ground forward; right = (fy, -fx)
    st.tx += s*(-dx*fy + dy*fx); st.ty += s*(dx*fx + dy*fy); }
  else { st.yaw-=dx*0.005; st.pitch=Math.max(-0.2,Math.min(1.5607,st.pitch+dy*0.005)); }
  draw(); });
cv.addEventListener('wheel',function(e){e.preventDefault(); st.dist=Math.max(2,st.dist*Math.exp(e.deltaY*0.001)); draw();},{passive:false});
window.addEventListener('resize',draw);
draw();
})();
"""
