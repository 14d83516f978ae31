//! Limited-memory BFGS (Nocedal 1980; Liu & Nocedal 1989; Nocedal & Wright, "Numerical
//! Optimization", algorithms 7.4-7.5) with a backtracking Armijo line search.
//!
//! Written for smooth convex objectives such as the L2-regularised multinomial logistic
//! loss of the linear probe: there `sᵀy > 0` always holds, so an Armijo line search is
//! enough, and curvature pairs with `sᵀy` too small to trust are skipped. Deterministic:
//! the same objective and start give the same iterates.

use std::collections::VecDeque;

/// Settings of [`minimize`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LbfgsConfig {
    /// Maximum number of iterations (accepted steps).
    pub max_iter: usize,
    /// Number of curvature pairs kept.
    pub history: usize,
    /// Stop when the largest absolute gradient entry is at most this.
    pub grad_tol: f64,
    /// Stop when one iteration lowers the objective by less than
    /// `rel_tol * max(|f|, 1)`.
    pub rel_tol: f64,
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        Self {
            max_iter: 300,
            history: 10,
            grad_tol: 1e-6,
            rel_tol: 1e-12,
        }
    }
}

/// Why [`minimize`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StopReason {
    /// The largest absolute gradient entry fell to `grad_tol`.
    GradientTolerance,
    /// An iteration improved the objective by less than `rel_tol` (relative).
    RelativeDecrease,
    /// No step along the steepest-descent direction lowered the objective: the iterate is
    /// optimal to floating-point precision.
    LineSearchFailed,
    /// `max_iter` iterations were taken.
    MaxIterations,
    /// The objective or gradient was NaN or infinite at the starting point.
    NonFinite,
}

/// Outcome of [`minimize`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LbfgsReport {
    /// Accepted steps.
    pub iterations: usize,
    /// Objective/gradient evaluations, line-search trials included.
    pub evaluations: usize,
    /// Objective value at the returned point.
    pub loss: f64,
    /// Largest absolute gradient entry at the returned point.
    pub grad_inf_norm: f64,
    /// Why the iterations stopped.
    pub stop: StopReason,
}

