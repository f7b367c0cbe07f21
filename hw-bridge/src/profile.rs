//! (in progress: replaced by the robot profile module)

/// How the robot's controller takes commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// forward_command_controller with position interfaces.
    ForwardPosition,
    /// forward_command_controller with velocity interfaces.
    ForwardVelocity,
    /// forward_command_controller with effort interfaces.
    ForwardEffort,
    /// joint_trajectory_controller.
    JointTrajectory,
}

impl CommandKind {
    /// The command mode of the values.
    pub fn mode(self) -> rivet_control::CommandMode {
        match self {
            CommandKind::ForwardPosition | CommandKind::JointTrajectory => {
                rivet_control::CommandMode::Position
            }
            CommandKind::ForwardVelocity => rivet_control::CommandMode::Velocity,
            CommandKind::ForwardEffort => rivet_control::CommandMode::Torque,
        }
    }
}
