//! IIR filters in second-order sections, applied zero-phase as scipy's `sosfiltfilt`.
//!
//! Design follows `scipy.signal.butter(N, Wn, btype, fs=fs, output='sos')`: the analog
//! Butterworth prototype (poles `-exp(iπm/2N)`, `m = -N+1, -N+3, …, N-1`), frequencies
//! pre-warped as `4·tan(π·f/fs)` (scipy designs at fs = 2), the low-pass → band-pass /
//! high-pass transforms of `lp2bp_zpk` / `lp2hp_zpk`, and the bilinear transform of
//! `bilinear_zpk`. `iirnotch(w0, Q, fs)` is one section. Sections are paired differently
//! from scipy's `zpk2sos`, which does not change the filter (the same poles, zeros and
//! gain); the zero-phase output agrees with scipy to float rounding (golden test in
//! `tests/golden.rs`, values from `scripts/golden_eeg.py`).
//!
//! `sosfiltfilt` as scipy: odd extension of `3 · (2·sections + 1 − min(#b₂ = 0, #a₂ = 0))`
//! samples at each end, initial states from `sosfilt_zi` scaled by the first sample of
//! the extended signal, a forward pass, a backward pass started the same way from the
//! forward output's last sample, then the extension cut off. Where scipy refuses a signal
//! not longer than that pad, the pad here shrinks to `len - 1` samples.

use crate::SignalError;

#[derive(Debug, Clone, Copy, PartialEq)]
struct C {
    re: f64,
    im: f64,
}

impl C {
    fn new(re: f64, im: f64) -> Self {
        Self { re, im }
    }
    fn add(self, o: C) -> C {
        C::new(self.re + o.re, self.im + o.im)
    }
    fn sub(self, o: C) -> C {
        C::new(self.re - o.re, self.im - o.im)
    }
    fn mul(self, o: C) -> C {
        C::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
    fn scale(self, s: f64) -> C {
        C::new(self.re * s, self.im * s)
    }
    fn div(self, o: C) -> C {
        let d = o.re * o.re + o.im * o.im;
        C::new(
            (self.re * o.re + self.im * o.im) / d,
            (self.im * o.re - self.re * o.im) / d,
        )
    }
    fn sqrt(self) -> C {
        let r = (self.re * self.re + self.im * self.im).sqrt();
        let re = ((r + self.re) / 2.0).max(0.0).sqrt();
        let im = ((r - self.re) / 2.0).max(0.0).sqrt();
        C::new(re, if self.im < 0.0 { -im } else { im })
    }
}

/// Second-order sections `[b0, b1, b2, a0 = 1, a1, a2]`, applied in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sos(pub Vec<[f64; 6]>);

/// Zeros, poles and gain of a digital filter.
struct Zpk {
    z: Vec<C>,
    p: Vec<C>,
    k: f64,
}

fn butter_prototype(order: usize) -> Zpk {
    let n = order as f64;
    let p = (0..order)
        .map(|i| {
            let m = -(n - 1.0) + 2.0 * i as f64;
            let a = std::f64::consts::PI * m / (2.0 * n);
            C::new(-a.cos(), -a.sin())
        })
        .collect();
    Zpk {
        z: vec![],
        p,
        k: 1.0,
    }
}

fn prod(v: &[C]) -> C {
    v.iter().fold(C::new(1.0, 0.0), |a, &b| a.mul(b))
}

fn bilinear(a: Zpk) -> Zpk {
    let fs2 = C::new(4.0, 0.0); // 2 · fs with scipy's design rate fs = 2
    let degree = a.p.len() - a.z.len();
    let mut z: Vec<C> = a.z.iter().map(|&z| fs2.add(z).div(fs2.sub(z))).collect();
    let p = a.p.iter().map(|&p| fs2.add(p).div(fs2.sub(p))).collect();
    z.extend(std::iter::repeat_n(C::new(-1.0, 0.0), degree));
    let num: Vec<C> = a.z.iter().map(|&z| fs2.sub(z)).collect();
    let den: Vec<C> = a.p.iter().map(|&p| fs2.sub(p)).collect();
    let k = a.k * prod(&num).div(prod(&den)).re;
    Zpk { z, p, k }
}

/// Pairs poles and zeros into sections: conjugate pairs (or two real roots) per section;
/// real zeros paired smallest with largest so a band-pass gets one zero at +1 and one at
/// −1 per section. The gain goes into the first section.
fn to_sos(f: Zpk) -> Sos {
    fn quadratics(roots: &[C]) -> Vec<[f64; 3]> {
        let tol = 1e-12;
        let mut out = Vec::new();
        let mut reals: Vec<f64> = Vec::new();
        for r in roots {
            if r.im > tol {
                out.push([1.0, -2.0 * r.re, r.re * r.re + r.im * r.im]);
            } else if r.im.abs() <= tol {
                reals.push(r.re);
            }
        }
        reals.sort_by(|a, b| a.total_cmp(b));
        while !reals.is_empty() {
            let a = reals.remove(0);
            match reals.pop() {
                Some(b) => out.push([1.0, -(a + b), a * b]),
                None => out.push([1.0, -a, 0.0]),
            }
        }
        out
    }
    let dens = quadratics(&f.p);
    let mut nums = quadratics(&f.z);
    nums.resize(dens.len().max(nums.len()), [1.0, 0.0, 0.0]);
    let mut sections: Vec<[f64; 6]> = dens
        .iter()
        .zip(&nums)
        .map(|(a, b)| [b[0], b[1], b[2], a[0], a[1], a[2]])
        .collect();
    if let Some(s) = sections.first_mut() {
        for v in &mut s[..3] {
            *v *= f.k;
        }
    }
    Sos(sections)
}

/// The kind of a Butterworth filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Band {
    Lowpass(f64),
    Highpass(f64),
    Bandpass(f64, f64),
}

