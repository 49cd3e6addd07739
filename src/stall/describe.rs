//! How the detectors word what they know of tasks: every report goes through these functions,
//! so that a richer source (a task dump with wait points and stacks) changes one place.

use std::fmt::Write as _;

use super::progress::Site;
use crate::task::Runnable;

/// A task known by the site its worker published (see [`super::progress`]).
pub(crate) fn running(site: Site) -> String {
    match site {
        Site::Root => "the root task of the run".to_string(),
        Site::Spawned(at) => format!("the task spawned at {at}"),
        Site::None => {
            "no task (the worker's own code, or a waker or destructor it ran)".to_string()
        }
    }
}

/// The task a blocked worker runs: by its name, id and spawn site as copied from the worker's
/// thread (see [`super::remote`]) when the copy names the same spawn site as the worker's
/// progress word, else by that site alone.
pub(crate) fn blocked(site: Site, seen: Option<&super::remote::Blocked>) -> String {
    let copied = seen.and_then(|s| s.name.map(|n| (n, s.text.as_deref())));
    match (site, copied) {
        (Site::Spawned(at), Some((name, text)))
            if name.site == Some(super::progress::code_of(at)) =>
        {
            let mut s = String::from("the task");
            if let Some(id) = name.id {
                let _ = write!(s, " #{id}");
            }
            if let Some(text) = text {
                let _ = write!(s, " '{text}'");
            }
            let _ = write!(s, " spawned at {at}");
            s
        }
        _ => running(site),
    }
}

/// A queued task: its id, name and spawn site.
pub(crate) fn queued(task: &Runnable) -> String {
    let mut s = String::from("task");
    if let Some(id) = task.id() {
        let _ = write!(s, " {id}");
    }
    if let Some(name) = task.name() {
        let _ = write!(s, " '{name}'");
    }
    let _ = write!(s, " spawned at {}", task.location());
    s
}

/// What is known of a deadlocked run's tasks when its `Io` is not at hand (a Green worker's
/// idle path): `live` fibers parked per worker.
pub(crate) fn asleep(live: &[usize]) -> String {
    let total: usize = live.iter().sum();
    let mut s = format!(
        "  {total} fiber{} parked:",
        if total == 1 { "" } else { "s" }
    );
    for (i, n) in live.iter().enumerate() {
        let _ = write!(s, " worker {i}: {n};");
    }
    s.pop();
    s.push('\n');
    s
}

/// Every task of the run, as the task dump ([`Io::dump`](crate::Io::dump)) shows them: what
/// each waits on and where, and its stack. The deadlock reports print this.
pub(crate) fn tasks(io: &crate::Io) -> String {
    io.dump().to_string()
}

/// What is known of the one waiting task of a deadlocked Blocking run.
pub(crate) fn alone(task: crate::context::TaskRef<'_>) -> String {
    match task.name {
        Some(name) => format!(
            "  task {} '{}' waits on the run's only thread (Blocking model)\n",
            task.id,
            name.as_str()
        ),
        None => format!(
            "  task {} waits on the run's only thread (Blocking model)\n",
            task.id
        ),
    }
}
