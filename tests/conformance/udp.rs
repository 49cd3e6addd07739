//! Conformance tests: udp.

#[allow(unused_imports)]
use zsync::Io;

conformance! {}
