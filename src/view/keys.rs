//! The viewer's key bindings: one table from keys to actions, used by the input system and
//! printed in the on-screen help (and the README's table).

use bevy::input::keyboard::KeyCode;

/// Something the viewer does on a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Pause or resume the simulation.
    TogglePause,
    /// Advance one physics step (while paused).
    Step,
    /// Rebuild the world from the scene (and the policy's first episode).
    Reset,
    /// Double the simulation speed (relative to real time).
    Faster,
    /// Halve the simulation speed.
    Slower,
    /// Put the camera back to its first view.
    ResetCamera,
    /// Show or hide the robots' link frames.
    ToggleFrames,
    /// Show or hide contact points and forces.
    ToggleContacts,
    /// Show or hide lidar points.
    ToggleLidar,
    /// Show or hide the camera sensors' images (picture in picture).
    ToggleCameras,
    /// Show or hide the actors' paths.
    TogglePaths,
    /// Show or hide the panel.
    TogglePanel,
    /// Take over the robot for teleoperation (its script or policy stops; a reset gives it
    /// back), or stop jogging (the robot holds its last command).
    ToggleTeleop,
    /// Switch teleoperation between joint jog and Cartesian tool jog.
    ToggleJogMode,
    /// Select the previous joint.
    PreviousJoint,
    /// Select the next joint.
    NextJoint,
    /// Jog the selected joint in its negative direction (held).
    JogJointMinus,
    /// Jog the selected joint in its positive direction (held).
    JogJointPlus,
    /// Jog the tool along the robot base's +x (held).
    JogToolXPlus,
    /// Jog the tool along -x (held).
    JogToolXMinus,
    /// Jog the tool along +y (held).
    JogToolYPlus,
    /// Jog the tool along -y (held).
    JogToolYMinus,
    /// Jog the tool along +z (held).
    JogToolZPlus,
    /// Jog the tool along -z (held).
    JogToolZMinus,
    /// Open or close the gripper.
    ToggleGripper,
    /// Close the viewer.
    Quit,
}

impl Action {
    /// Whether the action repeats every frame while its key is held (jogging), rather than
    /// once per press.
    pub fn is_held(self) -> bool {
        matches!(
            self,
            Self::JogJointMinus
                | Self::JogJointPlus
                | Self::JogToolXPlus
                | Self::JogToolXMinus
                | Self::JogToolYPlus
                | Self::JogToolYMinus
                | Self::JogToolZPlus
                | Self::JogToolZMinus
        )
    }

    /// The tool jog direction in the robot base frame, for the Cartesian jog actions.
    pub fn tool_direction(self) -> Option<[f64; 3]> {
        Some(match self {
            Self::JogToolXPlus => [1.0, 0.0, 0.0],
            Self::JogToolXMinus => [-1.0, 0.0, 0.0],
            Self::JogToolYPlus => [0.0, 1.0, 0.0],
            Self::JogToolYMinus => [0.0, -1.0, 0.0],
            Self::JogToolZPlus => [0.0, 0.0, 1.0],
            Self::JogToolZMinus => [0.0, 0.0, -1.0],
            _ => return None,
        })
    }
}

/// Every binding: key, action, and the key's name as the help shows it.
pub const BINDINGS: &[(KeyCode, Action, &str)] = &[
    (KeyCode::Space, Action::TogglePause, "Space"),
    (KeyCode::Period, Action::Step, "."),
    (KeyCode::KeyR, Action::Reset, "R"),
    (KeyCode::BracketRight, Action::Faster, "]"),
    (KeyCode::BracketLeft, Action::Slower, "["),
    (KeyCode::KeyV, Action::ResetCamera, "V"),
    (KeyCode::KeyF, Action::ToggleFrames, "F"),
    (KeyCode::Digit1, Action::ToggleContacts, "1"),
    (KeyCode::Digit2, Action::ToggleLidar, "2"),
    (KeyCode::Digit3, Action::ToggleCameras, "3"),
    (KeyCode::Digit4, Action::TogglePaths, "4"),
    (KeyCode::KeyH, Action::TogglePanel, "H"),
    (KeyCode::KeyT, Action::ToggleTeleop, "T"),
    (KeyCode::KeyC, Action::ToggleJogMode, "C"),
    (KeyCode::ArrowUp, Action::PreviousJoint, "Up"),
    (KeyCode::ArrowDown, Action::NextJoint, "Down"),
    (KeyCode::ArrowLeft, Action::JogJointMinus, "Left"),
    (KeyCode::ArrowRight, Action::JogJointPlus, "Right"),
    (KeyCode::KeyW, Action::JogToolXPlus, "W"),
    (KeyCode::KeyS, Action::JogToolXMinus, "S"),
    (KeyCode::KeyA, Action::JogToolYPlus, "A"),
    (KeyCode::KeyD, Action::JogToolYMinus, "D"),
    (KeyCode::KeyE, Action::JogToolZPlus, "E"),
    (KeyCode::KeyQ, Action::JogToolZMinus, "Q"),
    (KeyCode::KeyG, Action::ToggleGripper, "G"),
    (KeyCode::Escape, Action::Quit, "Esc"),
];

/// The action bound to `key`, if any.
pub fn action_for(key: KeyCode) -> Option<Action> {
    BINDINGS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, action, _)| *action)
}

/// The help lines for the panel: the keys and what they do.
pub fn help() -> &'static str {
    "Space pause/resume  . step  R reset  [ ] speed  V view\n\
     F frames  1 contacts  2 lidar  3 cameras  4 paths  H panel\n\
     T teleop  C joint/tool jog  Up/Down joint  Left/Right jog\n\
     W/S A/D E/Q tool x y z  G gripper  Esc quit\n\
     mouse: left drag orbit, right drag pan, wheel zoom"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_bound_once_and_lookups_find_it() {
        for (i, (key, action, name)) in BINDINGS.iter().enumerate() {
            assert!(
                BINDINGS[i + 1..].iter().all(|(k, _, _)| k != key),
                "{name} is bound twice"
            );
            assert!(
                BINDINGS[i + 1..].iter().all(|(_, a, _)| a != action),
                "{action:?} has two keys"
            );
            assert_eq!(action_for(*key), Some(*action));
        }
        assert_eq!(action_for(KeyCode::KeyZ), None);
    }

    #[test]
    fn help_names_every_key() {
        let help = help();
        for (_, action, name) in BINDINGS {
            assert!(
                help.contains(name),
                "the help does not show {name} ({action:?})"
            );
        }
    }

    #[test]
    fn jog_actions_repeat_and_tool_jogs_have_opposite_directions() {
        let jogs: Vec<Action> = BINDINGS
            .iter()
            .map(|(_, a, _)| *a)
            .filter(|a| a.tool_direction().is_some())
            .collect();
        assert_eq!(jogs.len(), 6);
        let mut sum = [0.0; 3];
        for a in &jogs {
            assert!(a.is_held());
            let d = a.tool_direction().unwrap();
            assert_eq!(d.iter().map(|x| x * x).sum::<f64>(), 1.0);
            for k in 0..3 {
                sum[k] += d[k];
            }
        }
        assert_eq!(sum, [0.0; 3], "each axis has a + and a - key");
        assert!(Action::JogJointPlus.is_held() && Action::JogJointMinus.is_held());
        assert!(!Action::TogglePause.is_held() && !Action::Step.is_held());
    }
}
