//! Adam with global gradient-norm clipping, in plain Rust over the network's parameters (in
//! their fixed order, so updates are deterministic).

use candle_core::Tensor;
use candle_core::backprop::GradStore;

use crate::error::LearnError;
use crate::nn::Param;

/// Adam (Kingma & Ba) with PyTorch's bias correction, no weight decay.
#[derive(Clone, Debug)]
pub(crate) struct Adam {
    beta1: f64,
    beta2: f64,
    eps: f64,
    steps: i32,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl Adam {
    /// State for `params`, with betas (0.9, 0.999) and the given epsilon.
    pub(crate) fn new(params: &[Param], eps: f64) -> Self {
        let zeros: Vec<Vec<f32>> = params
            .iter()
            .map(|p| vec![0.0; p.var.elem_count()])
            .collect();
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps,
            steps: 0,
            m: zeros.clone(),
            v: zeros,
        }
    }

    /// One update from `grads` at learning rate `lr`. Gradients are first rescaled so their
    /// global L2 norm is at most `max_grad_norm` (if > 0). Returns the norm before clipping;
    /// `update` labels a non-finite gradient in the error.
    pub(crate) fn step(
        &mut self,
        params: &[Param],
        grads: &GradStore,
        lr: f64,
        max_grad_norm: f32,
        update: u32,
    ) -> Result<f32, LearnError> {
        let mut all = Vec::with_capacity(params.len());
        let mut sq = 0.0f64;
        for p in params {
            let g = match grads.get(p.var.as_tensor()) {
                Some(g) => g.flatten_all()?.to_vec1::<f32>()?,
                None => vec![0.0; p.var.elem_count()],
            };
            sq += g.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>();
            all.push(g);
        }
        let norm = sq.sqrt();
        if !norm.is_finite() {
            return Err(LearnError::Diverged {
                update,
                what: "gradient norm".into(),
            });
        }
        let scale = if max_grad_norm > 0.0 && norm > f64::from(max_grad_norm) {
            f64::from(max_grad_norm) / (norm + 1e-6)
        } else {
            1.0
        };
        self.steps += 1;
        let c1 = 1.0 - self.beta1.powi(self.steps);
        let c2 = 1.0 - self.beta2.powi(self.steps);
        for (i, (p, g)) in params.iter().zip(all).enumerate() {
            let mut w = p.var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let (m, v) = (&mut self.m[i], &mut self.v[i]);
            for j in 0..w.len() {
                let gj = f64::from(g[j]) * scale;
                let mj = self.beta1 * f64::from(m[j]) + (1.0 - self.beta1) * gj;
                let vj = self.beta2 * f64::from(v[j]) + (1.0 - self.beta2) * gj * gj;
                m[j] = mj as f32;
                v[j] = vj as f32;
                let step = lr * (mj / c1) / ((vj / c2).sqrt() + self.eps);
                w[j] = (f64::from(w[j]) - step) as f32;
            }
            p.var
                .set(&Tensor::from_vec(w, p.var.shape(), p.var.device())?)?;
        }
        Ok(norm as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn minimises_a_quadratic_and_clips() {
        let x = Param {
            name: "x".into(),
            var: Var::from_slice(&[3.0f32, -2.0], 2, &Device::Cpu).unwrap(),
        };
        let params = [x];
        let mut adam = Adam::new(&params, 1e-8);
        let mut first_norm = 0.0;
        for i in 0..500 {
            let loss = params[0].var.as_tensor().sqr().unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            let norm = adam.step(&params, &grads, 0.05, 1.0, 1).unwrap();
            if i == 0 {
                first_norm = norm;
            }
        }
        // Gradient 2x at (3, -2): norm 2*sqrt(13), reported before clipping.
        assert!((first_norm - 2.0 * 13f32.sqrt()).abs() < 1e-5);
        let x = params[0].var.as_tensor().to_vec1::<f32>().unwrap();
        assert!(x.iter().all(|v| v.abs() < 1e-2), "{x:?}");
    }
}
