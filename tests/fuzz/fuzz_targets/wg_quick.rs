//! `client_core::wg_quick::parse` on arbitrary text never panics, and whatever it accepts is
//! written by `to_string` into text that parses back to the same config (compared through a
//! second `to_string`, which must reproduce the first byte for byte).

#![no_main]

use client_core::wg_quick::{parse, to_string};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(config) = parse(&text) else {
        return;
    };
    let written = to_string(&config).expect("a parsed config can be written");
    let reparsed = match parse(&written) {
        Ok(reparsed) => reparsed,
        Err(e) => panic!("written config does not parse: {e}\n{written}"),
    };
    let rewritten = to_string(&reparsed).expect("a reparsed config can be written");
    assert_eq!(written, rewritten, "parse(to_string(c)) != c");
});
