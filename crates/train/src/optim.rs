//! AdamW (Loshchilov & Hutter 2019, arXiv:1711.05101) with PyTorch's update rule,
//! global-norm gradient clipping, and no decay on parameters marked [`Decay::No`]
//! (norms, biases, CLS/register/mask tokens).

use crate::{Result, TrainConfig, TrainError};
use candle_core::backprop::GradStore;
use candle_core::Tensor;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use tessera_core::params::Decay;
use tessera_core::ParamStore;

/// Elements per parallel task of the AdamW update.
const UPDATE_CHUNK: usize = 1 << 15;

/// Gradients by parameter name, as host vectors.
pub type HostGrads = Vec<(String, Vec<f32>)>;

/// First and second moments per trainable parameter, in f32 host memory.
pub struct AdamW {
    pub(crate) m: BTreeMap<String, Vec<f32>>,
    pub(crate) v: BTreeMap<String, Vec<f32>>,
    betas: [f64; 2],
    eps: f64,
    weight_decay: f64,
    clip_norm: f64,
}

impl AdamW {
    pub fn new(store: &ParamStore, cfg: &TrainConfig) -> Self {
        let mut m = BTreeMap::new();
        let mut v = BTreeMap::new();
        for (name, p) in store.iter().filter(|(_, p)| p.trainable) {
            m.insert(name.clone(), vec![0f32; p.var.elem_count()]);
            v.insert(name.clone(), vec![0f32; p.var.elem_count()]);
        }
        Self {
            m,
            v,
            betas: cfg.betas,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
            clip_norm: cfg.clip_norm,
        }
    }

    /// Applies one update with learning rate `lr` at 1-based `step`; returns the global
    /// gradient norm before clipping.
    pub fn step(
        &mut self,
        store: &ParamStore,
        grads: &GradStore,
        lr: f64,
        step: u64,
    ) -> Result<f64> {
        let gs = self.host_grads(store, grads)?;
        self.apply(store, gs, lr, step)
    }

    /// The gradients of the trainable parameters that have one, in the store's order, as
    /// host vectors: what [`AdamW::apply`] takes, and what data-parallel training adds up
    /// over micro-batches and processes.
    pub fn host_grads(&self, store: &ParamStore, grads: &GradStore) -> Result<HostGrads> {
        let params: Vec<_> = store
            .iter()
            .filter(|(n, p)| p.trainable && self.m.contains_key(*n))
            .filter_map(|(n, p)| grads.get(p.var.as_tensor()).map(|g| (n, g)))
            .collect();
        // Copied in parallel, kept in the store's order.
        params
            .into_par_iter()
            .map(|(name, g)| Ok((name.clone(), g.flatten_all()?.to_vec1::<f32>()?)))
            .collect()
    }

    /// Applies one update from host gradients ([`AdamW::host_grads`]) with learning rate
    /// `lr` at 1-based `step`; returns the global gradient norm before clipping.
    /// Parameters are updated in parallel; each element's arithmetic is the same whatever
    /// the thread count, so results do not depend on it.
    pub fn apply(&mut self, store: &ParamStore, gs: HostGrads, lr: f64, step: u64) -> Result<f64> {
        // Per-parameter sums in parallel, added in the store's order.
        let sums: Vec<f64> = gs
            .par_iter()
            .map(|(_, g)| g.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>())
            .collect();
        let norm = sums.iter().sum::<f64>().sqrt();
        if !norm.is_finite() {
            return Err(TrainError::NonFinite {
                what: "gradient norm".into(),
                value: norm,
                step,
            });
        }
        let clip = if self.clip_norm > 0.0 && norm > self.clip_norm {
            (self.clip_norm / (norm + 1e-6)) as f32
        } else {
            1.0
        };
        let [b1, b2] = self.betas;
        let bc1 = 1.0 - b1.powi(step as i32);
        let bc2 = 1.0 - b2.powi(step as i32);
        let bc2_sqrt = bc2.sqrt() as f32;
        let (b1, b2, eps) = (b1 as f32, b2 as f32, self.eps as f32);
        // One job per parameter with a gradient and moments: (gradient, parameter, m, v).
        let mut ms: HashMap<&str, &mut Vec<f32>> =
            self.m.iter_mut().map(|(k, m)| (k.as_str(), m)).collect();
        let mut vs: HashMap<&str, &mut Vec<f32>> =
            self.v.iter_mut().map(|(k, v)| (k.as_str(), v)).collect();
        let mut jobs = Vec::with_capacity(gs.len());
        for (name, g) in &gs {
            let n = name.as_str();
            if let (Some(p), Some(m), Some(v)) = (store.param(n), ms.remove(n), vs.remove(n)) {
                jobs.push((g, p, m, v));
            }
        }
        // Parameters to the host in parallel, then the update in chunks of at most
        // UPDATE_CHUNK elements (a few large layers would otherwise leave a thread idle),
        // then back. Each element's arithmetic is the same whatever the chunking.
        let mut ws: Vec<Vec<f32>> = jobs
            .par_iter()
            .map(|(_, p, _, _)| Ok(p.var.flatten_all()?.to_vec1::<f32>()?))
            .collect::<Result<_>>()?;
        let mut tasks = Vec::new();
        for ((g, p, m, v), w) in jobs.iter_mut().zip(ws.iter_mut()) {
            let lr = lr * p.lr_scale;
            let step_size = (lr / bc1) as f32;
            let decay = if p.decay == Decay::Yes {
                (lr * self.weight_decay) as f32
            } else {
                0.0
            };
            let n = w.len().min(g.len()).min(m.len()).min(v.len());
            let chunks = w[..n]
                .chunks_mut(UPDATE_CHUNK)
                .zip(g[..n].chunks(UPDATE_CHUNK))
                .zip(m[..n].chunks_mut(UPDATE_CHUNK))
                .zip(v[..n].chunks_mut(UPDATE_CHUNK));
            tasks.extend(chunks.map(|(((w, g), m), v)| (w, g, m, v, step_size, decay)));
        }
        tasks
            .into_par_iter()
            .for_each(|(w, g, m, v, step_size, decay)| {
                tessera_core::ops::simd(
                    #[inline(always)]
                    || {
                        for i in 0..w.len() {
                            let gi = g[i] * clip;
                            m[i] = b1 * m[i] + (1.0 - b1) * gi;
                            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                            w[i] -= decay * w[i];
                            w[i] -= step_size * m[i] / (v[i].sqrt() / bc2_sqrt + eps);
                        }
                    },
                )
            });
        jobs.par_iter()
            .zip(ws)
            .map(|((_, p, _, _), w)| {
                let t = Tensor::from_vec(w, p.var.shape().clone(), p.var.device())?;
                Ok(p.var.set(&t)?)
            })
            .collect::<Result<Vec<()>>>()?;
        Ok(norm)
    }
}
