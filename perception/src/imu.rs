//! Ideal IMU: accelerometer specific force and gyroscope rate in the sensor (body) frame, from
//! the body motion the simulator hands in each step.
//!
//! - specific force `f_in_body = R^T (a_in_world - g_in_world)`, where `a_in_world` is the
//!   backward finite difference of the sensor point's world velocity over `dt_secs`;
//! - angular velocity `w_in_body = R^T w_in_world`;
//!
//! with `R = world_from_body`. At rest the accelerometer reads `-g` (up), in free fall zero.
//! The sensor frame is taken to be the body frame; pass the velocity of the sensor point itself
//! (`v_origin + w × r_sensor`), not of the body origin. Noise, bias and delay come from feeding
//! [`ImuReading::to_array`] through a six-channel [`crate::SensorChannel`].

use nalgebra::{Quaternion, UnitQuaternion, Vector3};

use crate::PerceptionError;
use crate::error::positive;

/// Converts an `[x, y, z, w]` quaternion (the order physics engines and ROS use) to a unit
/// quaternion, normalising it. Fails, instead of producing NaN, if a component is not finite or
/// the norm is below 1e-9.
pub fn quaternion_from_xyzw(xyzw: [f64; 4]) -> Result<UnitQuaternion<f64>, PerceptionError> {
    if let Some((index, &value)) = xyzw.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(PerceptionError::NonFiniteInput {
            input: "quaternion_xyzw",
            index,
            value,
        });
    }
    let [x, y, z, w] = xyzw;
    let q = Quaternion::new(w, x, y, z);
    UnitQuaternion::try_new(q, 1e-9).ok_or(PerceptionError::InvalidConfig {
        config: "quaternion_from_xyzw",
        field: "norm",
        value: q.norm(),
        reason: "quaternion must have a norm >= 1e-9",
    })
}

/// Body motion for one IMU step, all in the world frame except the orientation, which maps body
/// to world.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImuInput {
    /// Orientation of the body (the sensor frame) in the world.
    pub world_from_body: UnitQuaternion<f64>,
    /// Linear velocity of the sensor point, in the world frame, m/s.
    pub v_sensor_in_world: Vector3<f64>,
    /// Angular velocity of the body, in the world frame, rad/s.
    pub w_body_in_world: Vector3<f64>,
    /// Gravitational acceleration, in the world frame, m/s² (e.g. `(0, 0, -9.81)` for z up).
    pub gravity_in_world: Vector3<f64>,
}

/// One ideal IMU reading, in the body (sensor) frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImuReading {
    /// Accelerometer specific force, m/s²: reads `+9.81` along the body axis that points up
    /// when at rest.
    pub specific_force_in_body: Vector3<f64>,
    /// Gyroscope angular velocity, rad/s.
    pub angular_velocity_in_body: Vector3<f64>,
}

impl ImuReading {
    /// `[fx, fy, fz, wx, wy, wz]`: specific force (m/s²) then angular velocity (rad/s), the
    /// layout to push into a six-channel [`crate::SensorChannel`].
    pub fn to_array(&self) -> [f64; 6] {
        let f = &self.specific_force_in_body;
        let w = &self.angular_velocity_in_body;
        [f.x, f.y, f.z, w.x, w.y, w.z]
    }
}

/// Runtime state of one IMU: the previous sensor-point velocity for the finite difference.
#[derive(Debug, Clone, Default)]
pub struct Imu {
    previous_v_sensor_in_world: Option<Vector3<f64>>,
}

impl Imu {
    /// A fresh IMU with no velocity history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the velocity history; the next step assumes zero acceleration.
    pub fn reset(&mut self) {
        self.previous_v_sensor_in_world = None;
    }

