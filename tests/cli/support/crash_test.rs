//! The settings of the `kill -9` tests (`crash::` on SQLite, `postgres_runs::` on PostgreSQL),
//! from the environment: `CRASH_ITERATIONS`, how many runs are killed, and `CRASH_SEED`, the seed
//! of the moments they are killed at (random unless given; the tests print it, so that a failure
//! can be run again as it was).

use std::fmt::Display;
use std::str::FromStr;

pub struct CrashSettings {
    pub iterations: usize,
    pub seed: u64,
}

impl CrashSettings {
    /// The settings of the environment; `default_iterations` where `CRASH_ITERATIONS` is unset.
    pub fn from_env(default_iterations: usize) -> CrashSettings {
        CrashSettings {
            iterations: number("CRASH_ITERATIONS").unwrap_or(default_iterations),
            seed: number("CRASH_SEED").unwrap_or_else(|| fastrand::u64(..)),
        }
    }

    /// The random source of the kills, from the seed.
    pub fn rng(&self) -> fastrand::Rng {
        fastrand::Rng::with_seed(self.seed)
    }
}

/// The number in the variable `name`; `None` where it is unset or empty. A value that is no
/// number fails the test: a mistyped seed would otherwise run another test than the one asked for.
fn number<T: FromStr>(name: &str) -> Option<T>
where
    T::Err: Display,
{
    let value = std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())?;
    let parsed = value.trim().parse();
    Some(parsed.unwrap_or_else(|e| panic!("{name}={value:?}: {e}")))
}
