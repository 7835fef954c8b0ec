//! Bloom filters, one per table, kept in memory to skip tables that cannot hold a key.
//!
//! Encoding: `k u8`, then the bit array. Probe positions come from one 64-bit xxh3 hash by
//! double hashing; with 10 bits per key and k = 7 the false-positive rate is about 0.8 %.

/// The hash a filter is built from and probed with.
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

#[derive(Debug, Clone)]
pub struct Bloom {
    k: u32,
    bits: Vec<u8>,
}

impl Bloom {
    /// Builds a filter over the given key hashes.
    pub fn build(hashes: &[u64], bits_per_key: u32) -> Bloom {
        let bits_per_key = bits_per_key.max(1);
        // k = bits_per_key * ln 2, rounded, within [1, 30].
        let k = ((bits_per_key as f64) * std::f64::consts::LN_2)
            .round()
            .clamp(1.0, 30.0) as u32;
        let m_bits = (hashes.len() as u64 * bits_per_key as u64).max(64);
        let mut bloom = Bloom {
            k,
            bits: vec![0u8; m_bits.div_ceil(8) as usize],
        };
        for &h in hashes {
            let m = bloom.m();
            for bit in probes(h, k, m) {
                bloom.bits[(bit / 8) as usize] |= 1 << (bit % 8);
            }
        }
        bloom
    }

    fn m(&self) -> u64 {
        self.bits.len() as u64 * 8
    }

    pub fn may_contain(&self, hash: u64) -> bool {
        let m = self.m();
        if m == 0 {
            return true;
        }
        probes(hash, self.k, m).all(|bit| self.bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.bits.len());
        out.push(self.k as u8);
        out.extend_from_slice(&self.bits);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Bloom> {
        let (&k, bits) = bytes.split_first()?;
        if k == 0 || k > 30 {
            return None;
        }
        Some(Bloom {
            k: k as u32,
            bits: bits.to_vec(),
        })
    }

    pub fn bytes(&self) -> usize {
        self.bits.len() + 1
    }
}

fn probes(hash: u64, k: u32, m: u64) -> impl Iterator<Item = u64> {
    let delta = hash.rotate_left(31) | 1;
    (0..k as u64).map(move |i| {
        let x = hash.wrapping_add(i.wrapping_mul(delta));
        // Maps x onto [0, m) without a division (Lemire's fast range).
        ((x as u128 * m as u128) >> 64) as u64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every inserted key is found, and with the default 10 bits per key fewer than 1 % of
    /// absent keys are false positives.
    #[test]
    fn bloom_has_no_false_negatives_and_under_one_percent_false_positives() {
        let keys: Vec<u64> = (0..100_000u32)
            .map(|i| key_hash(format!("key-{i}").as_bytes()))
            .collect();
        let bloom = Bloom::decode(&Bloom::build(&keys, 10).encode()).unwrap();
        assert!(keys.iter().all(|&h| bloom.may_contain(h)));
        let absent = 200_000u32;
        let fp = (0..absent)
            .filter(|i| bloom.may_contain(key_hash(format!("other-{i}").as_bytes())))
            .count();
        let rate = fp as f64 / absent as f64;
        assert!(rate < 0.01, "false-positive rate {rate}");
    }
}
