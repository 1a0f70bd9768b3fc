//! Running what the crates build, for the integration tests of both crates: the examples.

use std::path::PathBuf;

/// The built example `name`, beside the running test's own executable (`cargo test` builds the
/// examples before it runs the tests).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} was not built: run `cargo test`, which builds the examples",
        path.display()
    );
    path
}
