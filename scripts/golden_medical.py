#!/usr/bin/env python3
"""Generate the NIfTI fixtures and golden values for tessera-medical
(domains/medical/tests/golden/).

Reference: nibabel (header layout, reading, affines, aff2axcodes, as_closest_canonical),
scipy.ndimage.map_coordinates (resampling), numpy (percentiles, statistics). Made with
nibabel 5.4.2, numpy 2.4.6, scipy 1.17.1:

    python3 -m venv /tmp/medref && /tmp/medref/bin/pip install nibabel numpy scipy
    /tmp/medref/bin/python scripts/golden_medical.py

Headers are built with nibabel's header classes and written byte by byte (header,
extensions, padding to vox_offset, Fortran-order voxels), so scl_slope/scl_inter, the
byte order and odd fields are exactly what the test asks for (nibabel's own save would
recompute the scaling). Every file is then read back with nibabel and the expected values
come from that reading. Files are tiny (60-420 voxels).
"""

import gzip
import io
import json
import os

import nibabel as nib
import numpy as np
from nibabel.affines import voxel_sizes
from scipy import ndimage

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "domains", "medical", "tests", "golden")
SHAPE = (5, 4, 3)
RNG = np.random.default_rng(20261)


def f32list(a):
    """float32 values as JSON numbers (shortest round-trip form); NaN -> null, +-inf ->
    the strings "inf"/"-inf" (JSON has no infinities)."""
    out = []
    for v in np.asarray(a, dtype=np.float32).ravel(order="F"):
        out.append(None if np.isnan(v) else str(v) if np.isinf(v) else float(str(v)))
    return out


def aff_list(a):
    return [[float(x) for x in row] for row in np.asarray(a, dtype=np.float64)]


def values_for(dtype, shape):
    """Values spanning the dtype's range, extremes included."""
    n = int(np.prod(shape))
    dt = np.dtype(dtype)
    if dt.kind == "f":
        v = RNG.normal(0, 1000, n).astype(dt)
        v[:3] = [0.0, -1.5, 3.25e5]
    else:
        info = np.iinfo(dt)
        lo, hi = max(info.min, -(2**40)), min(info.max, 2**40)
        v = RNG.integers(lo, hi, n, dtype=np.int64 if dt.kind == "i" else np.uint64, endpoint=True).astype(dt)
        v[:2] = [info.min, info.max]
    return v.reshape(shape, order="F")


def sform_affine():
    """RAS-ish, anisotropic, with an offset."""
    return np.array([[1.5, 0, 0, -10.25], [0, 0.8, 0, 20.5], [0, 0, 2.0, -5.0], [0, 0, 0, 1]])


def rotation(ax, deg):
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    i, j = [k for k in range(3) if k != ax]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def write(name, arr, dtype, version=1, endian="<", pair=False, affine=None, sform_code=2,
          qaffine=None, qform_code=0, slope=None, inter=None, extension=None, intent=None,
          descrip="tessera golden", zooms=None):
    """Write a NIfTI file (or pair; '.gz' in the name compresses) and return its path."""
    cls = {(1, False): nib.Nifti1Header, (1, True): nib.nifti1.Nifti1PairHeader,
           (2, False): nib.Nifti2Header, (2, True): nib.nifti2.Nifti2PairHeader}[(version, pair)]
    hdr = cls(endianness=endian)
    hdr.set_data_dtype(dtype)
    hdr.set_data_shape(arr.shape)
    aff = sform_affine() if affine is None else affine
    if zooms is None:
        zooms = list(voxel_sizes(aff)) + [1.0] * (arr.ndim - 3)
    hdr.set_zooms(zooms)
    if qaffine is not None:
        hdr.set_qform(qaffine, code=qform_code)
    hdr["qform_code"] = qform_code
    if sform_code:
        hdr.set_sform(aff, code=sform_code)
    hdr["sform_code"] = sform_code
    if slope is not None:
        hdr["scl_slope"] = slope
    if inter is not None:
        hdr["scl_inter"] = inter
    if intent is not None:
        hdr.set_intent(intent)
    hdr["descrip"] = descrip
    if extension is not None:
        hdr.extensions.append(nib.nifti1.Nifti1Extension("comment", extension))
    raw = np.asarray(arr).astype(np.dtype(dtype).newbyteorder(endian)).tobytes(order="F")
    b = io.BytesIO()
    hdr.write_to(b)
    head = b.getvalue()
    gz = name.endswith(".gz")
    pack = gzip.compress if gz else (lambda x: x)
    path = os.path.join(OUT, name)
    if pair:
        img = path.replace(".hdr", ".img")
        with open(path, "wb") as f:
            f.write(pack(head))
        with open(img, "wb") as f:
            f.write(pack(raw))
    else:
        off = int(hdr["vox_offset"])
        assert off >= len(head), (name, off, len(head))
        with open(path, "wb") as f:
            f.write(pack(head + b"\0" * (off - len(head)) + raw))
    return path


