//! DINO: self-distillation with no labels (Caron et al. 2021, "Emerging Properties in
//! Self-Supervised Vision Transformers", arXiv:2104.14294).
//!
//! A student (the encoder plus a DINO head) matches an EMA teacher across views: the
//! teacher sees the global views only, the student every view (global and local), and for
//! every pair of different views the loss is the cross-entropy `−Σ P_t log P_s` between the
//! teacher's centred, sharpened distribution (temperature 0.04, optionally warming up) and
//! the student's (temperature 0.1). The centre is an EMA of the teacher's batch mean and
//! the teacher an EMA of the student (momentum 0.996 → 1 on a cosine); both are
//! non-trainable parameters, so they survive a resume. Local views are cut in coordinate
//! space ([`tessera_tokens::local_crop`]), so the recipe knows no modality.

use crate::ema::{set_state, Ema, EmaConfig};
use crate::heads::{DinoHead, DinoHeadConfig, Pool};
use crate::losses::{log_softmax, nll};
use crate::{Batch, Recipe, Result, StepContext, StepOutput, ENCODER_PREFIX};
use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};
use tessera_core::ops::softmax_last_dim;
use tessera_core::params::{Decay, Init};
use tessera_core::{no_grad, CoreError, Encoder, EncoderConfig, ParamStore, TokenTensors};
use tessera_tokens::{Rng, Tokens, ViewKind, ViewSpec};

const TEACHER: &str = "teacher";
const CENTER: &str = "dino.center";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DinoConfig {
    /// Global views per sample (the teacher's inputs).
    #[serde(default = "two")]
    pub global_views: usize,
    /// Local views per sample (the student's only).
    #[serde(default = "two")]
    pub local_views: usize,
    /// Fraction of the global extent a local view keeps along each cropped axis.
    #[serde(default = "default_local_extent")]
    pub local_extent: f32,
    /// Coordinate axes local views are cut along (empty: all).
    #[serde(default)]
    pub local_axes: Vec<usize>,
    /// Apply the modality's augmentation to every view.
    #[serde(default = "yes")]
    pub augment: bool,
    #[serde(default = "default_student_t")]
    pub student_temperature: f64,
    /// Teacher temperature at the first step…
    #[serde(default = "default_teacher_t")]
    pub teacher_temperature: f64,
    /// …rising linearly to this over the first `teacher_warmup` of training.
    #[serde(default = "default_teacher_t_final")]
    pub teacher_temperature_final: f64,
    /// Fraction of the schedule the teacher temperature warms up over.
    #[serde(default = "default_teacher_warmup")]
    pub teacher_warmup: f64,
    #[serde(default = "default_center_momentum")]
    pub center_momentum: f64,
    /// What the head reads: the CLS token (the paper) or the mean patch token.
    #[serde(default)]
    pub pool: Pool,
    #[serde(default)]
    pub head: DinoHeadConfig,
    #[serde(default)]
    pub ema: EmaConfig,
}

fn two() -> usize {
    2
}
fn yes() -> bool {
    true
}
fn default_local_extent() -> f32 {
    0.4
}
fn default_student_t() -> f64 {
    0.1
}
fn default_teacher_t() -> f64 {
    0.04
}
fn default_teacher_t_final() -> f64 {
    0.04 // the reference code's default; 0.07 for long runs
}
fn default_teacher_warmup() -> f64 {
    0.3
}
fn default_center_momentum() -> f64 {
    0.9
}

impl Default for DinoConfig {
    fn default() -> Self {
        crate::serde_defaults()
    }
}