impl Sos {
    /// `scipy.signal.butter(order, …, fs=fs, output='sos')`.
    pub fn butter(order: usize, band: Band, fs: f64) -> Result<Sos, SignalError> {
        let nyq = fs / 2.0;
        let check = |f: f64, what: &str| {
            if f > 0.0 && f < nyq && f.is_finite() {
                Ok(4.0 * (std::f64::consts::PI * f / fs).tan())
            } else {
                Err(SignalError::Config(format!(
                    "{what} {f} Hz must lie strictly between 0 and the Nyquist frequency {nyq} Hz"
                )))
            }
        };
        if order == 0 || order > 12 {
            return Err(SignalError::Config(format!(
                "Butterworth order {order} must be 1 to 12"
            )));
        }
        let proto = butter_prototype(order);
        let analog = match band {
            Band::Lowpass(f) => {
                let wo = check(f, "low-pass cut-off")?;
                Zpk {
                    z: vec![],
                    p: proto.p.iter().map(|p| p.scale(wo)).collect(),
                    k: wo.powi(order as i32),
                }
            }
            Band::Highpass(f) => {
                let wo = check(f, "high-pass cut-off")?;
                let p: Vec<C> = proto.p.iter().map(|p| C::new(wo, 0.0).div(*p)).collect();
                let k = proto.k
                    * C::new(1.0, 0.0)
                        .div(prod(
                            &proto.p.iter().map(|p| p.scale(-1.0)).collect::<Vec<_>>(),
                        ))
                        .re;
                Zpk {
                    z: vec![C::new(0.0, 0.0); order],
                    p,
                    k,
                }
            }
            Band::Bandpass(lo, hi) => {
                let w1 = check(lo, "band-pass low edge")?;
                let w2 = check(hi, "band-pass high edge")?;
                if w2 <= w1 {
                    return Err(SignalError::Config(format!(
                        "band-pass edges {lo} Hz and {hi} Hz must be increasing"
                    )));
                }
                let bw = w2 - w1;
                let wo2 = C::new(w1 * w2, 0.0);
                let mut p = Vec::with_capacity(2 * order);
                for &pl in &proto.p {
                    let pl = pl.scale(bw / 2.0);
                    let s = pl.mul(pl).sub(wo2).sqrt();
                    p.push(pl.add(s));
                    p.push(pl.sub(s));
                }
                Zpk {
                    z: vec![C::new(0.0, 0.0); order],
                    p,
                    k: proto.k * bw.powi(order as i32),
                }
            }
        };
        Ok(to_sos(bilinear(analog)))
    }

    /// `scipy.signal.iirnotch(w0, q, fs)` as one section.
    pub fn notch(w0_hz: f64, q: f64, fs: f64) -> Result<Sos, SignalError> {
        if !(w0_hz > 0.0 && w0_hz < fs / 2.0) || q <= 0.0 || !q.is_finite() {
            return Err(SignalError::Config(format!(
                "notch at {w0_hz} Hz (Q {q}) must lie strictly between 0 and {} Hz with Q > 0",
                fs / 2.0
            )));
        }
        let w0 = 2.0 * w0_hz / fs;
        let bw = w0 / q * std::f64::consts::PI;
        let w0 = w0 * std::f64::consts::PI;
        let beta = (bw / 2.0).tan();
        let gain = 1.0 / (1.0 + beta);
        let c = w0.cos();
        Ok(Sos(vec![[
            gain,
            -2.0 * gain * c,
            gain,
            1.0,
            -2.0 * gain * c,
            2.0 * gain - 1.0,
        ]]))
    }

    /// Appends another filter's sections (the cascade of both).
    pub fn then(mut self, other: Sos) -> Sos {
        self.0.extend(other.0);
        self
    }

    /// `scipy.signal.sosfilt_zi`: per-section initial states for a unit step held since
    /// −∞.
    fn zi(&self) -> Vec<[f64; 2]> {
        let mut scale = 1.0;
        self.0
            .iter()
            .map(|s| {
                let (b, a) = (&s[..3], &s[3..]);
                let b0 = b[0] / a[0];
                let (b1, b2) = (b[1] / a[0], b[2] / a[0]);
                let (a1, a2) = (a[1] / a[0], a[2] / a[0]);
                let (c0, c1) = (b1 - a1 * b0, b2 - a2 * b0);
                let z0 = (c0 + c1) / (1.0 + a1 + a2);
                let z1 = c1 - a2 * z0;
                let zi = [scale * z0, scale * z1];
                scale *= (b[0] + b[1] + b[2]) / (a[0] + a[1] + a[2]);
                zi
            })
            .collect()
    }

