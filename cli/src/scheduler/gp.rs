//! Bayesian optimization with a Gaussian process: a Matérn kernel (ν = 1/2, 3/2 or 5/2) or RBF
//! with one length scale per dimension, its hyperparameters (length scales, signal and noise
//! variances, each bounded) fitted by maximizing the marginal likelihood (with weak priors)
//! with L-BFGS, warm-started from the last fit and restarted from the prior (and random
//! points, `numRestartsOptimizer`); the next point maximizes an acquisition function (expected
//! improvement, upper confidence bound or probability of improvement) over random and local
//! candidates, refined by gradient ascent. Trials still running are accounted for as the
//! kriging believer does: the process fitted on the results is told that each pending point
//! yields its predicted mean, which leaves the fit alone and takes the uncertainty — and so the
//! acquisition — away from it, so a batch spreads out. A proposal within [`TOO_CLOSE`] of an
//! evaluated or pending point is replaced by the next best candidate. Works on the unit cube
//! and minimizes.

// Numeric code: indexes read closer to the formulas than iterator chains.
#![allow(clippy::needless_range_loop)]

use super::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kernel {
    Matern12,
    Matern32,
    Matern52,
    /// The Matérn kernel of any other smoothness (through the modified Bessel function).
    Matern(f64),
    Rbf,
}

impl Kernel {
    /// The Matérn kernel of smoothness `nu` (any positive number, as scikit-learn takes it;
    /// 0.5, 1.5 and 2.5 have closed forms, infinity is the RBF kernel).
    pub fn matern(nu: f64) -> Result<Kernel, String> {
        match nu {
            v if (v - 0.5).abs() < 1e-9 => Ok(Kernel::Matern12),
            v if (v - 1.5).abs() < 1e-9 => Ok(Kernel::Matern32),
            v if (v - 2.5).abs() < 1e-9 => Ok(Kernel::Matern52),
            v if v.is_infinite() && v > 0.0 => Ok(Kernel::Rbf),
            // Above this the kernel is the RBF's to many digits and K_nu's integral needs more terms.
            v if v > 100.0 => Ok(Kernel::Rbf),
            v if v.is_finite() && v >= 0.05 => Ok(Kernel::Matern(v)),
            other => Err(format!(
                "gaussianProcess.nu is {other}: the Matérn kernel takes a smoothness of at least 0.05 \
                 (0.5, 1.5 and 2.5 are the usual ones; use `kernel: rbf` for infinite smoothness)"
            )),
        }
    }
}

/// Proposals closer than this (in every dimension of the unit cube) to an evaluated or pending
/// point are replaced by the next best candidate.
pub const TOO_CLOSE: f64 = 1e-5;

/// Whether `x` is within [`TOO_CLOSE`] of one of `points` in every dimension.
pub fn too_close(x: &[f64], points: &[Vec<f64>]) -> bool {
    points
        .iter()
        .any(|p| p.len() == x.len() && p.iter().zip(x).all(|(a, b)| (a - b).abs() < TOO_CLOSE))
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Acquisition {
    /// Expected improvement beyond `xi`.
    Ei { xi: f64 },
    /// Lower confidence bound `mean - kappa * sd` (upper for maximization).
    Ucb { kappa: f64 },
    /// Probability of improvement beyond `xi`.
    Poi { xi: f64 },
}

/// A fitted process.
pub struct Gp {
    kernel: Kernel,
    x: Vec<Vec<f64>>,
    /// Standardized targets.
    y: Vec<f64>,
    /// log length scales, log signal variance, log noise variance.
    pub theta: Vec<f64>,
    l: Vec<f64>,
    alpha: Vec<f64>,
    n: usize,
    /// The first `n_real` points are results; the rest are pending points told their
    /// predicted mean (they do not move the incumbent).
    n_real: usize,
    /// The standardization of the targets.
    y_mean: f64,
    y_sd: f64,
    /// The prior mean of the log length scales.
    log_ls0: f64,
    /// Added to the diagonal: as little as the factorization allows.
    jitter: f64,
}

const LN_2PI: f64 = 1.837_877_066_409_345_3;
const SQRT5: f64 = 2.236_067_977_499_79;
const SQRT3: f64 = 1.732_050_807_568_877_2;

fn cholesky(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let rj = &a[j * n..j * n + j];
        let d = a[j * n + j] - dot(rj, rj);
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let s = a[i * n + j] - dot(&a[i * n..i * n + j], &a[j * n..j * n + j]);
            a[i * n + j] = s / d;
        }
        for i in 0..j {
            a[i * n + j] = 0.0;
        }
    }
    true
}

/// Solves L z = b in place (L lower triangular).
fn forward(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let row = &l[i * n..i * n + i];
        let s = b[i] - dot(row, &b[..i]);
        b[i] = s / l[i * n + i];
    }
}