impl LbfgsReport {
    /// True unless the run hit `max_iter` or a non-finite start.
    pub fn converged(&self) -> bool {
        !matches!(self.stop, StopReason::MaxIterations | StopReason::NonFinite)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let mut ca = a.chunks_exact(4);
    let mut cb = b.chunks_exact(4);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

fn inf_norm(g: &[f64]) -> f64 {
    g.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// Minimises `f` from the start `x` (overwritten with the result).
///
/// `f(x, grad)` returns the objective at `x` and writes its gradient into `grad`
/// (`grad.len() == x.len()`). Non-finite trial values are treated as "too far" by the
/// line search.
// `!(slope < 0.0)` below is deliberate: it also treats a NaN slope as "not descending".
#[allow(clippy::neg_cmp_op_on_partial_ord)]
pub fn minimize<F>(mut f: F, x: &mut [f64], cfg: &LbfgsConfig) -> LbfgsReport
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    const C1: f64 = 1e-4;
    const MAX_LINE_SEARCH: usize = 40;
    let p = x.len();
    let mut g = vec![0.0; p];
    let mut fx = f(x, &mut g);
    let mut evaluations = 1;
    let report = |iterations, evaluations, loss, g: &[f64], stop| LbfgsReport {
        iterations,
        evaluations,
        loss,
        grad_inf_norm: inf_norm(g),
        stop,
    };
    if !fx.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return report(0, evaluations, fx, &g, StopReason::NonFinite);
    }
    let history = cfg.history.max(1);
    // (s, y, 1 / sᵀy), oldest first.
    let mut pairs: VecDeque<(Vec<f64>, Vec<f64>, f64)> = VecDeque::with_capacity(history);
    let mut dir = vec![0.0; p];
    let mut alphas = vec![0.0; history];
    let mut x_new = vec![0.0; p];
    let mut g_new = vec![0.0; p];
    let mut iterations = 0;
    while iterations < cfg.max_iter {
        if inf_norm(&g) <= cfg.grad_tol {
            return report(
                iterations,
                evaluations,
                fx,
                &g,
                StopReason::GradientTolerance,
            );
        }
        // Two-loop recursion: dir = -H g.
        dir.copy_from_slice(&g);
        for (k, (s, y, rho)) in pairs.iter().enumerate().rev() {
            let a = rho * dot(s, &dir);
            alphas[k] = a;
            dir.iter_mut().zip(y).for_each(|(d, yv)| *d -= a * yv);
        }
        let gamma = match pairs.back() {
            Some((_, y, rho)) => 1.0 / (rho * dot(y, y)),
            None => 1.0 / dot(&g, &g).sqrt().max(1.0),
        };
        dir.iter_mut().for_each(|d| *d *= gamma);
        for (k, (s, y, rho)) in pairs.iter().enumerate() {
            let b = rho * dot(y, &dir);
            let a = alphas[k];
            dir.iter_mut().zip(s).for_each(|(d, sv)| *d += (a - b) * sv);
        }
        dir.iter_mut().for_each(|d| *d = -*d);
        let mut slope = dot(&dir, &g);
        if !(slope < 0.0) {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            pairs.clear();
            let scale = 1.0 / dot(&g, &g).sqrt().max(1.0);
            dir.iter_mut().zip(&g).for_each(|(d, gv)| *d = -scale * gv);
            slope = dot(&dir, &g);
        }

        // Backtracking line search with safeguarded quadratic interpolation.
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..MAX_LINE_SEARCH {
            x_new
                .iter_mut()
                .zip(x.iter().zip(&dir))
                .for_each(|(xn, (xv, d))| *xn = xv + step * d);
            let f_new = f(&x_new, &mut g_new);
            evaluations += 1;
            let finite = f_new.is_finite() && g_new.iter().all(|v| v.is_finite());
            if finite && f_new <= fx + C1 * step * slope {
                accepted = Some(f_new);
                break;
            }
            step = if finite {
                let denom = 2.0 * (f_new - fx - slope * step);
                let trial = if denom > 0.0 {
                    -slope * step * step / denom
                } else {
                    0.5 * step
                };
                trial.clamp(0.1 * step, 0.5 * step)
            } else {
                0.1 * step
            };
        }
        let Some(f_new) = accepted else {
            if pairs.is_empty() {
                return report(
                    iterations,
                    evaluations,
                    fx,
                    &g,
                    StopReason::LineSearchFailed,
                );
            }
            pairs.clear();
            continue;
        };
        iterations += 1;

        let s: Vec<f64> = x_new.iter().zip(x.iter()).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        let yy = dot(&y, &y);
        if sy > 1e-12 * (dot(&s, &s) * yy).sqrt() && sy > 0.0 && yy > 0.0 {
            if pairs.len() == history {
                pairs.pop_front();
            }
            pairs.push_back((s, y, 1.0 / sy));
        }
        let decrease = fx - f_new;
        x.copy_from_slice(&x_new);
        g.copy_from_slice(&g_new);
        fx = f_new;
        if decrease <= cfg.rel_tol * fx.abs().max(1.0) {
            let stop = if inf_norm(&g) <= cfg.grad_tol {
                StopReason::GradientTolerance
            } else {
                StopReason::RelativeDecrease
            };
            return report(iterations, evaluations, fx, &g, stop);
        }
    }
    let stop = if inf_norm(&g) <= cfg.grad_tol {
        StopReason::GradientTolerance
    } else {
        StopReason::MaxIterations
    };
    report(iterations, evaluations, fx, &g, stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_rosenbrock() {
        let mut x = vec![-1.2, 1.0];
        let cfg = LbfgsConfig {
            max_iter: 500,
            grad_tol: 1e-9,
            ..Default::default()
        };
        let r = minimize(
            |x, g| {
                let (a, b) = (x[0], x[1]);
                g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
                g[1] = 200.0 * (b - a * a);
                (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
            },
            &mut x,
            &cfg,
        );
        assert!(r.converged(), "{r:?}");
        assert!(
            (x[0] - 1.0).abs() < 1e-6 && (x[1] - 1.0).abs() < 1e-6,
            "{x:?} {r:?}"
        );
    }

    #[test]
    fn minimises_ill_conditioned_quadratic() {
        // Condition number 1e4. scipy's L-BFGS-B (maxcor=10, gtol=1e-8) needs 1001
        // iterations on this problem; this implementation about as many.
        let scales: Vec<f64> = (0..50).map(|i| 10f64.powf(i as f64 / 49.0 * 4.0)).collect();
        let mut x = vec![1.0; 50];
        let cfg = LbfgsConfig {
            max_iter: 2000,
            grad_tol: 1e-8,
            rel_tol: 0.0,
            ..Default::default()
        };
        let r = minimize(
            |x, g| {
                let mut f = 0.0;
                for i in 0..x.len() {
                    g[i] = scales[i] * (x[i] - 2.0);
                    f += 0.5 * scales[i] * (x[i] - 2.0).powi(2);
                }
                f
            },
            &mut x,
            &cfg,
        );
        assert_eq!(r.stop, StopReason::GradientTolerance, "{r:?}");
        assert!(r.iterations < 1300, "{r:?}");
        assert!(x.iter().all(|v| (v - 2.0).abs() < 1e-8), "{r:?}");
    }

    #[test]
    fn non_finite_start_is_reported() {
        let mut x = vec![0.0];
        let r = minimize(
            |_, g| {
                g[0] = 0.0;
                f64::NAN
            },
            &mut x,
            &LbfgsConfig::default(),
        );
        assert_eq!(r.stop, StopReason::NonFinite);
    }
}
