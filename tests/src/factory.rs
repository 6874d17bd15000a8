//! How a test gets its store: a fresh, isolated store per test, with an optional cleanup, or a
//! reason to skip.
//!
//! A factory is anything [`store_conformance!`](crate::store_conformance) can call with no
//! arguments and await: it gives a [`TestStore`], a [`Setup`] (to skip with a reason) or an
//! `Option<TestStore>`. Typical factories:
//!
//! - memory: `TestStore::new(MemoryStore::new())`;
//! - SQLite: a store on a WAL file in a temp directory, the directory moved into
//!   [`TestStore::keep_alive`] (or kept on disk and removed by [`TestStore::with_cleanup`]);
//! - MySQL: a fresh database per test, dropped by [`TestStore::with_cleanup`]; when no server is
//!   configured or reachable, `Setup::Skip("no MySQL: set TASKROW_MYSQL_URL".into())`.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use taskrow::TaskStore;

type Cleanup = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// A fresh store for one test, and what to do after the test passed.
pub struct TestStore {
    store: Arc<dyn TaskStore>,
    cleanup: Option<Cleanup>,
    keep_alive: Vec<Box<dyn Any + Send>>,
}

impl TestStore {
    /// A test store without cleanup.
    pub fn new(store: impl TaskStore) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// A test store from a shared store.
    pub fn from_arc(store: Arc<dyn TaskStore>) -> Self {
        Self {
            store,
            cleanup: None,
            keep_alive: Vec::new(),
        }
    }

    /// Runs `cleanup` after a test whose case returned (a passed test). A failed test skips it,
    /// so its database stays for inspection.
    pub fn with_cleanup<F, Fut>(mut self, cleanup: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.cleanup = Some(Box::new(move || Box::pin(cleanup())));
        self
    }

    /// Keeps `value` alive as long as the test runs (a `tempfile::TempDir` holding a SQLite
    /// file, a container handle). It is dropped when the test ends, passed or failed.
    pub fn keep_alive(mut self, value: impl Any + Send) -> Self {
        self.keep_alive.push(Box::new(value));
        self
    }

    /// The store under test.
    pub fn store(&self) -> Arc<dyn TaskStore> {
        Arc::clone(&self.store)
    }

    /// Runs the cleanup, if any.
    pub async fn cleanup(mut self) {
        if let Some(cleanup) = self.cleanup.take() {
            cleanup().await;
        }
    }
}

impl fmt::Debug for TestStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestStore")
            .field("store", &self.store)
            .field("cleanup", &self.cleanup.is_some())
            .field("keep_alive", &self.keep_alive.len())
            .finish()
    }
}

/// What a factory gives: a store to test, or why this store cannot be tested here.
#[derive(Debug)]
pub enum Setup {
    /// Run the case against this store.
    Ready(TestStore),
    /// Skip the case, saying why (no server configured, no Docker …). Under `CI=true` a skip
    /// fails the test instead.
    Skip(String),
}

impl Setup {
    /// A skip with this reason.
    pub fn skip(reason: impl Into<String>) -> Self {
        Setup::Skip(reason.into())
    }
}

impl From<TestStore> for Setup {
    fn from(store: TestStore) -> Self {
        Setup::Ready(store)
    }
}

impl From<Option<TestStore>> for Setup {
    fn from(store: Option<TestStore>) -> Self {
        store.map_or_else(
            || Setup::skip("the factory returned no store"),
            Setup::Ready,
        )
    }
}

/// Whether this run is in CI (`CI=true`), where a skipped store is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Runs one case: sets the store up, awaits the case, then the cleanup (only when the case
/// returned). A skip prints `skipped: <reason>` and returns, or panics under `CI=true`.
pub async fn run<C, Fut>(setup: impl Future<Output = Setup>, case: C)
where
    C: FnOnce(Arc<dyn TaskStore>) -> Fut,
    Fut: Future<Output = ()>,
{
    match setup.await {
        Setup::Skip(reason) => {
            assert!(
                !in_ci(),
                "store skipped under CI=true, where every store must run: {reason}"
            );
            println!("skipped: {reason}");
        }
        Setup::Ready(test_store) => {
            case(test_store.store()).await;
            test_store.cleanup().await;
        }
    }
}
