//! `convert`: any volume the medical reader opens (NIfTI, NRRD, MetaImage, DICOM files,
//! series folders and DICOMDIRs) → NIfTI-1,
//! keeping the voxel grid, the RAS+ affine (as the sform) and, where every value allows it,
//! the stored integer type. Written to a temporary name and renamed into place.

use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use tessera_medical::{read_volume, write::write_volume};

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The input volume: `.nii[.gz]`, `.hdr`, `.nrrd`, `.nhdr`, `.mha`, `.mhd`, a DICOM file,
    /// a DICOM series folder or a DICOMDIR (`folder#series=N` picks one of several series).
    #[arg(long)]
    pub data: PathBuf,
    /// The output: `.nii` or `.nii.gz`.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: &ConvertArgs) -> Result<()> {
    let name = a.out.to_string_lossy().to_ascii_lowercase();
    if !(name.ends_with(".nii") || name.ends_with(".nii.gz")) {
        bail!(
            "{}: the output must be NIfTI (.nii or .nii.gz)",
            a.out.display()
        );
    }
    let v = read_volume(&a.data)?;
    for w in &v.warnings {
        eprintln!("{}: warning: {w}", a.data.display());
    }
    let dt = write_volume(&a.out, &v)?;
    eprintln!(
        "{} ({}, {} {}, {}x{}x{} x {} channel(s), spacing {:?} mm) → {} ({})",
        a.data.display(),
        v.source.format,
        v.data.len(),
        v.source.datatype.name(),
        v.dims[0],
        v.dims[1],
        v.dims[2],
        v.channels,
        v.spacing_mm,
        a.out.display(),
        dt.name()
    );
    Ok(())
}
