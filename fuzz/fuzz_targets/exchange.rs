//! Whole exchanges through random phase sequences against the memory store;
//! the invariants are in `tally_fuzz::drive`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tally_fuzz::script::Script;

fuzz_target!(|script: Script| tally_fuzz::drive::run(&script));
