//! [`Profile`]: a snapshot of a profiled runtime's figures, and its four renderings: a text
//! report (`Display`), JSON ([`Profile::to_json`]), folded stacks ([`Profile::folded`]) and
//! an SVG flame graph ([`Profile::write_flamegraph`], with the `inferno` crate).

use std::fmt::{self, Write as _};
use std::panic::Location;
use std::time::Duration;

use super::record::{Blocked, KeyMap, LockAcc, Recorder, SiteAcc, StackUse, TaskAcc, Times};
use crate::task::TaskId;

/// What a profiled runtime recorded, per spawn site, per task and per lock call site; from
/// [`Io::profile`](crate::Io::profile) (feature `profile`).
///
/// Times are wall-clock time on the monotonic clock, split three ways for each task:
/// **running** (resumed on its worker, or on its thread and not parked), **scheduling**
/// (ready but not resumed: spawned and not yet started, woken and not yet resumed, yielded)
/// and **blocked**, per kind of operation it waited in. See docs/debugging.md, "Profiles".
///
/// ```
/// use zsync::{Builder, Model};
/// Builder::new(Model::Green).worker_threads(1).profile(true).run(|io| {
///     io.spawn(|io| io.sleep(std::time::Duration::from_millis(5))).join().unwrap();
///     let profile = io.profile();
///     let site = profile.sites.iter().find(|s| s.tasks == 1 && s.location.is_some()).unwrap();
///     assert!(site.blocked_total() >= std::time::Duration::from_millis(5));
///     println!("{profile}");                    // the text report
///     assert!(profile.to_json().starts_with('{'));
///     assert!(profile.folded().contains(";running "));
/// });
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Profile {
    /// How long the runtime has been profiling (since profiling was last turned on or reset).
    pub elapsed: Duration,
    /// Figures per spawn site, the busiest (running + blocked) first.
    pub sites: Vec<SiteProfile>,
    /// Figures per task, most running time first: live tasks, and finished ones up to a cap
    /// (a spawn site keeps the figures of all of its tasks).
    pub tasks: Vec<TaskProfile>,
    /// Contended lock acquisitions per call site, most waiting first.
    pub locks: Vec<LockProfile>,
}

/// Time spent blocked in one kind of operation.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpTime {
    /// The kind of operation (`sleep`, `recv`, `lock`, ...).
    pub op: &'static str,
    /// Time blocked in it.
    pub time: Duration,
    /// How many waits.
    pub count: u64,
}

/// The figures of the tasks spawned at one call site.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SiteProfile {
    /// Where the tasks were spawned; `None` for root tasks (`run`'s, a `block_on`'s).
    pub location: Option<&'static Location<'static>>,
    /// Tasks started.
    pub tasks: u64,
    /// Tasks finished.
    pub finished: u64,
    /// Time resumed on a worker (or running on a thread).
    pub running: Duration,
    /// Stretches of running (resumes, starts included).
    pub runs: u64,
    /// Time ready but not resumed.
    pub scheduling: Duration,
    /// Time blocked, per kind of operation, longest first.
    pub blocked: Vec<OpTime>,
    /// Fiber stack use of the tasks' fibers (Green).
    pub stack: Option<StackProfile>,
}

/// Fiber stack use of one spawn site's fibers.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct StackProfile {
    /// Fibers measured (one per task started on a fiber of its own).
    pub fibers: u64,
    /// The most any of them used, in bytes.
    pub max_used: usize,
    /// Their mean use, in bytes.
    pub mean_used: usize,
    /// The usable size of each stack.
    pub size: usize,
}

/// The figures of one task.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TaskProfile {
    /// The task's id.
    pub id: TaskId,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Where it was spawned (`None` for a root task).
    pub location: Option<&'static Location<'static>>,
    /// Whether it has finished.
    pub finished: bool,
    /// Time resumed on a worker (or running on a thread).
    pub running: Duration,
    /// Time ready but not resumed.
    pub scheduling: Duration,
    /// Time blocked, per kind of operation, longest first.
    pub blocked: Vec<OpTime>,
    /// Its fiber's stack high-water mark in bytes, once the fiber finished.
    pub stack_used: Option<usize>,
}

