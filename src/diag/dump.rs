//! Task dumps: every live task of a runtime, what it waits on, and a parked fiber's stack.
//!
//! [`Io::dump`](crate::Io::dump) (also [`Handle::dump`](crate::Handle::dump), [`current`], and
//! [`Builder::dump_on_signal`](crate::Builder::dump_on_signal)) returns a [`Dump`]: one
//! [`TaskDump`] per task found, with its id, name, spawn location, parent, worker, state, the
//! operation it waits in ([`WaitPoint`]: operation, descriptor or object, the *user's* line of
//! the blocking call, for how long) and, for a Green fiber and for the task taking the dump, a
//! [`Stack`]: the frames of its stack, symbolized only when printed or asked for.
//!
//! ```
//! use zsync::{Builder, Model};
//!
//! Builder::new(Model::Green).worker_threads(1).run(|io| {
//!     let (tx, rx) = zsync::channel::bounded::<u32>(1);
//!     let task = io.task().name("waiter").spawn(move |_| rx.recv());
//!     io.sleep(std::time::Duration::from_millis(20)).unwrap();
//!     let dump = io.dump();
//!     let waiter = dump.tasks().iter().find(|t| t.name() == Some("waiter")).unwrap();
//!     assert_eq!(waiter.state(), zsync::dump::TaskState::Parked);
//!     assert_eq!(waiter.wait().unwrap().op(), zsync::dump::WaitOp::ChannelRecv);
//!     println!("{dump}");
//!     drop(tx);
//!     let _ = task.join();
//! });
//! ```
//!
//! ## How tasks are found (no registry, no cost on spawn)
//!
//! - **Tasks that blocked at least once** are in the cancellation tree: every cancellation
//!   point registers its task in its parent's children before it may sleep (see
//!   `src/cancel.rs`), and a task leaves the tree when it finishes. The dump walks it from the
//!   runtime's root node, under each shard's lock in turn, as `cancel()` does. Each node's task
//!   cell gives the id, name and spawn location; its wait slot the wait point.
//! - **Green fibers** (parked, ready, or yielded) are in their worker's fiber table. Each
//!   worker serves a dump request at a safe point of its loop (no fiber running): it resumes
//!   each fiber into a trace routine (`fiber::suspend` sees `Resume::Trace`), which records the
//!   fiber's task context and an unresolved backtrace of its own stack, and suspends again
//!   without that counting as a wake-up. A worker that does not answer within a bounded time
//!   (blocked in a call outside zsync, or computing without yielding) is named in a note, with
//!   the spawn site of the task holding it.
//! - **Queued tasks** (spawned, not started) are taken out of the models' queues for a moment
//!   and put back (Green, Threaded); **a Threaded worker's running task** is in its
//!   `RunningSlot` (`diag/running.rs`); **running ancestors** of the tasks found are followed
//!   up the tree; on Blocking, **the chain of inline spawns** of the dumping thread.
//! - **Tasks parked on OS threads** are asked for their stacks (`diag/thread_trace.rs`).
//! - **The task taking the dump** is the running one on its thread: its stack is captured in
//!   place.
//!
//! What is left out (a custom model's queues, a task run inline by its joiner before it
//! waits) is counted in a note. See docs/ARCHITECTURE.md, "Task dumps", for why.

use std::collections::HashMap;
use std::fmt;
use std::panic::Location;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::wait_point::WaitSnapshot;
pub use super::wait_point::{Object as WaitObject, WaitOp};
use crate::cancel::{CancelNode, NodeOwner, NodeRef};
use crate::context::{self, TaskContext};
use crate::task::{Runnable, TaskId};
use crate::Io;

/// At most this many queued tasks are taken out of a model's queues and listed per dump.
pub(crate) const SURVEY_LIMIT: usize = 100_000;

/// How long a dump waits for a Green worker to serve it before giving up on that worker.
pub(crate) const WORKER_PATIENCE: Duration = Duration::from_secs(1);

/// A snapshot of a runtime's live tasks: see the [module docs](self).
///
/// `Display` prints it the way Go prints its goroutines on `SIGQUIT`; `Debug` shows the same
/// data as a structure.
pub struct Dump {
    model: String,
    tasks: Vec<TaskDump>,
    notes: Vec<String>,
}

