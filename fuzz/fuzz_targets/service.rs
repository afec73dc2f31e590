//! The whole endpoint, fed scripts of phone, attacker and clock operations through `Endpoint::handle_inbound`
//! and `handle_timeout` (see crates/pbx/src/endpoint/harness.rs for the script format and the rules it checks:
//! no panic, every message sent parses as SIP, nothing sent to an address that never sent anything).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pbx::endpoint::harness::Harness::run(data);
});
