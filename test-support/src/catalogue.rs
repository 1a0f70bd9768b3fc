//! Runs a catalogue of malformed inputs (issue 7): every case must fail with the error it
//! expects, must not panic, and must stay within a heap budget. The budget is enforced by the
//! test binary's global allocator (`cap::Cap`): an allocation past it fails, so a parser that
//! allocates by a size it read aborts the test instead of passing. Each case is named on stderr
//! before it runs, so such an abort says which case it was.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::alloc::System;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};

use cap::Cap;

/// One malformed input and the error it must produce.
pub struct Case<E> {
    /// Which part of the format it damages (headers, tables, markers, ...).
    pub category: &'static str,
    /// What was done to the valid image.
    pub name: String,
    /// Runs the parser on the damaged input.
    pub run: Box<dyn Fn() -> Result<(), E>>,
    /// Whether the error is the specific one this damage must give.
    pub expect: Box<dyn Fn(&E) -> bool>,
    /// Heap budget of this case, when not the catalogue's.
    pub budget: Option<usize>,
}

impl<E> Case<E> {
    pub fn new(
        category: &'static str,
        name: impl Into<String>,
        run: impl Fn() -> Result<(), E> + 'static,
        expect: impl Fn(&E) -> bool + 'static,
    ) -> Self {
        Self {
            category,
            name: name.into(),
            run: Box::new(run),
            expect: Box::new(expect),
            budget: None,
        }
    }

    /// Runs this case under `budget` bytes instead (for work with fixed buffers of its own,
    /// such as the copy engine's windows).
    pub fn with_budget(mut self, budget: usize) -> Self {
        self.budget = Some(budget);
        self
    }
}

/// Runs every case under `budget` bytes of heap (or its own) beyond what is allocated when it
/// starts, and
/// asserts each fails as expected, that every one of `categories` has cases, and that there are
/// at least `min_cases`.
pub fn run_catalogue<E: Debug + std::fmt::Display>(
    alloc: &'static Cap<System>,
    cases: Vec<Case<E>>,
    categories: &[&str],
    min_cases: usize,
    budget: usize,
) {
    // The cap works: a reservation past the budget fails while it is set.
    alloc.set_limit(alloc.allocated() + budget).unwrap();
    let mut probe = Vec::<u8>::new();
    assert!(
        probe.try_reserve(budget + 1).is_err(),
        "the heap cap is not enforced"
    );
    alloc.set_limit(usize::MAX).unwrap();

    let mut failures = Vec::new();
    let mut per_category: BTreeMap<&str, usize> = BTreeMap::new();
    for case in &cases {
        // Straight to stderr (not captured by the test harness), so an abort shows the case.
        let _ = writeln!(std::io::stderr(), "[{}] {}", case.category, case.name);
        *per_category.entry(case.category).or_default() += 1;
        alloc
            .set_limit(alloc.allocated() + case.budget.unwrap_or(budget))
            .unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| (case.run)()));
        alloc.set_limit(usize::MAX).unwrap();
        match outcome {
            Err(_) => failures.push(format!("[{}] {}: panicked", case.category, case.name)),
            Ok(Ok(())) => failures.push(format!(
                "[{}] {}: succeeded, an error was expected",
                case.category, case.name
            )),
            Ok(Err(e)) if (case.expect)(&e) => eprintln!("    -> {e}"),
            Ok(Err(e)) => failures.push(format!(
                "[{}] {}: unexpected error {e}\n    {e:?}",
                case.category, case.name
            )),
        }
    }
    eprintln!("{} cases: {per_category:?}", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for c in categories {
        assert!(per_category.contains_key(c), "no case damages {c}");
    }
    assert!(
        cases.len() >= min_cases,
        "{} cases, at least {min_cases} wanted",
        cases.len()
    );
}
