//! Deployment: `export` (checkpoint → ONNX + model card), `embed --onnx` (the ort-only path)
//! and `bench-infer` (candle vs ONNX Runtime encoder inference).

use crate::app::{encoder_for, list_wavs, load, report_skipped, Card};
use crate::LabelArgs;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use std::path::Path;
use std::time::Instant;
use tessera_audio::tokenizer::{bin_centres_hz, first_frame_s};
use tessera_audio::{AudioFrontend, AudioFrontendConfig};
use tessera_cli::{progress, write_npy, CommonArgs};
use tessera_core::{Encoder, TokenTensors};
use tessera_export::{AxisCoords, GridAxis, GridFront};
use tessera_tokens::card::Training;
use tessera_tokens::{ModelCard, Rng, SampleTokens, Tokens};
use tessera_train::latest_checkpoint;

/// The in-graph front for a log-mel `[B, 1, bins, frames]` (stride must equal the patch).
fn grid_front(fe: &AudioFrontend) -> Option<GridFront> {
    let tk = &fe.cfg.tokenizer;
    if tk.patch != tk.stride {
        return None;
    }
    let [pf, pt] = tk.patch;
    let hz = bin_centres_hz(&fe.cfg.features);
    let rows = hz.len() / pf;
    let table = (0..rows)
        .map(|r| hz[r * pf..(r + 1) * pf].iter().sum::<f32>() / pf as f32)
        .collect();
    let hop = fe.cfg.features.hop_s();
    let t0 = first_frame_s(&fe.cfg.features);
    Some(GridFront {
        channels: 1,
        axes: vec![
            GridAxis {
                coord_index: 0,
                name: "mel".into(),
                patch: pf,
                coords: AxisCoords::Table { values: table },
            },
            GridAxis {
                coord_index: 1,
                name: "frame".into(),
                patch: pt,
                coords: AxisCoords::Affine {
                    offset: (t0 + (pt as f64 - 1.0) / 2.0 * hop) as f32,
                    step: (pt as f64 * hop) as f32,
                },
            },
        ],
        norm: fe.cfg.norm.map(|n| (n.mean as f32, n.std as f32)),
    })
}

fn deployment_card(card: &Card, fe: &AudioFrontend, step: u64) -> Result<ModelCard> {
    let training = Training {
        data: card.data.clone(),
        steps: step,
        seed: card.seed,
        recipe: toml::Table::try_from(&card.recipe)?,
    };
    let frontend = toml::Table::try_from(&card.audio)?;
    Ok(ModelCard::new(
        &card.name,
        "audio",
        fe.token_spec(),
        training,
        frontend,
    ))
}

/// Tokens of `n` centre-sized crops of random normal log-mel values.
fn random_crops(fe: &AudioFrontend, n: usize, rng: &mut Rng) -> Result<Vec<SampleTokens>> {
    let (bins, frames) = (fe.cfg.features.n_bins(), fe.target_frames()?);
    (0..n)
        .map(|_| {
            let data = (0..bins * frames).map(|_| rng.normal() as f32).collect();
            let hop_s = fe.cfg.features.hop_s();
            let s = tessera_audio::features::Spectrogram {
                data,
                bins,
                frames,
                hop_s,
            };
            Ok(fe.tokens(&s)?)
        })
        .collect()
}

/// Max absolute difference between candle and ONNX Runtime embeddings on `n` random crops.
fn parity(fe: &AudioFrontend, enc: &Encoder, dir: &Path, n: usize) -> Result<f32> {
    let mut rt = tessera_runtime::Encoder::open(dir)?;
    let samples = random_crops(fe, n, &mut Rng::new(0))?;
    let t = Tokens::from_samples(&samples)?;
    let want = enc
        .embed(&TokenTensors::from_tokens(&t, &Device::Cpu)?)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let got = rt.run(&t)?.embedding;
    Ok(got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max))
}

