//! Descriptor text: parsing must never panic, and a parsed descriptor must survive a
//! print/parse round trip unchanged. The module also promises that printing gives back the
//! text as read (up to the first NUL, where embedded descriptors end), byte for byte.
//!
//! Seeds: python3 fuzz/small_seeds.py (testdata/fuzz-seeds/descriptor/), and fuzz/seeds.sh for
//! the descriptors of qemu-img images of every subformat (fuzz/corpus/descriptor/).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmdk::Descriptor;

fuzz_target!(|data: &[u8]| {
    let Ok(d) = Descriptor::parse_bytes(data) else {
        return;
    };

    // The queries a caller makes of an untrusted descriptor.
    let _ = d.create_type().map(|t| t.is_supported());
    let _ = (d.cid(), d.parent_cid(), d.has_parent(), d.total_sectors());
    let _ = d.parent_file_name_hint();
    for e in d.extents() {
        let _ = (e.access.as_str(), e.kind.as_str(), e.sectors, e.offset);
    }
    for (k, v) in d.pairs() {
        assert!(d.get(k).is_some(), "key {k:?} = {v:?} not found by get");
    }

    let text = d.print();
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    assert_eq!(
        text.as_bytes(),
        &data[..end],
        "print() does not give back the text as read"
    );
    let again = match Descriptor::parse(&text) {
        Ok(again) => again,
        Err(e) => panic!("printed descriptor does not parse again: {e}\n{text:?}"),
    };
    assert_eq!(again, d, "print/parse round trip changed the descriptor");
});