impl Dump {
    /// The tasks found, the one that took the dump first, then by id.
    pub fn tasks(&self) -> &[TaskDump] {
        &self.tasks
    }

    /// The task named `name`, if one was found.
    pub fn task_named(&self, name: &str) -> Option<&TaskDump> {
        self.tasks.iter().find(|t| t.name() == Some(name))
    }

    /// What the dump could not do or show (a worker that did not answer, tasks not listed,
    /// stacks that cannot be captured on this model).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The runtime's model, as [`Io::model_name`](crate::Io::model_name) names it.
    pub fn model(&self) -> &str {
        &self.model
    }
}

/// What a task is doing, as far as a dump can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskState {
    /// Spawned and not started yet.
    Unstarted,
    /// Runnable, waiting for its worker (woken, or yielded).
    Ready,
    /// Running on a thread now (for a thread-model task: not sleeping in a zsync wait).
    Running,
    /// Sleeping in a zsync wait (see [`TaskDump::wait`]).
    Parked,
    /// Waiting for its closure on a helper thread ([`Io::blocking`](crate::Io::blocking)).
    Blocking,
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskState::Unstarted => "unstarted",
            TaskState::Ready => "ready",
            TaskState::Running => "running",
            TaskState::Parked => "parked",
            TaskState::Blocking => "in a blocking helper",
        })
    }
}

/// What a task waits on.
#[derive(Clone, Copy, Debug)]
pub struct WaitPoint {
    op: WaitOp,
    object: WaitObject,
    location: Option<&'static Location<'static>>,
    waiting_for: Option<Duration>,
}

impl WaitPoint {
    fn from_snapshot(w: WaitSnapshot) -> Option<WaitPoint> {
        (w.waiting_for.is_some() || w.location.is_some()).then_some(WaitPoint {
            op: w.op,
            object: w.object,
            location: w.location,
            waiting_for: w.waiting_for,
        })
    }

    /// The operation ([`WaitOp::Unknown`] for a wait inside zsync that names none).
    pub fn op(&self) -> WaitOp {
        self.op
    }

    /// The descriptor or object waited on.
    pub fn object(&self) -> WaitObject {
        self.object
    }

    /// The line of user code that called the blocking operation.
    pub fn location(&self) -> Option<&'static Location<'static>> {
        self.location
    }

    /// How long the task has been sleeping (to a clock tick, 1–4 ms), `None` if it is in the
    /// operation but not sleeping.
    pub fn waiting_for(&self) -> Option<Duration> {
        self.waiting_for
    }
}

impl fmt::Display for WaitPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.op)?;
        if self.object != WaitObject::None {
            write!(f, " on {}", self.object)?;
        }
        if let Some(l) = self.location {
            write!(f, " at {l}")?;
        }
        if let Some(d) = self.waiting_for {
            write!(f, " for {}", Millis(d))?;
        }
        Ok(())
    }
}

struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms >= 10_000 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// One task of a [`Dump`].
#[derive(Debug)]
pub struct TaskDump {
    id: Option<TaskId>,
    name: Option<String>,
    spawned_at: Option<&'static Location<'static>>,
    parent: Option<TaskId>,
    root: bool,
    current: bool,
    worker: Option<usize>,
    state: TaskState,
    wait: Option<WaitPoint>,
    future: Option<(&'static str, usize)>,
    stack: Option<Stack>,
    note: Option<String>,
}

impl TaskDump {
    /// The task's id (`None` for a root task whose id was not recorded where the dump looks).
    pub fn id(&self) -> Option<TaskId> {
        self.id
    }

    /// The task's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Where it was spawned (`None` for a root task: the closure of `run` or `block_on`).
    pub fn spawned_at(&self) -> Option<&'static Location<'static>> {
        self.spawned_at
    }

    /// The task that spawned it, if it is a task with an id (not the root).
    pub fn parent(&self) -> Option<TaskId> {
        self.parent
    }

    /// Whether this is a root task: the closure of `run`, or of a `block_on` from a thread
    /// outside the runtime.
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Whether this is the task that took the dump.
    pub fn is_current(&self) -> bool {
        self.current
    }

    /// The Green worker it runs on, if known.
    pub fn worker(&self) -> Option<usize> {
        self.worker
    }

    /// What it is doing.
    pub fn state(&self) -> TaskState {
        self.state
    }

    /// What it waits on, if it is in a blocking operation.
    pub fn wait(&self) -> Option<&WaitPoint> {
        self.wait.as_ref()
    }

