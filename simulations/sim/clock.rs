//! Each node's clock: an offset and a rate within the configured drift bound, so no two
//! nodes agree on the time, as on real machines.

pub(super) struct Clock {
    pub(super) offset_us: i64,
    pub(super) rate_ppm: i64,
}

impl Clock {
    pub(super) fn local(&self, real_us: u64) -> u64 {
        // i64 is ample: a run of 10^11 µs at 10^4 ppm stays far below 2^63.
        let r = real_us as i64;
        (r + r * self.rate_ppm / 1_000_000 + self.offset_us).max(0) as u64
    }

    pub(super) fn real(&self, local_us: u64) -> u64 {
        // Deadlines beyond a century are "never"; clamp so the arithmetic stays in i64.
        let l = local_us.min(1 << 52) as i64 - self.offset_us;
        // Round up so that a timer never fires before its local deadline.
        let num = l * 1_000_000;
        let den = 1_000_000 + self.rate_ppm;
        ((num + den - 1) / den).max(0) as u64
    }
}
