//! Nothing on our per-step path allocates once a world runs: the actions, actuators and
//! sensors stages are measured with a counting allocator (per thread, so parallel tests do
//! not interfere). Rapier's own step is outside this claim, and so is rapier's change
//! tracking: moving a kinematic body (an actor) records it in rapier's modified-body list,
//! which the physics step takes with `mem::take`, so its first push after each step
//! allocates once.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use rivet_sim::{PackagePaths, Scene, World, WorldOptions};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts on the side.
#[allow(unsafe_code, reason = "a global allocator is unsafe by definition")]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn our_stages_do_not_allocate_per_step() {
    let _cpu = crate::not_real_time();
    // (scene, kinematic actors whose move costs rapier one allocation per step)
    for (name, per_step) in [("brick_wall.toml", 0), ("site_patrol.toml", 1)] {
        let scene = Arc::new(
            Scene::load(
                &crate::repo().join("scenes").join(name),
                &PackagePaths::default(),
            )
            .unwrap(),
        );
        let mut world = World::new(scene, WorldOptions::default()).unwrap();
        for _ in 0..10 {
            world.step();
        }
        let mut ours = 0;
        for _ in 0..200 {
            let before = allocations();
            world.stage_actions();
            world.stage_actuators();
            ours += allocations() - before;
            world.stage_physics();
            let before = allocations();
            world.stage_sensors();
            let _ = world.contact_pair_count();
            ours += allocations() - before;
        }
        assert!(
            ours <= 200 * per_step,
            "{name}: our stages allocated {ours} times in 200 steps"
        );
    }
}

#[test]
fn task_steps_resets_and_policy_inference_do_not_allocate() {
    let _cpu = crate::not_real_time();
    use rivet_policies::{BoxSpace, Policy, Ppo, PpoConfig};
    use rivet_sim::env::TaskRunner;
    for name in ["cartpole.toml", "reach.toml", "brick_pick.toml"] {
        let scene = Arc::new(
            Scene::load(
                &crate::repo().join("scenes").join(name),
                &PackagePaths::default(),
            )
            .unwrap(),
        );
        let task = scene.task.clone().unwrap();
        let mut world = World::new(scene.clone(), WorldOptions::default()).unwrap();
        let mut runner = TaskRunner::new(&world).unwrap();
        let mut obs = vec![0.0; runner.observation_dim()];
        let mut fin = obs.clone();
        let mut action = vec![0.0; runner.action_dim()];
        let space = |l: &rivet_sim::env::SpaceLayout| {
            BoxSpace::new(l.names.clone(), l.low.clone(), l.high.clone()).unwrap()
        };
        let ppo = Ppo::new(
            &space(&task.observation_space),
            &space(&task.action_space),
            PpoConfig::default(),
        )
        .unwrap();
        let mut policy = ppo.policy().unwrap();
        runner.reset(&mut world, &mut obs);
        // Warm up (rapier sizes its buffers during the first steps).
        for _ in 0..5 {
            policy.act(&obs, &mut action);
            runner.step_auto(&mut world, &action, &mut obs, &mut fin);
        }
        let (mut ours, mut in_resets, mut resets) = (0, 0, 0);
        for step in 0..40 {
            let before = allocations();
            policy.act(&obs, &mut action);
            if runner.task().expert.is_some() && step % 2 == 0 {
                runner.expert_action(&world, &mut action);
            }
            runner.apply_action(&world, &action);
            ours += allocations() - before;
            for _ in 0..runner.task().substeps {
                let before = allocations();
                runner.before_physics(&mut world);
                ours += allocations() - before;
                // Rapier's step is outside the claim (see the module docs).
                world.step();
            }
            let before = allocations();
            let outcome = runner.finish_step(&world, &mut obs);
            ours += allocations() - before;
            if outcome.done() || step % 10 == 9 {
                let before = allocations();
                runner.reset(&mut world, &mut obs);
                in_resets += allocations() - before;
                resets += 1;
            }
        }
        assert_eq!(ours, 0, "{name}: the task runner or the policy allocated");
        // A reset moves the robot's link bodies (and placed props) to their new start: rapier
        // records each in its modified-body list, which the step empties with `mem::take`, so
        // the list regrows from nothing (capacity 4, 8, 16: three allocations for the arm's
        // nine bodies). Our own reset code allocates nothing; the bound allows rapier's
        // regrowth only.
        assert!(
            in_resets <= 3 * resets,
            "{name}: {in_resets} allocations in {resets} resets"
        );
    }
}
