"""Rotation conversions and quaternion algebra, batched, for numpy arrays and torch tensors.

Every function accepts a numpy array or a torch tensor and returns the same type. The math is
written once in torch; numpy inputs are converted (float64 by default) and converted back.
Quaternions are (w, x, y, z). Rotation matrices act on column vectors: v' = R @ v.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

_EPS = 1e-8


def _array_api(fn):
    """Run a torch implementation on numpy inputs too, returning numpy for numpy inputs."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        is_numpy = any(isinstance(a, np.ndarray) for a in args)
        if not is_numpy:
            return fn(*args, **kwargs)
        dtype = next(a.dtype for a in args if isinstance(a, np.ndarray))
        dtype = dtype if np.issubdtype(dtype, np.floating) else np.float64
        targs = [
            torch.from_numpy(np.asarray(a, dtype=dtype))
            if isinstance(a, np.ndarray | list | tuple)
            else a
            for a in args
        ]
        out = fn(*targs, **kwargs)
        return out.numpy() if isinstance(out, torch.Tensor) else out

    return wrapper


@_array_api
def axis_angle_to_matrix(aa):
    """Rodrigues' formula: axis-angle (..., 3) -> rotation matrix (..., 3, 3)."""
    angle = aa.norm(dim=-1, keepdim=True)  # (..., 1)
    axis = aa / angle.clamp_min(_EPS)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*aa.shape[:-1], 3, 3)
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(k)
    return eye + s * k + (1 - c) * (k @ k)


@_array_api
def matrix_to_quaternion(m):
    """Rotation matrix (..., 3, 3) -> unit quaternion (..., 4) with w >= 0 (numerically stable)."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    candidates = torch.stack(
        [
            1 + m00 + m11 + m22,
            1 + m00 - m11 - m22,
            1 - m00 + m11 - m22,
            1 - m00 - m11 + m22,
        ],
        -1,
    )  # (..., 4): 4 * (w^2, x^2, y^2, z^2)
    best = candidates.argmax(-1, keepdim=True)
    r = torch.sqrt(candidates.gather(-1, best).clamp_min(_EPS)) * 2  # 4 * |largest component|
    d = lambda i, j: m[..., i, j]  # noqa: E731
    rows = torch.stack(
        [
            torch.stack(
                [r[..., 0] ** 2 / 4, d(2, 1) - d(1, 2), d(0, 2) - d(2, 0), d(1, 0) - d(0, 1)], -1
            ),
            torch.stack(
                [d(2, 1) - d(1, 2), r[..., 0] ** 2 / 4, d(0, 1) + d(1, 0), d(0, 2) + d(2, 0)], -1
            ),
            torch.stack(
                [d(0, 2) - d(2, 0), d(0, 1) + d(1, 0), r[..., 0] ** 2 / 4, d(1, 2) + d(2, 1)], -1
            ),
            torch.stack(
                [d(1, 0) - d(0, 1), d(0, 2) + d(2, 0), d(1, 2) + d(2, 1), r[..., 0] ** 2 / 4], -1
            ),
        ],
        -2,
    )  # (..., 4 candidates, 4 components), each scaled by r/4
    q = rows.gather(-2, best[..., None].expand(*best.shape[:-1], 1, 4)).squeeze(-2) / r
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


@_array_api
def quaternion_to_matrix(q):
    """Unit quaternion (..., 4) -> rotation matrix (..., 3, 3)."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    w, x, y, z = q.unbind(-1)
    m = torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        -1,
    )
    return m.reshape(*q.shape[:-1], 3, 3)


@_array_api
def quaternion_to_axis_angle(q):
    """Unit quaternion (..., 4) -> axis-angle (..., 3), angle in [0, pi]."""
    q = torch.where(q[..., :1] < 0, -q, q)
    xyz = q[..., 1:]
    sin_half = xyz.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, q[..., :1])
    return xyz / sin_half.clamp_min(_EPS) * angle


@_array_api
def matrix_to_axis_angle(m):
    """Rotation matrix (..., 3, 3) -> axis-angle (..., 3)."""
    return quaternion_to_axis_angle(matrix_to_quaternion(m))


@_array_api
def axis_angle_to_quaternion(aa):
    """Axis-angle (..., 3) -> unit quaternion (..., 4)."""
    angle = aa.norm(dim=-1, keepdim=True)
    axis = aa / angle.clamp_min(_EPS)
    return torch.cat([torch.cos(angle / 2), axis * torch.sin(angle / 2)], -1)


@_array_api
def qmul(a, b):
    """Hamilton product of quaternions (..., 4) x (..., 4)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )


@_array_api
def qinv(q):
    """Inverse of a unit quaternion (its conjugate)."""
    return q * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=q.dtype, device=q.device)


@_array_api
def qrot(q, v):
    """Rotate vectors v (..., 3) by unit quaternions q (..., 4)."""
    qvec = q[..., 1:]
    uv = torch.cross(qvec, v, dim=-1)
    uuv = torch.cross(qvec, uv, dim=-1)
    return v + 2 * (q[..., :1] * uv + uuv)


@_array_api
def qbetween(u, v):
    """Shortest-arc unit quaternion rotating direction u (..., 3) onto direction v (..., 3)."""
    u = u / u.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    v = v / v.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    w = 1 + (u * v).sum(-1, keepdim=True)
    xyz = torch.cross(u, v, dim=-1)
    # Opposite vectors: rotate by pi about any axis orthogonal to u.
    opposite = w[..., 0] < 1e-7
    if opposite.any():
        ortho = torch.cross(u, torch.tensor([1.0, 0, 0], dtype=u.dtype).expand_as(u), dim=-1)
        small = ortho.norm(dim=-1, keepdim=True) < 1e-6
        alt = torch.cross(u, torch.tensor([0, 1.0, 0], dtype=u.dtype).expand_as(u), dim=-1)
        ortho = torch.where(small, alt, ortho)
        xyz = torch.where(opposite[..., None], ortho, xyz)
        w = torch.where(opposite[..., None], torch.zeros_like(w), w)
    q = torch.cat([w, xyz], -1)
    return q / q.norm(dim=-1, keepdim=True)


@_array_api
def matrix_to_cont6d(m):
    """Rotation matrix (..., 3, 3) -> continuous 6D representation (..., 6).

    The 6D vector is the first two columns of the matrix, as in HumanML3D's features.
    """
    return torch.cat([m[..., :, 0], m[..., :, 1]], -1)


@_array_api
def cont6d_to_matrix(d6):
    """Continuous 6D (..., 6) -> rotation matrix (..., 3, 3) by Gram-Schmidt."""
    a, b = d6[..., :3], d6[..., 3:]
    x = a / a.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    z = torch.cross(x, b, dim=-1)
    z = z / z.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    y = torch.cross(z, x, dim=-1)
    return torch.stack([x, y, z], -1)


@_array_api
def quaternion_to_cont6d(q):
    """Unit quaternion (..., 4) -> continuous 6D (..., 6)."""
    return matrix_to_cont6d(quaternion_to_matrix(q))


@_array_api
def cont6d_to_quaternion(d6):
    """Continuous 6D (..., 6) -> unit quaternion (..., 4)."""
    return matrix_to_quaternion(cont6d_to_matrix(d6))


@_array_api
def rotation_y(angle):
    """Rotation matrices (..., 3, 3) about the vertical y axis by `angle` (...,) radians."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack([c, zero, s, zero, one, zero, -s, zero, c], -1).reshape(*angle.shape, 3, 3)
