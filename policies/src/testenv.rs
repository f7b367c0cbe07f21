//! A small pure-Rust [`VecEnv`] for the learning tests: a 2-D point that must reach a random
//! goal.
//!
//! State: position and goal in `[-0.8, 0.8]²`. Action: velocity in `[-0.5, 0.5]` m/s per axis
//! (not unit bounds, to exercise action scaling), integrated over `DT_SECS = 0.2` (at most 0.1 m
//! per axis per step). Observation: `[x, y, goal_x, goal_y, 1.0]`; the last dimension is a
//! constant with zero-width bounds (normalisation must stay finite). Reward: ten times the
//! decrease in distance, plus 1 on success. Success: within 0.05 m of the goal (terminates).
//! Time limit: 40 steps (truncates).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::env::{StepResult, VecEnv};
use crate::space::BoxSpace;

/// Integration step, seconds.
pub(crate) const DT_SECS: f32 = 0.2;
/// Success radius, metres.
pub(crate) const GOAL_RADIUS: f32 = 0.05;
/// Episode length limit, steps.
pub(crate) const MAX_STEPS: u32 = 40;
/// Observation dimension.
pub(crate) const OBS_DIM: usize = 5;

/// N point-reach worlds.
pub(crate) struct PointReach {
    pos: Vec<[f32; 2]>,
    goal: Vec<[f32; 2]>,
    steps: Vec<u32>,
    rng: ChaCha8Rng,
    obs_space: BoxSpace,
    act_space: BoxSpace,
}

impl PointReach {
    pub(crate) fn new(num_envs: usize) -> Self {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Self {
            pos: vec![[0.0; 2]; num_envs],
            goal: vec![[0.0; 2]; num_envs],
            steps: vec![0; num_envs],
            rng: ChaCha8Rng::seed_from_u64(0),
            obs_space: BoxSpace::new(
                names(&["x", "y", "goal_x", "goal_y", "bias"]),
                vec![-1.0, -1.0, -1.0, -1.0, 1.0],
                vec![1.0, 1.0, 1.0, 1.0, 1.0],
            )
            .unwrap(),
            act_space: BoxSpace::new(names(&["vx", "vy"]), vec![-0.5, -0.5], vec![0.5, 0.5])
                .unwrap(),
        }
    }

    fn sample_episode(&mut self, i: usize) {
        let mut p = || self.rng.random_range(-0.8f32..0.8);
        self.pos[i] = [p(), p()];
        self.goal[i] = [p(), p()];
        self.steps[i] = 0;
    }

    fn write_obs(&self, i: usize, out: &mut [f32]) {
        out.copy_from_slice(&[
            self.pos[i][0],
            self.pos[i][1],
            self.goal[i][0],
            self.goal[i][1],
            1.0,
        ]);
    }

    fn distance(&self, i: usize) -> f32 {
        let dx = self.goal[i][0] - self.pos[i][0];
        let dy = self.goal[i][1] - self.pos[i][1];
        (dx * dx + dy * dy).sqrt()
    }

    /// The scripted expert: full speed towards the goal, proportional when close.
    pub(crate) fn expert_action(obs: &[f32], action: &mut [f32]) {
        for a in 0..2 {
            action[a] = ((obs[2 + a] - obs[a]) / DT_SECS).clamp(-0.5, 0.5);
        }
    }
}

impl VecEnv for PointReach {
    fn num_envs(&self) -> usize {
        self.pos.len()
    }

    fn observation_space(&self) -> &BoxSpace {
        &self.obs_space
    }

    fn action_space(&self) -> &BoxSpace {
        &self.act_space
    }

    fn reset(&mut self, seed: u64, observations: &mut [f32]) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        for i in 0..self.num_envs() {
            self.sample_episode(i);
            self.write_obs(i, &mut observations[i * OBS_DIM..(i + 1) * OBS_DIM]);
        }
    }

    fn step(&mut self, actions: &[f32], out: &mut StepResult) {
        for i in 0..self.num_envs() {
            let before = self.distance(i);
            for a in 0..2 {
                let v = actions[i * 2 + a].clamp(-0.5, 0.5);
                self.pos[i][a] = (self.pos[i][a] + v * DT_SECS).clamp(-1.0, 1.0);
            }
            self.steps[i] += 1;
            let after = self.distance(i);
            let success = after < GOAL_RADIUS;
            out.rewards[i] = 10.0 * (before - after) - 0.1 + if success { 2.0 } else { 0.0 };
            out.terminated[i] = success;
            out.truncated[i] = !success && self.steps[i] >= MAX_STEPS;
            out.success[i] = success;
            let row = i * OBS_DIM..(i + 1) * OBS_DIM;
            if success || out.truncated[i] {
                self.write_obs(i, &mut out.final_observations[row.clone()]);
                self.sample_episode(i);
            }
            self.write_obs(i, &mut out.observations[row]);
        }
    }
}

/// Runs `episodes` episodes with `act` (one observation -> one action) on `num_envs` worlds
/// and returns the success rate.
pub(crate) fn success_rate(
    num_envs: usize,
    episodes: usize,
    seed: u64,
    mut act: impl FnMut(&[f32], &mut [f32]),
) -> f32 {
    let mut env = PointReach::new(num_envs);
    let mut obs = vec![0.0; num_envs * OBS_DIM];
    env.reset(seed, &mut obs);
    let mut out = StepResult::with_capacity(num_envs, OBS_DIM);
    let mut actions = vec![0.0; num_envs * 2];
    let (mut done, mut successes) = (0, 0);
    while done < episodes {
        for i in 0..num_envs {
            act(
                &obs[i * OBS_DIM..(i + 1) * OBS_DIM],
                &mut actions[i * 2..(i + 1) * 2],
            );
        }
        env.step(&actions, &mut out);
        for i in 0..num_envs {
            if out.terminated[i] || out.truncated[i] {
                done += 1;
                successes += usize::from(out.success[i]);
            }
        }
        obs.copy_from_slice(&out.observations);
    }
    successes as f32 / done as f32
}

#[test]
fn the_expert_succeeds_and_random_actions_do_not() {
    let expert = success_rate(8, 200, 1, PointReach::expert_action);
    assert!(expert > 0.99, "expert success {expert}");
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let random = success_rate(8, 200, 1, |_, a| {
        a.iter_mut().for_each(|x| *x = rng.random_range(-0.5..0.5));
    });
    assert!(random < 0.15, "random success {random}");
}