    /// For a future task: its future's type and the size in bytes of its frame.
    pub fn future(&self) -> Option<(&'static str, usize)> {
        self.future
    }

    /// Its stack: a Green fiber's, or the task that took the dump.
    pub fn stack(&self) -> Option<&Stack> {
        self.stack.as_ref()
    }

    /// Why something is missing (no stack on this model, a stack too full to trace).
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }
}

/// A task's stack, captured unresolved; symbolized on first use (printing, [`frames`]).
///
/// [`frames`]: Stack::frames
pub struct Stack {
    raw: Mutex<backtrace::Backtrace>,
    frames: OnceLock<Vec<StackFrame>>,
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.frames()).finish()
    }
}

/// One frame of a [`Stack`] (an inlined function is a frame of its own).
#[derive(Clone, Debug)]
pub struct StackFrame {
    function: Option<String>,
    file: Option<PathBuf>,
    line: Option<u32>,
}

impl StackFrame {
    /// The function's demangled name (without the hash), if the binary has symbols.
    pub fn function(&self) -> Option<&str> {
        self.function.as_deref()
    }

    /// The source file, if the binary has debug info.
    pub fn file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }

    /// The source line, if the binary has debug info.
    pub fn line(&self) -> Option<u32> {
        self.line
    }
}

/// Frames at the top of a captured stack that belong to the capture itself (the unwinder,
/// this module, a fiber's trace routine and its suspension, `Io::dump`).
const CAPTURE_FRAMES: &[&str] = &[
    "backtrace::",
    "zsync::diag::",
    "zsync::model::green::fiber::",
    "zsync::io::<impl zsync::Io>::dump",
    "zsync::io::Io::dump",
    "zsync::runtime::Handle::dump",
];

/// Frames where a task's own code ends: the runtime's frames that run a task (its cell, the
/// panic containment around it), a fiber's entry, a thread's start.
const BASE_FRAMES: &[&str] = &[
    "<F as zsync::task::cell::Body<T>>::call",
    "zsync::task::cell::",
    "zsync::contain::catch",
    "zsync::stackless::cell::",
    "zsync::model::green::Green::run_root",
    "zsync::builder::",
    "zsync::runtime::Handle::block_on",
    "corosensei::",
    "std::sys::backtrace::__rust_begin_short_backtrace",
    "std::rt::lang_start",
];

/// Whether a frame is zsync's own, or the standard library's between zsync's (thread-local
/// accessors, closures' calls): hidden above the public operation a task waits in.
fn is_zsync(name: &str) -> bool {
    let name = name
        .trim_start_matches('<')
        .trim_start_matches("&mut ")
        .trim_start_matches('&');
    ["zsync::", "std::", "core::", "alloc::"]
        .iter()
        .any(|p| name.starts_with(p))
}

impl Stack {
    fn new(raw: backtrace::Backtrace) -> Stack {
        Stack {
            raw: Mutex::new(raw),
            frames: OnceLock::new(),
        }
    }

    /// The frames of the task's code, innermost first: the capture's own frames at the top and
    /// the runtime's below the task's entry are left out.
    pub fn frames(&self) -> &[StackFrame] {
        self.frames.get_or_init(|| {
            let mut raw = self.raw.lock().unwrap_or_else(|p| p.into_inner());
            raw.resolve();
            let mut all = Vec::new();
            for frame in raw.frames() {
                for sym in frame.symbols() {
                    all.push(StackFrame {
                        function: sym.name().map(|n| format!("{n:#}")),
                        file: sym.filename().map(|p| p.to_path_buf()),
                        line: sym.lineno(),
                    });
                }
            }
            let is = |f: &StackFrame, list: &[&str]| {
                f.function
                    .as_deref()
                    .is_some_and(|n| list.iter().any(|m| n.starts_with(m)))
            };
            // The task's own frames end where the runtime's (or the resumer's, for a traced
            // fiber) begin; above them, cut after the last frame of the capture itself.
            let end = all
                .iter()
                .position(|f| is(f, BASE_FRAMES))
                .unwrap_or(all.len());
            let mut start = all[..end]
                .iter()
                .rposition(|f| is(f, CAPTURE_FRAMES))
                .map_or(0, |i| i + 1);
            // zsync's frames between the suspension and the public operation the task called
            // (the park, the wait loop) say nothing to its author: keep the operation only.
            let first_user = all[start..end]
                .iter()
                .position(|f| !f.function.as_deref().is_some_and(is_zsync))
                .map_or(end, |i| start + i);
            if first_user > start && first_user < end {
                start = first_user - 1;
            }
            all.truncate(end);
            all.drain(..start);
            all
        })
    }
}

