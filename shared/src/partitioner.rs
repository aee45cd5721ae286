//! Key → partition, as the Java clients (and librdkafka's `murmur2_random`, which the producer
//! uses) choose it: `(murmur2(key) & 0x7fffffff) mod partitions`. Pure, so the page can say why
//! an account lives where it does.

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ len as u32;
    let (chunks, rest) = data.as_chunks::<4>();
    for c in chunks {
        let mut k = u32::from_le_bytes(*c);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition a record with `key` goes to among `partitions` (none for 0 partitions).
pub fn partition_for(key: &[u8], partitions: u32) -> Option<i32> {
    (partitions > 0).then(|| ((murmur2(key) as u32 & 0x7fff_ffff) % partitions) as i32)
}

/// Why: `murmur2("17") mod 6 = 3`, for the page.
pub fn explain(key: &str, partitions: u32) -> Option<String> {
    let p = partition_for(key.as_bytes(), partitions)?;
    Some(format!("murmur2(\"{key}\") mod {partitions} = {p}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Kafka's own `UtilsTest.testMurmur2`.
    #[test]
    fn matches_kafkas_murmur2() {
        for (key, hash) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(key.as_bytes()), hash, "{key}");
        }
    }

    #[test]
    fn partitions_are_in_range() {
        for a in 0..1000u32 {
            let p = partition_for(a.to_string().as_bytes(), 6).unwrap();
            assert!((0..6).contains(&p));
        }
        assert_eq!(partition_for(b"1", 0), None);
        assert!(
            explain("17", 6)
                .unwrap()
                .starts_with("murmur2(\"17\") mod 6 = ")
        );
    }
}
