//! A human-readable header summary (what `tessera-medical inspect` prints), after a check
//! of the whole file.

use std::fmt::Write;
use std::path::Path;

use crate::error::MedicalError;
use crate::nifti::check_file;
use crate::orient::{axcodes, voxel_sizes, world_from_voxel};

/// Multi-line summary of a NIfTI file's header: file, format, dims, spacing, datatype,
/// scaling, qform/sform codes, orientation codes, affine, and the data size checked.
///
/// The whole file is checked first ([`check_file`]: declared data size against the file,
/// a gzip stream inflated to its end with its checksum verified, no voxels decoded into
/// memory), so a truncated or corrupt file is an error naming the file and the problem,
/// not a summary.
pub fn inspect(path: &Path) -> Result<String, MedicalError> {
    let check = check_file(path)?;
    let h = &check.header;
    let (affine, warning) = world_from_voxel(h)?;
    let mut s = String::new();
    let nd = h.dim[0] as usize;
    let dims: Vec<String> = h.dim[1..=nd].iter().map(|d| d.to_string()).collect();
    let source = if h.sform_code > 0 {
        "sform"
    } else if h.qform_code > 0 {
        "qform"
    } else {
        "pixdim only"
    };
    // Writing to a String cannot fail.
    let _ = writeln!(s, "file:        {}", h.path.display());
    if h.data_path != h.path {
        let _ = writeln!(s, "data file:   {}", h.data_path.display());
    }
    let _ = writeln!(s, "format:      {}", h.format);
    let _ = writeln!(
        s,
        "dims:        {} ({} channels)",
        dims.join(" x "),
        h.channels()
    );
    let _ = writeln!(
        s,
        "datatype:    {} (code {}, bitpix {})",
        h.datatype.name(),
        h.datatype.code(),
        h.bitpix
    );
    let _ = writeln!(
        s,
        "pixdim:      {:?} (qfac {})",
        &h.pixdim[1..=nd.min(7)],
        h.pixdim[0]
    );
    let _ = writeln!(
        s,
        "spacing mm:  {:?} (from the affine)",
        voxel_sizes(&affine)
    );
    let _ = writeln!(
        s,
        "scaling:     scl_slope {} scl_inter {}{}",
        h.scl_slope,
        h.scl_inter,
        if h.scaling().is_none() {
            " (not applied)"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "vox_offset:  {}", h.vox_offset);
    let held = if h.format.data_gz {
        format!(
            "the {}-byte gzip stream inflates to {} bytes (checksum verified)",
            check.file_bytes, check.present_bytes
        )
    } else {
        format!("the file holds {} bytes", check.present_bytes)
    };
    let trailing = match check.trailing_bytes() {
        0 => String::new(),
        n => format!("; {n} bytes after the voxels are ignored"),
    };
    let _ = writeln!(
        s,
        "data:        {} bytes at offset {}; {held}{trailing}",
        check.declared_bytes, check.data_offset
    );
    let _ = writeln!(
        s,
        "qform_code:  {}  sform_code: {}  (affine from {source})",
        h.qform_code, h.sform_code
    );
    let codes = axcodes(&affine).unwrap_or_else(|e| format!("undefined ({e})"));
    let _ = writeln!(s, "orientation: {codes}");
    let _ = writeln!(s, "affine (world_from_voxel):");
    for row in &affine {
        let _ = writeln!(
            s,
            "  [{:>12.5} {:>12.5} {:>12.5} {:>12.5}]",
            row[0], row[1], row[2], row[3]
        );
    }
    if h.intent_code != 0 || !h.intent_name.is_empty() {
        let _ = writeln!(s, "intent:      {} {:?}", h.intent_code, h.intent_name);
    }
    if !h.descrip.is_empty() {
        let _ = writeln!(s, "descrip:     {:?}", h.descrip);
    }
    if let Some(w) = warning {
        let _ = writeln!(s, "warning:     {w}");
    }
    Ok(s)
}
