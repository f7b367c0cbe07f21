//! `builtin_interfaces`: time stamps and durations.

use crate::cdr::{CdrError, CdrReader, CdrWriter, RosMessage};

/// `builtin_interfaces/msg/Time`: a point in time, usually since the UNIX epoch (ROS time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Time {
    /// Whole seconds; negative values are allowed.
    pub sec: i32,
    /// Nanoseconds added to `sec`, in `[0, 1e9)` by convention (not enforced on decode).
    pub nanosec: u32,
}

impl RosMessage for Time {
    const ROS_TYPE_NAME: &'static str = "builtin_interfaces/msg/Time";
    const DDS_TYPE_NAME: &'static str = "builtin_interfaces::msg::dds_::Time_";

    fn write_fields(&self, w: &mut CdrWriter<'_>) {
        w.write_i32(self.sec);
        w.write_u32(self.nanosec);
    }

    fn read_fields_into(&mut self, r: &mut CdrReader<'_>) -> Result<(), CdrError> {
        self.sec = r.read_i32("sec")?;
        self.nanosec = r.read_u32("nanosec")?;
        Ok(())
    }
}

/// `builtin_interfaces/msg/Duration`: a signed span of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Duration {
    /// Whole seconds; negative values are allowed.
    pub sec: i32,
    /// Nanoseconds added to `sec`, in `[0, 1e9)` by convention (not enforced on decode).
    pub nanosec: u32,
}

impl RosMessage for Duration {
    const ROS_TYPE_NAME: &'static str = "builtin_interfaces/msg/Duration";
    const DDS_TYPE_NAME: &'static str = "builtin_interfaces::msg::dds_::Duration_";

    fn write_fields(&self, w: &mut CdrWriter<'_>) {
        w.write_i32(self.sec);
        w.write_u32(self.nanosec);
    }

    fn read_fields_into(&mut self, r: &mut CdrReader<'_>) -> Result<(), CdrError> {
        self.sec = r.read_i32("sec")?;
        self.nanosec = r.read_u32("nanosec")?;
        Ok(())
    }
}
