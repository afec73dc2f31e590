//! The whole service, fed scripts of phone, attacker and clock operations (see
//! crates/palisade/src/service/harness.rs for the script format and the rules it checks: no panic, every message
//! sent parses as SIP, nothing sent to an address that never sent anything).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    palisade::service::harness::Harness::run(data);
});
