//! The stored record format: whatever bytes a damaged journal or history
//! store holds, decoding returns an error or a record, and a decoded record
//! encodes back to bytes that decode to the same record.

#![no_main]

use drover_journal::record;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = record::decode(data) else {
        return;
    };
    let bytes = record::encode(&message).expect("a decoded record encodes");
    let again = record::decode(&bytes).expect("an encoded record decodes");
    // NaN coordinates compare unequal to themselves: compare the bytes.
    assert_eq!(record::encode(&again).expect("encodes"), bytes);
});