/// Waits at one lock acquisition call site (a `Mutex::lock`, `RwLock::read`/`write`,
/// `Semaphore::acquire*` in user code) that found the lock taken.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LockProfile {
    /// `Mutex::lock`, `RwLock::read`, `RwLock::write` or `Semaphore::acquire`.
    pub kind: &'static str,
    /// The call site.
    pub location: &'static Location<'static>,
    /// Acquisitions that had to wait.
    pub waits: u64,
    /// Their total wait.
    pub total_wait: Duration,
    /// The longest wait.
    pub max_wait: Duration,
}

/// A duration recorded in clock units (see [`super::clock`]).
fn ns(units: u64) -> Duration {
    Duration::from_nanos(super::clock::to_ns(units))
}

fn op_times(b: &Blocked) -> Vec<OpTime> {
    let mut v: Vec<OpTime> =
        b.0.iter()
            .map(|&(op, t, count)| OpTime {
                op,
                time: ns(t),
                count,
            })
            .collect();
    v.sort_by_key(|o| std::cmp::Reverse(o.time));
    v
}

fn blocked_on(blocked: &[OpTime], op: &str) -> Duration {
    blocked.iter().filter(|o| o.op == op).map(|o| o.time).sum()
}

impl SiteProfile {
    /// Time blocked in operations of kind `op` (`"sleep"`, `"recv"`, ...).
    pub fn blocked_on(&self, op: &str) -> Duration {
        blocked_on(&self.blocked, op)
    }

    /// Time blocked in all operations.
    pub fn blocked_total(&self) -> Duration {
        self.blocked.iter().map(|o| o.time).sum()
    }

    /// The site as `file:line:column`, or `<root>`.
    pub fn name(&self) -> String {
        site_name(self.location)
    }
}

impl TaskProfile {
    /// Time blocked in operations of kind `op`.
    pub fn blocked_on(&self, op: &str) -> Duration {
        blocked_on(&self.blocked, op)
    }

    /// Time blocked in all operations.
    pub fn blocked_total(&self) -> Duration {
        self.blocked.iter().map(|o| o.time).sum()
    }
}

fn site_name(location: Option<&'static Location<'static>>) -> String {
    location.map_or_else(|| "<root>".to_owned(), |l| l.to_string())
}

impl Profile {
    /// Sums the recorder's shards.
    pub(crate) fn collect(rec: &Recorder) -> Profile {
        let mut sites: KeyMap<usize, SiteAcc> = KeyMap::default();
        let mut tasks: KeyMap<TaskId, TaskAcc> = KeyMap::default();
        let mut locks: KeyMap<(usize, super::record::LockKind), LockAcc> = KeyMap::default();
        rec.for_each_shard(|shard| {
            for (k, s) in &shard.sites {
                let e = sites.entry(*k).or_insert_with(|| SiteAcc {
                    site: s.site,
                    ..SiteAcc::default()
                });
                e.started += s.started;
                e.finished += s.finished;
                e.times.merge(&s.times);
                e.stack.merge(&s.stack);
            }
            for (id, t) in &shard.tasks {
                match tasks.get_mut(id) {
                    Some(e) => {
                        e.times.merge(&t.times);
                        e.finished |= t.finished;
                        e.stack_used = e.stack_used.or(t.stack_used);
                    }
                    None => {
                        tasks.insert(*id, t.clone());
                    }
                }
            }
            for (k, l) in &shard.locks {
                match locks.get_mut(k) {
                    Some(e) => {
                        e.waits += l.waits;
                        e.total_ns += l.total_ns;
                        e.max_ns = e.max_ns.max(l.max_ns);
                    }
                    None => {
                        locks.insert(*k, *l);
                    }
                }
            }
        });
        let since = rec.since_ns();
        let elapsed = if since == 0 {
            Duration::ZERO
        } else {
            ns(super::now_ticks().saturating_sub(since))
        };
        let mut sites: Vec<SiteProfile> = sites.into_values().map(site_profile).collect();
        sites.sort_by_key(|s| std::cmp::Reverse(s.running + s.blocked_total()));
        let mut tasks: Vec<TaskProfile> = tasks.into_values().map(task_profile).collect();
        tasks.sort_by_key(|t| std::cmp::Reverse(t.running));
        let mut locks: Vec<LockProfile> = locks
            .into_values()
            .map(|l| LockProfile {
                kind: l.kind.as_str(),
                location: l.site,
                waits: l.waits,
                total_wait: ns(l.total_ns),
                max_wait: ns(l.max_ns),
            })
            .collect();
        locks.sort_by_key(|l| std::cmp::Reverse(l.total_wait));
        Profile {
            elapsed,
            sites,
            tasks,
            locks,
        }
    }

