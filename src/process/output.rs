//! Reading a child's stdout and stderr to their ends at once, on one task, on every model.
//!
//! Reading one pipe to its end and then the other deadlocks as soon as the child fills the
//! second pipe (64 KiB) while the parent waits on the first. Tokio and std read both
//! concurrently (a second task, `poll(2)` on both). A second task is not available on every
//! model (Blocking has no concurrency), and the waits of `park.rs` watch one descriptor, so this
//! puts both pipes in a private epoll instance and waits for *its* readiness with
//! `retry_on_fd`: an epoll descriptor is readable while any descriptor in it is. The wait is
//! then an ordinary descriptor wait: it parks the fiber on Green, is a cancellation point and
//! honours deadlines.

use std::io::{self, Read};
use std::os::fd::AsFd;

use rustix::event::epoll;

use crate::park::{retry_on_fd, Interest};
use crate::pipe::PipeReader;

/// Reads `out` and `err` (either may be absent) until both report end of stream.
pub(super) fn read_both(
    out: Option<PipeReader>,
    err: Option<PipeReader>,
) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let (mut out, mut err) = match (out, err) {
        (None, None) => return Ok((Vec::new(), Vec::new())),
        (Some(mut one), None) => return read_to_end(&mut one).map(|v| (v, Vec::new())),
        (None, Some(mut one)) => return read_to_end(&mut one).map(|v| (Vec::new(), v)),
        (Some(out), Some(err)) => (out, err),
    };
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    for (i, r) in [&out, &err].into_iter().enumerate() {
        epoll::add(
            &ep,
            r,
            epoll::EventData::new_u64(i as u64),
            epoll::EventFlags::IN,
        )?;
    }
    let mut bufs = (Vec::new(), Vec::new());
    let mut open = [true, true];
    loop {
        for (i, (r, buf)) in [(&mut out, &mut bufs.0), (&mut err, &mut bufs.1)]
            .into_iter()
            .enumerate()
        {
            if open[i] && drain(r, buf)? {
                open[i] = false;
                epoll::delete(&ep, &*r)?;
            }
        }
        if open == [false, false] {
            return Ok(bufs);
        }
        // Readiness of either pipe (data or end of stream) makes the epoll descriptor readable.
        retry_on_fd(ep.as_fd(), Interest::Read, None, || {
            let mut events = Vec::with_capacity(2);
            let zero = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            match epoll::wait(
                &ep,
                rustix::buffer::spare_capacity(&mut events),
                Some(&zero),
            )? {
                0 => Err(io::ErrorKind::WouldBlock.into()),
                _ => Ok(()),
            }
        })?;
    }
}

/// Reads what the non-blocking pipe holds now into `buf`; true at the end of the stream.
fn drain(r: &PipeReader, buf: &mut Vec<u8>) -> io::Result<bool> {
    loop {
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let spare = rustix::buffer::spare_capacity(&mut *buf);
        match rustix::io::read(r, spare) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(rustix::io::Errno::AGAIN) => return Ok(false),
            Err(rustix::io::Errno::INTR) => crate::context::check()?,
            Err(e) => return Err(e.into()),
        }
    }
}

fn read_to_end(r: &mut PipeReader) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.read_to_end(&mut v)?;
    Ok(v)
}