/// Solves L^T z = b in place.
fn backward(l: &[f64], n: usize, b: &mut [f64]) {
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[k * n + i] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

impl Kernel {
    /// k(r^2) / sf2 and, for the gradient, the factor f with d k / d(log l_d) = sf2 f Δ_d² / l_d².
    fn eval(self, r2: f64) -> (f64, f64) {
        match self {
            Kernel::Rbf => {
                let k = (-0.5 * r2).exp();
                (k, k)
            }
            Kernel::Matern52 => {
                let r = r2.sqrt();
                let e = (-SQRT5 * r).exp();
                (
                    (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * e,
                    5.0 / 3.0 * (1.0 + SQRT5 * r) * e,
                )
            }
            Kernel::Matern32 => {
                let r = r2.sqrt();
                let e = (-SQRT3 * r).exp();
                ((1.0 + SQRT3 * r) * e, 3.0 * e)
            }
            Kernel::Matern12 => {
                let r = r2.sqrt();
                let e = (-r).exp();
                (e, if r > 1e-12 { e / r } else { 0.0 })
            }
            Kernel::Matern(nu) => matern_general(nu, r2),
        }
    }
}

/// The Matérn kernel of smoothness `nu` at squared scaled distance `r2`, with `Kernel::eval`'s
/// gradient factor: with z = sqrt(2 nu) r and c = 2^(1-nu) / Gamma(nu),
/// k = c z^nu K_nu(z) and f = -2 dk/d(r2) = 2 nu c z^(nu-1) K_(nu-1)(z),
/// from d/dz (z^nu K_nu(z)) = -z^nu K_(nu-1)(z).
fn matern_general(nu: f64, r2: f64) -> (f64, f64) {
    let z = (2.0 * nu * r2).sqrt();
    let ln_c = (1.0 - nu) * std::f64::consts::LN_2 - ln_gamma(nu);
    if z < 1e-10 {
        // The limits at 0: k = 1; f = nu / (nu - 1) above nu = 1, unbounded below (and then
        // only met where every difference is 0, so the factor is never used).
        return (1.0, if nu > 1.0 { nu / (nu - 1.0) } else { 0.0 });
    }
    if z > 700.0 {
        return (0.0, 0.0);
    }
    // K_nu(z) e^z, kept scaled so that large z does not underflow before the product.
    let k = (ln_c + nu * z.ln() - z).exp() * bessel_k_scaled(nu, z);
    let f = 2.0 * nu * (ln_c + (nu - 1.0) * z.ln() - z).exp() * bessel_k_scaled(nu - 1.0, z);
    (k.min(1.0), f)
}

/// e^z K_nu(z) for z > 0 from K_nu(z) = ∫_0^∞ exp(-z cosh t) cosh(nu t) dt: the integrand is
/// analytic and decays doubly exponentially, so the trapezoid rule converges geometrically in
/// the step (an error near exp(-pi^2 / h)).
fn bessel_k_scaled(nu: f64, z: f64) -> f64 {
    const H: f64 = 0.2;
    let nu = nu.abs();
    // The integrand, scaled by e^z, computed in logs: exp(-z (cosh t - 1) + ln cosh(nu t)).
    let term = |t: f64| {
        let ln_cosh_nu = nu * t + (-2.0 * nu * t).exp().ln_1p() - std::f64::consts::LN_2;
        (-z * (t.cosh() - 1.0) + ln_cosh_nu).exp()
    };
    let mut sum = 0.5 * term(0.0);
    let mut t = H;
    loop {
        let v = term(t);
        sum += v;
        if v < 1e-17 * sum || t > 60.0 {
            break;
        }
        t += H;
    }
    sum * H
}

/// ln Gamma(x) for x > 0 (Lanczos, g = 7, nine terms: about 15 digits).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Gamma(x) Gamma(1 - x) = pi / sin(pi x).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The default prior mean of the length scales (on the unit cube).
pub const LENGTH_SCALE: f64 = 0.2;

/// Weak priors on the hyperparameters: (mean, sd) of each log.
fn prior(d: usize, log_ls0: f64) -> Vec<(f64, f64)> {
    let mut p = vec![(log_ls0, 1.5); d];
    p.push((0.0, 1.5));
    // Objectives are mostly deterministic: little noise, so the model can resolve small
    // differences near the optimum.
    p.push((1e-6f64.ln(), 2.0));
    p
}

/// Whether a fit's length scales or signal variance sit on one of their bounds.
fn on_a_bound(theta: &[f64]) -> bool {
    let d = theta.len() - 2;
    theta[..=d].iter().enumerate().any(|(i, t)| {
        let (lo, hi) = bounds(d, i);
        *t <= lo + 1e-6 || *t >= hi - 1e-6
    })
}

/// Bounds of each log hyperparameter: length scales from 0.005 to 20 (a process with shorter
/// ones explains any data and predicts nothing: the collapse that makes a search propose one
/// point again and again), signal variance within a factor of 100 of the targets', noise from
/// none to all of it.
fn bounds(d: usize, i: usize) -> (f64, f64) {
    if i < d {
        (0.005f64.ln(), 20f64.ln())
    } else if i == d {
        (0.01f64.ln(), 100f64.ln())
    } else {
        (1e-10f64.ln(), 0.0)
    }
}

impl Gp {
    /// Fits to `x` (points of the unit cube) and `y` (to minimize), starting the
    /// hyperparameter search from `theta` (of a previous fit) when given, for at most
    /// `iterations` L-BFGS steps.
    pub fn fit(
        kernel: Kernel,
        x: &[Vec<f64>],
        y: &[f64],
        theta: Option<&[f64]>,
        iterations: usize,
    ) -> Option<Gp> {
        Gp::fit_from(kernel, x, y, theta, &[], iterations, LENGTH_SCALE)
    }

    /// As [`Gp::fit`], also starting L-BFGS from each of `restarts` (log hyperparameters) and
    /// keeping the best fit; `length_scale` is the prior's.
    pub fn fit_from(
        kernel: Kernel,
        x: &[Vec<f64>],
        y: &[f64],
        theta: Option<&[f64]>,
        restarts: &[Vec<f64>],
        iterations: usize,
        length_scale: f64,
    ) -> Option<Gp> {
        let n = x.len();
        if n == 0 {
            return None;
        }
        let d = x[0].len();
        let log_ls0 = length_scale.max(1e-3).ln();
        let mean = y.iter().sum::<f64>() / n as f64;
        let sd = (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64)
            .sqrt()
            .max(1e-12);
        let ys: Vec<f64> = y.iter().map(|v| (v - mean) / sd).collect();
        let mut gp = Gp {
            kernel,
            x: x.to_vec(),
            y: ys,
            theta: match theta {
                Some(t) if t.len() == d + 2 => t.to_vec(),
                _ => prior(d, log_ls0).iter().map(|p| p.0).collect(),
            },
            l: Vec::new(),
            alpha: Vec::new(),
            n,
            n_real: n,
            y_mean: mean,
            y_sd: sd,
            log_ls0,
            jitter: 1e-10,
        };
        // Near-duplicate points need more jitter (found before the fit; without one, the
        // factorization below finds it).
        while iterations > 0 && gp.jitter < 1e-3 {
            let mut l = gp.gram(&gp.theta);
            if cholesky(&mut l, n) {
                break;
            }
            gp.jitter *= 100.0;
        }
        if iterations > 0 {
            let mut best = gp.optimize(gp.theta.clone(), iterations);
            for start in restarts.iter().filter(|r| r.len() == d + 2).cloned() {
                let cand = gp.optimize(start, iterations);
                if cand.1 < best.1 {
                    best = cand;
                }
            }
            gp.theta = best.0;
        }
        if !gp.factor() {
            return None;
        }
        Some(gp)
    }

    /// This process told that each of `pending` yields its predicted mean (the kriging
    /// believer): same hyperparameters, same incumbent, no uncertainty left at those points.
    pub fn with_pending(&self, pending: &[Vec<f64>]) -> Option<Gp> {
        if pending.is_empty() {
            return None;
        }
        let mut x = self.x.clone();
        let mut y: Vec<f64> = self.y.iter().map(|v| v * self.y_sd + self.y_mean).collect();
        for p in pending {
            let (m, _) = self.predict(p);
            x.push(p.clone());
            y.push(m * self.y_sd + self.y_mean);
        }
        let mut gp = Gp::fit_from(
            self.kernel,
            &x,
            &y,
            Some(&self.theta),
            &[],
            0,
            self.log_ls0.exp(),
        )?;
        gp.n_real = self.n_real;
        Some(gp)
    }

    /// Starting points for the hyperparameter fit: the prior's mean, then `k` drawn from it.
    pub fn restarts(d: usize, length_scale: f64, k: usize, rng: &mut Rng) -> Vec<Vec<f64>> {
        let log_ls0 = length_scale.max(1e-3).ln();
        let mean: Vec<f64> = prior(d, log_ls0).iter().map(|p| p.0).collect();
        std::iter::once(mean)
            .chain((0..k).map(|_| {
                prior(d, log_ls0)
                    .iter()
                    .enumerate()
                    .map(|(i, (m, s))| {
                        let (lo, hi) = bounds(d, i);
                        (m + s * rng.normal()).clamp(lo, hi)
                    })
                    .collect()
            }))
            .collect()
    }

    fn d(&self) -> usize {
        self.theta.len() - 2
    }

    fn gram(&self, theta: &[f64]) -> Vec<f64> {
        self.gram_with(theta, None)
    }

    /// The Gram matrix; with `kf`, also each pair's `Kernel::eval` (lower triangle, row-major).
    fn gram_with(&self, theta: &[f64], mut kf: Option<&mut [(f64, f64)]>) -> Vec<f64> {
        let n = self.n;
        let d = self.d();
        let inv_l2: Vec<f64> = theta[..d].iter().map(|t| (-2.0 * t).exp()).collect();
        let sf2 = theta[d].exp();
        let sn2 = theta[d + 1].exp().max(1e-12);
        let mut k = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let mut r2 = 0.0;
                for a in 0..d {
                    let z = self.x[i][a] - self.x[j][a];
                    r2 += z * z * inv_l2[a];
                }
                let e = self.kernel.eval(r2);
                if let Some(kf) = kf.as_deref_mut() {
                    kf[i * n + j] = e;
                }
                let v = sf2 * e.0;
                k[i * n + j] = v;
                k[j * n + i] = v;
            }
            k[i * n + i] += sn2 + self.jitter;
        }
        k
    }

    /// The negative log posterior of `theta` and its gradient.
    fn objective(&self, theta: &[f64]) -> Option<(f64, Vec<f64>)> {
        let n = self.n;
        let d = self.d();
        // The kernel's values and gradient factors for each pair, computed once for the Gram
        // matrix and the gradient below.
        let mut kf = vec![(0.0, 0.0); n * n];
        let mut l = self.gram_with(theta, Some(&mut kf));
        if !cholesky(&mut l, n) {
            return None;
        }
        let mut alpha = self.y.clone();
        forward(&l, n, &mut alpha);
        backward(&l, n, &mut alpha);
        let mut nll = 0.5 * self.y.iter().zip(&alpha).map(|(a, b)| a * b).sum::<f64>()
            + (0..n).map(|i| l[i * n + i].ln()).sum::<f64>()
            + 0.5 * n as f64 * LN_2PI;
        // K^-1 = L^-T L^-1: the columns of L^-1 by forward solves (rows, contiguous), then
        // K^-1_ij as the dot product of columns i and j below both.
        let mut cols = vec![0.0; n * n];
        for c in 0..n {
            let col = &mut cols[c * n..(c + 1) * n];
            col[c] = 1.0 / l[c * n + c];
            for i in c + 1..n {
                let s = dot(&l[i * n + c..i * n + i], &col[c..i]);
                col[i] = -s / l[i * n + i];
            }
        }
        let mut kinv = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let v = dot(&cols[i * n + i..(i + 1) * n], &cols[j * n + i..(j + 1) * n]);
                kinv[i * n + j] = v;
                kinv[j * n + i] = v;
            }
        }
        // W = alpha alpha^T - K^-1; d nll / d theta = -0.5 tr(W dK).
        let inv_l2: Vec<f64> = theta[..d].iter().map(|t| (-2.0 * t).exp()).collect();
        let sf2 = theta[d].exp();
        let sn2 = theta[d + 1].exp().max(1e-12);
        let mut grad = vec![0.0; d + 2];
        for i in 0..n {
            for j in 0..=i {
                let w = alpha[i] * alpha[j] - kinv[i * n + j];
                let mult = if i == j { 1.0 } else { 2.0 };
                let (k, f) = kf[i * n + j];
                for a in 0..d {
                    let z = self.x[i][a] - self.x[j][a];
                    grad[a] -= 0.5 * mult * w * sf2 * f * z * z * inv_l2[a];
                }
                grad[d] -= 0.5 * mult * w * sf2 * k;
                if i == j {
                    grad[d + 1] -= 0.5 * w * sn2;
                }
            }
        }
        for (i, (m, s)) in prior(d, self.log_ls0).into_iter().enumerate() {
            nll += 0.5 * ((theta[i] - m) / s).powi(2);
            grad[i] += (theta[i] - m) / (s * s);
        }
        Some((nll, grad))
    }

    /// L-BFGS on the negative log posterior from `start` (within the bounds): the
    /// hyperparameters reached and their value.
    fn optimize(&self, start: Vec<f64>, iterations: usize) -> (Vec<f64>, f64) {
        let d = self.d();
        let start: Vec<f64> = start
            .iter()
            .enumerate()
            .map(|(i, v)| v.clamp(bounds(d, i).0, bounds(d, i).1))
            .collect();
        let Some((mut f, mut g)) = self.objective(&start) else {
            let p: Vec<f64> = prior(d, self.log_ls0).iter().map(|p| p.0).collect();
            let f = self.objective(&p).map_or(f64::INFINITY, |o| o.0);
            return (p, f);
        };
        let mut x = start;
        let mut hist: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
        for _ in 0..iterations {
            // Two-loop recursion for the direction.
            let mut q = g.clone();
            let mut alphas = Vec::new();
            for (s, yv) in hist.iter().rev() {
                let rho = 1.0 / dot(yv, s);
                let a = rho * dot(s, &q);
                q.iter_mut().zip(yv).for_each(|(qi, yi)| *qi -= a * yi);
                alphas.push((a, rho));
            }
            if let Some((s, yv)) = hist.last() {
                let gamma = dot(s, yv) / dot(yv, yv);
                q.iter_mut().for_each(|v| *v *= gamma);
            } else {
                let norm = dot(&g, &g).sqrt().max(1e-12);
                q.iter_mut().for_each(|v| *v *= 0.1 / norm);
            }
            for ((s, yv), (a, rho)) in hist.iter().zip(alphas.iter().rev()) {
                let b = rho * dot(yv, &q);
                q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
            }
            // The direction, without the components that push a hyperparameter on its bound
            // further out (they would only be clamped back, and fail the line search).
            let dir: Vec<f64> = q
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let (lo, hi) = bounds(d, i);
                    if (x[i] <= lo && *v > 0.0) || (x[i] >= hi && *v < 0.0) {
                        0.0
                    } else {
                        -v
                    }
                })
                .collect();
            let slope = dot(&g, &dir);
            if slope >= 0.0 {
                hist.clear();
                continue;
            }
            // Backtracking (Armijo), a few halvings: a step that small no longer pays.
            let mut t = 1.0;
            let mut next = None;
            for _ in 0..8 {
                let cand: Vec<f64> = x
                    .iter()
                    .zip(&dir)
                    .enumerate()
                    .map(|(i, (xi, di))| (xi + t * di).clamp(bounds(d, i).0, bounds(d, i).1))
                    .collect();
                if let Some((fc, gc)) = self.objective(&cand)
                    && fc <= f + 1e-4 * t * slope
                {
                    next = Some((cand, fc, gc));
                    break;
                }
                t *= 0.5;
            }
            let Some((xn, fn_, gn)) = next else { break };
            let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
            let yv: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
            let improved = f - fn_;
            if dot(&s, &yv) > 1e-12 {
                hist.push((s, yv));
                if hist.len() > 6 {
                    hist.remove(0);
                }
            }
            x = xn;
            f = fn_;
            g = gn;
            if improved.abs() < 1e-7 * (1.0 + f.abs()) {
                break;
            }
        }
        (x, f)
    }

    fn factor(&mut self) -> bool {
        let n = self.n;
        let mut l = self.gram(&self.theta);
        while !cholesky(&mut l, n) {
            if self.jitter >= 1e-3 {
                return false;
            }
            self.jitter *= 100.0;
            l = self.gram(&self.theta);
        }
        let mut alpha = self.y.clone();
        forward(&l, n, &mut alpha);
        backward(&l, n, &mut alpha);
        self.l = l;
        self.alpha = alpha;
        true
    }

    /// Mean and standard deviation at `x` (standardized units).
    pub fn predict(&self, x: &[f64]) -> (f64, f64) {
        let n = self.n;
        let d = self.d();
        let sf2 = self.theta[d].exp();
        let inv_l: Vec<f64> = self.theta[..d].iter().map(|t| (-t).exp()).collect();
        let mut k = vec![0.0; n];
        for (i, xi) in self.x.iter().enumerate() {
            let mut r2 = 0.0;
            for a in 0..d {
                let z = (xi[a] - x[a]) * inv_l[a];
                r2 += z * z;
            }
            k[i] = sf2 * self.kernel.eval(r2).0;
        }
        let mean = dot(&k, &self.alpha);
        forward(&self.l, n, &mut k);
        let var = (sf2 - dot(&k, &k)).max(1e-12);
        (mean, var.sqrt())
    }

    /// The best standardized target so far (of the results, not the pending points).
    pub fn best(&self) -> f64 {
        self.y[..self.n_real]
            .iter()
            .cloned()
            .fold(f64::INFINITY, f64::min)
    }

    /// The acquisition at `x` (to maximize).
    pub fn acquisition(&self, a: Acquisition, x: &[f64]) -> f64 {
        let (mu, sd) = self.predict(x);
        let best = self.best();
        match a {
            Acquisition::Ucb { kappa } => -(mu - kappa * sd),
            Acquisition::Ei { xi } => log_ei((best - mu - xi) / sd) + sd.ln(),
            Acquisition::Poi { xi } => super::tpe_phi((best - mu - xi) / sd),
        }
    }
}