def expected(name, path, method1=False):
    img = nib.load(path)
    data = np.asanyarray(img.dataobj, dtype=np.float32)
    hdr = img.header
    aff = img.affine
    if method1:  # NIfTI method 1 (nibabel would give its ANALYZE LAS base affine)
        aff = np.diag(list(hdr.get_zooms()[:3]) + [1.0])
    e = {
        "version": 1 if isinstance(hdr, nib.Nifti1Header) and not isinstance(hdr, nib.Nifti2Header) else 2,
        "pair": name.endswith((".hdr", ".hdr.gz")),
        "gz": name.endswith(".gz"),
        "big_endian": hdr.endianness == ">",
        "datatype": str(hdr.get_data_dtype().newbyteorder("=").name),
        "shape": [int(s) for s in data.shape],
        "data": f32list(data),
        "affine": aff_list(aff),
        "spacing": [float(x) for x in voxel_sizes(aff)],
        "axcodes": "".join(nib.aff2axcodes(aff)),
        "qform_code": int(hdr["qform_code"]),
        "sform_code": int(hdr["sform_code"]),
        "descrip": hdr["descrip"].item().decode(),
        "no_orientation": method1,
    }
    if not method1:
        can = nib.as_closest_canonical(img)
        cdata = np.asanyarray(can.dataobj, dtype=np.float32)
        e["canonical"] = {"shape": [int(s) for s in cdata.shape], "affine": aff_list(can.affine),
                          "data": f32list(cdata)}
    return e


