//! Defines how schedules are spread over nodes: a fixed number of partitions, a schedule's
//! partition (a stable hash of its id, the same on every node, build and restart) and a
//! node's fair share of partitions. Pure: the leases themselves live in `store::partitions`.

/// How many partitions there are; one lease row each (created by the migration).
pub const PARTITIONS: u32 = 256;

/// The partition of schedule `id`: FNV-1a (64 bit) of its bytes, modulo [`PARTITIONS`].
/// Never changes for a given id, whatever the node, platform or Rust version.
pub fn partition_of(id: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Fold the high bits in: the low byte of FNV alone mixes the last bytes less well.
    ((h ^ (h >> 32) ^ (h >> 16)) % u64::from(PARTITIONS)) as u32
}

/// The most partitions one of `live` nodes holds: the fair share rounded up, so the
/// shares of all live nodes always cover every partition.
pub fn fair_share(live: usize) -> usize {
    let live = live.max(1);
    (PARTITIONS as usize).div_ceil(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3,000 ids shaped like real ones (`sch_` + lower-case ULID, made in one burst so they
    /// share their time prefix), from a fixed seed so the test is the same every run.
    fn burst_of_ids(n: usize, seed: u64) -> Vec<String> {
        let mut x = seed;
        (0..n)
            .map(|i| {
                // xorshift64: a fixed, well-spread sequence for the random part.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let ulid =
                    ulid::Ulid::from_parts(1_765_000_000_000 + i as u64 / 50, u128::from(x) << 16);
                format!("sch_{}", ulid.to_string().to_lowercase())
            })
            .collect()
    }

    #[test]
    fn the_partition_of_an_id_is_fixed() {
        assert_eq!(partition_of("sch_01jabcdef"), partition_of("sch_01jabcdef"));
        // Pinned: a change here would move every stored schedule to another partition.
        assert_eq!(partition_of("sch_01kbqz0c1w8y1m3m7h9x2v5e4r"), 203);
        assert!(burst_of_ids(1000, 7)
            .iter()
            .all(|id| partition_of(id) < PARTITIONS));
    }

    #[test]
    fn fair_shares_cover_every_partition() {
        for live in 1..=300 {
            assert!(fair_share(live) * live >= PARTITIONS as usize, "{live}");
        }
        assert_eq!(fair_share(0), 256);
        assert_eq!(fair_share(3), 86);
    }

    /// 3,000 ids over the 86/86/84 split three nodes settle on: each node's count is within
    /// ±10 % of 1,000 (SEMANTICS.md, "Nodes"), for several seeds.
    #[test]
    fn ids_spread_evenly_over_three_shares() {
        for seed in [1, 42, 7_777, 123_456_789, 0x5eed] {
            let mut per_partition = vec![0usize; PARTITIONS as usize];
            for id in burst_of_ids(3000, seed) {
                per_partition[partition_of(&id) as usize] += 1;
            }
            for share in [0..86, 86..172, 172..256] {
                let n: usize = per_partition[share].iter().sum();
                assert!((900..=1100).contains(&n), "seed {seed}: {n}");
            }
        }
    }
}
