//! Conformance tests: fs.

#[allow(unused_imports)]
use zsync::Io;

conformance! {}
