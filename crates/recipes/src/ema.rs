//! Exponential-moving-average teachers (BYOL, MoCo, DINO, I-JEPA, data2vec): a copy of
//! student parameters that follows them as `t ← m·t + (1 − m)·s` after every optimiser
//! step, with the momentum `m` rising on a cosine from `momentum` to `final_momentum`
//! (DINO: 0.996 → 1).
//!
//! The teacher's parameters live in the [`ParamStore`] under their own prefix, marked not
//! trainable: the optimiser skips them, every checkpoint holds them and `--resume`
//! restores them; export takes only the `encoder.` prefix, so the teacher is dropped there.

use crate::{Result, StepContext};
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};
use tessera_core::{CoreError, ParamStore};

/// The momentum schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmaConfig {
    /// Momentum at the first step.
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// Momentum at the last step (cosine in between).
    #[serde(default = "default_final")]
    pub final_momentum: f64,
}

fn default_momentum() -> f64 {
    0.996
}
fn default_final() -> f64 {
    1.0
}

impl Default for EmaConfig {
    fn default() -> Self {
        Self {
            momentum: default_momentum(),
            final_momentum: default_final(),
        }
    }
}

impl EmaConfig {
    pub fn validate(&self, recipe: &str) -> Result<()> {
        for (name, m) in [
            ("momentum", self.momentum),
            ("final_momentum", self.final_momentum),
        ] {
            if !(0.0..=1.0).contains(&m) {
                return Err(CoreError::Config(format!(
                    "{recipe}: ema.{name} must be in [0, 1], got {m}"
                )));
            }
        }
        Ok(())
    }

    /// The momentum at `ctx`.
    pub fn at(&self, ctx: &StepContext) -> f64 {
        ctx.cosine(self.momentum, self.final_momentum)
    }
}

/// Student → teacher parameter pairs.
pub struct Ema {
    cfg: EmaConfig,
    pairs: Vec<(Var, Var)>,
}

impl Ema {
    /// Pairs every parameter under `teacher.` (already built, e.g. by
    /// `Encoder::new(cfg, store, "teacher.encoder")`) with the student parameter of the same
    /// name without that prefix, copies the student's values into it and marks the teacher
    /// not trainable. A teacher parameter without its student is an error.
    pub fn new(store: &mut ParamStore, teacher: &str, cfg: EmaConfig) -> Result<Self> {
        let dot = format!("{teacher}.");
        let mut pairs = Vec::new();
        for (name, p) in store.iter() {
            let Some(student) = name.strip_prefix(&dot) else {
                continue;
            };
            let s = store.param(student).ok_or_else(|| {
                CoreError::Config(format!("EMA teacher `{name}` has no student `{student}`"))
            })?;
            if s.var.dims() != p.var.dims() {
                return Err(CoreError::Shape {
                    what: format!("EMA teacher `{name}`"),
                    expected: format!("{:?}", s.var.dims()),
                    got: format!("{:?}", p.var.dims()),
                });
            }
            p.var.set(s.var.as_tensor())?;
            pairs.push((s.var.clone(), p.var.clone()));
        }
        if pairs.is_empty() {
            return Err(CoreError::Config(format!(
                "EMA teacher: no parameter under `{teacher}`"
            )));
        }
        store.set_trainable(&dot, false);
        Ok(Self { cfg, pairs })
    }

    /// Moves the teacher towards the student with the momentum of `ctx`; returns it.
    pub fn update(&self, ctx: &StepContext) -> Result<f64> {
        let m = self.cfg.at(ctx);
        for (s, t) in &self.pairs {
            let next = ((t.as_tensor() * m)? + (s.as_tensor() * (1.0 - m))?)?;
            t.set(&next.detach())?;
        }
        Ok(m)
    }
}

/// Overwrites a non-trainable state parameter (a centre, a queue) with `value`.
pub fn set_state(store: &ParamStore, name: &str, value: &Tensor) -> Result<()> {
    let p = store
        .param(name)
        .ok_or_else(|| CoreError::MissingParam(name.to_string()))?;
    p.var.set(&value.detach())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use tessera_core::params::{Decay, Init};

    #[test]
    fn teacher_copies_then_follows_the_student() {
        let mut store = ParamStore::new(0, &Device::Cpu);
        store
            .get("enc.w", &[3], Init::Const(1.0), Decay::Yes)
            .unwrap();
        store
            .get("teacher.enc.w", &[3], Init::Const(5.0), Decay::Yes)
            .unwrap();
        let cfg = EmaConfig {
            momentum: 0.5,
            final_momentum: 1.0,
        };
        let ema = Ema::new(&mut store, "teacher", cfg).unwrap();
        let t = |s: &ParamStore| {
            s.param("teacher.enc.w")
                .unwrap()
                .var
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(t(&store), vec![1.0; 3], "copied at construction");
        assert!(!store.param("teacher.enc.w").unwrap().trainable);
        assert!(store.param("enc.w").unwrap().trainable);
        store
            .param("enc.w")
            .unwrap()
            .var
            .set(&Tensor::new(&[3f32, 3., 3.], &Device::Cpu).unwrap())
            .unwrap();
        let ctx = StepContext {
            step: 1,
            total_steps: 11,
        };
        assert_eq!(ema.update(&ctx).unwrap(), 0.5);
        assert_eq!(t(&store), vec![2.0; 3]);
        // Half-way the cosine is at 0.75; at the end the teacher is frozen.
        let mid = StepContext { step: 6, ..ctx };
        assert!((cfg.at(&mid) - 0.75).abs() < 1e-12);
        let end = StepContext { step: 11, ..ctx };
        assert_eq!(ema.update(&end).unwrap(), 1.0);
        assert_eq!(t(&store), vec![2.0; 3]);
    }

    #[test]
    fn a_teacher_without_its_student_is_an_error() {
        let mut store = ParamStore::new(0, &Device::Cpu);
        store
            .get("teacher.x", &[2], Init::Zeros, Decay::Yes)
            .unwrap();
        let e = Ema::new(&mut store, "teacher", EmaConfig::default())
            .err()
            .expect("a teacher without a student");
        assert!(e.to_string().contains("teacher.x"), "{e}");
        assert!(Ema::new(&mut store, "nothing", EmaConfig::default()).is_err());
        assert!(EmaConfig {
            momentum: 1.5,
            final_momentum: 1.0
        }
        .validate("dino")
        .is_err());
    }
}
