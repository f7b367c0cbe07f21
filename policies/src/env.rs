//! The vectorised environment interface (Gymnasium's `VectorEnv` in spirit) and the policy
//! interface a deployed checkpoint exposes.

use crate::space::BoxSpace;

/// Per-world results of one vectorised step, written into buffers the caller owns (no
/// allocation per step).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepResult {
    /// Observations, `num_envs × observation_dim`, row-major. After an episode ends, the row
    /// holds the first observation of the next episode (auto-reset).
    pub observations: Vec<f32>,
    /// Reward of the step per world.
    pub rewards: Vec<f32>,
    /// The episode reached a terminal state (success or failure).
    pub terminated: Vec<bool>,
    /// The episode was cut by its time limit.
    pub truncated: Vec<bool>,
    /// Info: on the step an episode ends (terminated or truncated), whether the task's success
    /// criterion was met; `false` otherwise.
    pub success: Vec<bool>,
    /// Info: on the step an episode ends, the last observation of that episode (before the
    /// auto-reset), `num_envs × observation_dim`, for bootstrapping truncated episodes. Rows of
    /// worlds whose episode did not end are unspecified.
    pub final_observations: Vec<f32>,
}

impl StepResult {
    /// Buffers sized for `num_envs` worlds with `observation_dim` observations each.
    pub fn with_capacity(num_envs: usize, observation_dim: usize) -> Self {
        Self {
            observations: vec![0.0; num_envs * observation_dim],
            rewards: vec![0.0; num_envs],
            terminated: vec![false; num_envs],
            truncated: vec![false; num_envs],
            success: vec![false; num_envs],
            final_observations: vec![0.0; num_envs * observation_dim],
        }
    }
}

/// N worlds stepped together. Implementations step worlds in parallel, reset ended worlds
/// automatically, and give identical rollouts for the same seed and thread count.
pub trait VecEnv {
    /// Number of worlds.
    fn num_envs(&self) -> usize;
    /// The observation space (names and bounds per dimension).
    fn observation_space(&self) -> &BoxSpace;
    /// The action space.
    fn action_space(&self) -> &BoxSpace;
    /// Resets every world from `seed` and writes the first observations
    /// (`num_envs × observation_dim`).
    fn reset(&mut self, seed: u64, observations: &mut [f32]);
    /// Applies `actions` (`num_envs × action_dim`, row-major) and steps every world once.
    fn step(&mut self, actions: &[f32], out: &mut StepResult);
}

/// A policy ready to act: what the hardware bridge and `rivet run --policy` see of a loaded
/// checkpoint.
pub trait Policy: Send {
    /// The observation layout the policy was trained on.
    fn observation_space(&self) -> &BoxSpace;
    /// The action layout it produces.
    fn action_space(&self) -> &BoxSpace;
    /// Computes the action for one observation (deterministic: the mean action).
    fn act(&mut self, observation: &[f32], action: &mut [f32]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-dimensional point mass that must reach the origin: the smallest real VecEnv,
    /// checking the interface's auto-reset and buffer contract.
    struct PointMass {
        x: Vec<f32>,
        t: Vec<u32>,
        obs: BoxSpace,
        act: BoxSpace,
    }

    impl VecEnv for PointMass {
        fn num_envs(&self) -> usize {
            self.x.len()
        }
        fn observation_space(&self) -> &BoxSpace {
            &self.obs
        }
        fn action_space(&self) -> &BoxSpace {
            &self.act
        }
        fn reset(&mut self, seed: u64, observations: &mut [f32]) {
            for (i, x) in self.x.iter_mut().enumerate() {
                *x = 1.0 + ((seed as usize + i) % 3) as f32;
            }
            self.t.fill(0);
            observations.copy_from_slice(&self.x);
        }
        fn step(&mut self, actions: &[f32], out: &mut StepResult) {
            for (i, action) in actions.iter().enumerate() {
                self.x[i] += action.clamp(-1.0, 1.0);
                self.t[i] += 1;
                out.rewards[i] = -self.x[i].abs();
                out.terminated[i] = self.x[i].abs() < 0.5;
                out.truncated[i] = !out.terminated[i] && self.t[i] >= 10;
                out.success[i] = out.terminated[i];
                out.final_observations[i] = self.x[i];
                if out.terminated[i] || out.truncated[i] {
                    self.x[i] = 2.0;
                    self.t[i] = 0;
                }
                out.observations[i] = self.x[i];
            }
        }
    }

    #[test]
    fn auto_reset_and_buffers() {
        let mut env = PointMass {
            x: vec![0.0; 2],
            t: vec![0; 2],
            obs: BoxSpace::new(vec!["x".into()], vec![-10.0], vec![10.0]).unwrap(),
            act: BoxSpace::new(vec!["u".into()], vec![-1.0], vec![1.0]).unwrap(),
        };
        let mut obs = vec![0.0; 2];
        env.reset(0, &mut obs);
        assert_eq!(obs, vec![1.0, 2.0]);
        let mut out = StepResult::with_capacity(2, 1);
        env.step(&[-1.0, -1.0], &mut out);
        assert_eq!(out.terminated, vec![true, false]);
        assert_eq!(out.success, vec![true, false]);
        assert_eq!(out.final_observations[0], 0.0);
        // The finished world restarted; the other moved.
        assert_eq!(out.observations, vec![2.0, 1.0]);
    }
}