impl fmt::Display for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for frame in self.frames() {
            writeln!(f, "      {}", frame.function().unwrap_or("<unknown>"))?;
            if let (Some(file), Some(line)) = (frame.file(), frame.line()) {
                writeln!(f, "          at {}:{line}", file.display())?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for TaskDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task ")?;
        match self.id {
            Some(id) => write!(f, "{id}")?,
            None => f.write_str("#?")?,
        }
        if let Some(name) = &self.name {
            write!(f, " '{name}'")?;
        }
        if self.root {
            f.write_str(" (root)")?;
        }
        write!(f, " [{}", self.state)?;
        if let Some(d) = self.wait.and_then(|w| w.waiting_for) {
            write!(f, ", {}", Millis(d))?;
        }
        f.write_str("]")?;
        if let Some(w) = self.worker {
            write!(f, " on worker {w}")?;
        }
        if self.current {
            f.write_str(" (took this dump)")?;
        }
        writeln!(f)?;
        if let Some(at) = self.spawned_at {
            write!(f, "    spawned at {at}")?;
            match self.parent {
                Some(p) => writeln!(f, " by {p}")?,
                None => writeln!(f, " by the root")?,
            }
        }
        if let Some(w) = &self.wait {
            writeln!(f, "    waiting in {w}")?;
        }
        if let Some((ty, size)) = self.future {
            writeln!(f, "    future {ty} ({size} bytes)")?;
        }
        if let Some(note) = &self.note {
            writeln!(f, "    ({note})")?;
        }
        if let Some(stack) = &self.stack {
            writeln!(f, "    stack:")?;
            write!(f, "{stack}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "zsync task dump: {} tasks on the {} model",
            self.tasks.len(),
            self.model
        )?;
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        for task in &self.tasks {
            writeln!(f)?;
            write!(f, "{task}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dump")
            .field("model", &self.model)
            .field("tasks", &self.tasks)
            .field("notes", &self.notes)
            .finish()
    }
}

/// A dump of the runtime of the running task ([`Io::current`](crate::Io::current)), or `None`
/// outside any task.
///
/// ```
/// zsync::Builder::new(zsync::Model::Threaded).run(|_io| {
///     let dump = zsync::dump::current().unwrap();
///     assert!(dump.tasks().iter().any(|t| t.is_current()));
/// });
/// assert!(zsync::dump::current().is_none());
/// ```
pub fn current() -> Option<Dump> {
    Io::current().map(|io| io.dump())
}

// ---- What the models report (crate-internal) ----

/// A task as seen from its running context (its own, or a suspended fiber's).
#[derive(Clone)]
pub(crate) struct Seen {
    id: TaskId,
    name: Option<String>,
    node: NodeRef,
    wait: WaitSnapshot,
}

impl Seen {
    /// What `ctx` says of its task. Runs on the task's own thread (its fiber, or the task itself).
    pub(crate) fn of(ctx: &TaskContext<'_>) -> Seen {
        Seen {
            id: ctx.task.id,
            name: ctx.task.name.map(|n| n.as_str().to_owned()),
            node: ctx.cancel.node_ref(),
            wait: ctx.wait.snapshot(),
        }
    }
}

/// A Green fiber, as its trace routine reported it.
#[derive(Clone)]
pub(crate) struct FiberSeen {
    pub(crate) worker: usize,
    /// Runnable (woken or yielded) rather than parked.
    pub(crate) ready: bool,
    /// Its task (the innermost one, for a task run inline by its joiner), if it runs in one.
    pub(crate) task: Option<Seen>,
    pub(crate) stack: Option<backtrace::Backtrace>,
    pub(crate) note: Option<&'static str>,
}

/// A future task's part of a dump (from its cell).
pub(crate) struct FutureSeen {
    pub(crate) type_name: &'static str,
    pub(crate) frame_size: usize,
    pub(crate) state: TaskState,
}

/// Captures the calling thread's stack, unresolved. For the trace routine and the dumper.
#[inline(never)]
pub(crate) fn capture_here() -> backtrace::Backtrace {
    backtrace::Backtrace::new_unresolved()
}

/// What the model can tell beyond the cancellation tree.
#[derive(Default)]
pub(crate) struct ModelReport {
    /// Green's fibers, traced.
    pub(crate) fibers: Vec<FiberSeen>,
    /// Tasks found in the model's queues (references taken while they were out).
    pub(crate) queued: Vec<Runnable>,
    /// Tasks running on a runner thread now (Threaded pool workers).
    pub(crate) running: Vec<Runnable>,
    /// Green workers that did not answer, with the spawn site of the task holding them (from
    /// the monitor's progress word, when the monitor is on).
    pub(crate) busy: Vec<(usize, Option<&'static Location<'static>>)>,
    pub(crate) notes: Vec<String>,
}

/// Takes a dump of `io`'s runtime (see the module docs).
pub(crate) fn collect(io: &Io) -> Dump {
    let mut b = Collector {
        tasks: Vec::new(),
        by_node: HashMap::new(),
        nodes: HashMap::new(),
        parents: Vec::new(),
        notes: Vec::new(),
    };
    // The task taking the dump, with its stack captured here.
    context::with(|c| {
        if let Some(c) = c.filter(|c| std::sync::Arc::ptr_eq(&c.io.inner, &io.inner)) {
            let seen = Seen::of(c);
            let i = b.add_seen(&seen, TaskState::Running);
            b.tasks[i].current = true;
            b.tasks[i].stack = Some(Stack::new(capture_here()));
            b.tasks[i].worker = io.inner.model.current_worker();
            if io.model() == crate::ModelKind::Blocking {
                b.add_inline_chain(i);
            }
        }
    });
    let report = io.inner.model.dump_report(WORKER_PATIENCE);
    for fiber in report.fibers {
        b.add_fiber(fiber);
    }
    b.notes.extend(report.notes);
    b.walk(&io.inner.root);
    for task in &report.running {
        b.add_runnable(task, TaskState::Running);
    }
    for task in &report.queued {
        b.add_runnable(task, TaskState::Unstarted);
    }
    b.add_ancestors();
    for (worker, site) in report.busy {
        b.add_busy(worker, site);
    }
    b.trace_threads(io.model() == crate::ModelKind::Green, &io.inner.root);
    let listed = b.tasks.iter().filter(|t| !t.root).count();
    let live = io.inner.state.live_estimate();
    if live > listed {
        b.notes.push(format!(
            "about {} more live task(s) not listed: tasks run inline by their joiners that \
             have not waited yet, tasks in queues of a custom model or on `concurrent` \
             threads, or taken out of a queue at the moment of the dump",
            live - listed
        ));
    }
    let mut tasks = b.tasks;
    tasks.sort_by_key(|t| (!t.current, !t.root, t.id));
    Dump {
        model: match io.model() {
            crate::ModelKind::Green => format!("Green ({})", io.backend_name()),
            _ => io.model_name().to_string(),
        },
        tasks,
        notes: b.notes,
    }
}

struct Collector {
    tasks: Vec<TaskDump>,
    by_node: HashMap<usize, usize>,
    /// The node of each entry found in the tree, by entry.
    nodes: HashMap<usize, NodeRef>,
    /// Parents of the tasks listed, to look at once everything else is in (see
    /// [`add_ancestors`](Self::add_ancestors)).
    parents: Vec<NodeRef>,
    notes: Vec<String>,
}

/// The address of a node: what identifies its task across the places a dump finds it.
fn node_addr(owner: &dyn NodeOwner) -> usize {
    owner.node() as *const CancelNode as usize
}

impl Collector {
    /// The entry for `owner`'s node, made from the node alone if the task was not seen yet.
    fn entry(&mut self, owner: &dyn NodeOwner, id: Option<TaskId>, name: Option<String>) -> usize {
        let addr = node_addr(owner);
        if let Some(&i) = self.by_node.get(&addr) {
            return i;
        }
        let node = owner.node();
        let meta = owner.task_meta();
        let future = owner.future_state();
        let wait = WaitPoint::from_snapshot(node.wait.snapshot());
        let state = match (&future, &wait) {
            (Some(f), _) => f.state,
            (None, Some(w)) if w.waiting_for.is_some() && w.op == WaitOp::Blocking => {
                TaskState::Blocking
            }
            (None, Some(w)) if w.waiting_for.is_some() => TaskState::Parked,
            _ => TaskState::Running,
        };
        let dump = TaskDump {
            id: id.or(meta.map(|m| m.id)),
            name: name.or_else(|| meta.and_then(|m| m.name()).map(str::to_owned)),
            spawned_at: meta.map(|m| m.location),
            parent: parent_id(node),
            root: meta.is_none(),
            current: false,
            worker: None,
            state,
            wait,
            future: future.map(|f| (f.type_name, f.frame_size)),
            stack: None,
            note: None,
        };
        if let Some(p) = node.parent() {
            self.parents.push(p.clone());
        }
        self.tasks.push(dump);
        self.by_node.insert(addr, self.tasks.len() - 1);
        self.tasks.len() - 1
    }

    fn add_seen(&mut self, seen: &Seen, state: TaskState) -> usize {
        let i = self.entry(seen.node.owner(), Some(seen.id), seen.name.clone());
        let t = &mut self.tasks[i];
        t.state = state;
        t.wait = WaitPoint::from_snapshot(seen.wait);
        i
    }

    fn add_fiber(&mut self, fiber: FiberSeen) {
        let Some(seen) = &fiber.task else {
            return; // a fiber outside any task: zsync's own, nothing to show
        };
        if self.by_node.contains_key(&seen.node.addr())
            && self.tasks[self.by_node[&seen.node.addr()]].current
        {
            return;
        }
        let wait = WaitPoint::from_snapshot(seen.wait);
        let state = if fiber.ready {
            TaskState::Ready
        } else if wait.is_some_and(|w| w.op == WaitOp::Blocking) {
            TaskState::Blocking
        } else {
            TaskState::Parked
        };
        let i = self.add_seen(seen, state);
        let t = &mut self.tasks[i];
        t.worker = Some(fiber.worker);
        t.stack = fiber.stack.map(Stack::new);
        t.note = fiber.note.map(str::to_owned);
    }

    /// On Blocking, the tasks running inline on this thread, innermost (the current one,
    /// entry `current`) first: they share their caller's node, so the node says nothing of
    /// them; their spawners are running, waiting for them to return.
    fn add_inline_chain(&mut self, current: usize) {
        let chain = crate::model::blocking::inline_chain();
        let Some(((_, _, at), outer)) = chain.split_first() else {
            return;
        };
        let t = &mut self.tasks[current];
        t.root = false;
        t.spawned_at = Some(*at);
        t.parent = outer.first().map(|(id, _, _)| *id);
        for (k, (id, name, at)) in outer.iter().enumerate() {
            self.tasks.push(TaskDump {
                id: Some(*id),
                name: name.clone(),
                spawned_at: Some(*at),
                parent: outer.get(k + 1).map(|(id, _, _)| *id),
                root: false,
                current: false,
                worker: None,
                state: TaskState::Running,
                wait: None,
                future: None,
                stack: None,
                note: Some("running a task it spawned, inline".to_owned()),
            });
        }
    }

    /// Asks the tasks sleeping on OS threads for their stacks (see `diag/thread_trace.rs`):
    /// on Green only root tasks without a fiber: `block_on` callers on foreign threads, not
    /// `run`'s root (`root`), a fiber whose worker may just not have answered.
    fn trace_threads(&mut self, green: bool, root: &NodeRef) {
        let targets: Vec<(usize, NodeRef)> = self
            .nodes
            .iter()
            .filter(|(&i, n)| {
                let t = &self.tasks[i];
                t.stack.is_none()
                    && t.future.is_none()
                    && !t.current
                    && matches!(t.state, TaskState::Parked | TaskState::Blocking)
                    && (!green || (t.root && t.worker.is_none() && n.addr() != root.addr()))
            })
            .map(|(&i, n)| (i, n.clone()))
            .collect();
        if targets.is_empty() {
            return;
        }
        let nodes: Vec<NodeRef> = targets.iter().map(|(_, n)| n.clone()).collect();
        let mut stacks = super::thread_trace::request(&nodes, WORKER_PATIENCE);
        for (i, node) in targets {
            let t = &mut self.tasks[i];
            match stacks.remove(&(&node.wait as *const _ as usize)) {
                Some(stack) => t.stack = Some(Stack::new(stack)),
                None => {
                    t.note = Some(format!(
                        "its thread did not answer the request for its stack within \
                         {WORKER_PATIENCE:?} (it woke meanwhile, or is not in a zsync wait)"
                    ))
                }
            }
        }
    }

    /// A task found in a queue (`Unstarted`) or on a runner thread (`Running`). A task listed
    /// already keeps what was found of it there.
    fn add_runnable(&mut self, task: &Runnable, found: TaskState) {
        let Some(owner) = task.dump_owner() else {
            return; // not a task's work (an offloaded file op, a helper job)
        };
        if self.by_node.contains_key(&node_addr(owner)) {
            return;
        }
        let is_future = owner.future_state().is_some();
        let state = match found {
            TaskState::Unstarted if !task.is_started() => TaskState::Unstarted,
            // A stale queue entry: its joiner ran the closure task inline (the joiner's
            // entry shows it running), or a future task already polled once and woken.
            TaskState::Unstarted if !is_future => return,
            TaskState::Unstarted => TaskState::Ready,
            other => other,
        };
        let i = self.entry(owner, None, None);
        let t = &mut self.tasks[i];
        if t.wait.is_none_or(|w| w.waiting_for.is_none()) {
            t.state = state;
        }
    }

    /// Live ancestors of the tasks listed that are listed nowhere else: they are running (a
    /// Blocking spawner running its child inline, a joiner running its child, a task computing
    /// on a thread): a parked task is in the tree, a queued one in a queue.
    fn add_ancestors(&mut self) {
        while let Some(node) = self.parents.pop() {
            // A node without a task is a group's scope (skipped: its parent is looked at) or,
            // without a parent, a root task's: `run`'s closure or a `block_on` caller.
            if node.is_finished() {
                continue;
            }
            if node.owner().task_meta().is_none() {
                if let Some(p) = node.parent() {
                    self.parents.push(p.clone());
                    continue;
                }
            }
            if self.by_node.contains_key(&node.addr()) {
                continue;
            }
            self.entry(node.owner(), None, None);
        }
    }

    /// A Green worker that did not answer: the task holding it, by its spawn site (the task
    /// itself when the tree or its children name it).
    fn add_busy(&mut self, worker: usize, site: Option<&'static Location<'static>>) {
        let Some(site) = site else { return };
        if let Some(t) = self.tasks.iter_mut().find(|t| {
            t.state == TaskState::Running
                && t.worker.is_none()
                && t.spawned_at.is_some_and(|l| std::ptr::eq(l, site))
        }) {
            t.worker = Some(worker);
            return;
        }
        self.tasks.push(TaskDump {
            id: None,
            name: None,
            spawned_at: Some(site),
            parent: None,
            root: false,
            current: false,
            worker: Some(worker),
            state: TaskState::Running,
            wait: None,
            future: None,
            stack: None,
            note: Some(format!(
                "holds worker {worker}, which did not answer: only its spawn site is known"
            )),
        });
    }

    /// Adds every task registered below `root` (see the module docs).
    fn walk(&mut self, root: &NodeRef) {
        let mut stack = vec![root.clone()];
        let mut seen_nodes = 0usize;
        while let Some(node) = stack.pop() {
            seen_nodes += 1;
            if seen_nodes > 1_000_000 {
                self.notes
                    .push("stopped walking the task tree after a million nodes".to_owned());
                break;
            }
            // A node of its own is a task's only if a context uses it: the root task's, or a
            // `block_on` caller's (a group's scope never waits); it shows when it waits.
            // A finished task stays in the tree while registered children of its own live
            // (see "Finishing" in `crate::cancel`): not listed, but walked through.
            let shown = !node.is_finished()
                && (node.owner().task_meta().is_some()
                    || WaitPoint::from_snapshot(node.wait.snapshot()).is_some());
            if shown {
                let i = self.entry(node.owner(), None, None);
                self.nodes.insert(i, node.clone());
            }
            stack.extend(node.registered_children());
        }
    }
}

/// The nearest ancestor of `node` that is a task (groups' scopes are skipped).
fn parent_id(node: &CancelNode) -> Option<TaskId> {
    let mut p = node.parent();
    while let Some(n) = p {
        if let Some(meta) = n.owner().task_meta() {
            return Some(meta.id);
        }
        p = n.parent();
    }
    None
}
