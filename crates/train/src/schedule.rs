//! Learning-rate schedule: linear warm-up, then cosine decay to `min_lr`.

use crate::TrainConfig;

/// Learning rate at 1-based `step`.
pub fn lr_at(cfg: &TrainConfig, step: u64) -> f64 {
    if cfg.warmup_steps > 0 && step <= cfg.warmup_steps {
        return cfg.lr * step as f64 / cfg.warmup_steps as f64;
    }
    let span = cfg.steps.saturating_sub(cfg.warmup_steps).max(1) as f64;
    let t = ((step - cfg.warmup_steps.min(step)) as f64 / span).clamp(0.0, 1.0);
    cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let cfg = TrainConfig {
            steps: 110,
            warmup_steps: 10,
            lr: 1.0,
            min_lr: 0.1,
            ..Default::default()
        };
        assert!((lr_at(&cfg, 5) - 0.5).abs() < 1e-12);
        assert!((lr_at(&cfg, 10) - 1.0).abs() < 1e-12);
        assert!((lr_at(&cfg, 60) - 0.55).abs() < 1e-12);
        assert!((lr_at(&cfg, 110) - 0.1).abs() < 1e-12);
    }
}
