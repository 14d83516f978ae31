#!/usr/bin/env python3
"""Generate the DICOM fixtures and golden values for tessera-medical
(domains/medical/tests/dicom/).

Two kinds of fixtures:
- copies of small files pydicom ships for its own tests (derived from NEMA's public WG04
  sets: MR_small in five transfer syntaxes, CT_small, a deflated file, a truncated one);
- series written here with pydicom: an oblique CT series stored in shuffled file order with
  misleading instance numbers and per-slice rescale, a gantry-tilted series, a series with
  an irregular gap, two series mixed in one folder, an enhanced multi-frame MR (positions in
  the per-frame functional groups), a DICOMDIR, RLE-compressed slices, and broken series
  (different sizes, a missing position, one slice).

Reference: SimpleITK's ImageSeriesReader (GDCM; files ordered by GDCMSeriesFileNames) for
voxels and the affine of every series; pydicom (with its RLE and deflate handlers) for single
files. ITK's world is LPS: RAS = diag(-1, -1, 1) · LPS. Made with pydicom 3.0, SimpleITK 2.5,
numpy 2.4:

    benchmarks/.venv/bin/pip install pydicom SimpleITK numpy
    benchmarks/.venv/bin/python scripts/golden_dicom.py
"""

import json
import os
import shutil

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "domains", "medical", "tests", "dicom")
PYDICOM_FILES = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
RNG = np.random.default_rng(20264)
RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def slice_ds(series_uid, study_uid, rows, cols, ipp, iop, spacing, pixels, slope=1.0, intercept=0.0,
             instance=1, description="test series", modality="CT", syntax=ExplicitVRLittleEndian):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesDescription = description
    ds.Modality = modality
    ds.PatientName = "Test^Phantom"
    ds.PatientID = "0001"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20261201", "120000", "1", ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [float(x) for x in ipp]
    ds.ImageOrientationPatient = [float(x) for x in iop]
    ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]
    ds.SliceThickness = 99.0  # deliberately wrong: spacing must come from the positions
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.PixelData = pixels.astype("<i2").tobytes()
    if syntax == RLELossless:
        ds.compress(RLELossless, pixels.astype(np.int16))
    return ds


def write_series(folder, n, rows=6, cols=5, iop=(1, 0, 0, 0, 1, 0), spacing=(0.7, 0.8), step=None,
                 origin=(-20.0, 10.0, 5.0), positions=None, shuffle=True, syntax=ExplicitVRLittleEndian,
                 description="test series", series_uid=None, per_slice_rescale=True):
    """Write an n-slice series; returns the series UID."""
    os.makedirs(folder, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    r, c = np.array(iop[:3], float), np.array(iop[3:], float)
    normal = np.cross(r, c)
    if step is None:
        step = 2.5 * normal
    if positions is None:
        positions = [np.array(origin) + k * np.array(step) for k in range(n)]
    order = list(range(n))
    if shuffle:
        RNG.shuffle(order)
    for j, k in enumerate(order):
        pixels = RNG.integers(-1000, 2000, (rows, cols))
        slope, intercept = (1.0 + 0.5 * (k % 2), -1024.0 + k) if per_slice_rescale else (1.0, -1024.0)
        # Instance numbers that disagree with the geometry, and file names that do too.
        ds = slice_ds(series_uid, study_uid, rows, cols, positions[k], iop, spacing, pixels, slope, intercept,
                      instance=n - k if k % 3 else 100 + k, description=description, syntax=syntax)
        ds.save_as(os.path.join(folder, f"IM{j:04d}.dcm"), enforce_file_format=True)
    return series_uid


def sitk_series(folder, series_uid=None):
    """The series' affine and order from SimpleITK (GDCM sorts by position); voxels from
    pydicom in f64 (ITK keeps the first slice's integer type, so a per-slice rescale slope
    of 1.5 loses its halves there), checked against ITK's to within that rounding."""
    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(folder, series_uid or "")
    reader.SetFileNames(names)
    itk = expected_from_image(reader.Execute())
    ref = pydicom_series(folder, series_uid) if len(names) > 1 else pydicom_single(names[0])
    assert ref["dims"] == itk["dims"], (ref["dims"], itk["dims"])
    assert np.allclose(ref["affine"], itk["affine"], atol=1e-6), (ref["affine"], itk["affine"])
    assert np.abs(np.array(ref["data"]) - np.array(itk["data"])).max() < 1.0
    return ref


def pydicom_series(folder, series_uid=None):
    """pydicom's decode of each slice (its own RLE decoder), ordered along the normal."""
    slices = [pydicom.dcmread(os.path.join(folder, f)) for f in os.listdir(folder)]
    slices = [d for d in slices if series_uid in (None, d.SeriesInstanceUID)]
    iop = np.array(slices[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    slices.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, float))))
    vol = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in slices])
    sp = [float(x) for x in slices[0].PixelSpacing]
    p0 = np.array(slices[0].ImagePositionPatient, float)
    p1 = np.array(slices[1].ImagePositionPatient, float)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1] = iop[:3] * sp[1], iop[3:] * sp[0]
    lps[:3, 2] = (np.array(slices[-1].ImagePositionPatient, float) - p0) / (len(slices) - 1)
    lps[:3, 3] = p0
    assert np.allclose(lps[:3, 2], p1 - p0)
    return {"dims": [vol.shape[2], vol.shape[1], vol.shape[0]], "data": [float(v) for v in vol.ravel()],
            "affine": (RAS @ lps).tolist()}


