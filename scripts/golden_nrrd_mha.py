#!/usr/bin/env python3
"""Generate the NRRD and MetaImage fixtures and golden values for tessera-medical
(domains/medical/tests/formats/).

Reference: SimpleITK (ITK's NrrdImageIO and MetaImageIO). Files come from two writers:
SimpleITK itself (oblique directions, compression, vector pixels, 2-D and 4-D images) and
headers written here byte by byte for the variants ITK never writes (detached data, big
endian, text data, line/byte skips, RAS/LAS/scanner spaces, DWI-style `none` axes, no
space at all, data in several files, bzip2). Every file is read back with SimpleITK and the expected voxels and RAS+
affine come from that reading (ITK's world is LPS: RAS = diag(-1, -1, 1) · LPS). Made with
SimpleITK 2.5, numpy 2.4:

    benchmarks/.venv/bin/pip install SimpleITK numpy
    benchmarks/.venv/bin/python scripts/golden_nrrd_mha.py
"""

import gzip
import json
import os
import zlib

import numpy as np
import SimpleITK as sitk

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "domains", "medical", "tests", "formats")
RNG = np.random.default_rng(20262)
SHAPE = (5, 4, 3)  # x, y, z


def rotation(a, b, c):
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rz @ ry @ rx


def values(dtype, shape):
    """Values that use the dtype's range (signed ones negative too)."""
    if np.dtype(dtype).kind == "f":
        return RNG.normal(0, 100, shape).astype(dtype)
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -30000), min(info.max, 60000)
    return RNG.integers(lo, hi, shape, endpoint=True).astype(dtype)


def expected(path, datatype):
    img = sitk.ReadImage(path)
    arr = sitk.GetArrayFromImage(img)  # [z][y][x] (+[c] for vectors), or [t][z][y][x]
    nd = img.GetDimension()
    comps = img.GetNumberOfComponentsPerPixel()
    if comps > 1:
        arr = np.moveaxis(arr, -1, 0)  # channels first
    size = list(img.GetSize())
    d = np.array(img.GetDirection()).reshape(nd, nd)
    s = np.array(img.GetSpacing())
    o = np.array(img.GetOrigin())
    k = min(nd, 3)
    lps = np.eye(4)
    lps[:k, :k] = (d @ np.diag(s))[:k, :k]
    lps[:k, 3] = o[:k]
    if nd == 2:
        n = np.cross(lps[:3, 0], lps[:3, 1])
        lps[:3, 2] = n / np.linalg.norm(n)
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    dims = (size + [1, 1])[:3]
    channels = comps * (size[3] if nd == 4 else 1)
    return {
        "dims": dims,
        "channels": channels,
        "datatype": datatype,
        "data": [float(str(np.float32(v))) for v in np.asarray(arr, np.float64).astype(np.float32).ravel()],
        "affine": ras.tolist(),
    }


def sitk_image(arr, spacing, origin, direction, vector=False):
    img = sitk.GetImageFromArray(arr, isVector=vector)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    return img