    /// The figures of the tasks spawned at `file:line` (`file` as `Location::file` gives it:
    /// a path ending with it matches), summed over the call sites on that line.
    pub fn site_at(&self, file: &str, line: u32) -> Option<SiteProfile> {
        let mut found: Option<SiteProfile> = None;
        for s in &self.sites {
            let Some(l) = s.location else { continue };
            if l.line() != line || !l.file().ends_with(file) {
                continue;
            }
            match &mut found {
                None => found = Some(s.clone()),
                Some(f) => {
                    f.tasks += s.tasks;
                    f.finished += s.finished;
                    f.running += s.running;
                    f.runs += s.runs;
                    f.scheduling += s.scheduling;
                    f.blocked.extend(s.blocked.iter().cloned());
                }
            }
        }
        found
    }

    /// The same profile with only the running time kept: its flame graph shows where the
    /// workers' time in tasks went, which blocked time (summed over every waiting task)
    /// otherwise dwarfs.
    pub fn running_only(&self) -> Profile {
        let mut p = self.clone();
        for s in &mut p.sites {
            s.scheduling = Duration::ZERO;
            s.blocked.clear();
        }
        for t in &mut p.tasks {
            t.scheduling = Duration::ZERO;
            t.blocked.clear();
        }
        p
    }

    /// The figures of task `id`, if kept.
    pub fn task(&self, id: TaskId) -> Option<&TaskProfile> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// Folded stacks in the format of `inferno` and Brendan Gregg's `flamegraph.pl`: one line
    /// per spawn site and state, `site;state weight`, the state being `running`,
    /// `scheduling` or `blocked:<op>`, the weight in microseconds.
    pub fn folded(&self) -> String {
        let mut out = String::new();
        for s in &self.sites {
            let site = site_name(s.location).replace([';', ' '], "_");
            let mut line = |state: &str, d: Duration| {
                let us = d.as_micros();
                if us > 0 {
                    let _ = writeln!(out, "{site};{state} {us}");
                }
            };
            line("running", s.running);
            line("scheduling", s.scheduling);
            for o in &s.blocked {
                line(&format!("blocked:{}", o.op), o.time);
            }
        }
        out
    }

    /// Renders [`folded`](Profile::folded) as an SVG flame graph (with `inferno`) into `out`:
    /// one tower per spawn site, split into running, scheduling and blocked per operation.
    pub fn write_flamegraph(&self, out: impl std::io::Write) -> std::io::Result<()> {
        let folded = self.folded();
        let mut options = inferno::flamegraph::Options::default();
        options.title = "zsync: where tasks spend their time, per spawn site".to_owned();
        options.count_name = "µs".to_owned();
        options.deterministic = true;
        inferno::flamegraph::from_lines(&mut options, folded.lines(), out)
            .map_err(std::io::Error::other)
    }