impl DinoConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(CoreError::Config(format!("dino: {m}")));
        if self.global_views == 0 || self.global_views + self.local_views < 2 {
            return bad(format!(
                "needs at least one global view and two views in all (global_views = {}, local_views = {})",
                self.global_views, self.local_views
            ));
        }
        if !(self.local_extent > 0.0 && self.local_extent <= 1.0) {
            return bad(format!(
                "local_extent must be in (0, 1], got {}",
                self.local_extent
            ));
        }
        for (name, t) in [
            ("student_temperature", self.student_temperature),
            ("teacher_temperature", self.teacher_temperature),
            ("teacher_temperature_final", self.teacher_temperature_final),
        ] {
            if !(t.is_finite() && t > 0.0) {
                return bad(format!("{name} must be positive, got {t}"));
            }
        }
        if !(0.0..=1.0).contains(&self.teacher_warmup)
            || !(0.0..=1.0).contains(&self.center_momentum)
        {
            return bad("teacher_warmup and center_momentum must be in [0, 1]".into());
        }
        if self.head.out_dim == 0 || self.head.bottleneck_dim == 0 || self.head.hidden_dim == 0 {
            return bad("head sizes must be positive".into());
        }
        self.ema.validate("dino")
    }

    /// The teacher temperature at `ctx`.
    pub fn teacher_temperature_at(&self, ctx: &StepContext) -> f64 {
        let warm = (self.teacher_warmup * ctx.total_steps as f64).round() as u64;
        ctx.warmup(
            self.teacher_temperature,
            self.teacher_temperature_final,
            warm,
        )
    }
}

pub struct Dino {
    cfg: DinoConfig,
    encoder: Encoder,
    head: DinoHead,
    teacher: Encoder,
    teacher_head: DinoHead,
    center: Tensor,
    ema: Ema,
}

impl Dino {
    pub fn new(cfg: &DinoConfig, enc: &EncoderConfig, store: &mut ParamStore) -> Result<Self> {
        cfg.validate()?;
        let encoder = Encoder::new(enc, store, ENCODER_PREFIX)?;
        let head = DinoHead::new(store, "dino.head", enc.dim, &cfg.head)?;
        let teacher = Encoder::new(enc, store, &format!("{TEACHER}.{ENCODER_PREFIX}"))?;
        let teacher_head =
            DinoHead::new(store, &format!("{TEACHER}.dino.head"), enc.dim, &cfg.head)?;
        let ema = Ema::new(store, TEACHER, cfg.ema)?;
        let center = store.get(CENTER, &[1, cfg.head.out_dim], Init::Zeros, Decay::No)?;
        store.set_trainable(CENTER, false);
        Ok(Self {
            cfg: cfg.clone(),
            encoder,
            head,
            teacher,
            teacher_head,
            center,
            ema,
        })
    }

    /// Head logits of the pooled encoder output for a stack of views.
    fn logits(&self, encoder: &Encoder, head: &DinoHead, t: &Tokens) -> Result<Tensor> {
        let dev = encoder.cls_token.device().clone();
        let out = encoder.forward(&TokenTensors::from_tokens(t, &dev)?)?;
        head.forward(&self.cfg.pool.apply(&out)?)
    }
}

impl Recipe for Dino {
    fn name(&self) -> &'static str {
        "dino"
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    fn views(&self) -> Vec<ViewSpec> {
        let c = &self.cfg;
        let global = ViewSpec::global().augmented(c.augment);
        let local = ViewSpec::local(c.local_extent, c.local_axes.clone()).augmented(c.augment);
        std::iter::repeat_n(global, c.global_views)
            .chain(std::iter::repeat_n(local, c.local_views))
            .collect()
    }

