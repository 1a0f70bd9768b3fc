//! A manifest digest that can be saved mid-file and continued by a later process: what an
//! import that was killed halfway through a disk needs to check that disk's digest without
//! reading again what it had digested. The state is the algorithm's chaining value, the bytes
//! of an unfinished block and the length so far (FIPS 180-4's "intermediate hash value"),
//! saved as one line of text; [`ResumableHasher::finish`] pads and finishes as SHA-1, SHA-256
//! and SHA-512 do, so its digest is [`crate::manifest::Hasher`]'s (the tests check both agree
//! on every split).

use sha2::digest::generic_array::GenericArray;

use crate::manifest::Algorithm;

/// The chaining value of one algorithm.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Sha1([u32; 5]),
    Sha256([u32; 8]),
    Sha512([u64; 8]),
}

/// A SHA-1, SHA-256 or SHA-512 digest being computed, whose state [`ResumableHasher::save`]
/// writes as a line of text that [`ResumableHasher::restore`] reads back.
///
/// ```
/// use ovf::manifest::Algorithm;
/// use ovf::resumable::ResumableHasher;
///
/// let mut h = ResumableHasher::new(Algorithm::Sha256);
/// h.update(b"hello ");
/// let saved = h.save();
/// let mut h = ResumableHasher::restore(Algorithm::Sha256, &saved).unwrap();
/// h.update(b"world");
/// assert_eq!(h.finish(), "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumableHasher {
    state: State,
    /// The bytes of the block not yet compressed (fewer than a block).
    pending: Vec<u8>,
    /// Bytes digested so far.
    len: u64,
}

/// The initial chaining values (FIPS 180-4, 5.3).
const SHA1_INIT: [u32; 5] = [
    0x6745_2301,
    0xefcd_ab89,
    0x98ba_dcfe,
    0x1032_5476,
    0xc3d2_e1f0,
];
const SHA256_INIT: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];
const SHA512_INIT: [u64; 8] = [
    0x6a09_e667_f3bc_c908,
    0xbb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b,
    0xa54f_f53a_5f1d_36f1,
    0x510e_527f_ade6_82d1,
    0x9b05_688c_2b3e_6c1f,
    0x1f83_d9ab_fb41_bd6b,
    0x5be0_cd19_137e_2179,
];

impl State {
    fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha1 => Self::Sha1(SHA1_INIT),
            Algorithm::Sha256 => Self::Sha256(SHA256_INIT),
            Algorithm::Sha512 => Self::Sha512(SHA512_INIT),
        }
    }

    fn algorithm(&self) -> Algorithm {
        match self {
            Self::Sha1(_) => Algorithm::Sha1,
            Self::Sha256(_) => Algorithm::Sha256,
            Self::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Bytes of a block.
    fn block(&self) -> usize {
        match self {
            Self::Sha512(_) => 128,
            _ => 64,
        }
    }

    /// Compresses whole blocks (`blocks.len()` a multiple of [`State::block`]).
    fn compress(&mut self, blocks: &[u8]) {
        match self {
            Self::Sha1(s) => {
                for b in blocks.chunks_exact(64) {
                    sha1::compress(s, std::slice::from_ref(GenericArray::from_slice(b)));
                }
            }
            Self::Sha256(s) => {
                for b in blocks.chunks_exact(64) {
                    sha2::compress256(s, std::slice::from_ref(GenericArray::from_slice(b)));
                }
            }
            Self::Sha512(s) => {
                for b in blocks.chunks_exact(128) {
                    sha2::compress512(s, std::slice::from_ref(GenericArray::from_slice(b)));
                }
            }
        }
    }

    /// The chaining value, big-endian (the digest, once finished).
    fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Sha1(s) => s.iter().flat_map(|w| w.to_be_bytes()).collect(),
            Self::Sha256(s) => s.iter().flat_map(|w| w.to_be_bytes()).collect(),
            Self::Sha512(s) => s.iter().flat_map(|w| w.to_be_bytes()).collect(),
        }
    }

    /// The chaining value read from `bytes` (as [`State::bytes`] wrote it).
    fn from_bytes(algorithm: Algorithm, bytes: &[u8]) -> Option<Self> {
        let mut state = Self::new(algorithm);
        match &mut state {
            Self::Sha1(s) => fill32(s, bytes)?,
            Self::Sha256(s) => fill32(s, bytes)?,
            Self::Sha512(s) => {
                if bytes.len() != s.len() * 8 {
                    return None;
                }
                for (w, b) in s.iter_mut().zip(bytes.chunks_exact(8)) {
                    *w = u64::from_be_bytes(b.try_into().ok()?);
                }
            }
        }
        Some(state)
    }
}

