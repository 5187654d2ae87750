//! Derived seeds: every random stream of a run comes from its one master seed through
//! [`mix`], so that a run, a replicate or a fresh scoring run has a seed of its own that
//! does not depend on the order in which the work is done.

/// A 64-bit mix of two numbers (splitmix64's finaliser): the seed of stream `b` of `a`.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