    fn loss(&self, batch: &Batch, ctx: &StepContext, _rng: &mut Rng) -> Result<StepOutput> {
        let b = batch.samples();
        let globals: Vec<&Tokens> = batch
            .views
            .iter()
            .zip(&batch.specs)
            .filter(|(_, s)| s.kind == ViewKind::Global)
            .map(|(t, _)| t)
            .collect();
        let locals: Vec<&Tokens> = batch
            .views
            .iter()
            .zip(&batch.specs)
            .filter(|(_, s)| s.kind == ViewKind::Local)
            .map(|(t, _)| t)
            .collect();
        if globals.is_empty() || globals.len() + locals.len() < 2 || b == 0 {
            return Err(CoreError::Config(format!(
                "dino: needs a global view and two views in all, got {} global and {} local",
                globals.len(),
                locals.len()
            )));
        }
        let g = Tokens::cat(&globals)?;
        let teacher = no_grad(|| self.logits(&self.teacher, &self.teacher_head, &g))?;
        let tt = self.cfg.teacher_temperature_at(ctx);
        let probs = softmax_last_dim(&(teacher.broadcast_sub(&self.center)? / tt)?)?.detach();
        let mut student = vec![self.logits(&self.encoder, &self.head, &g)?];
        if !locals.is_empty() {
            student.push(self.logits(&self.encoder, &self.head, &Tokens::cat(&locals)?)?);
        }
        let student = log_softmax(&(Tensor::cat(&student, 0)? / self.cfg.student_temperature)?)?;
        let views = globals.len() + locals.len();
        let mut losses = Vec::new();
        for i in 0..globals.len() {
            let p = probs.narrow(0, i * b, b)?;
            for j in (0..views).filter(|&j| j != i) {
                losses.push(nll(&student.narrow(0, j * b, b)?, &p, None)?);
            }
        }
        let pairs = losses.len();
        let mut losses = losses.into_iter();
        let first = losses
            .next()
            .ok_or_else(|| CoreError::Config("dino: no pair of views".into()))?;
        let loss = (losses.try_fold(first, |t, l| t + l)? / pairs as f64)?;
        let entropy = (probs.clamp(1e-12, 1.0)?.log()? * &probs)?
            .sum(D::Minus1)?
            .mean_all()?
            .neg()?
            .to_scalar::<f32>()? as f64;
        let mut out = StepOutput::new(
            loss,
            vec![
                ("teacher_entropy".into(), entropy),
                ("teacher_temperature".into(), tt),
                ("momentum".into(), self.cfg.ema.at(ctx)),
            ],
        );
        // The teacher's rows (not their mean), so data-parallel steps can gather them.
        out.state.push(("teacher", teacher));
        Ok(out)
    }