def resample_ref(data3, spacing, target, order):
    """The convention of tessera-medical's resample.rs, evaluated by scipy."""
    shape = [max(1, int(np.floor(n * s / t + 0.5))) for n, s, t in zip(data3.shape, spacing, target)]
    axes = [np.minimum(np.arange(m) * (t / s), n - 1) for m, n, s, t in zip(shape, data3.shape, spacing, target)]
    if order == 0:
        for a, n in zip(axes, data3.shape):
            frac = a - np.floor(a)
            assert not np.any((np.abs(frac - 0.5) < 1e-9) & (a < n - 1)), "tie in nearest"
    coords = np.meshgrid(*axes, indexing="ij")
    out = ndimage.map_coordinates(data3.astype(np.float64), coords, order=order, mode="nearest")
    return shape, out


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith((".nii", ".gz", ".hdr", ".img", ".json")):
            os.remove(os.path.join(OUT, f))
    files = {}

    def add(name, arr, dtype, method1=False, **kw):
        path = write(name, arr, dtype, **kw)
        files[name] = expected(name, path, method1)

    dtypes = ["uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
    for dt in dtypes:
        add(f"n1_{dt}.nii", values_for(dt, SHAPE), dt)
    # byte orders, versions, containers
    add("n1_int16_be.nii", values_for("int16", SHAPE), "int16", endian=">")
    add("n1_float64_be.nii", values_for("float64", SHAPE), "float64", endian=">")
    add("n1_uint64_be.nii", values_for("uint64", SHAPE), "uint64", endian=">")
    add("n2_float32.nii", values_for("float32", SHAPE), "float32", version=2)
    add("n2_int16_be.nii", values_for("int16", SHAPE), "int16", version=2, endian=">")
    add("n2_int64_be.nii.gz", values_for("int64", SHAPE), "int64", version=2, endian=">")
    add("n2_uint8.nii.gz", values_for("uint8", SHAPE), "uint8", version=2)
    add("n1_int16.nii.gz", values_for("int16", SHAPE), "int16")
    add("n1_float32_be.nii.gz", values_for("float32", SHAPE), "float32", endian=">")
    add("n1pair_int16.hdr", values_for("int16", SHAPE), "int16", pair=True)
    add("n1pair_float32_be.hdr.gz", values_for("float32", SHAPE), "float32", pair=True, endian=">")
    add("n2pair_uint16.hdr", values_for("uint16", SHAPE), "uint16", version=2, pair=True)
    add("n2pair_int32_be.hdr.gz", values_for("int32", SHAPE), "int32", version=2, pair=True, endian=">")
    # scaling
    add("n1_int16_scl.nii", values_for("int16", SHAPE), "int16", slope=2.5, inter=-10.0)
    add("n1_int32_scl.nii.gz", values_for("int32", SHAPE), "int32", slope=0.001, inter=7.0)
    add("n2_uint8_scl_be.nii.gz", values_for("uint8", SHAPE), "uint8", version=2, endian=">", slope=0.5, inter=3.0)
    add("n1_int16_slope0.nii", values_for("int16", SHAPE), "int16", slope=0.0, inter=5.0)
    add("n1_int16_slopenan.nii", values_for("int16", SHAPE), "int16", slope=np.nan, inter=5.0)
    # affines
    las = np.diag([-1.2, 0.9, 1.7, 1.0])
    las[:3, 3] = [30.0, -12.0, 4.0]
    add("n1_qform_las.nii", values_for("int16", SHAPE), "int16", sform_code=0, qaffine=las, qform_code=1)
    obl = np.eye(4)
    obl[:3, :3] = rotation(2, 25) @ rotation(0, -15) @ np.diag([1.1, 0.9, 2.2])
    obl[:3, 3] = [-3.0, 5.5, 12.0]
    add("n1_qform_oblique.nii", values_for("float32", SHAPE), "float32", sform_code=0, qaffine=obl, qform_code=1)
    add("n2_qform_oblique.nii", values_for("float32", SHAPE), "float32", version=2, sform_code=0, qaffine=obl, qform_code=2)
    # voxel axes permuted and flipped: i -> -y (P), j -> +z (S), k -> -x (L): "PSL"
    perm = np.array([[0, 0, -1.3, 40.0], [-0.7, 0, 0, 8.0], [0, 2.1, 0, -20.0], [0, 0, 0, 1.0]])
    add("n1_sform_permuted.nii", values_for("int16", SHAPE), "int16", affine=perm, sform_code=1)
    add("n1_sform_permuted_obl.nii.gz", values_for("float32", SHAPE), "float32",
        affine=np.vstack([np.hstack([rotation(1, 30) @ perm[:3, :3], perm[:3, 3:]]), [0, 0, 0, 1]]), sform_code=4)
    add("n1_both.nii", values_for("int16", SHAPE), "int16", affine=perm, sform_code=2, qaffine=las, qform_code=1)
    add("n1_noorient.nii", values_for("int16", SHAPE), "int16", sform_code=0, qform_code=0, method1=True,
        zooms=[1.5, 0.8, 2.0])
    # 4-D and 5-D
    add("n1_4d_float32.nii.gz", values_for("float32", SHAPE + (2,)), "float32", affine=perm, sform_code=1)
    add("n1_5d_vector.nii", values_for("int16", SHAPE + (1, 3)), "int16", intent="vector")
    # NaN voxels, extensions
    nan = values_for("float32", SHAPE)
    nan[1, 2, 0] = np.nan
    nan[4, 3, 2] = np.nan
    nan[0, 0, 1] = np.inf
    add("n1_float32_nan.nii", nan, "float32")
    add("n1_ext.nii", values_for("int16", SHAPE), "int16", extension=b"hello tessera " * 3)
    add("n1_ext.nii.gz", values_for("uint16", SHAPE), "uint16", extension=b"hello tessera " * 3)

    # An image / label pair for labels, grids, resampling and normalisation.
    shape = (7, 6, 5)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    img = (1000 * np.exp(-2 * (x**2 + y**2 + z**2)) + RNG.normal(0, 20, shape)).astype(np.float32)
    img[(x**2 + y**2) > 1.2] = 0.0  # background
    lab = np.zeros(shape, np.uint8)
    lab[(x**2 + y**2 + z**2) < 0.6] = 1
    lab[(x > 0.2) & (lab == 1)] = 2
    grid = perm.copy()
    add("image_f32.nii.gz", img, "float32", affine=grid, sform_code=1)
    add("label_u8.nii.gz", lab, "uint8", affine=grid, sform_code=1)
    shifted = grid.copy()
    shifted[0, 3] += 0.5
    add("label_offgrid.nii.gz", lab, "uint8", affine=shifted, sform_code=1)
    add("label_float_bad.nii", lab * 0.5, "float32", affine=grid, sform_code=1)

    grid = nib.load(os.path.join(OUT, "image_f32.nii.gz")).affine  # as stored (float32)
    spacing = voxel_sizes(grid)
    resampled = []
    for target in ([1.0, 1.07, 0.9], [2.3, 1.9, 3.1], [0.43, 0.61, 1.33]):
        s_img, r_img = resample_ref(img, spacing, target, 1)
        s_lab, r_lab = resample_ref(lab, spacing, target, 0)
        aff = grid.copy()
        aff[:3, :3] = grid[:3, :3] * (np.array(target) / spacing)
        resampled.append({"target": target, "shape": s_img, "image": f32list(r_img),
                          "label": [int(v) for v in r_lab.ravel(order="F")], "affine": aff_list(aff)})

    flat = img.ravel(order="F").astype(np.float64)
    norm = {}
    for lo, hi in ((-50.0, 800.0), (100.0, 400.0)):
        t = (np.clip(flat, lo, hi) - lo) / (hi - lo)
        norm[f"ct_{lo}_{hi}_01"] = f32list(t)
        norm[f"ct_{lo}_{hi}_11"] = f32list(t * 2 - 1)
    for key, fg in (("mri_nonzero", flat != 0), ("mri_above_100", flat > 100)):
        v = flat[fg]
        lo, hi = np.percentile(v, 0.5), np.percentile(v, 99.5)
        c = np.clip(v, lo, hi)
        mean, std = c.mean(), c.std()
        out = np.zeros_like(flat)
        out[fg] = (c - mean) / std
        norm[key] = {"data": f32list(out), "clip_lo": lo, "clip_hi": hi, "mean": mean, "std": std,
                     "n_foreground": int(fg.sum())}
    fg = np.argwhere(lab > 0)
    bbox = {"start": [int(v) for v in fg.min(0)], "end": [int(v) + 1 for v in fg.max(0)]}

    golden = {"files": files, "resample": resampled, "normalize": norm, "label_bbox": bbox,
              "versions": {"nibabel": nib.__version__, "numpy": np.__version__}}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(golden, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{len(files)} files, {total} bytes in {OUT}")


if __name__ == "__main__":
    main()