    /// The profile as a JSON object: `elapsed_us`, `sites`, `tasks`, `locks` (times in
    /// microseconds).
    pub fn to_json(&self) -> String {
        let mut o = String::new();
        let _ = write!(
            o,
            "{{\"elapsed_us\":{},\"sites\":[",
            self.elapsed.as_micros()
        );
        for (i, s) in self.sites.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            o.push_str("{\"site\":");
            json_str(&mut o, &site_name(s.location));
            let _ = write!(
                o,
                ",\"tasks\":{},\"finished\":{},\"running_us\":{},\"runs\":{},\"scheduling_us\":{},\"blocked\":",
                s.tasks,
                s.finished,
                s.running.as_micros(),
                s.runs,
                s.scheduling.as_micros()
            );
            json_ops(&mut o, &s.blocked);
            if let Some(st) = &s.stack {
                let _ = write!(
                    o,
                    ",\"stack\":{{\"fibers\":{},\"max_used\":{},\"mean_used\":{},\"size\":{}}}",
                    st.fibers, st.max_used, st.mean_used, st.size
                );
            }
            o.push('}');
        }
        o.push_str("],\"tasks\":[");
        for (i, t) in self.tasks.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "{{\"id\":{},\"name\":", t.id.as_u64());
            match &t.name {
                Some(n) => json_str(&mut o, n),
                None => o.push_str("null"),
            }
            o.push_str(",\"site\":");
            json_str(&mut o, &site_name(t.location));
            let _ = write!(
                o,
                ",\"finished\":{},\"running_us\":{},\"scheduling_us\":{},\"blocked\":",
                t.finished,
                t.running.as_micros(),
                t.scheduling.as_micros()
            );
            json_ops(&mut o, &t.blocked);
            if let Some(used) = t.stack_used {
                let _ = write!(o, ",\"stack_used\":{used}");
            }
            o.push('}');
        }
        o.push_str("],\"locks\":[");
        for (i, l) in self.locks.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            o.push_str("{\"kind\":");
            json_str(&mut o, l.kind);
            o.push_str(",\"site\":");
            json_str(&mut o, &l.location.to_string());
            let _ = write!(
                o,
                ",\"waits\":{},\"total_wait_us\":{},\"max_wait_us\":{}}}",
                l.waits,
                l.total_wait.as_micros(),
                l.max_wait.as_micros()
            );
        }
        o.push_str("]}");
        o
    }
}

fn json_ops(o: &mut String, ops: &[OpTime]) {
    o.push('{');
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        json_str(o, op.op);
        let _ = write!(
            o,
            ":{{\"us\":{},\"count\":{}}}",
            op.time.as_micros(),
            op.count
        );
    }
    o.push('}');
}

fn json_str(o: &mut String, s: &str) {
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
}

fn site_profile(s: SiteAcc) -> SiteProfile {
    let Times {
        running,
        scheduling,
        blocked,
        runs,
    } = &s.times;
    SiteProfile {
        location: s.site,
        tasks: s.started,
        finished: s.finished,
        running: ns(*running),
        runs: *runs,
        scheduling: ns(*scheduling),
        blocked: op_times(blocked),
        stack: stack_profile(&s.stack),
    }
}

fn stack_profile(s: &StackUse) -> Option<StackProfile> {
    (s.fibers > 0).then(|| StackProfile {
        fibers: s.fibers,
        max_used: s.max_used,
        mean_used: (s.total_used / s.fibers) as usize,
        size: s.size,
    })
}

fn task_profile(t: TaskAcc) -> TaskProfile {
    TaskProfile {
        id: t.id,
        name: t.name,
        location: t.site,
        finished: t.finished,
        running: ns(t.times.running),
        scheduling: ns(t.times.scheduling),
        blocked: op_times(&t.times.blocked),
        stack_used: t.stack_used,
    }
}

/// A duration in the report's units: `812.3ms`, `1.94s`, `35.0µs`.
struct Short(Duration);

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.as_secs_f64() * 1e6;
        let s = if us >= 1e6 {
            format!("{:.2}s", us / 1e6)
        } else if us >= 1e3 {
            format!("{:.1}ms", us / 1e3)
        } else {
            format!("{us:.1}µs")
        };
        f.pad(&s)
    }
}

fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

/// The hint a spawn site's stack use deserves, if any.
pub(crate) fn stack_hint(st: &StackProfile) -> Option<String> {
    if st.size == 0 {
        return None;
    }
    if st.max_used * 4 >= st.size * 3 {
        Some(format!(
            "came within {} of the end of its {} stack: raise Builder::stack_size",
            kib(st.size - st.max_used),
            kib(st.size)
        ))
    } else if st.max_used * 16 <= st.size {
        Some(format!(
            "uses at most {} of its {} stack: Builder::stack_size could be smaller",
            kib(st.max_used),
            kib(st.size)
        ))
    } else {
        None
    }
}

