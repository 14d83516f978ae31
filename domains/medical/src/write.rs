//! A NIfTI-1 writer for any [`Volume`]: single file (`.nii`, or gzipped when the name ends
//! in `.gz`), the affine as sform (code 2, aligned) and qform code 0, channels as `dim[4]`,
//! written to a temporary name and renamed into place so a crash never leaves half a file.

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;

use crate::nifti::Datatype;
use crate::{MedicalError, Volume};

/// Write `dims` × `channels` voxels, already encoded little-endian as `datatype`.
pub fn write_nifti_bytes(
    path: &Path,
    dims: [usize; 3],
    channels: usize,
    affine: [[f64; 4]; 4],
    datatype: Datatype,
    data: &[u8],
) -> Result<(), MedicalError> {
    let bad = |reason: String| MedicalError::InvalidArgument {
        name: "volume",
        reason: format!("{}: {reason}", path.display()),
    };
    let n: usize = dims.iter().product::<usize>() * channels;
    if data.len() != n * datatype.size() {
        return Err(bad(format!(
            "{} bytes for {n} {} voxels",
            data.len(),
            datatype.name()
        )));
    }
    if let Some(d) = dims
        .iter()
        .chain([&channels])
        .find(|&&d| d > i16::MAX as usize)
    {
        return Err(bad(format!(
            "an axis of {d} voxels does not fit NIfTI-1's 16-bit dim"
        )));
    }
    let mut h = vec![0u8; 352];
    let put_i16 =
        |h: &mut [u8], off: usize, v: i16| h[off..off + 2].copy_from_slice(&v.to_le_bytes());
    let put_f32 =
        |h: &mut [u8], off: usize, v: f32| h[off..off + 4].copy_from_slice(&v.to_le_bytes());
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    put_i16(&mut h, 40, if channels > 1 { 4 } else { 3 });
    for (i, d) in dims.iter().chain([&channels]).enumerate() {
        put_i16(&mut h, 42 + 2 * i, *d as i16);
    }
    for i in 4..7 {
        put_i16(&mut h, 42 + 2 * i, 1);
    }
    put_i16(&mut h, 70, datatype.code() as i16);
    put_i16(&mut h, 72, (8 * datatype.size()) as i16);
    put_f32(&mut h, 76, 1.0);
    for a in 0..3 {
        let s = affine[..3]
            .iter()
            .map(|row| row[a] * row[a])
            .sum::<f64>()
            .sqrt();
        put_f32(&mut h, 80 + 4 * a, s as f32);
    }
    put_f32(&mut h, 92, 1.0);
    put_f32(&mut h, 108, 352.0);
    put_f32(&mut h, 112, 1.0); // scl_slope
    h[123] = 2 | 8; // xyzt_units: mm, s
    put_i16(&mut h, 254, 2); // sform_code: aligned
    for (r, row) in affine[..3].iter().enumerate() {
        for (c, x) in row.iter().enumerate() {
            put_f32(&mut h, 280 + 16 * r + 4 * c, *x as f32);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    let io = |source| MedicalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let write = |f: std::fs::File| -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(f);
        if path.extension().is_some_and(|e| e == "gz") {
            let mut e = GzEncoder::new(f, flate2::Compression::fast());
            e.write_all(&h)?;
            e.write_all(data)?;
            e.finish()?.flush()
        } else {
            f.write_all(&h)?;
            f.write_all(data)?;
            f.flush()
        }
    };
    std::fs::File::create(&tmp).and_then(write).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// The datatype [`write_volume`] keeps: the stored one when every value (after any scaling)
/// is an integer it can hold (64-bit integers narrowed to 32), else float32; never a 64-bit
/// type.
pub fn lossless_datatype(v: &Volume) -> Datatype {
    use Datatype::*;
    let dt = v.source.datatype;
    let range = match dt {
        U8 => (0.0, 255.0),
        I8 => (-128.0, 127.0),
        I16 => (-32768.0, 32767.0),
        U16 => (0.0, 65535.0),
        // f32 voxels hold integers exactly only up to 2^24.
        I32 | I64 => (-16_777_216.0, 16_777_216.0),
        U32 | U64 => (0.0, 16_777_216.0),
        F32 | F64 => return F32,
    };
    let fits = v
        .data
        .iter()
        .all(|&x| x.fract() == 0.0 && (range.0..=range.1).contains(&f64::from(x)));
    if fits {
        match dt {
            I64 => I32,
            U64 => U32,
            d => d,
        }
    } else {
        F32
    }
}

/// Write a volume as NIfTI-1 in [`lossless_datatype`], its affine as the sform.
pub fn write_volume(path: &Path, v: &Volume) -> Result<Datatype, MedicalError> {
    let dt = lossless_datatype(v);
    let mut bytes = Vec::with_capacity(v.data.len() * dt.size());
    macro_rules! put {
        ($t:ty) => {
            v.data
                .iter()
                .for_each(|&x| bytes.extend_from_slice(&(x as $t).to_le_bytes()))
        };
    }
    match dt {
        Datatype::U8 => put!(u8),
        Datatype::I8 => put!(i8),
        Datatype::I16 => put!(i16),
        Datatype::U16 => put!(u16),
        Datatype::I32 => put!(i32),
        Datatype::U32 => put!(u32),
        _ => put!(f32),
    }
    write_nifti_bytes(path, v.dims, v.channels, v.world_from_voxel, dt, &bytes)?;
    Ok(dt)
}
