//! What the protocol test files share: the vectors (captured from real
//! devices, see `tests/vectors/README.md`) and a seeded PRNG for fuzz-style
//! tests, so every protocol is checked the same way.

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

/// One row of a `.jsonl` vector file, with its line number for messages.
pub struct Row {
    pub line: usize,
    pub json: Value,
}

impl Row {
    /// The payload bytes (hex or text encoded in the row).
    pub fn payload(&self) -> Vec<u8> {
        let payload = self.json["payload"].as_str().expect("row has a payload");
        match self.json["encoding"].as_str() {
            Some("text") => payload.as_bytes().to_vec(),
            _ => hex::decode(payload).expect("payload is hex"),
        }
    }

    pub fn source(&self) -> &str {
        self.json["source"].as_str().unwrap_or("")
    }

    pub fn seq(&self) -> u64 {
        self.json["seq"].as_u64().unwrap_or(0)
    }

    pub fn expect(&self) -> &Value {
        &self.json["expect"]
    }

    /// `crc_valid` as recorded; rows without it are taken as valid.
    pub fn crc_valid(&self) -> bool {
        self.json["crc_valid"].as_bool().unwrap_or(true)
    }
}

pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Every row of `tests/vectors/{name}`.
pub fn load(name: &str) -> Vec<Row> {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Row {
            line: i + 1,
            json: serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1)),
        })
        .collect()
}

/// Agreement tally for one vector file, printed at the end of a test so that
/// `docs/protocols.md` can quote it.
#[derive(Default)]
pub struct Tally {
    pub agree: usize,
    pub disagree: Vec<String>,
}

impl Tally {
    pub fn check(&mut self, ok: bool, why: impl FnOnce() -> String) {
        if ok {
            self.agree += 1;
        } else {
            self.disagree.push(why());
        }
    }

    pub fn report(&self, file: &str) {
        eprintln!(
            "{file}: {} of {} rows agree",
            self.agree,
            self.agree + self.disagree.len()
        );
        for d in &self.disagree {
            eprintln!("  disagree: {d}");
        }
    }
}

/// Marsaglia's xorshift64: enough randomness, no dependency.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}
