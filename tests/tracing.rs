//! `tracing` for tasks (feature `tracing`): spans per task carrying its identity, events in
//! order, and span enters and exits strictly paired on each thread.
//!
//! One global subscriber (a registry with a recording layer) serves every test of this binary;
//! each test finds its own tasks by their names.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// A span's fields, as recorded at its creation.
#[derive(Clone, Debug, Default)]
struct SpanInfo {
    fields: HashMap<String, String>,
    enters: usize,
    exits: usize,
}

/// An event with the fields of its parent span.
#[derive(Clone, Debug)]
struct Seen {
    message: String,
    fields: HashMap<String, String>,
    task_name: Option<String>,
}

#[derive(Default)]
struct Log {
    spans: HashMap<u64, SpanInfo>,
    events: Vec<Seen>,
    /// Enter/exit pairing errors: an exit on a thread whose innermost entered span is another.
    errors: Vec<String>,
}

fn log() -> &'static Mutex<Log> {
    static LOG: OnceLock<Mutex<Log>> = OnceLock::new();
    LOG.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Recorder))
            .expect("one global subscriber");
        Mutex::new(Log::default())
    })
}

/// Tasks of this name have a span whose enter panics in the subscriber.
const PANICKY: &str = "panicky-subscriber";

fn panicky() -> &'static Mutex<Vec<u64>> {
    static IDS: Mutex<Vec<u64>> = Mutex::new(Vec::new());
    &IDS
}