/// `words` read big-endian from `bytes`, which must hold exactly them.
fn fill32(words: &mut [u32], bytes: &[u8]) -> Option<()> {
    if bytes.len() != words.len() * 4 {
        return None;
    }
    for (w, b) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_be_bytes(b.try_into().ok()?);
    }
    Some(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl ResumableHasher {
    /// A fresh digest of `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        let state = State::new(algorithm);
        Self {
            pending: Vec::with_capacity(state.block()),
            state,
            len: 0,
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.state.algorithm()
    }

    /// Bytes digested so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was digested yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        let block = self.state.block();
        if !self.pending.is_empty() {
            let take = (block - self.pending.len()).min(data.len());
            let (head, rest) = data.split_at(take);
            self.pending.extend_from_slice(head);
            data = rest;
            if self.pending.len() < block {
                return;
            }
            let full = std::mem::take(&mut self.pending);
            self.state.compress(&full);
            self.pending = full;
            self.pending.clear();
        }
        let whole = data.len() / block * block;
        let (blocks, rest) = data.split_at(whole);
        self.state.compress(blocks);
        self.pending.extend_from_slice(rest);
    }

    /// The state as one line of text: the algorithm, the length, the chaining value and the
    /// unfinished block, in hex.
    pub fn save(&self) -> String {
        format!(
            "{} {} {} {}",
            self.algorithm().as_str(),
            self.len,
            hex(&self.state.bytes()),
            match self.pending.is_empty() {
                true => "-".to_string(),
                false => hex(&self.pending),
            }
        )
    }

    /// The digest [`ResumableHasher::save`] saved as `text`, if `text` is such a line of
    /// `algorithm` (`None` for anything else: another algorithm, a damaged line).
    pub fn restore(algorithm: Algorithm, text: &str) -> Option<Self> {
        let mut words = text.split(' ');
        let (name, len, state, pending) =
            (words.next()?, words.next()?, words.next()?, words.next()?);
        if words.next().is_some() || name != algorithm.as_str() {
            return None;
        }
        let len: u64 = len.parse().ok()?;
        let state = State::from_bytes(algorithm, &unhex(state)?)?;
        let pending = match pending {
            "-" => Vec::new(),
            p => unhex(p)?,
        };
        let block = state.block();
        if pending.len() as u64 != len % block as u64 {
            return None;
        }
        Some(Self {
            state,
            pending,
            len,
        })
    }

    /// The digest, lower-case hex: the message padded with a one bit, zeros and its length
    /// in bits (64 bits for SHA-1 and SHA-256, 128 for SHA-512), big-endian.
    pub fn finish(mut self) -> String {
        let block = self.state.block();
        let length_bytes = if block == 128 { 16 } else { 8 };
        let bits = u128::from(self.len) * 8;
        let mut tail = std::mem::take(&mut self.pending);
        tail.push(0x80);
        while tail.len() % block != block - length_bytes {
            tail.push(0);
        }
        let be = bits.to_be_bytes();
        tail.extend_from_slice(be.split_at(16 - length_bytes).1);
        self.state.compress(&tail);
        hex(&self.state.bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Hasher;
    use proptest::prelude::*;

    const ALL: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];

    fn reference(algorithm: Algorithm, data: &[u8]) -> String {
        let mut h = Hasher::new(algorithm);
        h.update(data);
        h.finish()
    }

    #[test]
    fn every_length_around_the_block_boundaries_digests_as_the_reference() {
        let data: Vec<u8> = (0..600u32).map(|i| (i * 7 + 3) as u8).collect();
        for algorithm in ALL {
            for len in 0..data.len() {
                let mut h = ResumableHasher::new(algorithm);
                h.update(&data[..len]);
                assert_eq!(h.finish(), reference(algorithm, &data[..len]), "{len}");
            }
        }
    }

    #[test]
    fn a_damaged_or_foreign_line_is_not_restored() {
        let mut h = ResumableHasher::new(Algorithm::Sha256);
        h.update(b"abc");
        let saved = h.save();
        assert_eq!(
            ResumableHasher::restore(Algorithm::Sha256, &saved),
            Some(h.clone())
        );
        assert_eq!(ResumableHasher::restore(Algorithm::Sha1, &saved), None);
        for bad in [
            saved.replace(" 3 ", " 4 "),
            saved.replace("616263", "6162"),
            saved.replace("616263", "61626x"),
            format!("{saved} x"),
            saved.split(' ').take(3).collect::<Vec<_>>().join(" "),
            String::new(),
            saved.replacen(' ', "  ", 1),
        ] {
            assert_eq!(
                ResumableHasher::restore(Algorithm::Sha256, &bad),
                None,
                "{bad}"
            );
        }
        let mut short = saved.split(' ').map(String::from).collect::<Vec<_>>();
        short[2].truncate(62);
        assert_eq!(
            ResumableHasher::restore(Algorithm::Sha256, &short.join(" ")),
            None
        );
    }

    proptest! {
        /// Any data, digested in any pieces, saved and restored at any of them, gives the
        /// reference digest.
        #[test]
        fn saved_and_restored_anywhere_digests_as_the_reference(
            data in proptest::collection::vec(any::<u8>(), 0..1200),
            cuts in proptest::collection::vec(0usize..1200, 0..6),
            which in 0usize..3,
        ) {
            let algorithm = ALL[which];
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut h = ResumableHasher::new(algorithm);
            let mut at = 0;
            for c in cuts {
                h.update(&data[at..c]);
                at = c;
                h = ResumableHasher::restore(algorithm, &h.save()).unwrap();
            }
            h.update(&data[at..]);
            prop_assert_eq!(h.len(), data.len() as u64);
            prop_assert_eq!(h.finish(), reference(algorithm, &data));
        }
    }
}
