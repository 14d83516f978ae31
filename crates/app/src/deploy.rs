//! export (checkpoint → ONNX + model card, checked against candle), `embed --onnx` (the
//! ort-only path), bench-step and bench-infer, over any modality.

use crate::commands::{embed_to, encoder_for};
use crate::source::list;
use crate::App;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Instant;
use tessera_cli::CommonArgs;
use tessera_core::{Encoder, ParamStore, TokenTensors};
use tessera_tokens::card::Training;
use tessera_tokens::{Modality, ModelCard, Rng, SampleTokens, Tokens};
use tessera_train::latest_checkpoint;

/// Evaluation-view tokens of `n` random samples of the card's size.
fn random_tokens<M: Modality>(m: &M, n: usize, rng: &mut Rng) -> Result<Vec<SampleTokens>> {
    (0..n)
        .map(|_| {
            let s = m.random_sample(rng).map_err(anyhow::Error::new)?;
            m.eval_view(&s).map_err(anyhow::Error::new)
        })
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn candle_embedding(enc: &Encoder, t: &Tokens) -> Result<Vec<f32>> {
    Ok(enc
        .embed(&TokenTensors::from_tokens(t, enc.device())?)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// Max absolute difference between ONNX Runtime and candle embeddings on `n` random
/// samples: `(token graph, grid graph if exported)`.
pub fn parity<M: Modality>(
    m: &M,
    enc: &Encoder,
    dir: &Path,
    n: usize,
) -> Result<(f32, Option<f32>)> {
    let mut rt = tessera_runtime::Encoder::open(dir)?;
    let mut rng = Rng::new(0);
    let samples: Vec<M::Sample> = (0..n)
        .map(|_| m.random_sample(&mut rng).map_err(anyhow::Error::new))
        .collect::<Result<_>>()?;
    let tokens = samples
        .iter()
        .map(|s| m.eval_view(s).map_err(anyhow::Error::new))
        .collect::<Result<Vec<_>>>()?;
    let t = Tokens::from_samples(&tokens)?;
    let want = candle_embedding(enc, &t)?;
    let token_err = max_abs_diff(&rt.run(&t)?.embedding, &want);
    let grid_err = match &rt.card().onnx.grid_model {
        None => None,
        Some(file) => {
            let mut g = tessera_runtime::RawSession::open(&dir.join(file), &Default::default())?;
            let mut worst = 0f32;
            for (i, s) in samples.iter().enumerate() {
                let Some((shape, data)) = m.grid_input(s).map_err(anyhow::Error::new)? else {
                    return Ok((token_err, None));
                };
                let out = g.run(&[("grid", &shape, &data)])?;
                let got = out
                    .iter()
                    .find(|(name, _, _)| name == "embedding")
                    .map(|(_, _, v)| v.clone())
                    .unwrap_or_default();
                let w = want.len() / n;
                worst = worst.max(max_abs_diff(&got, &want[i * w..(i + 1) * w]));
            }
            Some(worst)
        }
    };
    Ok((token_err, grid_err))
}

impl<M: Modality> App<M> {
    pub(crate) fn export(&self, common: &CommonArgs) -> Result<()> {
        tessera_cli::init_threads(common.threads)?;
        let run = common.checkpoint()?;
        let out = common.out()?;
        let r = encoder_for(self, common, false)?;
        if r.m.stats_start().is_some() {
            bail!(
                "{}: the run's card has no normalisation statistics; pretrain writes them",
                run.display()
            );
        }
        let step = match latest_checkpoint(run)? {
            Some(c) => c.step()?,
            None => 0,
        };
        let training = Training {
            data: r.card.data.clone(),
            steps: step,
            seed: r.card.seed,
            recipe: toml::Table::try_from(&r.card.recipe)?,
        };
        let frontend = toml::Table::try_from(&r.card.frontend)?;
        let mcard = ModelCard::new(&r.card.name, M::NAME, r.m.token_spec(), training, frontend);
        let front = r.m.grid_front();
        let report = tessera_export::export(&r.encoder, &mcard, front.as_ref(), out)?;
        for f in &report.files {
            println!("wrote {}", f.display());
        }
        if front.is_none() {
            println!("no grid model: this front end has no in-graph tokenizer");
        }
        match parity(&r.m, &r.encoder, out, 4) {
            Ok((t, g)) => println!(
                "checked: ONNX Runtime matches candle on 4 random samples (max abs error {t:.2e}{})",
                g.map(|g| format!("; grid graph {g:.2e}")).unwrap_or_default()
            ),
            Err(e) => println!("not checked against ONNX Runtime: {e:#}"),
        }
        Ok(())
    }

    /// `embed --onnx DIR`: the same embeddings as the candle path, through ONNX Runtime only.
    pub(crate) fn embed_onnx(
        &self,
        common: &CommonArgs,
        dir: &Path,
        pool: bool,
        shard_rows: Option<usize>,
    ) -> Result<()> {
        let opts = tessera_runtime::Options {
            threads: common.threads.unwrap_or(0),
            ..Default::default()
        }
        .reader::<M>();
        let mut rt = tessera_runtime::Encoder::open_with(dir, &opts)?;
        tessera_cli::init_threads(common.threads)?;
        if rt.card().modality != M::NAME {
            bail!(
                "{}: a `{}` model; this command embeds `{}` files",
                dir.display(),
                rt.card().modality,
                M::NAME
            );
        }
        let cfg: M::Config = rt.card().frontend_as().with_context(|| {
            format!(
                "{}: [frontend] is not a {} front end",
                dir.display(),
                M::NAME
            )
        })?;
        let m = M::new(&cfg).map_err(anyhow::Error::new)?;
        let items = list::<M>(common, false)?;
        embed_to(&m, items, common, pool, shard_rows, |chunk| {
            let mut data = Vec::new();
            for batch in chunk.chunks(32) {
                for e in rt.embed_tokens(batch)? {
                    data.extend(e);
                }
            }
            Ok(data)
        })
    }

    /// One training step (forward, backward, AdamW) on random samples of the card's size:
    /// samples/s as a JSON line (the format of the PyTorch peers in `benchmarks/`).
    pub(crate) fn bench_step(
        &self,
        common: &CommonArgs,
        warmup: usize,
        steps: usize,
    ) -> Result<()> {
        tessera_cli::init_threads(common.threads)?;
        let card = self.resolve(common)?;
        let m = card.modality()?;
        let mut store = ParamStore::new(card.seed, &crate::commands::device(common)?);
        let mut recipe = card.recipe.build(&card.encoder_config(&m)?, &mut store)?;
        let samples = random_tokens(&m, card.train.batch_size, &mut Rng::new(card.seed))?;
        println!(
            "{}",
            tessera_train::bench_steps(
                recipe.as_mut(),
                &store,
                &card.train,
                &samples,
                card.seed,
                warmup,
                steps
            )?
        );
        Ok(())
    }

    /// Encoder inference throughput, candle and ONNX Runtime side by side (JSON lines).
    pub(crate) fn bench_infer(
        &self,
        common: &CommonArgs,
        onnx: &Path,
        batches: &[usize],
        reps: usize,
    ) -> Result<()> {
        tessera_cli::init_threads(common.threads)?;
        let opts = tessera_runtime::Options {
            threads: common.threads.unwrap_or(0),
            ..Default::default()
        };
        let r = encoder_for(self, common, common.checkpoint.is_none())?;
        let mut rt = tessera_runtime::Encoder::open_with(onnx, &opts)?;
        let mut rng = Rng::new(1);
        for &b in batches {
            let t = Tokens::from_samples(&random_tokens(&r.m, b, &mut rng)?)?;
            let tt = TokenTensors::from_tokens(&t, r.encoder.device())?;
            let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
                f()?;
                let start = Instant::now();
                for _ in 0..reps {
                    f()?;
                }
                Ok((b * reps) as f64 / start.elapsed().as_secs_f64())
            };
            let candle = time(&mut || {
                r.encoder.embed(&tt)?;
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
}
