//! Conformance tests: tcp.

#[allow(unused_imports)]
use zsync::Io;

conformance! {}
