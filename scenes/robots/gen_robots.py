#!/usr/bin/env python3
"""Generator and validator for Rivet's primitive-geometry robot models.

Writes (next to this script):
  rivet_arm6.urdf   6-DoF UR5-like arm with a two-finger parallel gripper
  rivet_rover.urdf  differential-drive mobile base with two ball casters and a lidar

The URDF files are exactly the output of this script; edit the parameters
here and re-run instead of hand-editing them.

Usage:
  python3 gen_robots.py           regenerate both files, then validate them
  python3 gen_robots.py --check   do not write; fail if the files on disk differ
                                  from the generator output, then validate them

Only the Python standard library is used.  Inertias are computed from the
solid-primitive formulas (mass spread over a link's shapes by volume, i.e.
uniform density per link) and combined with the parallel-axis theorem.  The
inertial frame always has rpy = 0 (rapier3d-urdf ignores the inertial
rotation), so products of inertia are written out explicitly when non-zero.
"""

import math
import os
import random
import sys
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
PI = math.pi
TWO_PI = 2.0 * math.pi
# +/- 2 pi joint limits, rounded toward zero so the printed value stays within +/- 2 pi
TWO_PI_LIMIT = math.floor(TWO_PI * 1e7) / 1e7
PI_LIMIT = math.floor(PI * 1e7) / 1e7

# ----------------------------------------------------------------------------
# small linear-algebra helpers (3x3 matrices as lists of rows)
# ----------------------------------------------------------------------------


def mat_mul(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]


def mat_vec(a, v):
    return [sum(a[i][k] * v[k] for k in range(3)) for i in range(3)]


def transpose(a):
    return [[a[j][i] for j in range(3)] for i in range(3)]


def vadd(a, b):
    return [a[i] + b[i] for i in range(3)]


def vsub(a, b):
    return [a[i] - b[i] for i in range(3)]


def vscale(a, s):
    return [x * s for x in a]


def dot(a, b):
    return sum(a[i] * b[i] for i in range(3))


def cross(a, b):
    return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]


def norm(a):
    return math.sqrt(dot(a, a))


def identity():
    return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def rpy_to_mat(rpy):
    """URDF fixed-axis roll/pitch/yaw: R = Rz(yaw) * Ry(pitch) * Rx(roll)."""
    r, p, y = rpy
    cr, sr = math.cos(r), math.sin(r)
    cp, sp = math.cos(p), math.sin(p)
    cy, sy = math.cos(y), math.sin(y)
    return [
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ]


