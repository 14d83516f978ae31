//! Medical volumes as a Tessera [`Modality`]: NIfTI files → RAS+ volumes at the card's
//! spacing, normalised per volume (MRI z-score, CT window) → 3-D patch tokens in mm from
//! the crop's first voxel. Training views are random crops of the card's size, the
//! evaluation view is the centre crop. Normalisation is per volume, so there are no
//! dataset statistics to fit.

use crate::inspect::inspect;
use crate::nifti::read_header;
use crate::orient::{axcodes, voxel_sizes, world_from_voxel};
use crate::synth::write_dataset;
use crate::tokenizer::{crop_block, Block};
use crate::{read_labels, Format, MedicalError, MedicalFrontend, MedicalFrontendConfig, Volume};
use std::path::{Path, PathBuf};
use tessera_tokens::grid::{AxisCoords, GridAxis, GridFront};
use tessera_tokens::{GridInput, InfoRow, Modality, Rng, SampleTokens, TokenSpec};

/// A random crop origin along each axis: anywhere inside, or (volume smaller than the
/// crop) anywhere that keeps the whole volume in the crop.
pub fn random_origin(dims: [usize; 3], crop: [usize; 3], rng: &mut Rng) -> [isize; 3] {
    [0, 1, 2].map(|a| {
        if dims[a] >= crop[a] {
            rng.below(dims[a] - crop[a] + 1) as isize
        } else {
            -(rng.below(crop[a] - dims[a] + 1) as isize)
        }
    })
}

fn affine_text(affine: &[[f64; 4]; 4]) -> String {
    let rows: Vec<String> = affine
        .iter()
        .take(3)
        .map(|r| format!("[{:.4} {:.4} {:.4} {:.4}]", r[0], r[1], r[2], r[3]))
        .collect();
    rows.join(" ")
}

/// The `inspect` row of a read volume (formats other than NIfTI, whose row comes from the
/// header alone).
fn volume_row(v: &Volume) -> Result<InfoRow, MedicalError> {
    let s = v.spacing_mm;
    let mut row: InfoRow = vec![
        ("file".into(), v.path().display().to_string()),
        ("format".into(), v.source.format.clone()),
        ("dims".into(), v.dims.map(|d| d.to_string()).join("x")),
        ("channels".into(), v.channels.to_string()),
        ("datatype".into(), v.source.datatype.name().to_string()),
        ("sx_mm".into(), format!("{:.4}", s[0])),
        ("sy_mm".into(), format!("{:.4}", s[1])),
        ("sz_mm".into(), format!("{:.4}", s[2])),
        (
            "orientation".into(),
            axcodes(&v.world_from_voxel).unwrap_or_else(|e| format!("undefined ({e})")),
        ),
        ("affine".into(), affine_text(&v.world_from_voxel)),
    ];
    for w in &v.warnings {
        row.push(("warning".into(), w.to_string()));
    }
    Ok(row)
}

fn sub_block(b: &Block, origin: [isize; 3], size: [usize; 3]) -> Block {
    crop_block(&b.data, b.channels, b.dims, b.spacing_mm, origin, size, 0.0)
}

impl MedicalFrontend {
    /// The centre crop of the training size of a prepared volume.
    pub fn centre_of(&self, b: &Block) -> Block {
        let origin = [0, 1, 2].map(|a| (b.dims[a] as isize - self.cfg.crop[a] as isize) / 2);
        sub_block(b, origin, self.cfg.crop)
    }
}

