//! Conformance tests: dns.

#[allow(unused_imports)]
use zsync::Io;

conformance! {}
