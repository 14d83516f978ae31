#!/usr/bin/env python3
"""Volume reading benchmark across formats (issue 18): SimpleITK side, and the test volume
generator.

`--make DIR` writes the 256x256x160 int16 phantom of nifti_read.py (rescaled values
0.5 x stored - 1024) as NRRD (raw and gzip), MetaImage (.mha raw and zlib) and a DICOM
series of 160 slices (RescaleSlope/Intercept, 1 x 1 x 1.2 mm). Otherwise, times SimpleITK
reading each FILE (a DICOM folder through ImageSeriesReader) to a float32 numpy array
(GetArrayFromImage, a copy; the view of a temporary image is freed under it) and prints JSON
lines like the Rust example `read_bench`.
"""

import json
import os
import sys
import time

import numpy as np
import SimpleITK as sitk


def make(out):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import nifti_read

    nifti_read.make(out)
    import nibabel as nib

    raw = np.asanyarray(nib.load(os.path.join(out, "phantom.nii")).dataobj.get_unscaled())
    vol = sitk.GetImageFromArray(np.ascontiguousarray(raw.transpose(2, 1, 0)))
    vol.SetSpacing((1.0, 1.0, 1.2))
    vol.SetOrigin((128.0, 128.0, -96.0))  # LPS of the NIfTI's RAS origin
    vol.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    # NRRD/MetaImage hold the stored ints; the rescale lives only in DICOM and NIfTI.
    sitk.WriteImage(vol, os.path.join(out, "phantom.nrrd"), useCompression=False)
    sitk.WriteImage(vol, os.path.join(out, "phantom_gz.nrrd"), useCompression=True)
    sitk.WriteImage(vol, os.path.join(out, "phantom.mha"), useCompression=False)
    sitk.WriteImage(vol, os.path.join(out, "phantom_zlib.mha"), useCompression=True)
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    d = os.path.join(out, "dicom")
    os.makedirs(d, exist_ok=True)
    series, study = generate_uid(), generate_uid()
    for k in range(raw.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study, series, "CT"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [128.0, 128.0, -96.0 + 1.2 * k]
        ds.ImageOrientationPatient = [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0]
        ds.PixelSpacing = [1.0, 1.0]
        ds.Rows, ds.Columns = raw.shape[1], raw.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 0.5, -1024.0
        ds.PixelData = np.ascontiguousarray(raw[:, :, k].T).astype("<i2").tobytes()
        ds.save_as(os.path.join(d, f"{k:04d}.dcm"), enforce_file_format=True)


def read(f):
    if os.path.isdir(f):
        r = sitk.ImageSeriesReader()
        r.SetFileNames(r.GetGDCMSeriesFileNames(f))
        r.SetOutputPixelType(sitk.sitkFloat32)
        return sitk.GetArrayFromImage(r.Execute())
    return sitk.GetArrayFromImage(sitk.ReadImage(f, sitk.sitkFloat32))


def bench(files, repeat):
    for f in files:
        a = read(f)  # warm-up
        t = time.perf_counter()
        check = 0.0
        for _ in range(repeat):
            a = read(f)
            check += float(a.transpose(2, 1, 0).ravel(order="F")[a.size // 2])
        s = time.perf_counter() - t
        print(json.dumps({"impl": "simpleitk", "file": f, "volumes_per_s": round(repeat / s, 2),
                          "ms_per_volume": round(1000 * s / repeat, 2), "check": check}))


if __name__ == "__main__":
    if sys.argv[1] == "--make":
        make(sys.argv[2])
    else:
        bench(sys.argv[3:], int(sys.argv[2]))