impl Modality for MedicalFrontend {
    const NAME: &'static str = "medical";
    /// NIfTI (single files, gzipped or not, and `.hdr` of a pair: its `.img` is found from
    /// it), NRRD (`.nrrd`, detached `.nhdr`), MetaImage (`.mha`, `.mhd`) and single DICOM
    /// files (`.dcm`).
    const EXTENSIONS: &'static [&'static str] = &[
        "nii", "nii.gz", "hdr", "hdr.gz", "nrrd", "nhdr", "mha", "mhd", "dcm",
    ];
    type Config = MedicalFrontendConfig;

    /// Files by extension, and a folder of DICOM files without sub-folders (one series,
    /// see [`crate::dicom::holds_dicom_files`]).
    fn accepts(path: &Path) -> bool {
        tessera_tokens::modality::has_extension(path, Self::EXTENSIONS)
            || (path.is_dir() && crate::dicom::holds_dicom_files(path))
    }
    /// The prepared volume (RAS+, the card's spacing, normalised).
    type Sample = Block;
    type Stats = ();
    type Error = MedicalError;

    fn new(cfg: &MedicalFrontendConfig) -> Result<Self, MedicalError> {
        MedicalFrontend::new(cfg)
    }

    fn config(&self) -> &MedicalFrontendConfig {
        &self.cfg
    }

    fn token_spec(&self) -> TokenSpec {
        MedicalFrontend::token_spec(self)
    }

    fn decode(&self, path: &Path) -> Result<Block, MedicalError> {
        let v = self.load(path)?;
        Ok(Block {
            channels: v.channels,
            dims: v.dims,
            spacing_mm: v.spacing_mm,
            data: v.data,
        })
    }

    fn sample_bytes(b: &Block) -> usize {
        b.data.len() * std::mem::size_of::<f32>()
    }

    fn train_view(&self, b: &Block, rng: &mut Rng) -> Result<SampleTokens, MedicalError> {
        let crop = self.cfg.crop;
        self.tokens(&sub_block(b, random_origin(b.dims, crop, rng), crop))
    }

    fn eval_view(&self, b: &Block) -> Result<SampleTokens, MedicalError> {
        self.tokens(&self.centre_of(b))
    }

    fn random_sample(&self, rng: &mut Rng) -> Result<Block, MedicalError> {
        let c = self.cfg.crop;
        let len = self.cfg.channels * c.iter().product::<usize>();
        Ok(Block {
            data: (0..len).map(|_| rng.normal() as f32).collect(),
            channels: self.cfg.channels,
            dims: c,
            spacing_mm: self.cfg.spacing_mm,
        })
    }

    fn stats_start(&self) -> Option<()> {
        None
    }

    fn stats_add(&self, _: &mut (), _: &Block) {}

    fn stats_finish(&self, _: ()) -> Result<MedicalFrontendConfig, MedicalError> {
        Ok(self.cfg.clone())
    }

    fn inspect(&self, path: &Path) -> Result<InfoRow, MedicalError> {
        let format = Format::detect(path)?;
        if format != Format::Nifti {
            return volume_row(&format.read(path)?);
        }
        // The header summary checks the whole file (declared data against the file, gzip
        // integrity) before anything is printed.
        inspect(path)?;
        let h = read_header(path)?;
        let (affine, warning) = world_from_voxel(&h)?;
        let nd = h.dim[0] as usize;
        let dims: Vec<String> = h.dim[1..=nd].iter().map(|d| d.to_string()).collect();
        let s = voxel_sizes(&affine);
        let source = match (h.sform_code > 0, h.qform_code > 0) {
            (true, _) => "sform",
            (false, true) => "qform",
            _ => "pixdim",
        };
        let mut row: InfoRow = vec![
            ("file".into(), path.display().to_string()),
            ("format".into(), h.format.to_string()),
            ("dims".into(), dims.join("x")),
            ("channels".into(), h.channels().to_string()),
            ("datatype".into(), h.datatype.name().to_string()),
            ("sx_mm".into(), format!("{:.4}", s[0])),
            ("sy_mm".into(), format!("{:.4}", s[1])),
            ("sz_mm".into(), format!("{:.4}", s[2])),
            (
                "scaling".into(),
                format!(
                    "{} {}{}",
                    h.scl_slope,
                    h.scl_inter,
                    if h.scaling().is_none() {
                        " (not applied)"
                    } else {
                        ""
                    }
                ),
            ),
            (
                "orientation".into(),
                axcodes(&affine).unwrap_or_else(|e| format!("undefined ({e})")),
            ),
            ("affine_from".into(), source.into()),
            ("affine".into(), affine_text(&affine)),
        ];
        if let Some(w) = warning {
            row.push(("warning".into(), w.to_string()));
        }
        Ok(row)
    }

    /// The median spacing of the files read (nnU-Net's default target spacing).
    fn advise(&self, rows: &[InfoRow]) -> Vec<String> {
        let col = |name: &str| -> Vec<f64> {
            let mut v: Vec<f64> = rows
                .iter()
                .filter_map(|r| r.iter().find(|(k, _)| k == name))
                .filter_map(|(_, v)| v.parse().ok())
                .collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let (x, y, z) = (col("sx_mm"), col("sy_mm"), col("sz_mm"));
        if x.is_empty() || x.len() != y.len() || y.len() != z.len() {
            return Vec::new();
        }
        let m = |v: &[f64]| v[v.len() / 2];
        let median = [m(&x), m(&y), m(&z)];
        vec![format!(
            "median spacing {median:?} mm (nnU-Net's default target): put `spacing_mm = {median:?}` under [medical] in --config"
        )]
    }

    /// `[1, C, Z, Y, X]`: the centre crop, normalised (per-volume normalisation stays
    /// outside the graph).
    fn grid_front(&self) -> Option<GridFront> {
        let p = self.cfg.tokenizer.patch;
        let s = self.cfg.spacing_mm;
        let axis = |name: &str, a: usize| GridAxis {
            name: name.into(),
            patch: p[a],
            coords: AxisCoords::Affine {
                offset: ((p[a] as f64 - 1.0) / 2.0 * s[a]) as f32,
                step: (p[a] as f64 * s[a]) as f32,
            },
            coord_index: a,
        };
        Some(GridFront {
            channels: self.cfg.channels,
            axes: vec![axis("z", 2), axis("y", 1), axis("x", 0)],
            norm: None,
        })
    }

    fn grid_input(&self, b: &Block) -> Result<Option<GridInput>, MedicalError> {
        let c = self.centre_of(b);
        let [nx, ny, nz] = c.dims;
        Ok(Some((vec![1, c.channels, nz, ny, nx], c.data)))
    }

    /// No network-free baseline for volumes yet.
    fn baseline(&self, name: &str, _: &Block) -> Result<Vec<f32>, MedicalError> {
        Err(MedicalError::Config(format!(
            "unknown baseline `{name}` (the medical modality has none)"
        )))
    }

    /// Twelve labelled phantoms (`images/`, `labels/`) and a manifest whose class is the
    /// side of the inner structure (`left`/`right` of the volume's centre); a quarter
    /// of each class is `test`.
    fn write_demo_data(dir: &Path, seed: u64) -> Result<PathBuf, MedicalError> {
        let n = 24;
        write_dataset(dir, n, seed)?;
        let mut manifest = String::from("image,label_map,label,split\n");
        let mut seen = [0usize; 2];
        for i in 0..n {
            let name = format!("case_{i:03}.nii.gz");
            let lab = read_labels(&dir.join("labels").join(&name))?;
            let (mut sum, mut count) = (0f64, 0f64);
            for z in 0..lab.dims[2] {
                for y in 0..lab.dims[1] {
                    for x in 0..lab.dims[0] {
                        if lab.data[(z * lab.dims[1] + y) * lab.dims[0] + x] > 0 {
                            sum += x as f64;
                            count += 1.0;
                        }
                    }
                }
            }
            let side = usize::from(count > 0.0 && sum / count >= lab.dims[0] as f64 / 2.0);
            let split = if seen[side] % 4 == 0 { "test" } else { "train" };
            seen[side] += 1;
            manifest += &format!(
                "images/{name},labels/{name},{},{split}\n",
                ["left", "right"][side]
            );
        }
        let path = dir.join("manifest.csv");
        std::fs::write(&path, manifest).map_err(|source| MedicalError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }
}