    fn after_step(
        &mut self,
        store: &ParamStore,
        ctx: &StepContext,
        out: &StepOutput,
    ) -> Result<()> {
        self.ema.update(ctx)?;
        let m = self.cfg.center_momentum;
        let mean = out.state("dino", "teacher")?.mean_keepdim(0)?;
        let next = ((&self.center * m)? + (&mean * (1.0 - m))?)?;
        set_state(store, CENTER, &next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{batch_for, CTX};
    use candle_core::Device;

    fn small() -> DinoConfig {
        toml::from_str(
            "local_views = 1\nlocal_extent = 0.5\n[head]\nout_dim = 32\nhidden_dim = 16\nbottleneck_dim = 8",
        )
        .unwrap()
    }

    #[test]
    fn loss_trains_the_student_only_and_after_step_moves_teacher_and_centre() {
        let enc = EncoderConfig::preset("nano", 8, vec![4.0]).unwrap();
        let mut store = ParamStore::new(0, &Device::Cpu);
        let mut dino = Dino::new(&small(), &enc, &mut store).unwrap();
        assert_eq!(dino.views().len(), 3);
        let batch = batch_for(&dino.views(), 3, 12, 8);
        let out = dino.loss(&batch, &CTX, &mut Rng::new(1)).unwrap();
        let l = out.loss.to_scalar::<f32>().unwrap();
        // Reference in f64 from the same logits: the mean over (teacher global i, student
        // view j ≠ i) pairs of −Σ softmax((t_i − c)/τt) log softmax(s_j/τs), per sample.
        let rows = |t: &Tensor| t.to_vec2::<f32>().unwrap();
        let teacher = rows(
            &dino
                .logits(&dino.teacher, &dino.teacher_head, &batch.views[0])
                .unwrap(),
        );
        let teacher1 = rows(
            &dino
                .logits(&dino.teacher, &dino.teacher_head, &batch.views[1])
                .unwrap(),
        );
        let student: Vec<Vec<Vec<f32>>> = batch
            .views
            .iter()
            .map(|v| rows(&dino.logits(&dino.encoder, &dino.head, v).unwrap()))
            .collect();
        let soft = |x: &[f32], t: f64| -> Vec<f64> {
            let m = x.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
            let e: Vec<f64> = x.iter().map(|&v| ((v as f64 - m) / t).exp()).collect();
            let z: f64 = e.iter().sum();
            e.iter().map(|v| v / z).collect()
        };
        let tt = dino.cfg.teacher_temperature_at(&CTX);
        let (mut sum, mut pairs) = (0.0, 0);
        for (i, t) in [&teacher, &teacher1].iter().enumerate() {
            for (_, s) in student.iter().enumerate().filter(|(j, _)| *j != i) {
                for r in 0..3 {
                    let pt = soft(&t[r], tt); // the centre starts at 0
                    let ps = soft(&s[r], 0.1);
                    sum -= pt.iter().zip(&ps).map(|(a, b)| a * b.ln()).sum::<f64>() / 3.0;
                }
                pairs += 1;
            }
        }
        assert_eq!(pairs, 4);
        let want = sum / pairs as f64;
        assert!((l as f64 - want).abs() < 1e-4 * want, "{l} vs {want}");
        let grads = out.loss.backward().unwrap();
        let has = |n: &str| grads.get(&store.param(n).unwrap().var).is_some();
        assert!(has("encoder.blocks.0.attn.qkv.weight"));
        assert!(has("dino.head.prototypes.weight"));
        assert!(!has("teacher.encoder.blocks.0.attn.qkv.weight"));
        assert!(!has(CENTER));
        assert!(
            !store
                .param("teacher.dino.head.prototypes.weight")
                .unwrap()
                .trainable
        );
        // The teacher starts as a copy of the student.
        let get = |s: &ParamStore, n: &str| {
            s.param(n)
                .unwrap()
                .var
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(
            get(&store, "encoder.norm.weight"),
            get(&store, "teacher.encoder.norm.weight")
        );
        let c0 = get(&store, CENTER);
        assert!(c0.iter().all(|&x| x == 0.0));
        // A moved student pulls the teacher by 1 − momentum; the centre follows the mean.
        let w = store.param("encoder.norm.weight").unwrap().var.clone();
        w.set(&(w.as_tensor() + 1.0).unwrap()).unwrap();
        dino.after_step(&store, &CTX, &out).unwrap();
        let t = get(&store, "teacher.encoder.norm.weight");
        let m = dino.cfg.ema.at(&CTX) as f32;
        assert!((t[0] - (1.0 + (1.0 - m))).abs() < 1e-5, "{} vs {m}", t[0]);
        let mean = out
            .state("dino", "teacher")
            .unwrap()
            .mean(0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let c1 = get(&store, CENTER);
        for (c, x) in c1.iter().zip(&mean) {
            assert!((c - 0.1 * x).abs() < 1e-6);
        }
    }

    #[test]
    fn bad_configs_name_the_field() {
        let e = toml::from_str::<DinoConfig>("global_view = 2").unwrap_err();
        assert!(e.to_string().contains("global_view"), "{e}");
        let mut c = small();
        c.global_views = 1;
        c.local_views = 0;
        assert!(c.validate().unwrap_err().to_string().contains("two views"));
        c.local_views = 1;
        c.student_temperature = 0.0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("student_temperature"));
    }

    #[test]
    fn teacher_temperature_warms_up() {
        let c = DinoConfig {
            teacher_temperature_final: 0.07,
            ..DinoConfig::default()
        };
        let at = |step| {
            c.teacher_temperature_at(&StepContext {
                step,
                total_steps: 100,
            })
        };
        assert!((at(1) - 0.04).abs() < 1e-12);
        assert!(at(15) > 0.04 && at(15) < 0.07);
        assert!((at(30) - 0.07).abs() < 1e-12 && (at(100) - 0.07).abs() < 1e-12);
    }
}
