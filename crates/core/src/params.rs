//! Named, deterministically initialised parameters.
//!
//! Names mirror timm's ViT (`blocks.0.attn.qkv.weight`), so weights are addressed the same
//! way in checkpoints, ONNX export and any future timm import. Each parameter is
//! initialised from the root seed and its own name, so adding a parameter never changes
//! another's initial value.

use crate::{CoreError, Result};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tessera_tokens::Rng;

/// How a parameter starts.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    Zeros,
    Ones,
    Const(f32),
    /// Truncated normal (±2 std), timm's `trunc_normal_`.
    TruncNormal(f32),
    /// Xavier/Glorot uniform for a `[out, in]` matrix (MAE's linear initialisation).
    XavierUniform,
}

/// Whether the optimiser applies weight decay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decay {
    Yes,
    No,
}

#[derive(Clone)]
pub struct Param {
    pub var: Var,
    pub decay: Decay,
    /// Trained by the optimiser (false for EMA teachers and frozen parts).
    pub trainable: bool,
    /// Multiplies the scheduled learning rate (and so the decoupled weight decay) for this
    /// parameter: 1 by default, below 1 for early layers under layer-wise decay.
    pub lr_scale: f64,
}

/// All parameters of a model, by name.
#[derive(Clone)]
pub struct ParamStore {
    params: BTreeMap<String, Param>,
    seed: u64,
    device: Device,
}

fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

impl ParamStore {
    pub fn new(seed: u64, device: &Device) -> Self {
        Self {
            params: BTreeMap::new(),
            seed,
            device: device.clone(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Returns the parameter `name`, creating it with `init` if it does not exist.
    pub fn get(&mut self, name: &str, shape: &[usize], init: Init, decay: Decay) -> Result<Tensor> {
        if let Some(p) = self.params.get(name) {
            if p.var.dims() != shape {
                return Err(CoreError::Shape {
                    what: format!("parameter `{name}`"),
                    expected: format!("{shape:?}"),
                    got: format!("{:?}", p.var.dims()),
                });
            }
            return Ok(p.var.as_tensor().clone());
        }
        let n: usize = shape.iter().product();
        let mut rng = Rng::new(self.seed ^ name_hash(name));
        let data: Vec<f32> = match init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Const(c) => vec![c; n],
            Init::TruncNormal(std) => (0..n)
                .map(|_| rng.trunc_normal(std as f64) as f32)
                .collect(),
            Init::XavierUniform => {
                let (fan_out, fan_in) = match shape {
                    [o, i] => (*o, *i),
                    _ => (n, 1),
                };
                let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
                (0..n)
                    .map(|_| ((2.0 * rng.uniform() - 1.0) * a) as f32)
                    .collect()
            }
        };
        let var = Var::from_tensor(&Tensor::from_vec(data, shape, &self.device)?)?;
        let t = var.as_tensor().clone();
        self.params.insert(
            name.to_string(),
            Param {
                var,
                decay,
                trainable: true,
                lr_scale: 1.0,
            },
        );
        Ok(t)
    }

    /// Marks every parameter whose name starts with `prefix` as (not) trainable.
    pub fn set_trainable(&mut self, prefix: &str, trainable: bool) {
        for (n, p) in self.params.iter_mut() {
            if n.starts_with(prefix) {
                p.trainable = trainable;
            }
        }
    }

    /// Sets the learning-rate multiplier of every parameter named `name` (exactly) or
    /// under `name.`.
    pub fn set_lr_scale(&mut self, name: &str, scale: f64) {
        for (n, p) in self.params.iter_mut() {
            if n == name || n.strip_prefix(name).is_some_and(|r| r.starts_with('.')) {
                p.lr_scale = scale;
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Param)> {
        self.params.iter()
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.get(name)
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Number of scalar parameters under `prefix` ("" for all).
    pub fn count(&self, prefix: &str) -> usize {
        self.params
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .map(|(_, p)| p.var.elem_count())
            .sum()
    }

    /// The tensors (shared with the vars) by name.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.params
            .iter()
            .map(|(n, p)| (n.clone(), p.var.as_tensor().clone()))
            .collect()
    }

    /// Overwrites the values of existing parameters from `tensors`. Parameters under
    /// `prefix` must all be present; extra entries are ignored.
    pub fn assign(&self, tensors: &HashMap<String, Tensor>, prefix: &str) -> Result<()> {
        for (name, p) in self.params.iter().filter(|(n, _)| n.starts_with(prefix)) {
            let t = tensors
                .get(name)
                .ok_or_else(|| CoreError::MissingParam(name.clone()))?;
            if t.dims() != p.var.dims() {
                return Err(CoreError::Shape {
                    what: format!("checkpoint parameter `{name}`"),
                    expected: format!("{:?}", p.var.dims()),
                    got: format!("{:?}", t.dims()),
                });
            }
            p.var
                .set(&t.to_dtype(DType::F32)?.to_device(&self.device)?)?;
        }
        Ok(())
    }

    /// Loads the parameters under `prefix` from a safetensors file.
    pub fn load_safetensors(&self, path: &Path, prefix: &str) -> Result<()> {
        let tensors = candle_core::safetensors::load(path, &self.device).map_err(|source| {
            CoreError::Safetensors {
                path: path.to_path_buf(),
                source,
            }
        })?;
        self.assign(&tensors, prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_deterministic_per_name() {
        let d = Device::Cpu;
        let mut a = ParamStore::new(1, &d);
        let mut b = ParamStore::new(1, &d);
        let _ = b
            .get("other", &[3], Init::TruncNormal(0.02), Decay::Yes)
            .unwrap();
        let x = a
            .get("w", &[4, 5], Init::TruncNormal(0.02), Decay::Yes)
            .unwrap();
        let y = b
            .get("w", &[4, 5], Init::TruncNormal(0.02), Decay::Yes)
            .unwrap();
        assert_eq!(x.to_vec2::<f32>().unwrap(), y.to_vec2::<f32>().unwrap());
        assert!(a.get("w", &[5, 4], Init::Zeros, Decay::Yes).is_err());
    }
}