    /// Reads the IMU after a step of `dt_secs` seconds. On the first step after construction or
    /// [`Self::reset`] there is no previous velocity, so the acceleration is taken as zero (the
    /// accelerometer reads gravity only).
    ///
    /// Fails if `dt_secs` is not finite and > 0 or a vector input is not finite; state is then
    /// unchanged.
    pub fn step(&mut self, input: &ImuInput, dt_secs: f64) -> Result<ImuReading, PerceptionError> {
        positive("Imu::step", "dt_secs", dt_secs)?;
        for (name, v) in [
            ("v_sensor_in_world", &input.v_sensor_in_world),
            ("w_body_in_world", &input.w_body_in_world),
            ("gravity_in_world", &input.gravity_in_world),
        ] {
            if let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                return Err(PerceptionError::NonFiniteInput {
                    input: name,
                    index,
                    value,
                });
            }
        }
        let q = input.world_from_body.quaternion();
        if let Some((index, &value)) = q.coords.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(PerceptionError::NonFiniteInput {
                input: "world_from_body",
                index,
                value,
            });
        }

        let a_in_world = match self.previous_v_sensor_in_world {
            Some(previous) => (input.v_sensor_in_world - previous) / dt_secs,
            None => Vector3::zeros(),
        };
        self.previous_v_sensor_in_world = Some(input.v_sensor_in_world);
        let body_from_world = &input.world_from_body;
        Ok(ImuReading {
            specific_force_in_body: body_from_world
                .inverse_transform_vector(&(a_in_world - input.gravity_in_world)),
            angular_velocity_in_body: body_from_world
                .inverse_transform_vector(&input.w_body_in_world),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::FRAC_PI_2;

    use super::*;

    const DT: f64 = 0.001;
    const G: f64 = 9.81;

    fn gravity() -> Vector3<f64> {
        Vector3::new(0.0, 0.0, -G)
    }

    fn at_rest(world_from_body: UnitQuaternion<f64>) -> ImuInput {
        ImuInput {
            world_from_body,
            v_sensor_in_world: Vector3::zeros(),
            w_body_in_world: Vector3::zeros(),
            gravity_in_world: gravity(),
        }
    }

    fn assert_close(a: &Vector3<f64>, b: &Vector3<f64>, tol: f64) {
        assert!((a - b).norm() < tol, "{a:?} vs {b:?}");
    }

    #[test]
    fn at_rest_identity_reads_plus_g_on_z() {
        let mut imu = Imu::new();
        for _ in 0..3 {
            let r = imu.step(&at_rest(UnitQuaternion::identity()), DT).unwrap();
            assert_close(&r.specific_force_in_body, &Vector3::new(0.0, 0.0, G), 1e-12);
            assert_close(&r.angular_velocity_in_body, &Vector3::zeros(), 1e-12);
        }
    }

    #[test]
    fn rotated_about_x_reads_g_on_the_body_axis_pointing_up() {
        // +90° about x maps body +y onto world +z: body y points up.
        let world_from_body = UnitQuaternion::from_axis_angle(&Vector3::x_axis(), FRAC_PI_2);
        assert_close(&(world_from_body * Vector3::y()), &Vector3::z(), 1e-12);
        let r = Imu::new().step(&at_rest(world_from_body), DT).unwrap();
        assert_close(&r.specific_force_in_body, &Vector3::new(0.0, G, 0.0), 1e-12);

        // -90° about x: body -y points up.
        let world_from_body = UnitQuaternion::from_axis_angle(&Vector3::x_axis(), -FRAC_PI_2);
        let r = Imu::new().step(&at_rest(world_from_body), DT).unwrap();
        assert_close(
            &r.specific_force_in_body,
            &Vector3::new(0.0, -G, 0.0),
            1e-12,
        );
    }

    #[test]
    fn spinning_about_z_reads_the_rate_at_every_heading() {
        let rate = 1.7;
        let mut imu = Imu::new();
        for i in 0..2000 {
            let heading = rate * i as f64 * DT;
            let input = ImuInput {
                w_body_in_world: Vector3::new(0.0, 0.0, rate),
                ..at_rest(UnitQuaternion::from_axis_angle(&Vector3::z_axis(), heading))
            };
            let r = imu.step(&input, DT).unwrap();
            assert_close(
                &r.angular_velocity_in_body,
                &Vector3::new(0.0, 0.0, rate),
                1e-12,
            );
            assert_close(&r.specific_force_in_body, &Vector3::new(0.0, 0.0, G), 1e-12);
        }
    }

    #[test]
    fn gyro_is_expressed_in_the_body_frame() {
        // Body yawed +90°: a world +x rotation is a rotation about body -y.
        let world_from_body = UnitQuaternion::from_axis_angle(&Vector3::z_axis(), FRAC_PI_2);
        let input = ImuInput {
            w_body_in_world: Vector3::new(0.5, 0.0, 0.0),
            ..at_rest(world_from_body)
        };
        let r = Imu::new().step(&input, DT).unwrap();
        assert_close(
            &r.angular_velocity_in_body,
            &Vector3::new(0.0, -0.5, 0.0),
            1e-12,
        );
    }

    #[test]
    fn linear_acceleration_and_free_fall() {
        // Accelerating at 2 m/s² along world x, level: reads (2, 0, g) after the first step.
        let mut imu = Imu::new();
        for i in 0..10 {
            let input = ImuInput {
                v_sensor_in_world: Vector3::new(2.0 * i as f64 * DT, 0.0, 0.0),
                ..at_rest(UnitQuaternion::identity())
            };
            let r = imu.step(&input, DT).unwrap();
            if i > 0 {
                assert_close(&r.specific_force_in_body, &Vector3::new(2.0, 0.0, G), 1e-9);
            }
        }
        // Free fall reads zero, whatever the orientation.
        let mut imu = Imu::new();
        let tilted = UnitQuaternion::from_euler_angles(0.3, -0.2, 1.1);
        for i in 0..10 {
            let input = ImuInput {
                v_sensor_in_world: gravity() * (i as f64 * DT),
                ..at_rest(tilted)
            };
            let r = imu.step(&input, DT).unwrap();
            if i > 0 {
                assert_close(&r.specific_force_in_body, &Vector3::zeros(), 1e-9);
            }
        }
    }

    #[test]
    fn reading_layout_and_reset() {
        let mut imu = Imu::new();
        imu.step(&at_rest(UnitQuaternion::identity()), DT).unwrap();
        imu.reset();
        // After reset a large velocity is not differenced against the old one.
        let input = ImuInput {
            v_sensor_in_world: Vector3::new(100.0, 0.0, 0.0),
            w_body_in_world: Vector3::new(0.1, 0.2, 0.3),
            ..at_rest(UnitQuaternion::identity())
        };
        let r = imu.step(&input, DT).unwrap();
        assert_eq!(r.to_array(), [0.0, 0.0, G, 0.1, 0.2, 0.3]);
    }

    #[test]
    fn xyzw_conversion_and_errors() {
        // 90° about x as [x, y, z, w].
        let h = std::f64::consts::FRAC_1_SQRT_2;
        let q = quaternion_from_xyzw([h, 0.0, 0.0, h]).unwrap();
        let expected = UnitQuaternion::from_axis_angle(&Vector3::x_axis(), FRAC_PI_2);
        assert!(q.angle_to(&expected) < 1e-12);
        // Non-unit input is normalised.
        let q = quaternion_from_xyzw([0.0, 0.0, 0.0, 2.0]).unwrap();
        assert!(q.angle_to(&UnitQuaternion::identity()) < 1e-12);
        assert!(matches!(
            quaternion_from_xyzw([0.0; 4]),
            Err(PerceptionError::InvalidConfig { field: "norm", .. })
        ));
        assert!(matches!(
            quaternion_from_xyzw([0.0, f64::NAN, 0.0, 1.0]),
            Err(PerceptionError::NonFiniteInput { index: 1, .. })
        ));

        let mut imu = Imu::new();
        assert!(imu.step(&at_rest(UnitQuaternion::identity()), 0.0).is_err());
        let bad = ImuInput {
            gravity_in_world: Vector3::new(0.0, f64::INFINITY, 0.0),
            ..at_rest(UnitQuaternion::identity())
        };
        assert!(matches!(
            imu.step(&bad, DT),
            Err(PerceptionError::NonFiniteInput {
                input: "gravity_in_world",
                index: 1,
                ..
            })
        ));
    }
}