def axis_angle(axis, angle):
    x, y, z = vscale(axis, 1.0 / norm(axis))
    c, s = math.cos(angle), math.sin(angle)
    t = 1.0 - c
    return [
        [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
        [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
        [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
    ]


def sym_eigenvalues(m):
    """Eigenvalues of a symmetric 3x3 matrix (closed-form, trigonometric)."""
    p1 = m[0][1] ** 2 + m[0][2] ** 2 + m[1][2] ** 2
    if p1 < 1e-30:
        return sorted([m[0][0], m[1][1], m[2][2]])
    q = (m[0][0] + m[1][1] + m[2][2]) / 3.0
    p2 = (m[0][0] - q) ** 2 + (m[1][1] - q) ** 2 + (m[2][2] - q) ** 2 + 2.0 * p1
    p = math.sqrt(p2 / 6.0)
    b = [[(m[i][j] - (q if i == j else 0.0)) / p for j in range(3)] for i in range(3)]
    detb = (
        b[0][0] * (b[1][1] * b[2][2] - b[1][2] * b[2][1])
        - b[0][1] * (b[1][0] * b[2][2] - b[1][2] * b[2][0])
        + b[0][2] * (b[1][0] * b[2][1] - b[1][1] * b[2][0])
    )
    r = max(-1.0, min(1.0, detb / 2.0))
    phi = math.acos(r) / 3.0
    e1 = q + 2.0 * p * math.cos(phi)
    e3 = q + 2.0 * p * math.cos(phi + 2.0 * PI / 3.0)
    e2 = 3.0 * q - e1 - e3
    return sorted([e1, e2, e3])


def solve_linear(a, b):
    """Gaussian elimination with partial pivoting (a: n x n, b: n)."""
    n = len(b)
    m = [list(a[i]) + [b[i]] for i in range(n)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[piv] = m[piv], m[col]
        if abs(m[col][col]) < 1e-15:
            raise ZeroDivisionError("singular matrix")
        for r in range(col + 1, n):
            f = m[r][col] / m[col][col]
            for c in range(col, n + 1):
                m[r][c] -= f * m[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][c] * x[c] for c in range(r + 1, n))) / m[r][r]
    return x


# ----------------------------------------------------------------------------
# model description
# ----------------------------------------------------------------------------

CYL_X = (0.0, PI / 2.0, 0.0)  # rpy that lays a URDF cylinder (local z) along x
CYL_Y = (PI / 2.0, 0.0, 0.0)  # rpy that lays a URDF cylinder (local z) along y
CYL_Z = (0.0, 0.0, 0.0)


class Shape:
    """One primitive; used for both <visual> and <collision> (identical)."""

    def __init__(self, kind, dims, xyz=(0.0, 0.0, 0.0), rpy=(0.0, 0.0, 0.0), material=None):
        assert kind in ("box", "cylinder", "sphere")
        self.kind, self.dims = kind, tuple(dims)
        self.xyz, self.rpy, self.material = tuple(xyz), tuple(rpy), material

    def volume(self):
        return shape_volume(self.kind, self.dims)


def shape_volume(kind, dims):
    if kind == "box":
        return dims[0] * dims[1] * dims[2]
    if kind == "cylinder":
        r, length = dims
        return PI * r * r * length
    (r,) = dims
    return 4.0 / 3.0 * PI * r ** 3


def shape_unit_inertia(kind, dims):
    """Principal inertia per unit mass of a solid primitive, about its centre, in its own frame."""
    if kind == "box":
        x, y, z = dims
        return ((y * y + z * z) / 12.0, (x * x + z * z) / 12.0, (x * x + y * y) / 12.0)
    if kind == "cylinder":  # axis along local z
        r, length = dims
        t = (3.0 * r * r + length * length) / 12.0
        return (t, t, r * r / 2.0)
    (r,) = dims
    i = 2.0 / 5.0 * r * r
    return (i, i, i)


def mass_properties(shapes, mass):
    """Uniform-density composite: returns (com, 3x3 inertia about com in link axes)."""
    vols = [shape_volume(k, d) for (k, d, _, _) in shapes]
    vtot = sum(vols)
    masses = [mass * v / vtot for v in vols]
    com = [0.0, 0.0, 0.0]
    for (_, _, xyz, _), m in zip(shapes, masses):
        com = vadd(com, vscale(list(xyz), m / mass))
    inertia = [[0.0] * 3 for _ in range(3)]
    for (kind, dims, xyz, rpy), m in zip(shapes, masses):
        rot = rpy_to_mat(rpy)
        ip = shape_unit_inertia(kind, dims)
        local = [[ip[i] * m if i == j else 0.0 for j in range(3)] for i in range(3)]
        rotated = mat_mul(mat_mul(rot, local), transpose(rot))
        d = vsub(list(xyz), com)
        dd = dot(d, d)
        for i in range(3):
            for j in range(3):
                inertia[i][j] += rotated[i][j] + m * ((dd if i == j else 0.0) - d[i] * d[j])
    return com, inertia


class Link:
    def __init__(self, name, mass=None, shapes=()):
        self.name, self.mass, self.shapes = name, mass, list(shapes)


class Joint:
    def __init__(self, name, jtype, parent, child, xyz=(0, 0, 0), rpy=(0, 0, 0), axis=None,
                 limit=None, dynamics=None, safety=None, comment=None):
        self.name, self.type, self.parent, self.child = name, jtype, parent, child
        self.xyz, self.rpy, self.axis = tuple(xyz), tuple(rpy), axis
        self.limit, self.dynamics, self.safety, self.comment = limit, dynamics, safety, comment


# ----------------------------------------------------------------------------
# XML emission
# ----------------------------------------------------------------------------


def fmt(v):
    if abs(v) < 1e-12:
        v = 0.0
    s = "%.10g" % v
    if s == "-0":
        s = "0"
    return s


def fvec(v):
    return " ".join(fmt(x) for x in v)


def xml_comment(text, indent=""):
    assert "--" not in text and "<" not in text and ">" not in text, text
    lines = text.strip("\n").split("\n")
    out = [indent + "<!--"]
    out += [(indent + "  " + ln).rstrip() for ln in lines]
    out.append(indent + "-->")
    return "\n".join(out)


def geometry_xml(shape):
    if shape.kind == "box":
        return '<box size="%s"/>' % fvec(shape.dims)
    if shape.kind == "cylinder":
        return '<cylinder radius="%s" length="%s"/>' % (fmt(shape.dims[0]), fmt(shape.dims[1]))
    return '<sphere radius="%s"/>' % fmt(shape.dims[0])


def origin_xml(xyz, rpy):
    return '<origin xyz="%s" rpy="%s"/>' % (fvec(xyz), fvec(rpy))


def link_xml(link, materials):
    ind = "  "
    if link.mass is None:
        return ind + '<link name="%s"/>' % link.name
    out = [ind + '<link name="%s">' % link.name]
    com, inertia = mass_properties([(s.kind, s.dims, s.xyz, s.rpy) for s in link.shapes], link.mass)
    out.append(ind * 2 + "<inertial>")
    out.append(ind * 3 + origin_xml(com, (0, 0, 0)))
    out.append(ind * 3 + '<mass value="%s"/>' % fmt(link.mass))
    out.append(
        ind * 3
        + '<inertia ixx="%s" ixy="%s" ixz="%s" iyy="%s" iyz="%s" izz="%s"/>'
        % tuple(fmt(x) for x in (inertia[0][0], inertia[0][1], inertia[0][2],
                                 inertia[1][1], inertia[1][2], inertia[2][2]))
    )
    out.append(ind * 2 + "</inertial>")
    for tag in ("visual", "collision"):
        for i, s in enumerate(link.shapes):
            out.append(ind * 2 + '<%s name="%s_%s_%d">' % (tag, link.name, tag, i))
            out.append(ind * 3 + origin_xml(s.xyz, s.rpy))
            out.append(ind * 3 + "<geometry>")
            out.append(ind * 4 + geometry_xml(s))
            out.append(ind * 3 + "</geometry>")
            if tag == "visual":
                out.append(ind * 3 + '<material name="%s">' % s.material)
                out.append(ind * 4 + '<color rgba="%s"/>' % fvec(materials[s.material]))
                out.append(ind * 3 + "</material>")
            out.append(ind * 2 + "</%s>" % tag)
    out.append(ind + "</link>")
    return "\n".join(out)


def joint_xml(j):
    ind = "  "
    out = []
    if j.comment:
        out.append(xml_comment(j.comment, ind))
    out.append(ind + '<joint name="%s" type="%s">' % (j.name, j.type))
    out.append(ind * 2 + origin_xml(j.xyz, j.rpy))
    out.append(ind * 2 + '<parent link="%s"/>' % j.parent)
    out.append(ind * 2 + '<child link="%s"/>' % j.child)
    if j.axis is not None:
        out.append(ind * 2 + '<axis xyz="%s"/>' % fvec(j.axis))
    if j.limit is not None:
        lim = j.limit
        if "lower" in lim:
            out.append(ind * 2 + '<limit lower="%s" upper="%s" effort="%s" velocity="%s"/>'
                       % (fmt(lim["lower"]), fmt(lim["upper"]), fmt(lim["effort"]), fmt(lim["velocity"])))
        else:
            out.append(ind * 2 + '<limit effort="%s" velocity="%s"/>' % (fmt(lim["effort"]), fmt(lim["velocity"])))
    if j.dynamics is not None:
        out.append(ind * 2 + '<dynamics damping="%s" friction="%s"/>' % (fmt(j.dynamics[0]), fmt(j.dynamics[1])))
    if j.safety is not None:
        s = j.safety
        out.append(ind * 2 + '<safety_controller soft_lower_limit="%s" soft_upper_limit="%s" '
                   'k_position="%s" k_velocity="%s"/>'
                   % (fmt(s["soft_lower"]), fmt(s["soft_upper"]), fmt(s["k_position"]), fmt(s["k_velocity"])))
    out.append(ind + "</joint>")
    return "\n".join(out)


def robot_body_xml(name, links, joints, materials):
    parts = ['<robot name="%s">' % name]
    for link in links:
        parts.append(link_xml(link, materials))
    for j in joints:
        parts.append(joint_xml(j))
    parts.append("</robot>")
    return "\n".join(parts) + "\n"


def assemble(header, body):
    return '<?xml version="1.0"?>\n' + xml_comment(header) + "\n" + body


# ----------------------------------------------------------------------------
# URDF parsing (used by validation, FK and IK: works from the XML text only)
# ----------------------------------------------------------------------------


def floats(s, n):
    vals = [float(x) for x in s.split()]
    assert len(vals) == n, s
    return vals


def parse_origin(el):
    o = el.find("origin") if el is not None else None
    if o is None:
        return [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    return floats(o.get("xyz", "0 0 0"), 3), floats(o.get("rpy", "0 0 0"), 3)


def parse_geometry(g):
    kids = list(g)
    assert len(kids) == 1, "geometry must hold exactly one shape"
    s = kids[0]
    if s.tag == "box":
        return ("box", tuple(floats(s.get("size"), 3)))
    if s.tag == "cylinder":
        return ("cylinder", (float(s.get("radius")), float(s.get("length"))))
    if s.tag == "sphere":
        return ("sphere", (float(s.get("radius")),))
    raise ValueError("non-primitive geometry: %s" % s.tag)


def load_model(text):
    root = ET.fromstring(text)
    assert root.tag == "robot"
    model = {"name": root.get("name"), "links": {}, "joints": [], "link_order": []}
    for le in root.findall("link"):
        name = le.get("name")
        assert name not in model["links"], "duplicate link %s" % name
        link = {"name": name, "inertial": None, "visual": [], "collision": []}
        ie = le.find("inertial")
        if ie is not None:
            xyz, rpy = parse_origin(ie)
            i = ie.find("inertia")
            tensor = [[float(i.get("ixx")), float(i.get("ixy")), float(i.get("ixz"))],
                      [float(i.get("ixy")), float(i.get("iyy")), float(i.get("iyz"))],
                      [float(i.get("ixz")), float(i.get("iyz")), float(i.get("izz"))]]
            link["inertial"] = {"mass": float(ie.find("mass").get("value")), "xyz": xyz, "rpy": rpy,
                                "I": tensor}
        for tag in ("visual", "collision"):
            for ve in le.findall(tag):
                xyz, rpy = parse_origin(ve)
                kind, dims = parse_geometry(ve.find("geometry"))
                entry = {"kind": kind, "dims": dims, "xyz": xyz, "rpy": rpy}
                me = ve.find("material")
                if me is not None:
                    ce = me.find("color")
                    entry["material"] = (me.get("name"), floats(ce.get("rgba"), 4) if ce is not None else None)
                link[tag].append(entry)
        model["links"][name] = link
        model["link_order"].append(name)
    for je in root.findall("joint"):
        xyz, rpy = parse_origin(je)
        ax = je.find("axis")
        j = {"name": je.get("name"), "type": je.get("type"), "xyz": xyz, "rpy": rpy,
             "parent": je.find("parent").get("link"), "child": je.find("child").get("link"),
             "axis": floats(ax.get("xyz"), 3) if ax is not None else [1.0, 0.0, 0.0],
             "has_axis": ax is not None, "limit": None, "dynamics": None, "safety": None,
             "mimic": je.find("mimic") is not None}
        le = je.find("limit")
        if le is not None:
            j["limit"] = {k: float(le.get(k, "0")) for k in ("lower", "upper", "effort", "velocity")}
            j["limit"]["_attrs"] = set(le.attrib)
        de = je.find("dynamics")
        if de is not None:
            j["dynamics"] = {k: float(de.get(k, "0")) for k in ("damping", "friction")}
            j["dynamics"]["_attrs"] = set(de.attrib)
        se = je.find("safety_controller")
        if se is not None:
            j["safety"] = {k: float(se.get(k, "0")) for k in
                           ("soft_lower_limit", "soft_upper_limit", "k_position", "k_velocity")}
            j["safety"]["_attrs"] = set(se.attrib)
        model["joints"].append(j)
    return model


def model_root(model):
    children = {j["child"] for j in model["joints"]}
    roots = [n for n in model["link_order"] if n not in children]
    return roots


def fk(model, q=None, base=None):
    """World pose (R, p) of every link; q maps joint name -> position (default 0)."""
    q = q or {}
    (root,) = model_root(model)
    poses = {root: base or (identity(), [0.0, 0.0, 0.0])}
    by_parent = {}
    for j in model["joints"]:
        by_parent.setdefault(j["parent"], []).append(j)
    stack = [root]
    while stack:
        name = stack.pop()
        rp, pp = poses[name]
        for j in by_parent.get(name, []):
            ro = rpy_to_mat(j["rpy"])
            r = mat_mul(rp, ro)
            p = vadd(pp, mat_vec(rp, j["xyz"]))
            v = q.get(j["name"], 0.0)
            if j["type"] in ("revolute", "continuous"):
                r = mat_mul(r, axis_angle(j["axis"], v))
            elif j["type"] == "prismatic":
                a = vscale(j["axis"], 1.0 / norm(j["axis"]))
                p = vadd(p, mat_vec(r, vscale(a, v)))
            poses[j["child"]] = (r, p)
            stack.append(j["child"])
    return poses


def world_shapes(model, poses, link_name):
    out = []
    r_l, p_l = poses[link_name]
    for c in model["links"][link_name]["collision"]:
        r = mat_mul(r_l, rpy_to_mat(c["rpy"]))
        p = vadd(p_l, mat_vec(r_l, c["xyz"]))
        out.append((c["kind"], c["dims"], r, p))
    return out


def lowest_z(shape):
    kind, dims, r, p = shape
    if kind == "box":
        return p[2] - sum(abs(r[2][i]) * dims[i] / 2.0 for i in range(3))
    if kind == "cylinder":
        rad, length = dims
        az = abs(r[2][2])
        return p[2] - (az * length / 2.0 + rad * math.sqrt(max(0.0, 1.0 - az * az)))
    return p[2] - dims[0]


def inside(shape, x, margin):
    """True if world point x is inside the shape by more than `margin`."""
    kind, dims, r, p = shape
    loc = mat_vec(transpose(r), vsub(x, p))
    if kind == "box":
        return all(abs(loc[i]) < dims[i] / 2.0 - margin for i in range(3))
    if kind == "cylinder":
        rad, length = dims
        return loc[0] ** 2 + loc[1] ** 2 < (rad - margin) ** 2 and abs(loc[2]) < length / 2.0 - margin
    return norm(loc) < dims[0] - margin


def sample_points(shape, n=11):
    kind, dims, r, p = shape
    if kind == "box":
        ext = [d / 2.0 for d in dims]
    elif kind == "cylinder":
        ext = [dims[0], dims[0], dims[1] / 2.0]
    else:
        ext = [dims[0]] * 3
    pts = []
    for i in range(n):
        for j in range(n):
            for k in range(n):
                loc = [ext[0] * (2.0 * (i + 0.5) / n - 1.0), ext[1] * (2.0 * (j + 0.5) / n - 1.0),
                       ext[2] * (2.0 * (k + 0.5) / n - 1.0)]
                w = vadd(p, mat_vec(r, loc))
                if inside(shape, w, 0.0):
                    pts.append(w)
    return pts


def bounding_radius(shape):
    kind, dims = shape[0], shape[1]
    if kind == "box":
        return 0.5 * math.sqrt(sum(d * d for d in dims))
    if kind == "cylinder":
        return math.hypot(dims[0], dims[1] / 2.0)
    return dims[0]


def self_collisions(model, poses, margin=0.001):
    """Pairs of non-adjacent links whose collision shapes overlap by more than ~margin
    (volume sampling, so overlaps thinner than the sampling pitch may be missed)."""
    adjacent = {frozenset((j["parent"], j["child"])) for j in model["joints"]}
    names = [n for n in model["link_order"] if model["links"][n]["collision"]]
    shapes = {n: world_shapes(model, poses, n) for n in names}
    hits = []
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            na, nb = names[a], names[b]
            if frozenset((na, nb)) in adjacent:
                continue
            hit = False
            for sa in shapes[na]:
                for sb in shapes[nb]:
                    if norm(vsub(sa[3], sb[3])) >= bounding_radius(sa) + bounding_radius(sb):
                        continue
                    if any(inside(sb, pt, margin) for pt in sample_points(sa)) or \
                       any(inside(sa, pt, margin) for pt in sample_points(sb)):
                        hit = True
            if hit:
                hits.append((na, nb))
    return hits


# ----------------------------------------------------------------------------
# numerical IK (damped least squares, pure Python)
# ----------------------------------------------------------------------------


def rot_error(r_cur, r_tgt):
    """Rotation vector (world frame, small-angle) taking r_cur toward r_tgt."""
    e = [0.0, 0.0, 0.0]
    for i in range(3):
        c = [r_cur[0][i], r_cur[1][i], r_cur[2][i]]
        t = [r_tgt[0][i], r_tgt[1][i], r_tgt[2][i]]
        e = vadd(e, cross(c, t))
    return vscale(e, 0.5)


def ik(model, joint_names, tip, p_tgt, r_tgt, seed, iters=300):
    lims = {j["name"]: j["limit"] for j in model["joints"]}
    q = list(seed)

    def pose(qv):
        return fk(model, dict(zip(joint_names, qv)))[tip]

    for _ in range(iters):
        r, p = pose(q)
        e = vsub(p_tgt, p) + rot_error(r, r_tgt)
        if norm(e[:3]) < 1e-9 and norm(e[3:]) < 1e-9:
            return q, e
        h = 1e-6
        jac = [[0.0] * len(q) for _ in range(6)]
        for k in range(len(q)):
            qh = list(q)
            qh[k] += h
            rh, ph = pose(qh)
            dp = vscale(vsub(ph, p), 1.0 / h)
            dr = vscale(rot_error(r, rh), 1.0 / h)
            for row in range(3):
                jac[row][k] = dp[row]
                jac[row + 3][k] = dr[row]
        lam2 = 1e-4
        jjt = [[sum(jac[a][k] * jac[b][k] for k in range(len(q))) + (lam2 if a == b else 0.0)
                for b in range(6)] for a in range(6)]
        y = solve_linear(jjt, e)
        dq = [sum(jac[a][k] * y[a] for a in range(6)) for k in range(len(q))]
        m = max(abs(x) for x in dq)
        if m > 0.3:
            dq = [x * 0.3 / m for x in dq]
        q = [q[k] + dq[k] for k in range(len(q))]
        q = [min(max(q[k], lims[n]["lower"]), lims[n]["upper"]) for k, n in enumerate(joint_names)]
    r, p = pose(q)
    return q, vsub(p_tgt, p) + rot_error(r, r_tgt)


def r4(v, nd=4):
    """Round for display without printing negative zero."""
    return round(v, nd) + 0.0


def wrap(a):
    a = math.fmod(a + PI, TWO_PI)
    if a < 0:
        a += TWO_PI
    return a - PI


# ============================================================================
# 1. rivet_arm6
# ============================================================================

ARM_JOINTS = ["shoulder_pan", "shoulder_lift", "elbow", "wrist_1", "wrist_2", "wrist_3"]
FINGER_JOINTS = ["finger_left_joint", "finger_right_joint"]

# UR5-like kinematic constants (metres)
D1 = 0.089159   # base mounting face -> shoulder (pan joint origin / lift axis height)
SH_Y = 0.13585  # shoulder offset along +y to the lift joint
A2 = 0.425      # upper arm length (lift axis -> elbow axis, along x at zero pose)
EL_Y = -0.1197  # elbow offset along y (forearm sits back toward the arm plane)
A3 = 0.39225    # forearm length (elbow axis -> wrist_1 axis)
D4_Y = 0.093    # wrist_1 -> wrist_2 offset along y (total y offset 0.10915)
D5 = 0.09465    # wrist_2 -> wrist_3 offset along +z at zero pose
D6 = 0.0823     # wrist_3 axis -> tool flange face along +y at zero pose

# gripper (expressed in the gripper_base frame: +z = approach, +y = finger travel)
PALM = (0.06, 0.17, 0.04)           # box, flange face at z=0, palm spans z 0..0.04
FINGER = (0.03, 0.015, 0.08)        # box: x width, y thickness, z length
FINGER_CLOSED_HALF_GAP = 0.0175     # inner finger faces at y = +/-0.0175 at q = 0
FINGER_TRAVEL = 0.045               # per finger, 0 (closed) .. 0.045 (open)
TOOL0_Z = 0.10                      # grasp centre: 0.06 into the 0.08 long fingers

ARM_MATERIALS = {
    "rivet_orange": (1.0, 0.45, 0.05, 1.0),
    "rivet_grey": (0.55, 0.57, 0.6, 1.0),
    "rivet_dark": (0.15, 0.15, 0.17, 1.0),
}


def arm_model():
    O, G, D = "rivet_orange", "rivet_grey", "rivet_dark"
    links = [
        Link("base_link", 3.0, [
            Shape("cylinder", (0.075, D1), (0, 0, D1 / 2.0), CYL_Z, D)]),
        Link("shoulder_link", 3.2, [
            # pan motor housing, vertical, centred on the pan joint
            Shape("cylinder", (0.06, 0.12), (0, 0, 0), CYL_Z, G),
            # lift motor housing along y, from the pan axis to the upper-arm housing
            Shape("cylinder", (0.06, SH_Y - 0.05), (0, (SH_Y - 0.05) / 2.0, 0), CYL_Y, G)]),
        Link("upper_arm_link", 6.0, [
            # shoulder housing around the lift axis, y in [-0.05, 0.06]
            Shape("cylinder", (0.06, 0.11), (0, 0.005, 0), CYL_Y, G),
            # tube along x from 0.05 to 0.37
            Shape("cylinder", (0.045, 0.32), (0.21, 0, 0), CYL_X, O),
            # elbow-side housing, y in [-0.05, 0.05]
            Shape("cylinder", (0.055, 0.10), (A2, 0, 0), CYL_Y, G)]),
        Link("forearm_link", 2.3, [
            # elbow housing around the elbow axis, y in [-0.045, -EL_Y - 0.05]
            Shape("cylinder", (0.05, 0.045 + (-EL_Y - 0.05)), (0, (-EL_Y - 0.05 - 0.045) / 2.0, 0), CYL_Y, G),
            # tube along x from 0.05 to A3 - 0.045
            Shape("cylinder", (0.038, A3 - 0.045 - 0.05), (0.05 + (A3 - 0.045 - 0.05) / 2.0, 0, 0), CYL_X, O)]),
        Link("wrist_1_link", 1.2, [
            # wrist_1 housing along y, y in [-0.045, D4_Y - 0.045]
            Shape("cylinder", (0.045, D4_Y), ((0, (D4_Y - 0.09) / 2.0, 0)), CYL_Y, G)]),
        Link("wrist_2_link", 1.2, [
            # wrist_2 housing along z, z in [-0.045, 0.05]
            Shape("cylinder", (0.045, 0.095), (0, 0, 0.0025), CYL_Z, G),
            # wrist_3 motor housing along y around the wrist_3 axis, y in [-0.045, 0.06]
            Shape("cylinder", (0.045, 0.105), (0, 0.0075, D5), CYL_Y, G)]),
        Link("wrist_3_link", 0.2, [
            # tool flange disc, y in [0.06, D6]
            Shape("cylinder", (0.0375, D6 - 0.06), (0, (D6 + 0.06) / 2.0, 0), CYL_Y, D)]),
        Link("gripper_base", 0.7, [
            Shape("box", PALM, (0, 0, PALM[2] / 2.0), (0, 0, 0), D)]),
        Link("finger_left", 0.1, [
            Shape("box", FINGER, (0, FINGER[1] / 2.0, FINGER[2] / 2.0), (0, 0, 0), G)]),
        Link("finger_right", 0.1, [
            Shape("box", FINGER, (0, -FINGER[1] / 2.0, FINGER[2] / 2.0), (0, 0, 0), G)]),
        Link("tool0"),
    ]

    def big(lo, hi):
        return dict(lower=lo, upper=hi, effort=150.0, velocity=3.14)

    def small(lo, hi):
        return dict(lower=lo, upper=hi, effort=28.0, velocity=3.14)

    def safety(lim, kp, kv, margin=0.1):
        return dict(soft_lower=lim["lower"] + margin, soft_upper=lim["upper"] - margin,
                    k_position=kp, k_velocity=kv)

    l_pan, l_lift, l_elbow = big(-TWO_PI_LIMIT, TWO_PI_LIMIT), big(-PI_LIMIT, PI_LIMIT), big(-PI_LIMIT, PI_LIMIT)
    l_w1, l_w2, l_w3 = (small(-TWO_PI_LIMIT, TWO_PI_LIMIT), small(-TWO_PI_LIMIT, TWO_PI_LIMIT),
                        small(-TWO_PI_LIMIT, TWO_PI_LIMIT))
    dyn_big, dyn_small = (1.0, 0.5), (0.2, 0.1)
    finger_lim = dict(lower=0.0, upper=FINGER_TRAVEL, effort=100.0, velocity=0.2)
    palm_bottom = PALM[2]
    joints = [
        Joint("shoulder_pan", "revolute", "base_link", "shoulder_link", (0, 0, D1), axis=(0, 0, 1),
              limit=l_pan, dynamics=dyn_big, safety=safety(l_pan, 100.0, 20.0)),
        Joint("shoulder_lift", "revolute", "shoulder_link", "upper_arm_link", (0, SH_Y, 0), axis=(0, 1, 0),
              limit=l_lift, dynamics=dyn_big, safety=safety(l_lift, 100.0, 20.0)),
        Joint("elbow", "revolute", "upper_arm_link", "forearm_link", (A2, EL_Y, 0), axis=(0, 1, 0),
              limit=l_elbow, dynamics=dyn_big, safety=safety(l_elbow, 100.0, 20.0)),
        Joint("wrist_1", "revolute", "forearm_link", "wrist_1_link", (A3, 0, 0), axis=(0, 1, 0),
              limit=l_w1, dynamics=dyn_small, safety=safety(l_w1, 50.0, 10.0)),
        Joint("wrist_2", "revolute", "wrist_1_link", "wrist_2_link", (0, D4_Y, 0), axis=(0, 0, 1),
              limit=l_w2, dynamics=dyn_small, safety=safety(l_w2, 50.0, 10.0)),
        Joint("wrist_3", "revolute", "wrist_2_link", "wrist_3_link", (0, 0, D5), axis=(0, 1, 0),
              limit=l_w3, dynamics=dyn_small, safety=safety(l_w3, 50.0, 10.0)),
        Joint("gripper_joint", "fixed", "wrist_3_link", "gripper_base", (0, D6, 0), (-PI / 2.0, 0, 0),
              comment="gripper_base: rpy (-pi/2, 0, 0) maps gripper +z (approach) onto wrist_3 +y\n"
                      "(the flange normal) and gripper +y (finger travel) onto wrist_3 -z."),
        Joint("finger_left_joint", "prismatic", "gripper_base", "finger_left",
              (0, FINGER_CLOSED_HALF_GAP, palm_bottom), axis=(0, 1, 0),
              limit=finger_lim, dynamics=(2.0, 0.5),
              comment="Fingers: two independent prismatic joints (no mimic). q = 0 closed\n"
                      "(finger gap %.3f m), q = %.3f open; gap = %.3f + q_left + q_right,\n"
                      "max %.3f m. Positive q opens both (left moves +y, right moves -y)."
                      % (2 * FINGER_CLOSED_HALF_GAP, FINGER_TRAVEL, 2 * FINGER_CLOSED_HALF_GAP,
                         2 * FINGER_CLOSED_HALF_GAP + 2 * FINGER_TRAVEL)),
        Joint("finger_right_joint", "prismatic", "gripper_base", "finger_right",
              (0, -FINGER_CLOSED_HALF_GAP, palm_bottom), axis=(0, -1, 0),
              limit=finger_lim, dynamics=(2.0, 0.5)),
        Joint("tool0_joint", "fixed", "gripper_base", "tool0", (0, 0, TOOL0_Z),
              comment="tool0: grasp centre between the fingertips (%.3f m from the flange face,\n"
                      "%.3f m above the finger tips); same axes as gripper_base."
                      % (TOOL0_Z, palm_bottom + FINGER[2] - TOOL0_Z)),
    ]
    return links, joints


# Tool-down target used to report a ready/grasp configuration.
TOOL_DOWN_POS = [0.5, 0.0, 0.25]
# tool z = -Z (approach straight down); finger travel (tool y) along base +y or base +x
TOOL_DOWN_ORIENTS = {
    "fingers close along base y": [[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]],
    "fingers close along base x": [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]],
}


def arm_pose_ok(model, q):
    """(ok, reason) for a joint configuration: limits, ground clearance, self collision."""
    lims = {j["name"]: j["limit"] for j in model["joints"]}
    for n, v in q.items():
        if not lims[n]["lower"] - 1e-9 <= v <= lims[n]["upper"] + 1e-9:
            return False, "limit %s" % n
    poses = fk(model, q)
    for n in model["link_order"]:
        if n == "base_link":
            continue
        for s in world_shapes(model, poses, n):
            if lowest_z(s) < 0.005:
                return False, "ground %s" % n
    hits = self_collisions(model, poses)
    if hits:
        return False, "self-collision %s" % hits
    return True, ""


def solve_tool_down(model):
    """Find tool-down configurations; returns {orientation label: [ (q, pos), ... ] } best first."""
    results = {}
    rng = random.Random(12345)
    seeds = []
    for lift in (-0.4, -0.9, -1.4):
        for elbow in (0.6, 1.3, 2.0):
            for phi, w2 in ((PI / 2.0, -PI / 2.0), (-PI / 2.0, PI / 2.0)):
                for w3 in (0.0, PI / 2.0, -PI / 2.0, PI):
                    seeds.append([0.0, lift, elbow, phi - lift - elbow, w2, w3])
    for _ in range(12):
        seeds.append([rng.uniform(-PI, PI) for _ in range(6)])
    for label, r_tgt in TOOL_DOWN_ORIENTS.items():
        # r_tgt is given as rows of the columns above -> build the rotation matrix from columns
        cols = r_tgt
        rmat = [[cols[c][r] for c in range(3)] for r in range(3)]
        sols = []
        seen = set()
        for seed in seeds:
            try:
                q, e = ik(model, ARM_JOINTS, "tool0", TOOL_DOWN_POS, rmat, seed)
            except ZeroDivisionError:
                continue
            if norm(e) > 1e-7:
                continue
            q = [wrap(v) for v in q]
            key = tuple(round(v, 3) for v in q)
            if key in seen:
                continue
            seen.add(key)
            qd = dict(zip(ARM_JOINTS, q))
            ok, _ = arm_pose_ok(model, qd)
            if not ok:
                continue
            poses = fk(model, qd)
            elbow_up = poses["forearm_link"][1][2] > poses["wrist_1_link"][1][2]
            sols.append((0 if elbow_up else 1, sum(v * v for v in q), q, poses["tool0"][1], elbow_up))
        sols.sort(key=lambda s: (s[0], s[1]))
        results[label] = sols
    return results


def arm_header(model, tool_down):
    poses = fk(model)
    lines = []
    t0 = poses["tool0"][1]
    flange = poses["gripper_base"][1]
    lines.append("""rivet_arm6: 6-DoF UR5-like industrial arm with a two-finger parallel gripper.
Primitive geometry only (box / cylinder / sphere); visual == collision.
GENERATED by gen_robots.py (same folder); edit the generator, not this file.

Frames and conventions
  Z up, +x forward, metres / radians / kg. base_link origin = centre of the
  mounting face (the scene fixes base_link to the world; no world link here).
  Every joint origin has rpy = 0 except gripper_joint, so at the zero pose
  all arm link frames are parallel to base_link.
  Joint axes (in the parent-side joint frame; right-hand rule):
    shoulder_pan   +z   base_link      to shoulder_link   origin (0, 0, %(d1)g)
    shoulder_lift  +y   shoulder_link  to upper_arm_link  origin (0, %(sh)g, 0)
    elbow          +y   upper_arm_link to forearm_link    origin (%(a2)g, %(el)g, 0)
    wrist_1        +y   forearm_link   to wrist_1_link    origin (%(a3)g, 0, 0)
    wrist_2        +z   wrist_1_link   to wrist_2_link    origin (0, %(d4)g, 0)
    wrist_3        +y   wrist_2_link   to wrist_3_link    origin (0, 0, %(d5)g)
  Positive shoulder_lift / elbow / wrist_1 pitch the distal links DOWN
  (rotation about +y takes +x toward -z); negative shoulder_lift raises the arm.
  gripper_base is fixed on the flange, %(d6)g m along wrist_3 +y; its frame:
    +z = approach (out of the flange), +y = finger travel axis (left finger
    on +y), +x = y cross z.  tool0 has the same axes as gripper_base.

Zero pose (all joints 0): arm stretched horizontally along +x at shoulder
height, wrist_2 body pointing up (+z), tool flange and gripper pointing
sideways along base +y, finger travel axis along base -z.
  Reach (pan axis to wrist_3 axis, horizontal): %(reach).4f m
  Link frame origins at the zero pose, base_link coordinates:""" % dict(
        d1=D1, sh=SH_Y, a2=A2, el=EL_Y, a3=A3, d4=D4_Y, d5=D5, d6=D6,
        reach=math.hypot(poses["wrist_3_link"][1][0], poses["wrist_3_link"][1][1])))
    for n in model["link_order"]:
        p = poses[n][1]
        lines.append("    %-15s (%8.5f, %8.5f, %8.5f)" % (n, r4(p[0], 5), r4(p[1], 5), r4(p[2], 5)))
    lines.append("  tool0 at the zero pose: (%.5f, %.5f, %.5f), approach along base +y." % tuple(t0))
    lines.append("  Flange face centre at the zero pose: (%.5f, %.5f, %.5f)." % tuple(flange))
    lines.append("")
    lines.append("Gripper: finger_left_joint / finger_right_joint, prismatic, 0 (closed, gap")
    lines.append("  %.3f m) to %.3f m each (open, gap %.3f m); finger gap = %.3f + q_left + q_right."
                 % (2 * FINGER_CLOSED_HALF_GAP, FINGER_TRAVEL, 2 * FINGER_CLOSED_HALF_GAP + 2 * FINGER_TRAVEL,
                    2 * FINGER_CLOSED_HALF_GAP))
    lines.append("  A 0.1025 m wide brick is contacted at q_left = q_right = %.5f m."
                 % ((0.1025 - 2 * FINGER_CLOSED_HALF_GAP) / 2.0))
    lines.append("  Independent joints (no mimic): command both to close symmetrically.")
    lines.append("")
    lines.append("Masses (kg): " + ", ".join("%s %g" % (n, model["links"][n]["inertial"]["mass"])
                                             for n in model["link_order"]
                                             if model["links"][n]["inertial"]))
    lines.append("  total %.2f kg. Limits: shoulder/elbow 150 N m, wrists 28 N m, 3.14 rad/s;"
                 % sum(lk["inertial"]["mass"] for lk in model["links"].values() if lk["inertial"]))
    lines.append("  fingers 100 N, 0.2 m/s.")
    lines.append("")
    lines.append("Tool pointing straight down (tool0 +z = base -z) at tool0 = (%g, %g, %g):"
                 % tuple(TOOL_DOWN_POS))
    lines.append("  joint order: " + ", ".join(ARM_JOINTS))
    for label, sols in tool_down.items():
        if sols:
            q, p = sols[0][2], sols[0][3]
            lines.append("  %s:" % label)
            lines.append("    q = [" + ", ".join("%.4f" % r4(v) for v in q) + "]")
            lines.append("    FK tool0 = (%.4f, %.4f, %.4f)" % tuple(r4(v) for v in p))
    lines.append("  Adding an angle to wrist_3 rotates the fingers about the vertical.")
    return "\n".join(lines)


# ============================================================================
# 2. rivet_rover
# ============================================================================

WHEEL_R = 0.10
WHEEL_W = 0.04
TRACK = 0.50
BASE_H = 0.10            # base_link origin height above the ground
BODY = (0.60, 0.45, 0.15)
BODY_Z = 0.025           # body box centre above the base_link origin
CASTER_R = 0.05
CASTER_X = 0.25
LIDAR_R, LIDAR_L = 0.05, 0.07
LIDAR_X = 0.20

ROVER_MATERIALS = {
    "rover_yellow": (1.0, 0.8, 0.0, 1.0),
    "rover_black": (0.05, 0.05, 0.05, 1.0),
    "rover_grey": (0.6, 0.6, 0.62, 1.0),
    "rover_lidar": (0.1, 0.2, 0.45, 1.0),
}


def rover_model():
    caster_z = -BASE_H + CASTER_R
    lidar_z = BODY_Z + BODY[2] / 2.0 + LIDAR_L / 2.0
    links = [
        Link("base_link", 25.0, [Shape("box", BODY, (0, 0, BODY_Z), (0, 0, 0), "rover_yellow")]),
        Link("left_wheel", 1.5, [Shape("cylinder", (WHEEL_R, WHEEL_W), (0, 0, 0), CYL_Y, "rover_black")]),
        Link("right_wheel", 1.5, [Shape("cylinder", (WHEEL_R, WHEEL_W), (0, 0, 0), CYL_Y, "rover_black")]),
        Link("caster_front", 0.3, [Shape("sphere", (CASTER_R,), (0, 0, 0), (0, 0, 0), "rover_grey")]),
        Link("caster_back", 0.3, [Shape("sphere", (CASTER_R,), (0, 0, 0), (0, 0, 0), "rover_grey")]),
        Link("lidar_link", 0.8, [Shape("cylinder", (LIDAR_R, LIDAR_L), (0, 0, 0), CYL_Z, "rover_lidar")]),
    ]
    wheel_lim = dict(effort=20.0, velocity=15.0)
    caster_comment = (
        "Caster height computation (base_link coordinates, z up):\n"
        "  base_link origin is %(h).3f m above the ground, so the ground is z = %(g).3f.\n"
        "  Drive wheels: radius %(wr).3f m, axles at z = 0, lowest point z = 0 - %(wr).3f = %(g).3f (on ground).\n"
        "  Caster spheres: radius %(cr).3f m; to touch the ground their centres must be\n"
        "  at z = ground + radius = %(g).3f + %(cr).3f = %(cz).3f.\n"
        "  Placed at x = +%(cx).3f (front) and x = %(ncx).3f (back), y = 0, so with all four\n"
        "  contacts at z = %(g).3f the body is level. Body box bottom z = %(bb).3f\n"
        "  (ground clearance %(clr).3f m); the caster balls protrude %(prot).3f m below it.\n"
        "  Casters are fixed spheres (no rolling joint): give their colliders low\n"
        "  friction in the scene so they slide."
        % dict(h=BASE_H, g=-BASE_H, wr=WHEEL_R, cr=CASTER_R, cz=caster_z, cx=CASTER_X, ncx=-CASTER_X,
               bb=BODY_Z - BODY[2] / 2.0, clr=BASE_H + BODY_Z - BODY[2] / 2.0,
               prot=(BODY_Z - BODY[2] / 2.0) - (caster_z - CASTER_R)))
    joints = [
        Joint("left_wheel_joint", "continuous", "base_link", "left_wheel", (0, TRACK / 2.0, 0), axis=(0, 1, 0),
              limit=wheel_lim, dynamics=(0.05, 0.01),
              comment="Wheels: axis +y for both; positive velocity drives the rover forward (+x)."),
        Joint("right_wheel_joint", "continuous", "base_link", "right_wheel", (0, -TRACK / 2.0, 0),
              axis=(0, 1, 0), limit=wheel_lim, dynamics=(0.05, 0.01)),
        Joint("caster_front_joint", "fixed", "base_link", "caster_front", (CASTER_X, 0, caster_z),
              comment=caster_comment),
        Joint("caster_back_joint", "fixed", "base_link", "caster_back", (-CASTER_X, 0, caster_z)),
        Joint("lidar_joint", "fixed", "base_link", "lidar_link", (LIDAR_X, 0, lidar_z),
              comment="lidar_link origin = sensor optical centre (scan plane), %.3f m above the ground."
                      % (BASE_H + lidar_z)),
    ]
    return links, joints, caster_comment


def rover_header(model, caster_comment):
    poses = fk(model, base=(identity(), [0.0, 0.0, BASE_H]))
    lines = ["""rivet_rover: differential-drive mobile base, primitive geometry only.
GENERATED by gen_robots.py (same folder); edit the generator, not this file.

Frames and conventions
  Z up, +x forward, +y left, metres / radians / kg.
  base_link origin: on the drive-wheel axle line, midway between the wheels.
  Spawn base_link at z = %(h).3f m above the ground (wheel radius) to stand level.
  Body box %(bx)g x %(by)g x %(bz)g m (%(bm)g kg), centred %(bzo).3f m above base_link.
  Drive wheels: left_wheel_joint (y = +%(ht).3f), right_wheel_joint (y = %(nht).3f),
    continuous, axis +y (both), radius %(wr).3f m, width %(ww).3f m, track width %(t).3f m,
    effort 20 N m, velocity 15 rad/s.  Positive joint velocity rolls toward +x.
    v = r (wL + wR) / 2,   yaw rate = r (wR - wL) / track.
  Casters: caster_front / caster_back, fixed spheres radius %(cr).3f m.
  lidar_link: fixed, on top of the body, +x forward, z up.

Link origins in world coordinates with base_link spawned at (0, 0, %(h).3f):""" % dict(
        h=BASE_H, bx=BODY[0], by=BODY[1], bz=BODY[2], bm=25.0, bzo=BODY_Z, ht=TRACK / 2.0,
        nht=-TRACK / 2.0, wr=WHEEL_R, ww=WHEEL_W, t=TRACK, cr=CASTER_R)]
    for n in model["link_order"]:
        p = poses[n][1]
        lines.append("    %-13s (%8.5f, %8.5f, %8.5f)" % (n, r4(p[0], 5), r4(p[1], 5), r4(p[2], 5)))
    lines.append("Total mass %.2f kg." % sum(lk["inertial"]["mass"] for lk in model["links"].values()
                                            if lk["inertial"]))
    lines.append("")
    lines.append(caster_comment)
    return "\n".join(lines)


# ============================================================================
# validation
# ============================================================================


def validate_common(model, errors):
    links, joints = model["links"], model["joints"]
    names = set(links)
    jnames = [j["name"] for j in joints]
    if len(set(jnames)) != len(jnames):
        errors.append("duplicate joint names")
    child_count = {}
    for j in joints:
        for side in ("parent", "child"):
            if j[side] not in names:
                errors.append("joint %s: %s link %s does not exist" % (j["name"], side, j[side]))
        child_count[j["child"]] = child_count.get(j["child"], 0) + 1
    for c, n in child_count.items():
        if n > 1:
            errors.append("link %s is the child of %d joints" % (c, n))
    roots = model_root(model)
    if len(roots) != 1:
        errors.append("expected exactly one root link, got %s" % roots)
        return
    # reachability from the root (with one parent per link, this also rules out cycles)
    seen, stack = {roots[0]}, [roots[0]]
    while stack:
        cur = stack.pop()
        for j in joints:
            if j["parent"] == cur:
                if j["child"] in seen:
                    errors.append("cycle through %s" % j["child"])
                    continue
                seen.add(j["child"])
                stack.append(j["child"])
    if seen != names:
        errors.append("links not reachable from root (cycle or forest): %s" % sorted(names - seen))

    for n in model["link_order"]:
        lk = links[n]
        has_geom = bool(lk["visual"] or lk["collision"])
        if not has_geom:
            if lk["inertial"] is not None:
                errors.append("link %s: frame link should have no inertial" % n)
            continue
        if lk["inertial"] is None:
            errors.append("link %s has geometry but no inertial" % n)
            continue
        ine = lk["inertial"]
        if ine["mass"] <= 0:
            errors.append("link %s: mass must be > 0" % n)
        if any(abs(x) > 1e-12 for x in ine["rpy"]):
            errors.append("link %s: inertial rpy must be 0 (rapier3d-urdf ignores it)" % n)
        tensor = ine["I"]
        m1 = tensor[0][0]
        m2 = tensor[0][0] * tensor[1][1] - tensor[0][1] ** 2
        m3 = (tensor[0][0] * (tensor[1][1] * tensor[2][2] - tensor[1][2] ** 2)
              - tensor[0][1] * (tensor[0][1] * tensor[2][2] - tensor[1][2] * tensor[0][2])
              + tensor[0][2] * (tensor[0][1] * tensor[1][2] - tensor[1][1] * tensor[0][2]))
        if not (m1 > 0 and m2 > 0 and m3 > 0):
            errors.append("link %s: inertia not positive definite" % n)
        ev = sym_eigenvalues(tensor)
        if ev[0] <= 0:
            errors.append("link %s: non-positive principal moment %s" % (n, ev))
        tol = 1e-9 * max(ev)
        if not (ev[0] + ev[1] >= ev[2] - tol and ev[0] + ev[2] >= ev[1] - tol and ev[1] + ev[2] >= ev[0] - tol):
            errors.append("link %s: principal moments %s violate the triangle inequality" % (n, ev))
        # independent recomputation from the collision geometry (uniform density)
        shapes = [(c["kind"], c["dims"], c["xyz"], c["rpy"]) for c in lk["collision"]]
        com, inertia = mass_properties(shapes, ine["mass"])
        if norm(vsub(com, ine["xyz"])) > 1e-6:
            errors.append("link %s: inertial origin %s is not the geometric COM %s" % (n, ine["xyz"], com))
        scale = max(abs(x) for row in inertia for x in row)
        if max(abs(inertia[i][j] - tensor[i][j]) for i in range(3) for j in range(3)) > 1e-6 * scale:
            errors.append("link %s: inertia does not match the solid-primitive formula" % n)
        # visual == collision, named material with rgba
        if len(lk["visual"]) != len(lk["collision"]):
            errors.append("link %s: visual/collision count differs" % n)
        for v, c in zip(lk["visual"], lk["collision"]):
            if (v["kind"], v["dims"], v["xyz"], v["rpy"]) != (c["kind"], c["dims"], c["xyz"], c["rpy"]):
                errors.append("link %s: visual geometry differs from collision" % n)
            mat = v.get("material")
            if not mat or not mat[0] or mat[1] is None or not all(0.0 <= x <= 1.0 for x in mat[1]):
                errors.append("link %s: visual needs a named material with a color rgba" % n)

    for j in joints:
        if j["mimic"]:
            errors.append("joint %s: mimic not allowed" % j["name"])
        if j["type"] not in ("fixed", "revolute", "continuous", "prismatic"):
            errors.append("joint %s: unexpected type %s" % (j["name"], j["type"]))
        if j["type"] == "fixed":
            continue
        if not j["has_axis"] or abs(norm(j["axis"]) - 1.0) > 1e-9:
            errors.append("joint %s: needs a unit axis" % j["name"])
        lim = j["limit"]
        if lim is None or "effort" not in lim["_attrs"] or "velocity" not in lim["_attrs"] \
                or lim["effort"] <= 0 or lim["velocity"] <= 0:
            errors.append("joint %s: needs limit effort > 0 and velocity > 0" % j["name"])
            continue
        if j["type"] in ("revolute", "prismatic"):
            if not ({"lower", "upper"} <= lim["_attrs"]) or not lim["lower"] < lim["upper"]:
                errors.append("joint %s: needs lower < upper" % j["name"])
        if j["type"] == "revolute" and (lim["lower"] < -TWO_PI - 1e-9 or lim["upper"] > TWO_PI + 1e-9):
            errors.append("joint %s: revolute limits outside +/- 2 pi" % j["name"])
        dyn = j["dynamics"]
        if dyn is None or {"damping", "friction"} - dyn["_attrs"] or dyn["damping"] < 0 or dyn["friction"] < 0:
            errors.append("joint %s: needs dynamics damping and friction" % j["name"])


def require(model, link_names, joint_spec, errors):
    for n in link_names:
        if n not in model["links"]:
            errors.append("missing link %s" % n)
    byname = {j["name"]: j for j in model["joints"]}
    for n, (jtype, parent, child) in joint_spec.items():
        j = byname.get(n)
        if j is None:
            errors.append("missing joint %s" % n)
        elif (j["type"], j["parent"], j["child"]) != (jtype, parent, child):
            errors.append("joint %s: expected %s %s->%s, got %s %s->%s"
                          % (n, jtype, parent, child, j["type"], j["parent"], j["child"]))


def validate_arm(text):
    errors = []
    model = load_model(text)
    validate_common(model, errors)
    require(model,
            ["base_link", "shoulder_link", "upper_arm_link", "forearm_link", "wrist_1_link", "wrist_2_link",
             "wrist_3_link", "gripper_base", "finger_left", "finger_right", "tool0"],
            {"shoulder_pan": ("revolute", "base_link", "shoulder_link"),
             "shoulder_lift": ("revolute", "shoulder_link", "upper_arm_link"),
             "elbow": ("revolute", "upper_arm_link", "forearm_link"),
             "wrist_1": ("revolute", "forearm_link", "wrist_1_link"),
             "wrist_2": ("revolute", "wrist_1_link", "wrist_2_link"),
             "wrist_3": ("revolute", "wrist_2_link", "wrist_3_link"),
             "finger_left_joint": ("prismatic", "gripper_base", "finger_left"),
             "finger_right_joint": ("prismatic", "gripper_base", "finger_right"),
             "tool0_joint": ("fixed", "gripper_base", "tool0")}, errors)
    if errors:
        return model, errors
    if model_root(model) != ["base_link"]:
        errors.append("root must be base_link")
    byname = {j["name"]: j for j in model["joints"]}
    if any(byname[n]["parent"] != "wrist_3_link" for n in ["gripper_joint"] if n in byname):
        errors.append("gripper_base must be fixed to wrist_3_link")
    for n in ARM_JOINTS:
        j = byname[n]
        s = j["safety"]
        if s is None or {"soft_lower_limit", "soft_upper_limit", "k_position", "k_velocity"} - s["_attrs"]:
            errors.append("joint %s: needs a full safety_controller" % n)
        elif not (j["limit"]["lower"] <= s["soft_lower_limit"] < s["soft_upper_limit"] <= j["limit"]["upper"]):
            errors.append("joint %s: soft limits must lie inside the hard limits" % n)
    for n in FINGER_JOINTS:
        lim = byname[n]["limit"]
        if abs(lim["lower"]) > 1e-12 or abs(lim["upper"] - 0.045) > 1e-12:
            errors.append("joint %s: travel must be 0..0.045" % n)
    # fingers move in opposite directions along the gripper lateral axis
    al, ar = byname["finger_left_joint"]["axis"], byname["finger_right_joint"]["axis"]
    if dot(al, ar) > -0.999999:
        errors.append("finger axes must be opposite")
    # finger opening: distance between inner finger faces along the travel axis
    poses_closed = fk(model)
    poses_open = fk(model, {n: 0.045 for n in FINGER_JOINTS})

    def gap(poses):
        rg, pg = poses["gripper_base"]
        yl = mat_vec(transpose(rg), vsub(poses["finger_left"][1], pg))[1]
        yr = mat_vec(transpose(rg), vsub(poses["finger_right"][1], pg))[1]
        return yl - yr

    g_closed, g_open = gap(poses_closed), gap(poses_open)
    if g_open < 0.12 or not g_closed < 0.1025 < g_open:
        errors.append("gripper opening %.4f..%.4f does not cover a 0.1025 brick / >= 0.12" % (g_closed, g_open))
    # zero pose: above the ground, no self collision between non-adjacent links
    ok, why = arm_pose_ok(model, {n: 0.0 for n in ARM_JOINTS})
    if not ok:
        errors.append("zero pose: %s" % why)
    if self_collisions(model, poses_open):
        errors.append("zero pose with open gripper self-collides")
    model["_gap"] = (g_closed, g_open)
    # static holding torque with a 2.3 kg brick at tool0: zero pose (arm horizontal, worst case for
    # shoulder_lift / elbow) and an arm-horizontal pose with the wrist pitched so wrist_1 is loaded
    lim = {j["name"]: j["limit"] for j in model["joints"]}
    worst = {}
    for q in ({}, {"wrist_1": PI / 2.0}, {"wrist_1": PI / 2.0, "wrist_2": PI / 2.0},
              {"wrist_2": PI / 2.0, "wrist_3": PI / 2.0}):
        for n, t in gravity_torques(model, q, payload=2.3).items():
            if n in FINGER_JOINTS:
                continue
            worst[n] = max(worst.get(n, 0.0), t)
    for n, t in worst.items():
        if t > 0.8 * lim[n]["effort"]:
            errors.append("joint %s: holding torque %.1f exceeds 80%% of effort %.0f" % (n, t, lim[n]["effort"]))
    model["_torques"] = worst
    return model, errors


def gravity_torques(model, q, payload=0.0, payload_link="tool0", g=9.81):
    """Static gravity torque (N m / N) each moving joint must hold, payload point mass at payload_link."""
    poses = fk(model, q)
    children = {}
    for j in model["joints"]:
        children.setdefault(j["parent"], []).append(j["child"])

    def subtree(n):
        out = [n]
        for c in children.get(n, []):
            out += subtree(c)
        return out

    loads = []  # (world position, mass)
    for n, lk in model["links"].items():
        if lk["inertial"]:
            r, p = poses[n]
            loads.append((n, vadd(p, mat_vec(r, lk["inertial"]["xyz"])), lk["inertial"]["mass"]))
    loads.append((payload_link, poses[payload_link][1], payload))
    out = {}
    for j in model["joints"]:
        if j["type"] == "fixed":
            continue
        rp, pp = poses[j["parent"]]
        r_j = mat_mul(rp, rpy_to_mat(j["rpy"]))
        p_j = vadd(pp, mat_vec(rp, j["xyz"]))
        axis = mat_vec(r_j, vscale(j["axis"], 1.0 / norm(j["axis"])))
        sub = set(subtree(j["child"]))
        force_total = 0.0
        torque = [0.0, 0.0, 0.0]
        for n, c, m in loads:
            if n in sub:
                f = [0.0, 0.0, -m * g]
                torque = vadd(torque, cross(vsub(c, p_j), f))
                force_total += m * g
        if j["type"] == "prismatic":
            out[j["name"]] = abs(dot([0.0, 0.0, -force_total], axis))
        else:
            out[j["name"]] = abs(dot(torque, axis))
    return out


def validate_rover(text):
    errors = []
    model = load_model(text)
    validate_common(model, errors)
    require(model, ["base_link", "left_wheel", "right_wheel", "caster_front", "caster_back", "lidar_link"],
            {"left_wheel_joint": ("continuous", "base_link", "left_wheel"),
             "right_wheel_joint": ("continuous", "base_link", "right_wheel"),
             "caster_front_joint": ("fixed", "base_link", "caster_front"),
             "caster_back_joint": ("fixed", "base_link", "caster_back"),
             "lidar_joint": ("fixed", "base_link", "lidar_link")}, errors)
    if errors:
        return model, errors
    byname = {j["name"]: j for j in model["joints"]}
    for n in ("left_wheel_joint", "right_wheel_joint"):
        j = byname[n]
        if abs(j["axis"][1]) < 0.999999:
            errors.append("%s: axis must be along y" % n)
        if abs(j["limit"]["effort"] - 20.0) > 1e-9 or abs(j["limit"]["velocity"] - 15.0) > 1e-9:
            errors.append("%s: effort/velocity must be 20/15" % n)
    poses = fk(model, base=(identity(), [0.0, 0.0, BASE_H]))
    # every ground-contact body touches z = 0; the body clears the ground; level stance
    for n in ("left_wheel", "right_wheel", "caster_front", "caster_back"):
        lz = min(lowest_z(s) for s in world_shapes(model, poses, n))
        if abs(lz) > 1e-9:
            errors.append("%s lowest point at z = %.6f, expected 0" % (n, lz))
    for n in ("base_link", "lidar_link"):
        lz = min(lowest_z(s) for s in world_shapes(model, poses, n))
        if lz <= 0.01:
            errors.append("%s too close to the ground (%.4f)" % (n, lz))
    # wheel radius / track width from the file
    wl, wr = poses["left_wheel"][1], poses["right_wheel"][1]
    if abs((wl[1] - wr[1]) - 0.5) > 1e-9:
        errors.append("track width %.4f != 0.5" % (wl[1] - wr[1]))
    for n in ("left_wheel", "right_wheel"):
        (c,) = model["links"][n]["collision"]
        if c["kind"] != "cylinder" or abs(c["dims"][0] - 0.1) > 1e-12:
            errors.append("%s: wheel must be a cylinder of radius 0.1" % n)
        rw = mat_mul(poses[n][0], rpy_to_mat(c["rpy"]))
        if abs(abs(rw[1][2]) - 1.0) > 1e-9:
            errors.append("%s: wheel cylinder axis not along y" % n)
    hits = self_collisions(model, poses)
    if hits:
        errors.append("self collisions: %s" % hits)
    return model, errors


def describe(model, label):
    n_links = len(model["links"])
    n_joints = len(model["joints"])
    kinds = {}
    for j in model["joints"]:
        kinds[j["type"]] = kinds.get(j["type"], 0) + 1
    mass = sum(lk["inertial"]["mass"] for lk in model["links"].values() if lk["inertial"])
    print("%s: %d links, %d joints (%s), total mass %.2f kg"
          % (label, n_links, n_joints, ", ".join("%d %s" % (v, k) for k, v in sorted(kinds.items())), mass))


# ============================================================================
# main
# ============================================================================


def build():
    # arm
    links, joints = arm_model()
    body = robot_body_xml("rivet_arm6", links, joints, ARM_MATERIALS)
    model = load_model(body)
    tool_down = solve_tool_down(model)
    arm_text = assemble(arm_header(model, tool_down), body)
    # rover
    links, joints, caster_comment = rover_model()
    body = robot_body_xml("rivet_rover", links, joints, ROVER_MATERIALS)
    rover_text = assemble(rover_header(load_model(body), caster_comment), body)
    return {"rivet_arm6.urdf": arm_text, "rivet_rover.urdf": rover_text}, tool_down


def main():
    check_only = "--check" in sys.argv[1:]
    outputs, tool_down = build()
    failed = False
    for fname, text in outputs.items():
        path = os.path.join(HERE, fname)
        if check_only:
            with open(path) as f:
                if f.read() != text:
                    print("FAIL: %s differs from the generator output" % fname)
                    failed = True
        else:
            with open(path, "w") as f:
                f.write(text)
            print("wrote %s" % path)

    for fname, validator in (("rivet_arm6.urdf", validate_arm), ("rivet_rover.urdf", validate_rover)):
        with open(os.path.join(HERE, fname)) as f:
            text = f.read()
        model, errors = validator(text)
        describe(model, fname)
        if fname == "rivet_arm6.urdf" and not errors:
            poses = fk(model)
            print("  zero pose tool0 = (%.5f, %.5f, %.5f)" % tuple(poses["tool0"][1]))
            print("  finger gap %.4f (closed) .. %.4f (open) m" % model["_gap"])
            print("  static holding torque with a 2.3 kg brick (max over test poses, N m): "
                  + ", ".join("%s %.1f" % (n, t) for n, t in model["_torques"].items()))
            for label, sols in tool_down.items():
                print("  tool-down at %s, %s: %d collision-free solutions" % (TOOL_DOWN_POS, label, len(sols)))
                for rank, (_, _, q, _, elbow_up) in enumerate(sols[:4]):
                    qd = dict(zip(ARM_JOINTS, q))
                    p = fk(model, qd)["tool0"]
                    zaxis = [p[0][0][2], p[0][1][2], p[0][2][2]]
                    yaxis = [p[0][0][1], p[0][1][1], p[0][2][1]]
                    print("    #%d q = [%s]%s" % (rank, ", ".join("%.4f" % r4(v) for v in q),
                                                 " (elbow up)" if elbow_up else " (elbow down)"))
                    print("        FK tool0 = (%.5f, %.5f, %.5f), tool z = (%.3f, %.3f, %.3f), "
                          "finger axis = (%.3f, %.3f, %.3f)" % tuple(r4(v, 5) for v in p[1] + zaxis + yaxis))
        if fname == "rivet_rover.urdf" and not errors:
            poses = fk(model, base=(identity(), [0.0, 0.0, BASE_H]))
            for n in ("left_wheel", "right_wheel", "caster_front", "caster_back", "lidar_link"):
                lz = min(lowest_z(s) for s in world_shapes(model, poses, n))
                print("  %-13s at (%.4f, %.4f, %.4f), lowest point z = %.4f"
                      % ((n,) + tuple(r4(v) for v in poses[n][1]) + (r4(lz),)))
        if errors:
            failed = True
            for e in errors:
                print("  ERROR: " + e)
        else:
            print("  OK")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
