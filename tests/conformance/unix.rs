//! Conformance tests: unix.

#[allow(unused_imports)]
use zsync::Io;

conformance! {}
