//! Green's half of a task dump: asking every worker for its fibers' reports.
//!
//! A worker can resume only its own fibers, and only when none of them runs, so the request is
//! served by each worker at a safe point of its loop (the top of a turn), or, for the worker
//! the requesting fiber runs on, by the requester itself (every other fiber of that worker is
//! suspended while it runs). The protocol:
//!
//! 1. The requester bumps `epoch` (under the board's lock) and writes every other worker's
//!    eventfd, so that a worker sleeping in its reactor turns its loop.
//! 2. Each worker sees `epoch` differ from the last one it answered (one relaxed load per loop
//!    turn), traces its fibers ([`WorkerLocal::answer_dump`](super::worker)) and posts the
//!    reports with the epoch they answer; a report for a later epoch answers earlier requests
//!    too.
//! 3. The requester waits on the board's condition variable until every worker answered, for
//!    at most its patience. A worker stuck in a call outside zsync (or computing without
//!    yielding) never turns its loop: the dump goes on without its fibers and says so. While
//!    it waits, a requester that is a worker answers newer requests for its own worker, so
//!    two workers taking dumps at once do not wait for each other.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_deque::Steal;

use super::worker::with_worker;
use super::{fiber, Green, Shared};
use crate::diag::dump::{FiberSeen, ModelReport};
use crate::task::Runnable;

/// At most this many queued tasks are taken out and listed per dump.
const SURVEY: usize = crate::diag::dump::SURVEY_LIMIT;

/// Per runtime: the latest request and each worker's latest answer.
pub(super) struct DumpBoard {
    /// The latest request: bumped by requesters, read by every worker once per loop turn.
    epoch: AtomicU64,
    /// Per worker: the epoch it answered last and its fibers' reports then.
    answers: Mutex<Vec<(u64, Vec<FiberSeen>)>>,
    answered: Condvar,
}

impl DumpBoard {
    pub(super) fn new(workers: usize) -> DumpBoard {
        DumpBoard {
            epoch: AtomicU64::new(0),
            answers: Mutex::new((0..workers).map(|_| (0, Vec::new())).collect()),
            answered: Condvar::new(),
        }
    }

    /// The latest request (0: none yet).
    #[inline]
    pub(super) fn requested(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Posts worker `index`'s answer to request `epoch`.
    pub(super) fn answer(&self, index: usize, epoch: u64, fibers: Vec<FiberSeen>) {
        let mut answers = self.answers.lock().unwrap_or_else(|p| p.into_inner());
        if answers[index].0 < epoch {
            answers[index] = (epoch, fibers);
        }
        drop(answers);
        self.answered.notify_all();
    }
}

impl Green {
    /// Every worker's fibers, traced (see the module docs).
    pub(crate) fn dump_report(&self, patience: Duration) -> ModelReport {
        let board = &self.shared.dump;
        let epoch = {
            let _answers = board.answers.lock().unwrap_or_else(|p| p.into_inner());
            board.epoch.fetch_add(1, Ordering::Relaxed) + 1
        };
        let own = self.current_worker();
        for (i, remote) in self.shared.remotes.iter().enumerate() {
            if Some(i) != own {
                remote.unpark();
            }
        }
        let answer_own = || {
            with_worker(|w| {
                if let Some(w) = w.filter(|w| Some(w.index) == own) {
                    w.answer_dump(fiber::current_key());
                }
            })
        };
        answer_own();
        let give_up = Instant::now() + patience;
        let mut answers = board.answers.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if answers.iter().all(|(e, _)| *e >= epoch) {
                break;
            }
            let now = Instant::now();
            if now >= give_up {
                break;
            }
            // A worker taking a dump waits in short steps, answering other requesters.
            let step = if own.is_some() {
                Duration::from_millis(1)
            } else {
                give_up - now
            };
            answers = board
                .answered
                .wait_timeout(answers, step)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            if own.is_some() && board.requested() > epoch {
                drop(answers);
                answer_own();
                answers = board.answers.lock().unwrap_or_else(|p| p.into_inner());
            }
        }
        let mut report = ModelReport::default();
        for (i, (e, fibers)) in answers.iter().enumerate() {
            if *e >= epoch {
                report.fibers.extend(fibers.iter().cloned());
            } else {
                let site =
                    self.shared.sysmon.progress(i).and_then(
                        |p| match crate::stall::progress::site(p.read()) {
                            crate::stall::progress::Site::Spawned(l) => Some(l),
                            _ => None,
                        },
                    );
                report.busy.push((i, site));
                report.notes.push(format!(
                    "worker {i} did not answer within {patience:?}: it is blocked in a call \
                     outside zsync or computes without yielding (see `Io::blocking`); its \
                     fibers show without stacks, and only those that blocked in zsync"
                ));
            }
        }
        drop(answers);
        report.queued = self.shared.survey_for_dump();
        if report.queued.len() >= SURVEY {
            report
                .notes
                .push(format!("only the first {SURVEY} queued tasks are listed"));
        }
        report
    }
}

impl Shared {
    /// The tasks in the queues of fresh tasks and of future tasks (global and per worker):
    /// each taken out, noted, and put back on the global queue of its kind (see
    /// docs/ARCHITECTURE.md, "Task dumps", on why moving them is harmless).
    fn survey_for_dump(&self) -> Vec<Runnable> {
        let mut fresh = Vec::new();
        let mut futures = Vec::new();
        let take = |out: &mut Vec<Runnable>, steal: &dyn Fn() -> Steal<Runnable>| loop {
            if out.len() >= SURVEY {
                return;
            }
            match steal() {
                Steal::Success(t) => out.push(t),
                Steal::Empty => return,
                Steal::Retry => {}
            }
        };
        take(&mut fresh, &|| self.injector.steal());
        for s in &self.stealers {
            take(&mut fresh, &|| s.steal());
        }
        take(&mut futures, &|| self.future_injector.steal());
        for s in &self.future_stealers {
            take(&mut futures, &|| s.steal());
        }
        let seen: Vec<Runnable> = fresh
            .iter()
            .chain(&futures)
            .map(Runnable::another)
            .collect();
        let any = !seen.is_empty();
        for t in fresh {
            self.injector.push(t);
        }
        for t in futures {
            self.future_injector.push(t);
        }
        if any {
            self.wake_one_idle(None);
        }
        seen
    }
}
