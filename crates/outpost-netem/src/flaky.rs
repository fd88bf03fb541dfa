//! Which connections a flaky link drops, as a pure function of a seed.
//!
//! The decision for the n-th connection since `flaky` was switched on depends only on the seed,
//! n and the percentage, so a test or a simulation that logs its seed can replay the same drops.
//! SplitMix64 is enough here: we need spread, not secrecy, and no dependency for it.

/// SplitMix64's finaliser: a well-mixed 64-bit value from any input.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether the `n`-th connection (0-based, counted from the switch to flaky) is dropped.
pub fn drops(seed: u64, n: u64, drop_percent: u8) -> bool {
    mix(mix(seed) ^ n) % 100 < u64::from(drop_percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_about_the_share_asked_for() {
        for percent in [0u8, 10, 30, 50, 100] {
            let dropped = (0..10_000).filter(|&n| drops(42, n, percent)).count();
            let expected = usize::from(percent) * 100;
            assert!(
                dropped.abs_diff(expected) <= 250,
                "{percent}%: dropped {dropped} of 10000"
            );
        }
    }

    #[test]
    fn same_seed_same_drops_other_seed_other_drops() {
        let pattern = |seed| (0..64).map(|n| drops(seed, n, 30)).collect::<Vec<_>>();
        assert_eq!(pattern(7), pattern(7));
        assert_ne!(pattern(7), pattern(8));
    }
}
