//! Engine time.
//!
//! Systems never read the wall clock: the shell sets [`Clock`] before each
//! tick (from the system clock in production, from the test in tests), so the
//! same inputs and clock give the same world.

use bevy_ecs::prelude::*;

/// Current engine time, ms since the Unix epoch.
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    pub now_ms: i64,
    /// Ticks run so far, counting this one.
    pub tick: u64,
}

/// Run condition: true on the first tick and then once every `period_ms` of
/// [`Clock`] time. Use it for periodic sweeps that are too costly every tick.
pub fn every(period_ms: i64) -> impl FnMut(Res<Clock>) -> bool + Clone {
    let mut next_ms = i64::MIN;
    move |clock: Res<Clock>| {
        if clock.now_ms >= next_ms {
            next_ms = clock.now_ms.saturating_add(period_ms);
            true
        } else {
            false
        }
    }
}