pub fn export(common: &CommonArgs) -> Result<()> {
    tessera_cli::init_threads(common.threads)?;
    let Some(run) = &common.checkpoint else {
        bail!("--checkpoint <run dir> is required");
    };
    let out = common.out()?;
    let (card, fe, enc) = encoder_for(common, false)?;
    if fe.cfg.norm.is_none() {
        bail!(
            "{}: the run's config has no normalisation statistics; pretrain writes them",
            run.display()
        );
    }
    let step = match latest_checkpoint(run)? {
        Some(c) => c.step()?,
        None => 0,
    };
    let mcard = deployment_card(&card, &fe, step)?;
    let front = grid_front(&fe);
    let report = tessera_export::export(&enc, &mcard, front.as_ref(), out)?;
    for f in &report.files {
        println!("wrote {}", f.display());
    }
    if front.is_none() {
        println!("no grid model: the in-graph front needs stride == patch");
    }
    match parity(&fe, &enc, out, 4) {
        Ok(e) => println!(
            "checked: ONNX Runtime matches candle on 4 random crops (max abs error {e:.2e})"
        ),
        Err(e) => println!("not checked against ONNX Runtime: {e}"),
    }
    Ok(())
}

/// `embed --onnx DIR`: the same embeddings as the candle path, through ONNX Runtime only.
pub fn embed_onnx(common: &CommonArgs, labels: &LabelArgs, dir: &Path) -> Result<()> {
    let mut rt = tessera_runtime::Encoder::open_with(
        dir,
        &tessera_runtime::Options {
            threads: common.threads.unwrap_or(0),
        },
    )?;
    tessera_cli::init_threads(common.threads)?;
    let cfg: AudioFrontendConfig = rt
        .card()
        .frontend_as()
        .with_context(|| format!("{}: [frontend] is not an audio front end", dir.display()))?;
    let fe = AudioFrontend::new(&cfg)?;
    let out = common.out()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let loaded = load(
        &fe,
        list_wavs(common, labels, false)?,
        common.strict,
        "decoding",
    )?;
    report_skipped(&loaded.skipped);
    let bar = progress(loaded.specs.len() as u64, "embedding (onnx)");
    let mut data = Vec::new();
    for chunk in loaded.specs.chunks(64) {
        let samples = chunk
            .iter()
            .map(|s| Ok(fe.tokens(&fe.centre_crop(s)?)?))
            .collect::<Result<Vec<_>>>()?;
        for e in rt.embed_tokens(&samples)? {
            data.extend(e);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let n = loaded.specs.len();
    let d = data.len() / n;
    write_npy(&out.join("embeddings.npy"), &data, n, d)?;
    let names: Vec<String> = loaded
        .items
        .iter()
        .map(|i| i.path.display().to_string())
        .collect();
    std::fs::write(out.join("files.txt"), names.join("\n") + "\n")?;
    println!(
        "wrote {n} embeddings of width {d} to {} (ONNX Runtime)",
        out.join("embeddings.npy").display()
    );
    Ok(())
}

/// Encoder inference throughput, candle and ONNX Runtime side by side (JSON lines).
pub fn bench_infer(common: &CommonArgs, onnx: &Path, batches: &[usize], reps: usize) -> Result<()> {
    tessera_cli::init_threads(common.threads)?;
    let threads = common.threads.unwrap_or(0);
    let (_card, fe, enc) = encoder_for(common, common.checkpoint.is_none())?;
    let mut rt = tessera_runtime::Encoder::open_with(onnx, &tessera_runtime::Options { threads })?;
    let mut rng = Rng::new(1);
    for &b in batches {
        let samples = random_crops(&fe, b, &mut rng)?;
        let t = Tokens::from_samples(&samples)?;
        let tt = TokenTensors::from_tokens(&t, &Device::Cpu)?;
        let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
            f()?;
            let start = Instant::now();
            for _ in 0..reps {
                f()?;
            }
            Ok((b * reps) as f64 / start.elapsed().as_secs_f64())
        };
        let candle = time(&mut || {
            enc.embed(&tt)?;
            Ok(())
        })?;
        let ort = time(&mut || {
            rt.run(&t)?;
            Ok(())
        })?;
        println!(
            "{{\"batch\": {b}, \"tokens\": {}, \"candle_samples_per_s\": {candle:.2}, \"ort_samples_per_s\": {ort:.2}}}",
            t.n
        );
    }
    Ok(())
}
