//! The clock delivery leases are judged by. It must keep counting whatever
//! stops this process — a SIGSTOP, a frozen VM, a suspended host — because
//! the ZooKeeper server's clock does: on Linux that is `CLOCK_BOOTTIME`
//! (`CLOCK_MONOTONIC`, behind `Instant`, stops while the host sleeps).
//! Times are durations since the first reading in this process, the unit
//! of [`balance::Time`](crate::balance::Time).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use crate::balance::Time;

#[cfg(any(target_os = "linux", target_os = "android"))]
fn raw() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn raw() -> Duration {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

fn origin() -> Duration {
    static ORIGIN: OnceLock<Duration> = OnceLock::new();
    *ORIGIN.get_or_init(raw)
}

/// Now, on the lease clock.
pub(crate) fn now() -> Time {
    let origin = origin();
    raw().saturating_sub(origin)
}

/// How long until `t` on the lease clock (zero if past).
pub(crate) fn until(t: Time) -> Duration {
    t.saturating_sub(now())
}

/// The wall-clock time of `t` on the lease clock.
pub(crate) fn wall(t: Time) -> SystemTime {
    let (wall, lease) = (SystemTime::now(), now());
    if t <= lease {
        wall - (lease - t)
    } else {
        wall + (t - lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_clock_moves_forward_with_the_wall_clock() {
        let a = now();
        std::thread::sleep(Duration::from_millis(20));
        let b = now();
        assert!(b >= a + Duration::from_millis(20), "{a:?} → {b:?}");
        let drift = wall(b).duration_since(SystemTime::now()).unwrap_or_else(|e| e.duration());
        assert!(drift < Duration::from_millis(50), "wall() maps the lease clock to the wall clock ({drift:?})");
        assert!(until(a).is_zero());
    }
}