    /// Direct form II transposed over `x` in place, from states `zi · x0`.
    fn run(&self, x: &mut [f64], zi: &[[f64; 2]], x0: f64) {
        for (s, z) in self.0.iter().zip(zi) {
            let inv = 1.0 / s[3];
            let (b0, b1, b2) = (s[0] * inv, s[1] * inv, s[2] * inv);
            let (a1, a2) = (s[4] * inv, s[5] * inv);
            let (mut z0, mut z1) = (z[0] * x0, z[1] * x0);
            for v in x.iter_mut() {
                let xi = *v;
                let y = b0 * xi + z0;
                z0 = b1 * xi - a1 * y + z1;
                z1 = b2 * xi - a2 * y;
                *v = y;
            }
        }
    }

    /// scipy's default pad length for `sosfiltfilt`.
    pub fn padlen(&self) -> usize {
        let n = self.0.len();
        let zb = self.0.iter().filter(|s| s[2] == 0.0).count();
        let za = self.0.iter().filter(|s| s[5] == 0.0).count();
        3 * (2 * n + 1 - zb.min(za))
    }

    /// Zero-phase filtering, as `scipy.signal.sosfiltfilt(sos, x)` (see the module notes).
    pub fn filtfilt(&self, x: &[f64]) -> Vec<f64> {
        if x.len() < 2 || self.0.is_empty() {
            return x.to_vec();
        }
        let edge = self.padlen().min(x.len() - 1);
        let n = x.len();
        let mut ext = Vec::with_capacity(n + 2 * edge);
        ext.extend((1..=edge).rev().map(|i| 2.0 * x[0] - x[i]));
        ext.extend_from_slice(x);
        ext.extend((1..=edge).map(|i| 2.0 * x[n - 1] - x[n - 1 - i]));
        let zi = self.zi();
        let x0 = ext[0];
        self.run(&mut ext, &zi, x0);
        ext.reverse();
        let y0 = ext[0];
        self.run(&mut ext, &zi, y0);
        ext.reverse();
        ext[edge..edge + n].to_vec()
    }
}

/// A zero-phase filter chain built once for a sampling rate: an optional Butterworth
/// high-, low- or band-pass and notches.
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroPhase {
    sos: Sos,
}

impl ZeroPhase {
    /// `highpass_hz`/`lowpass_hz` of 0 switch that edge off; notches at or above Nyquist
    /// are errors.
    pub fn new(
        fs: f64,
        order: usize,
        highpass_hz: f64,
        lowpass_hz: f64,
        notches_hz: &[f64],
        notch_q: f64,
    ) -> Result<Self, SignalError> {
        let mut sos = match (highpass_hz > 0.0, lowpass_hz > 0.0) {
            (true, true) => Sos::butter(order, Band::Bandpass(highpass_hz, lowpass_hz), fs)?,
            (true, false) => Sos::butter(order, Band::Highpass(highpass_hz), fs)?,
            (false, true) => Sos::butter(order, Band::Lowpass(lowpass_hz), fs)?,
            (false, false) => Sos(vec![]),
        };
        for &f in notches_hz {
            sos = sos.then(Sos::notch(f, notch_q, fs)?);
        }
        Ok(Self { sos })
    }

    pub fn is_identity(&self) -> bool {
        self.sos.0.is_empty()
    }

    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        self.sos.filtfilt(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowpass_passes_dc_and_stops_high_frequencies() {
        let sos = Sos::butter(4, Band::Lowpass(10.0), 100.0).unwrap();
        let x: Vec<f64> = (0..1000)
            .map(|i| 1.0 + (2.0 * std::f64::consts::PI * 40.0 * i as f64 / 100.0).sin())
            .collect();
        let y = sos.filtfilt(&x);
        for v in &y[100..900] {
            assert!((v - 1.0).abs() < 1e-3, "{v}");
        }
    }

    #[test]
    fn bad_edges_are_errors() {
        assert!(Sos::butter(4, Band::Lowpass(60.0), 100.0).is_err());
        assert!(Sos::butter(4, Band::Bandpass(10.0, 5.0), 100.0).is_err());
        assert!(Sos::butter(0, Band::Lowpass(10.0), 100.0).is_err());
        assert!(Sos::notch(50.0, 30.0, 100.0).is_err());
    }

    #[test]
    fn short_signals_are_filtered_with_a_shorter_pad() {
        let sos = Sos::butter(4, Band::Bandpass(1.0, 20.0), 100.0).unwrap();
        assert_eq!(sos.filtfilt(&[1.0, 2.0, 3.0]).len(), 3);
        assert_eq!(sos.filtfilt(&[1.0]), vec![1.0]);
    }
}