def expected_from_image(img):
    arr = sitk.GetArrayFromImage(img).astype(np.float64)  # [z][y][x]
    d = np.array(img.GetDirection()).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = d @ np.diag(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    return {
        "dims": list(img.GetSize()),
        "data": [float(v) for v in arr.ravel()],
        "affine": (RAS @ lps).tolist(),
    }


def pydicom_single(path):
    ds = pydicom.dcmread(path)
    px = ds.pixel_array.astype(np.float64)
    if px.ndim == 2:
        px = px[None]
    slope = float(getattr(ds, "RescaleSlope", 1.0))
    inter = float(getattr(ds, "RescaleIntercept", 0.0))
    px = px * slope + inter
    # A file without geometry (secondary capture) is placed at the origin, axis-aligned.
    iop = [float(x) for x in getattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 1, 0])]
    r, c = np.array(iop[:3]), np.array(iop[3:])
    sp = [float(x) for x in getattr(ds, "PixelSpacing", [1.0, 1.0])]
    lps = np.eye(4)
    lps[:3, 0] = r * sp[1]
    lps[:3, 1] = c * sp[0]
    n = np.cross(r, c)
    # One slice: the gap is SpacingBetweenSlices, else SliceThickness, else 1 mm.
    gap = float(getattr(ds, "SpacingBetweenSlices", 0) or getattr(ds, "SliceThickness", 0) or 1.0)
    lps[:3, 2] = n * gap
    lps[:3, 3] = [float(x) for x in getattr(ds, "ImagePositionPatient", [0, 0, 0])]
    return {
        "dims": [int(ds.Columns), int(ds.Rows), int(px.shape[0])],
        "data": [float(v) for v in px.ravel()],
        "affine": (RAS @ lps).tolist(),
    }


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    out = {}

    # --- pydicom's own small files
    for name in ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm",
                 "CT_small.dcm", "image_dfl.dcm"]:
        shutil.copy(os.path.join(PYDICOM_FILES, name), os.path.join(OUT, name))
        out[name] = pydicom_single(os.path.join(OUT, name))
    for name in ["MR_small_jpeg_ls_lossless.dcm", "MR_truncated.dcm", "MR_small_jp2klossless.dcm"]:
        shutil.copy(os.path.join(PYDICOM_FILES, name), os.path.join(OUT, name))
    # JPEG 2000 lossless decodes to MR_small's voxels.
    out["MR_small_jp2klossless.dcm"] = pydicom_single(os.path.join(OUT, "MR_small.dcm"))

    # --- series written here
    oblique = (0.9659258, 0.2588190, 0.0, -0.2588190, 0.9659258, 0.0)
    write_series(os.path.join(OUT, "series_oblique"), 7, iop=oblique)
    out["series_oblique"] = sitk_series(os.path.join(OUT, "series_oblique"))

    tilt_iop = (1, 0, 0, 0, 0.9848078, -0.1736482)  # 10 degree gantry tilt about x
    write_series(os.path.join(OUT, "series_tilt"), 5, iop=tilt_iop, step=(0, 0, 2.0))
    out["series_tilt"] = {"tilt": True}

    pos = [np.array([0.0, 0.0, z]) for z in (0, 2, 4, 6, 10, 12)]
    write_series(os.path.join(OUT, "series_gap"), 6, positions=pos)
    out["series_gap"] = {"gap": True}

    mixed = os.path.join(OUT, "series_mixed")
    a = write_series(mixed, 4, description="axial A", shuffle=False)
    os.makedirs(os.path.join(OUT, "tmp_b"))
    b = write_series(os.path.join(OUT, "tmp_b"), 3, rows=4, cols=4, description="axial B")
    for f in os.listdir(os.path.join(OUT, "tmp_b")):
        shutil.move(os.path.join(OUT, "tmp_b", f), os.path.join(mixed, "B" + f))
    os.rmdir(os.path.join(OUT, "tmp_b"))
    out["series_mixed"] = {"series": {a: sitk_series(mixed, a), b: sitk_series(mixed, b)}}

    write_series(os.path.join(OUT, "series_rle"), 4, syntax=RLELossless)
    # (GDCM refuses pydicom's RLE encoding of signed data; pydicom decodes it.)
    out["series_rle"] = pydicom_series(os.path.join(OUT, "series_rle"))

    # A DICOMDIR (pydicom's FileSet writes it and renames the files PT*/ST*/SE*/IM*).
    from pydicom.fileset import FileSet
    src = os.path.join(OUT, "tmp_dicomdir")
    write_series(src, 3)
    fs = FileSet()
    for f in sorted(os.listdir(src)):
        fs.add(pydicom.dcmread(os.path.join(src, f)))
    fs.write(os.path.join(OUT, "dicomdir_set"))
    shutil.rmtree(src)
    ref = pydicom_series(os.path.join(OUT, "dicomdir_set", "PT000000", "ST000000", "SE000000"))
    out[os.path.join("dicomdir_set", "DICOMDIR")] = ref

    # 12 bits stored in 16, signed, with junk (an overlay) in the 4 unused high bits:
    # values must be sign-extended from bit 11 and the junk ignored.
    v = RNG.integers(-2048, 2048, (6, 5))
    stored = (v & 0x0FFF) | (RNG.integers(0, 16, v.shape) << 12)
    ds = slice_ds(generate_uid(), generate_uid(), 6, 5, (0, 0, 0), (1, 0, 0, 0, 1, 0), (1, 1), v)
    ds.BitsStored, ds.HighBit = 12, 11
    ds.PixelData = stored.astype("<u2").tobytes()
    ds.save_as(os.path.join(OUT, "bits12_signed.dcm"), enforce_file_format=True)
    out["bits12_signed.dcm"] = pydicom_single(os.path.join(OUT, "bits12_signed.dcm"))
    assert np.allclose(np.array(out["bits12_signed.dcm"]["data"]), v.ravel()), "pydicom sign extension"

    # Broken series.
    d = os.path.join(OUT, "bad_sizes")
    uid = write_series(d, 3)
    os.makedirs(os.path.join(OUT, "tmp"))
    write_series(os.path.join(OUT, "tmp"), 1, rows=7, series_uid=uid)
    shutil.move(os.path.join(OUT, "tmp", "IM0000.dcm"), os.path.join(d, "odd.dcm"))
    os.rmdir(os.path.join(OUT, "tmp"))
    d = os.path.join(OUT, "bad_position")
    write_series(d, 3, shuffle=False)
    ds = pydicom.dcmread(os.path.join(d, "IM0001.dcm"))
    del ds.ImagePositionPatient
    ds.save_as(os.path.join(d, "IM0001.dcm"))
    write_series(os.path.join(OUT, "one_slice"), 1)
    # (ITK gives one slice 1 mm along the normal; the reader uses SliceThickness, as dcm2niix.)
    out["one_slice"] = pydicom_single(os.path.join(OUT, "one_slice", "IM0000.dcm"))

    # Enhanced multi-frame MR: positions per frame, orientation and spacing shared.
    n, rows, cols = 4, 5, 6
    frames = RNG.integers(0, 4000, (n, rows, cols)).astype("<u2")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "MR"
    ds.NumberOfFrames = n
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    shared = Dataset()
    po = Dataset()
    po.ImageOrientationPatient = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # sagittal
    pm = Dataset()
    pm.PixelSpacing = [0.9, 1.1]
    pm.SliceThickness = 1.2
    pvt = Dataset()
    pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = 2.0, -10.0, "US"
    shared.PlaneOrientationSequence = Sequence([po])
    shared.PixelMeasuresSequence = Sequence([pm])
    shared.PixelValueTransformationSequence = Sequence([pvt])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per = []
    order = [2, 0, 3, 1]  # frames stored out of spatial order
    for k in order:
        fg = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [5.0 + 1.5 * k, -3.0, 40.0]
        fg.PlanePositionSequence = Sequence([pp])
        per.append(fg)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per)
    ds.PixelData = frames[order].tobytes()
    ds.save_as(os.path.join(OUT, "enhanced_mr.dcm"), enforce_file_format=True)
    # Expected: frames sorted along the normal (row x col = (0,1,0) x (0,0,-1) = (-1,0,0)).
    r, c = np.array([0.0, 1, 0]), np.array([0.0, 0, -1])
    normal = np.cross(r, c)
    ks = sorted(range(n), key=lambda i: float(np.dot(normal, [5.0 + 1.5 * order[i], -3, 40])))
    vol = frames[order][ks].astype(np.float64) * 2.0 - 10.0
    p0 = np.array([5.0 + 1.5 * order[ks[0]], -3, 40])
    p1 = np.array([5.0 + 1.5 * order[ks[1]], -3, 40])
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = r * 1.1, c * 0.9, p1 - p0, p0
    out["enhanced_mr.dcm"] = {"dims": [cols, rows, n], "data": [float(v) for v in vol.ravel()],
                             "affine": (RAS @ lps).tolist()}

    # Large images keep every 97th value (JSON size), with the stride.
    for e in out.values():
        if len(e.get("data", [])) > 20000:
            e["data_stride"] = 97
            e["data"] = e["data"][::97]
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"reference": f"SimpleITK {sitk.Version_VersionString()}, pydicom {pydicom.__version__}",
                   "files": out}, f)
    print(len(out), "entries")


if __name__ == "__main__":
    main()