fn ops_line(blocked: &[OpTime]) -> String {
    blocked
        .iter()
        .map(|o| format!("{} {} ×{}", o.op, Short(o.time), o.count))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Tasks the text report lists by name.
const REPORT_TASKS: usize = 10;

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tasks: u64 = self.sites.iter().map(|s| s.tasks).sum();
        let finished: u64 = self.sites.iter().map(|s| s.finished).sum();
        writeln!(
            f,
            "zsync profile: {} recorded, {} spawn sites, {tasks} tasks ({finished} finished)",
            Short(self.elapsed),
            self.sites.len()
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<40} {:>7} {:>10} {:>10} {:>10}  blocked in",
            "spawn site", "tasks", "running", "scheduling", "blocked"
        )?;
        for s in &self.sites {
            writeln!(
                f,
                "{:<40} {:>7} {:>10} {:>10} {:>10}  {}",
                s.name(),
                s.tasks,
                Short(s.running),
                Short(s.scheduling),
                Short(s.blocked_total()),
                ops_line(&s.blocked)
            )?;
        }
        let stacks: Vec<_> = self
            .sites
            .iter()
            .filter_map(|s| s.stack.map(|st| (s, st)))
            .collect();
        if !stacks.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "{:<40} {:>7} {:>10} {:>10} {:>10}",
                "fiber stacks", "fibers", "max used", "mean used", "size"
            )?;
            for (s, st) in stacks {
                writeln!(
                    f,
                    "{:<40} {:>7} {:>10} {:>10} {:>10}",
                    s.name(),
                    st.fibers,
                    kib(st.max_used),
                    kib(st.mean_used),
                    kib(st.size)
                )?;
                if let Some(hint) = stack_hint(&st) {
                    writeln!(f, "  hint: {} {hint}", s.name())?;
                }
            }
        }
        if !self.locks.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "{:<40} {:<20} {:>7} {:>10} {:>10}",
                "contended locks", "", "waits", "total", "max"
            )?;
            for l in &self.locks {
                writeln!(
                    f,
                    "{:<40} {:<20} {:>7} {:>10} {:>10}",
                    l.location.to_string(),
                    l.kind,
                    l.waits,
                    Short(l.total_wait),
                    Short(l.max_wait)
                )?;
            }
        }
        if !self.tasks.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "{:<48} {:>10} {:>10} {:>10}  (top {} by running time)",
                "task", "running", "scheduling", "blocked", REPORT_TASKS
            )?;
            for t in self.tasks.iter().take(REPORT_TASKS) {
                let who = match &t.name {
                    Some(n) => format!("{} '{n}' {}", t.id, site_name(t.location)),
                    None => format!("{} {}", t.id, site_name(t.location)),
                };
                writeln!(
                    f,
                    "{:<48} {:>10} {:>10} {:>10}{}",
                    who,
                    Short(t.running),
                    Short(t.scheduling),
                    Short(t.blocked_total()),
                    if t.finished { "" } else { "  (live)" }
                )?;
            }
        }
        Ok(())
    }
}

/// Profiles (feature `profile`).
impl crate::Io {
    /// A snapshot of this runtime's profile: what it recorded since profiling was turned on
    /// ([`Builder::profile`](crate::Builder::profile), [`set_profiling`](crate::Io::set_profiling))
    /// or last [reset](crate::Io::reset_profile). Empty if it never profiled. Takes each recording
    /// shard's lock in turn: cheap, but not for a hot loop.
    ///
    /// ```
    /// use zsync::{Builder, Model};
    /// Builder::new(Model::Blocking).profile(true).run(|io| {
    ///     io.spawn(|io| io.sleep(std::time::Duration::from_millis(2))).join().unwrap();
    ///     let p = io.profile();
    ///     assert!(p.sites.iter().any(|s| s.blocked_total() >= std::time::Duration::from_millis(2)));
    /// });
    /// ```
    pub fn profile(&self) -> Profile {
        Profile::collect(&self.inner.state.profile)
    }

    /// Turns profiling of this runtime on or off while it runs; figures recorded so far are
    /// kept. Off, each scheduling event costs one relaxed load of the runtime's flag.
    pub fn set_profiling(&self, on: bool) {
        self.inner.state.profile.set_enabled(on);
    }

    /// Forgets the figures recorded so far (a profile of the next stretch only).
    pub fn reset_profile(&self) {
        self.inner.state.profile.reset();
    }
}