def raw_bytes(arr, big=False):
    a = np.asarray(arr)
    return a.astype(a.dtype.newbyteorder(">" if big else "<")).tobytes()


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    out = {}
    zyx = SHAPE[::-1]
    rot = rotation(0.3, -0.2, 0.5)
    direction = tuple(rot.ravel())
    spacing = (0.8, 0.9, 2.5)
    origin = (10.0, -20.0, 30.0)

    def written(name, img, datatype, compress=False):
        path = os.path.join(OUT, name)
        sitk.WriteImage(img, path, useCompression=compress)
        out[name] = expected(path, datatype)

    # --- written by SimpleITK
    written("itk_int16_oblique.mha", sitk_image(values(np.int16, zyx), spacing, origin, direction), "int16")
    written("itk_f32_zlib.mha", sitk_image(values(np.float32, zyx), spacing, origin, direction), "float32", True)
    written("itk_u8.mhd", sitk_image(values(np.uint8, zyx), spacing, origin, direction), "uint8")
    written("itk_vec3_f32.mha", sitk_image(values(np.float32, zyx + (3,)), spacing, origin, direction, True), "float32")
    written("itk_2d_u16.mha", sitk_image(values(np.uint16, (4, 5)), (0.5, 0.7), (1.0, 2.0), tuple(rotation(0, 0, 0.4)[:2, :2].ravel())), "uint16")
    img4 = sitk.JoinSeries([sitk.GetImageFromArray(values(np.int32, zyx)) for _ in range(2)])
    img4.SetSpacing(spacing + (1.0,))
    written("itk_4d_i32.mha", img4, "int32")
    written("itk_f64_double.mha", sitk_image(values(np.float64, zyx), spacing, origin, direction), "float64")
    written("itk_int16_oblique.nrrd", sitk_image(values(np.int16, zyx), spacing, origin, direction), "int16")
    written("itk_f64_gzip.nrrd", sitk_image(values(np.float64, zyx), spacing, origin, direction), "float64", True)
    written("itk_vec3_u8.nrrd", sitk_image(values(np.uint8, zyx + (3,)), spacing, origin, direction, True), "uint8")
    written("itk_2d_f32.nrrd", sitk_image(values(np.float32, (4, 5)), (0.5, 0.7), (1.0, 2.0), (1.0, 0.0, 0.0, 1.0)), "float32")

    # --- headers written here
    def put(name, data):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)

    def dirs(m, sp):
        return " ".join("(" + ",".join(repr(float(x)) for x in m[:, i] * sp[i]) + ")" for i in range(3))

    a = values(np.int32, zyx)
    put("detached_be.nhdr", (
        "NRRD0004\n# a comment\ntype: int32\ndimension: 3\nspace: right-anterior-superior\n"
        "sizes: 5 4 3\n" f"space directions: {dirs(rot, spacing)}\n"
        "kinds: domain domain domain\nendian: big\nencoding: gzip\n"
        "space origin: (1.5,2.5,-3.5)\nmy key:=my value\ndata file: detached_be.raw.gz\n").encode())
    put("detached_be.raw.gz", gzip.compress(raw_bytes(a, big=True)))
    out["detached_be.nhdr"] = expected(os.path.join(OUT, "detached_be.nhdr"), "int32")

    a = values(np.float32, zyx)
    text = "\n".join(" ".join(repr(float(v)) for v in row) for row in a.reshape(-1, 5))
    put("ascii_las.nrrd", (
        "NRRD0005\ntype: float\ndimension: 3\nspace: left-anterior-superior\nsizes: 5 4 3\n"
        "space directions: (1,0,0) (0,2,0) (0,0,3)\nencoding: ascii\n"
        "space origin: (-4,5,6)\n\n" + text + "\n").encode())
    out["ascii_las.nrrd"] = expected(os.path.join(OUT, "ascii_las.nrrd"), "float32")

    a = values(np.uint16, zyx)
    put("no_space.nrrd", (
        "NRRD0001\ntype: ushort\ndimension: 3\nsizes: 5 4 3\nspacings: 1.5 2 3\n"
        "endian: little\nencoding: raw\n\n").encode() + raw_bytes(a))
    out["no_space.nrrd"] = expected(os.path.join(OUT, "no_space.nrrd"), "uint16")

    a = values(np.int16, zyx)
    put("skips.nhdr", (
        "NRRD0004\ntype: short\ndimension: 3\nspace: LPS\nsizes: 5 4 3\n"
        f"space directions: {dirs(rot, spacing)}\nendian: little\nencoding: raw\n"
        "line skip: 2\nbyte skip: 3\ndata file: ./skips.raw\n").encode())
    put("skips.raw", b"first line\nsecond line\nXYZ" + raw_bytes(a))
    out["skips.nhdr"] = expected(os.path.join(OUT, "skips.nhdr"), "int16")

    a = values(np.float64, zyx)
    put("byteskip_end.nhdr", (
        "NRRD0004\ntype: double\ndimension: 3\nspace: left-posterior-superior\nsizes: 5 4 3\n"
        "space directions: (0,0,2) (0,1.5,0) (1,0,0)\nendian: little\nencoding: raw\n"
        "byte skip: -1\ndata file: byteskip_end.raw\n").encode())
    put("byteskip_end.raw", b"some preamble of any length" + raw_bytes(a))
    out["byteskip_end.nhdr"] = expected(os.path.join(OUT, "byteskip_end.nhdr"), "float64")

    a = values(np.int16, zyx + (4,))  # [z][y][x][gradient]
    put("dwi_like.nhdr", (
        "NRRD0005\ntype: int16\ndimension: 4\nspace: left-posterior-superior\nsizes: 4 5 4 3\n"
        f"space directions: none {dirs(rot, spacing)}\nkinds: list domain domain domain\n"
        "endian: little\nencoding: gzip\nspace origin: (1,2,3)\n"
        "measurement frame: (1,0,0) (0,1,0) (0,0,1)\nDWMRI_b-value:=1000\n"
        "data file: dwi_like.raw.gz\n").encode())
    put("dwi_like.raw.gz", gzip.compress(raw_bytes(a)))
    out["dwi_like.nhdr"] = expected(os.path.join(OUT, "dwi_like.nhdr"), "int16")

    a = values(np.uint8, zyx)
    put("scanner_xyz.nrrd", (
        "NRRD0004\ntype: uchar\ndimension: 3\nspace: scanner-xyz\nsizes: 5 4 3\n"
        "space directions: (1,0,0) (0,1,0) (0,0,1)\nencoding: raw\nspace origin: (7,8,9)\n\n").encode()
        + raw_bytes(a))
    out["scanner_xyz.nrrd"] = expected(os.path.join(OUT, "scanner_xyz.nrrd"), "uint8")

    a = values(np.float32, zyx)
    text = "\n".join(" ".join(repr(float(v)) for v in row) for row in a.reshape(-1, 5))
    put("text.mha", (
        "ObjectType = Image\nNDims = 3\nDimSize = 5 4 3\nElementSpacing = 1 2 3\n"
        "Offset = 1 2 3\nTransformMatrix = 1 0 0 0 1 0 0 0 1\nBinaryData = False\n"
        "ElementType = MET_FLOAT\nElementDataFile = LOCAL\n" + text + "\n").encode())
    out["text.mha"] = expected(os.path.join(OUT, "text.mha"), "float32")

    a = values(np.int16, zyx)
    m = " ".join(repr(float(x)) for x in rot.T.ravel())  # row i = direction of axis i
    put("msb.mha", (
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = True\n"
        f"CompressedData = False\nTransformMatrix = {m}\nOffset = -5 6 -7\n"
        "CenterOfRotation = 0 0 0\nAnatomicalOrientation = RAI\nElementSpacing = 0.8 0.9 2.5\n"
        "DimSize = 5 4 3\nElementType = MET_SHORT\nElementDataFile = LOCAL\n").encode()
        + raw_bytes(a, big=True))
    out["msb.mha"] = expected(os.path.join(OUT, "msb.mha"), "int16")

    a = values(np.float32, zyx)
    put("headersize.mhd", (
        "ObjectType = Image\nNDims = 3\nDimSize = 5 4 3\nElementSize = 2 2 2\n"
        "HeaderSize = 16\nElementType = MET_FLOAT\nElementDataFile = headersize.dat\n").encode())
    put("headersize.dat", b"0123456789abcdef" + raw_bytes(a))
    out["headersize.mhd"] = expected(os.path.join(OUT, "headersize.mhd"), "float32")

    a = values(np.uint16, zyx)
    z = zlib.compress(raw_bytes(a))
    put("zlib_local.mha", (
        "ObjectType = Image\nNDims = 3\nDimSize = 5 4 3\nElementSpacing = 1 1 1\n"
        f"CompressedData = True\nCompressedDataSize = {len(z)}\nElementType = MET_USHORT\n"
        "ElementDataFile = LOCAL\n").encode() + z)
    out["zlib_local.mha"] = expected(os.path.join(OUT, "zlib_local.mha"), "uint16")

    # Data in several files: one z slice per file, by LIST and by printf pattern.
    a = values(np.int16, zyx)
    for k in range(3):
        put(f"slab{k}.raw", raw_bytes(a[k]))
    head = ("NRRD0004\ntype: short\ndimension: 3\nspace: LPS\nsizes: 5 4 3\n"
            "space directions: (1,0,0) (0,1,0) (0,0,2)\nendian: little\nencoding: raw\n")
    put("list.nhdr", (head + "data file: LIST 2\nslab0.raw\nslab1.raw\nslab2.raw\n").encode())
    out["list.nhdr"] = expected(os.path.join(OUT, "list.nhdr"), "int16")
    put("pattern.nhdr", (head + "data file: slab%d.raw 0 2 1\n").encode())
    out["pattern.nhdr"] = expected(os.path.join(OUT, "pattern.nhdr"), "int16")
    mhead = "ObjectType = Image\nNDims = 3\nDimSize = 5 4 3\nElementSpacing = 1 1 2\nElementType = MET_SHORT\n"
    put("list.mhd", (mhead + "ElementDataFile = LIST 2D\nslab0.raw\nslab1.raw\nslab2.raw\n").encode())
    out["list.mhd"] = expected(os.path.join(OUT, "list.mhd"), "int16")
    put("pattern.mhd", (mhead + "ElementDataFile = slab%d.raw 0 2 1\n").encode())
    out["pattern.mhd"] = expected(os.path.join(OUT, "pattern.mhd"), "int16")
    assert out["pattern.mhd"]["data"] == out["list.nhdr"]["data"]

    # bzip2 (ITK's teem has no bzip2: the expected values are those of a raw twin).
    import bz2

    a = values(np.float32, zyx)
    head = ("NRRD0004\ntype: float\ndimension: 3\nspace: RAS\nsizes: 5 4 3\n"
            "space directions: (0.5,0,0) (0,0.5,0) (0,0,1)\nendian: big\n")
    put("bzip2_twin.nrrd", (head + "encoding: raw\n\n").encode() + raw_bytes(a, big=True))
    put("bzip2.nrrd", (head + "encoding: bzip2\n\n").encode() + bz2.compress(raw_bytes(a, big=True)))
    out["bzip2.nrrd"] = expected(os.path.join(OUT, "bzip2_twin.nrrd"), "float32")
    os.remove(os.path.join(OUT, "bzip2_twin.nrrd"))

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"reference": f"SimpleITK {sitk.Version_VersionString()}", "files": out}, f, indent=1)
    print(f"{len(out)} files")


if __name__ == "__main__":
    main()