thread_local! {
    /// The spans entered on this thread, innermost last.
    static ENTERED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

#[derive(Default)]
struct Fields(HashMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

struct Recorder;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut f = Fields::default();
        attrs.record(&mut f);
        if f.0.get("task.name").map(String::as_str) == Some(PANICKY) {
            panicky().lock().unwrap().push(id.into_u64());
        }
        log().lock().unwrap().spans.insert(
            id.into_u64(),
            SpanInfo {
                fields: f.0,
                ..SpanInfo::default()
            },
        );
    }

    fn on_enter(&self, id: &Id, _: Context<'_, S>) {
        ENTERED.with(|e| e.borrow_mut().push(id.into_u64()));
        // Outside every lock of this layer: a subscriber that panics (see
        // `a_panicking_subscriber_does_not_break_the_runtime`).
        if panicky().lock().unwrap().contains(&id.into_u64()) {
            ENTERED.with(|e| e.borrow_mut().pop());
            panic!("a subscriber panics on entering {PANICKY}");
        }
        if let Some(s) = log().lock().unwrap().spans.get_mut(&id.into_u64()) {
            s.enters += 1;
        }
    }

    fn on_exit(&self, id: &Id, _: Context<'_, S>) {
        if panicky().lock().unwrap().contains(&id.into_u64()) {
            return; // its enter panicked: not on the stack
        }
        let top = ENTERED.with(|e| e.borrow_mut().pop());
        let mut log = log().lock().unwrap();
        if top != Some(id.into_u64()) {
            let msg = format!("exit of span {} while {top:?} is innermost", id.into_u64());
            log.errors.push(msg);
        }
        if let Some(s) = log.spans.get_mut(&id.into_u64()) {
            s.exits += 1;
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let parent = ctx.event_span(event).map(|s| s.id().into_u64());
        let mut log = log().lock().unwrap();
        let task_name = parent
            .and_then(|p| log.spans.get(&p))
            .and_then(|s| s.fields.get("task.name").cloned());
        let message = f.0.remove("message").unwrap_or_default();
        log.events.push(Seen {
            message,
            fields: f.0,
            task_name,
        });
    }
}

mod common;

use common::{all_builders, concurrent_builders};

fn events_of(name: &str) -> Vec<Seen> {
    log()
        .lock()
        .unwrap()
        .events
        .iter()
        .filter(|e| e.task_name.as_deref() == Some(name))
        .cloned()
        .collect()
}

fn position(events: &[Seen], from: usize, pred: impl Fn(&Seen) -> bool) -> Option<usize> {
    events[from..].iter().position(pred).map(|i| i + from)
}

#[test]
fn a_task_that_spawns_sleeps_and_is_canceled_traces_its_life_in_order() {
    log();
    for (model, builder) in concurrent_builders() {
        let name = format!("traced-{model}");
        let child_name = format!("child-of-{model}");
        let line = line!() + 3;
        builder.run(|io| {
            let child_name = child_name.clone();
            let task = io.task().name(name.clone()).spawn(move |io| {
                io.task().name(child_name).spawn(|_| ()).join().unwrap();
                io.sleep(Duration::from_secs(30))
            });
            // Let it reach its sleep (a watchdog-sized wait: the assertion below is on order).
            io.sleep(Duration::from_millis(50)).unwrap();
            assert!(zsync::is_canceled(&task.cancel().unwrap().unwrap_err()));
        });
        let events = events_of(&name);
        let names: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(names.first(), Some(&"spawn"), "{model}: {names:?}");
        assert_eq!(names.last(), Some(&"finish"), "{model}: {names:?}");
        let park = position(&events, 0, |e| {
            e.message == "park" && e.fields.get("op").map(String::as_str) == Some("sleep")
        })
        .unwrap_or_else(|| panic!("{model}: no park in sleep: {events:?}"));
        let cancel = position(&events, park, |e| e.message == "cancel")
            .unwrap_or_else(|| panic!("{model}: no cancel after the park: {names:?}"));
        position(&events, cancel, |e| e.message == "wake")
            .unwrap_or_else(|| panic!("{model}: no wake after the cancel: {names:?}"));
        // The child's own life is in its own span.
        let child = events_of(&format!("child-of-{model}"));
        let child: Vec<&str> = child.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(child.first(), Some(&"spawn"), "{model}: {child:?}");
        assert_eq!(child.last(), Some(&"finish"), "{model}: {child:?}");
        // The span carries the task's identity.
        let log = log().lock().unwrap();
        let span = log
            .spans
            .values()
            .find(|s| s.fields.get("task.name") == Some(&name))
            .expect("the task's span");
        let location = span.fields.get("spawn.location").unwrap();
        assert!(
            location.starts_with(&format!("{}:{line}:", file!())),
            "{model}: {location} (expected line {line})"
        );
        assert!(span.fields.contains_key("task.id"));
        assert_eq!(
            span.fields.get("model").map(String::as_str),
            Some(if model == "threaded" {
                "Threaded"
            } else {
                "Green"
            })
        );
        assert!(span.enters >= 1, "{model}: never entered");
        assert_eq!(span.enters, span.exits, "{model}: unpaired enter/exit");
    }
}

#[test]
fn enters_and_exits_pair_on_each_thread_across_fibers_futures_and_threads() {
    log();
    for (model, builder) in all_builders() {
        let prefix = format!("pairing-{model}-");
        builder.run(|io| {
            let mut tasks = Vec::new();
            for i in 0..16 {
                tasks.push(io.task().name(format!("{prefix}{i}")).spawn(|io| {
                    for _ in 0..5 {
                        io.yield_now();
                        io.sleep(Duration::from_millis(1)).unwrap();
                    }
                    // A task run inline by its joiner: nested spans on one fiber.
                    io.spawn(|io| io.sleep(Duration::from_millis(1)).unwrap())
                        .join()
                        .unwrap();
                }));
            }
            // `Send` futures may be polled by another worker at each wake-up.
            let futures: Vec<_> = (0..8)
                .map(|_| {
                    io.spawn_future(async {
                        for _ in 0..5 {
                            zsync::time::sleep(Duration::from_millis(1)).await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.join().unwrap();
            }
            for f in futures {
                f.join().unwrap();
            }
        });
        let log = log().lock().unwrap();
        assert!(log.errors.is_empty(), "{model}: {:?}", log.errors);
        let mine: Vec<&SpanInfo> = log
            .spans
            .values()
            .filter(|s| {
                s.fields
                    .get("task.name")
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .collect();
        assert_eq!(mine.len(), 16, "{model}");
        for s in mine {
            assert!(s.enters >= 1, "{model}: {s:?}");
            assert_eq!(s.enters, s.exits, "{model}: {s:?}");
        }
    }
}

#[test]
fn a_panicking_subscriber_does_not_break_the_runtime() {
    log();
    for (model, builder) in concurrent_builders() {
        let value = builder.run(|io| {
            let task = io.task().name(PANICKY).spawn(|io| {
                for _ in 0..3 {
                    io.sleep(Duration::from_millis(1)).unwrap();
                    io.yield_now();
                }
                7
            });
            task.join().unwrap()
        });
        assert_eq!(value, 7, "{model}");
    }
}