impl Gp {
    /// The acquisition at `x` and its gradient.
    pub fn acquisition_grad(&self, a: Acquisition, x: &[f64]) -> (f64, Vec<f64>) {
        let n = self.n;
        let d = self.d();
        let sf2 = self.theta[d].exp();
        let inv_l2: Vec<f64> = self.theta[..d].iter().map(|t| (-2.0 * t).exp()).collect();
        let mut k = vec![0.0; n];
        let mut f = vec![0.0; n];
        for (i, xi) in self.x.iter().enumerate() {
            let mut r2 = 0.0;
            for j in 0..d {
                let z = xi[j] - x[j];
                r2 += z * z * inv_l2[j];
            }
            let (kv, fv) = self.kernel.eval(r2);
            k[i] = sf2 * kv;
            f[i] = fv;
        }
        let mean = dot(&k, &self.alpha);
        let mut w = k.clone();
        forward(&self.l, n, &mut w);
        let var = (sf2 - dot(&w, &w)).max(1e-12);
        let sd = var.sqrt();
        backward(&self.l, n, &mut w); // K^-1 k
        // d k_i / d x_j = -sf2 f_i (x_j - X_ij) / l_j^2
        let mut dmu = vec![0.0; d];
        let mut dsd = vec![0.0; d];
        for (i, xi) in self.x.iter().enumerate() {
            let c = -sf2 * f[i];
            for j in 0..d {
                let dk = c * (x[j] - xi[j]) * inv_l2[j];
                dmu[j] += self.alpha[i] * dk;
                dsd[j] += -2.0 * w[i] * dk;
            }
        }
        if var <= 1e-12 {
            dsd.iter_mut().for_each(|v| *v = 0.0);
        } else {
            dsd.iter_mut().for_each(|v| *v /= 2.0 * sd);
        }
        let best = self.best();
        match a {
            Acquisition::Ucb { kappa } => (
                -(mean - kappa * sd),
                (0..d).map(|j| -(dmu[j] - kappa * dsd[j])).collect(),
            ),
            Acquisition::Ei { xi } => {
                let z = (best - mean - xi) / sd;
                let dlog_h = if z > -6.0 {
                    let h = (z * super::tpe_phi(z)
                        + (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt())
                    .max(1e-300);
                    super::tpe_phi(z) / h
                } else {
                    -z - 2.0 / z
                };
                let v = log_ei(z) + sd.ln();
                let g = (0..d)
                    .map(|j| {
                        let dz = (-dmu[j] - z * dsd[j]) / sd;
                        dsd[j] / sd + dlog_h * dz
                    })
                    .collect();
                (v, g)
            }
            Acquisition::Poi { xi } => {
                let z = (best - mean - xi) / sd;
                let pdf = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
                (
                    super::tpe_phi(z),
                    (0..d).map(|j| pdf * (-dmu[j] - z * dsd[j]) / sd).collect(),
                )
            }
        }
    }
}

/// log((z Φ(z) + φ(z))), stable for very negative z.
fn log_ei(z: f64) -> f64 {
    if z > -6.0 {
        let h = z * super::tpe_phi(z) + (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
        h.max(1e-300).ln()
    } else {
        -0.5 * z * z - 0.5 * LN_2PI - 2.0 * (-z).ln()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    // Four lanes: lets the compiler vectorize the sum.
    let mut acc = [0.0f64; 4];
    let chunks = a.len() / 4;
    for c in 0..chunks {
        for j in 0..4 {
            acc[j] += a[c * 4 + j] * b[c * 4 + j];
        }
    }
    let mut s = acc[0] + acc[1] + acc[2] + acc[3];
    for i in chunks * 4..a.len().min(b.len()) {
        s += a[i] * b[i];
    }
    s
}

/// The point of the unit cube maximizing the acquisition: random candidates and ones near
/// the best points so far, the most promising refined by projected gradient ascent.
/// How hard the acquisition is maximized.
#[derive(Clone, Debug)]
pub struct AcqSearch {
    /// Uniform random candidates.
    pub random: usize,
    /// Candidates around each of the 5 best points, per scale.
    pub near: usize,
    pub scales: Vec<f64>,
    /// The best candidates refined by gradient ascent, and its steps.
    pub starts: usize,
    pub iters: usize,
}

impl Default for AcqSearch {
    fn default() -> Self {
        AcqSearch {
            random: 64,
            near: 8,
            scales: vec![0.0003, 0.002, 0.01, 0.05, 0.15],
            starts: 1,
            iters: 40,
        }
    }
}

pub fn maximize(gp: &Gp, a: Acquisition, rng: &mut Rng, d: usize) -> Vec<f64> {
    maximize_with(gp, a, rng, d, &AcqSearch::default())
}

pub fn maximize_with(
    gp: &Gp,
    a: Acquisition,
    rng: &mut Rng,
    d: usize,
    how: &AcqSearch,
) -> Vec<f64> {
    let mut cands: Vec<Vec<f64>> = (0..how.random)
        .map(|_| (0..d).map(|_| rng.f64()).collect())
        .collect();
    let mut best_obs: Vec<usize> = (0..gp.n).collect();
    best_obs.sort_by(|i, j| gp.y[*i].total_cmp(&gp.y[*j]));
    for &i in best_obs.iter().take(5) {
        cands.push(gp.x[i].clone());
        for &s in &how.scales {
            for _ in 0..how.near {
                cands.push(
                    gp.x[i]
                        .iter()
                        .map(|v| (v + s * rng.normal()).clamp(0.0, 1.0))
                        .collect(),
                );
            }
        }
    }
    let mut scored: Vec<(f64, Vec<f64>)> = cands
        .into_iter()
        .map(|c| (gp.acquisition(a, &c), c))
        .collect();
    scored.sort_by(|p, q| q.0.total_cmp(&p.0));
    // The evaluated and pending points: a proposal must keep away from them.
    scored.retain(|(_, c)| !too_close(c, &gp.x));
    let mut refined = Vec::new();
    for (_, x0) in scored.iter().take(how.starts.max(1)).cloned() {
        let mut x = x0;
        let (mut v, mut g) = gp.acquisition_grad(a, &x);
        let mut step = 0.05;
        for _ in 0..how.iters {
            // The gradient projected on the box: blocked components do not count.
            let pg: Vec<f64> = g
                .iter()
                .zip(&x)
                .map(|(gi, xi)| {
                    if (*xi <= 0.0 && *gi < 0.0) || (*xi >= 1.0 && *gi > 0.0) {
                        0.0
                    } else {
                        *gi
                    }
                })
                .collect();
            let norm = dot(&pg, &pg).sqrt();
            if norm < 1e-12 {
                break;
            }
            let cand: Vec<f64> = x
                .iter()
                .zip(&pg)
                .map(|(xi, gi)| (xi + step * gi / norm).clamp(0.0, 1.0))
                .collect();
            let (vc, gc) = gp.acquisition_grad(a, &cand);
            if vc > v {
                x = cand;
                v = vc;
                g = gc;
                step *= 1.5;
            } else {
                step *= 0.35;
                if step < 1e-6 {
                    break;
                }
            }
        }
        refined.push((v, x));
    }
    // The best refined candidate that kept away from the others, else the best candidate;
    // with none (every candidate on an evaluated point), a random point.
    refined.retain(|(_, c)| !too_close(c, &gp.x));
    refined
        .into_iter()
        .chain(scored.into_iter().take(1))
        .max_by(|p, q| p.0.total_cmp(&q.0))
        .map(|b| b.1)
        .unwrap_or_else(|| (0..d).map(|_| rng.f64()).collect())
}

/// Bayesian optimization over a search space: `startup` random trials, then the process's
/// proposals. Trials still running are the kriging believer's (see the module's docs), so
/// concurrent proposals spread out. Minimizes. Proposals are made in trial order and depend only
/// on the results given and the pending points: the caller decides which (see
/// [`crate::scheduler::tuner::Model`]).
pub struct BayesOpt {
    /// A full hyperparameter fit every this many trials (a couple of steps in between).
    pub refit_every: usize,
    /// L-BFGS steps of a full fit.
    pub fit_iterations: usize,
    /// Random restarts of a full fit, besides the warm start and the prior's mean
    /// (`gaussianProcess.numRestartsOptimizer`).
    pub restarts: usize,
    /// The prior mean of the length scales, on the unit cube (`gaussianProcess.lengthScale`,
    /// divided by the range of the dimensions).
    pub length_scale: f64,
    /// Every this many trials, the model's own minimum near the best point (0: never).
    pub exploit_every: usize,
    pub search: AcqSearch,
    pub kernel: Kernel,
    pub acquisition: Acquisition,
    /// Trials proposed at random before the model is used (`numInitialRuns`).
    pub startup: usize,
    space: super::space::Space,
    rng: Rng,
    xs: Vec<Vec<f64>>,
    ys: Vec<f64>,
    theta: Option<Vec<f64>>,
    /// The exploitation proposals (unit cube): one at a time.
    exploits: Vec<Vec<f64>>,
}

impl BayesOpt {
    pub fn new(space: super::space::Space, rng: Rng) -> BayesOpt {
        BayesOpt {
            refit_every: 8,
            fit_iterations: 10,
            restarts: 0,
            length_scale: LENGTH_SCALE,
            exploit_every: 3,
            search: AcqSearch::default(),
            kernel: Kernel::Matern52,
            acquisition: Acquisition::Ei { xi: 0.0 },
            startup: 10,
            space,
            rng,
            xs: Vec::new(),
            ys: Vec::new(),
            theta: None,
            exploits: Vec::new(),
        }
    }

    /// A space point (category indexes) on the unit cube, and back.
    fn point_to_unit(&self, x: &[f64]) -> Vec<f64> {
        x.iter()
            .zip(&self.space.dims)
            .map(|(v, d)| match d.categories() {
                Some(k) => (v + 0.5) / k as f64,
                None => *v,
            })
            .collect()
    }

    fn unit_to_point(&self, u: &[f64]) -> Vec<f64> {
        u.iter()
            .zip(&self.space.dims)
            .map(|(v, d)| match d.categories() {
                Some(k) => ((v * k as f64).floor()).clamp(0.0, k as f64 - 1.0),
                None => *v,
            })
            .collect()
    }

    pub fn observe(&mut self, x: &[f64], y: f64) {
        if y.is_finite() {
            let u = self.point_to_unit(x);
            self.xs.push(u);
            self.ys.push(y);
        }
    }

    /// The point for trial `index` (in the space's terms: category indexes for categories),
    /// with `pending` (the same terms) still being evaluated.
    pub fn suggest(&mut self, index: usize, pending: &[Vec<f64>]) -> Vec<f64> {
        let n = self.xs.len();
        if index < self.startup || n < 2 {
            return self.space.random(&mut self.rng);
        }
        let d = self.space.dims.len();
        // A full fit every few trials (less often as the fits grow dearer); in between, the
        // last fit's hyperparameters on the new data. Restarts: the prior's mean when the warm
        // start sits on a bound (a degenerate fit), and `numRestartsOptimizer` random ones.
        let every = self.refit_every.max(1) * if n >= 50 { 2 } else { 1 };
        let full = n < 20 || n.is_multiple_of(every);
        let (iterations, restarts) = if full {
            let r = Gp::restarts(d, self.length_scale, self.restarts, &mut self.rng);
            let degenerate = self.theta.as_ref().is_some_and(|t| on_a_bound(t));
            let skip = if degenerate { 0 } else { 1 };
            (self.fit_iterations, r[skip..].to_vec())
        } else {
            (0, Vec::new())
        };
        let Some(gp) = Gp::fit_from(
            self.kernel,
            &self.xs,
            &self.ys,
            self.theta.as_deref(),
            &restarts,
            iterations,
            self.length_scale,
        ) else {
            return self.space.random(&mut self.rng);
        };
        self.theta = Some(gp.theta.clone());
        let pending: Vec<Vec<f64>> = pending.iter().map(|p| self.point_to_unit(p)).collect();
        let believed = gp.with_pending(&pending);
        let model = believed.as_ref().unwrap_or(&gp);
        // Every few trials, once there is a model worth trusting, pure exploitation: the
        // model's minimum near the best point (deterministic objectives reward it). Under
        // concurrency up to half the pending trials may be such proposals (the model is told
        // of the pending ones, so each lands elsewhere near the best); more would crowd it.
        let pending_exploits = pending
            .iter()
            .filter(|p| too_close(p, &self.exploits))
            .count();
        let exploit = self.exploit_every > 0
            && n >= 2 * self.startup.max(1)
            && index % self.exploit_every == self.exploit_every - 1
            && pending_exploits < pending.len().div_ceil(2).max(1);
        let u = if exploit {
            // The same model, interpolating: its mean then resolves the small differences
            // near the best point that the fitted noise blurs.
            let mut th = gp.theta.clone();
            let last = th.len() - 1;
            th[last] = 1e-10f64.ln();
            let sharp = Gp::fit_from(
                self.kernel,
                &self.xs,
                &self.ys,
                Some(&th),
                &[],
                0,
                self.length_scale,
            );
            let sharp = sharp.map(|s| s.with_pending(&pending).unwrap_or(s));
            let u = maximize_with(
                sharp.as_ref().unwrap_or(model),
                Acquisition::Ucb { kappa: 0.0 },
                &mut self.rng,
                d,
                &AcqSearch {
                    random: 0,
                    near: 12,
                    scales: vec![0.0003, 0.002, 0.01],
                    starts: 1,
                    iters: 50,
                },
            );
            let p = self.unit_to_point(&u);
            self.exploits.push(self.point_to_unit(&p));
            u
        } else {
            maximize_with(model, self.acquisition, &mut self.rng, d, &self.search)
        };
        self.unit_to_point(&u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_general_matern_agrees_with_the_closed_forms_and_its_gradient() {
        for (x, want) in [
            (0.5, std::f64::consts::PI.sqrt().ln()),
            (1.0, 0.0),
            (5.0, 24f64.ln()),
            (0.1, 9.513_507_698_668_732f64.ln()),
        ] {
            assert!((ln_gamma(x) - want).abs() < 1e-12, "ln_gamma({x})");
        }
        for (nu, closed) in [
            (0.5, Kernel::Matern12),
            (1.5, Kernel::Matern32),
            (2.5, Kernel::Matern52),
        ] {
            for r2 in [1e-8, 1e-4, 0.01, 0.3, 1.0, 4.0, 25.0, 400.0] {
                let (k, f) = matern_general(nu, r2);
                let (k0, f0) = closed.eval(r2);
                assert!(
                    (k - k0).abs() < 1e-12 * k0.max(1e-300) + 1e-15,
                    "nu {nu} r2 {r2}: k {k} vs {k0}"
                );
                assert!(
                    (f - f0).abs() < 1e-9 * f0.abs() + 1e-15,
                    "nu {nu} r2 {r2}: f {f} vs {f0}"
                );
            }
        }
        // Any other smoothness: f = -2 dk/d(r2), checked by central differences, and k falls
        // from 1 between the neighbouring closed forms.
        for nu in [0.3, 1.9, 3.7] {
            for r2 in [0.01, 0.5, 2.0, 9.0] {
                let h = 1e-6 * r2;
                let dk = (matern_general(nu, r2 + h).0 - matern_general(nu, r2 - h).0) / (2.0 * h);
                let f = matern_general(nu, r2).1;
                assert!(
                    (f + 2.0 * dk).abs() < 1e-6 * f.abs().max(1e-12),
                    "nu {nu} r2 {r2}: {f} vs {}",
                    -2.0 * dk
                );
            }
            assert_eq!(matern_general(nu, 0.0).0, 1.0);
        }
        let (lo, mid, hi) = (
            Kernel::Matern32.eval(1.0).0,
            matern_general(1.9, 1.0).0,
            Kernel::Matern52.eval(1.0).0,
        );
        assert!(lo < mid && mid < hi, "{lo} {mid} {hi}");
    }

    #[test]
    fn it_interpolates_and_is_unsure_away_from_data() {
        let x: Vec<Vec<f64>> = (0..8).map(|i| vec![i as f64 / 7.0]).collect();
        let y: Vec<f64> = x.iter().map(|v| (6.0 * v[0]).sin()).collect();
        let gp = Gp::fit(Kernel::Matern52, &x, &y, None, 40).unwrap();
        let (m, s) = gp.predict(&[3.0 / 7.0]);
        let target = (y[3] - y.iter().sum::<f64>() / 8.0) / 1.0;
        assert!(s < 0.2, "{s}");
        assert!(m.is_finite() && target.is_finite());
        let (_, far) = gp.predict(&[0.5 / 7.0]);
        assert!(far > s, "{far} vs {s}");
    }

    #[test]
    fn the_acquisition_gradient_matches_finite_differences() {
        let mut rng = Rng::seeded(4);
        let x: Vec<Vec<f64>> = (0..15)
            .map(|_| vec![rng.f64(), rng.f64(), rng.f64()])
            .collect();
        let y: Vec<f64> = x.iter().map(|v| (3.0 * v[0]).sin() + v[1] * v[2]).collect();
        let gp = Gp::fit(Kernel::Matern52, &x, &y, None, 30).unwrap();
        for a in [
            Acquisition::Ei { xi: 0.01 },
            Acquisition::Ucb { kappa: 2.0 },
            Acquisition::Poi { xi: 0.0 },
        ] {
            let p = vec![0.3, 0.6, 0.45];
            let (v, g) = gp.acquisition_grad(a, &p);
            assert!((v - gp.acquisition(a, &p)).abs() < 1e-9);
            for j in 0..3 {
                let mut pp = p.clone();
                pp[j] += 1e-6;
                let mut pm = p.clone();
                pm[j] -= 1e-6;
                let fd = (gp.acquisition(a, &pp) - gp.acquisition(a, &pm)) / 2e-6;
                assert!(
                    (fd - g[j]).abs() < 1e-4 * (1.0 + fd.abs()),
                    "{a:?} {j}: {fd} vs {}",
                    g[j]
                );
            }
        }
    }

    #[test]
    fn cholesky_solves() {
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        assert!(cholesky(&mut a, 2));
        let mut b = vec![2.0, 1.0];
        forward(&a, 2, &mut b);
        backward(&a, 2, &mut b);
        // [4 2; 2 3] x = [2 1] -> x = [0.5, 0]
        assert!((b[0] - 0.5).abs() < 1e-12 && b[1].abs() < 1e-12);
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let mut rng = Rng::seeded(2);
        let x: Vec<Vec<f64>> = (0..12).map(|_| vec![rng.f64(), rng.f64()]).collect();
        let y: Vec<f64> = x.iter().map(|v| v[0] * v[0] + 3.0 * v[1]).collect();
        for kernel in [Kernel::Matern52, Kernel::Rbf] {
            let gp = Gp::fit(kernel, &x, &y, None, 40).unwrap();
            let theta = vec![-1.0, -0.5, 0.2, -6.0];
            let (_, g) = gp.objective(&theta).unwrap();
            for i in 0..theta.len() {
                let mut tp = theta.clone();
                tp[i] += 1e-6;
                let mut tm = theta.clone();
                tm[i] -= 1e-6;
                let fd = (gp.objective(&tp).unwrap().0 - gp.objective(&tm).unwrap().0) / 2e-6;
                assert!(
                    (fd - g[i]).abs() < 1e-3 * (1.0 + fd.abs()),
                    "{kernel:?} {i}: {fd} vs {}",
                    g[i]
                );
            }
        }
    }

    #[test]
    fn it_finds_a_quadratic_minimum_quickly() {
        let mut rng = Rng::seeded(5);
        let f = |x: &[f64]| (x[0] - 0.3).powi(2) + (x[1] - 0.7).powi(2);
        let mut xs: Vec<Vec<f64>> = (0..5).map(|_| vec![rng.f64(), rng.f64()]).collect();
        let mut ys: Vec<f64> = xs.iter().map(|x| f(x)).collect();
        let mut theta = None;
        for _ in 0..20 {
            let gp = Gp::fit(Kernel::Matern52, &xs, &ys, theta.as_deref(), 40).unwrap();
            theta = Some(gp.theta.clone());
            let x = maximize(&gp, Acquisition::Ei { xi: 0.0 }, &mut rng, 2);
            ys.push(f(&x));
            xs.push(x);
        }
        let best = ys.iter().cloned().fold(f64::INFINITY, f64::min);
        assert!(best < 1e-3, "{best}");
    }
}
