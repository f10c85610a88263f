//! Provides the exit registry: every open cluster is recorded here so an `atexit` hook can stop
//! (and, if temporary, delete) clusters whose handles are never dropped, such as statics.
//! It only stops servers it was handed; it never starts one.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};

use super::postmaster::{lock, PmShared};

struct Registered {
    id: u64,
    data_dir: PathBuf,
    temporary: bool,
    server: Option<Arc<PmShared>>,
}

static REGISTRY: Mutex<Vec<Registered>> = Mutex::new(Vec::new());
static EXIT_HOOK: Once = Once::new();

pub(super) fn registry_set_server(id: u64, server: Option<Arc<PmShared>>) {
    let mut reg = lock(&REGISTRY);
    if let Some(entry) = reg.iter_mut().find(|e| e.id == id) {
        entry.server = server;
    }
}

pub(super) fn registry_add(data_dir: &Path, temporary: bool) -> u64 {
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    EXIT_HOOK.call_once(|| {
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(stop_all_at_exit);
        }
    });
    lock(&REGISTRY).push(Registered {
        id,
        data_dir: data_dir.to_path_buf(),
        temporary,
        server: None,
    });
    id
}

pub(super) fn registry_remove(id: u64) {
    lock(&REGISTRY).retain(|e| e.id != id);
}

extern "C" fn stop_all_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        let entries = std::mem::take(&mut *lock(&REGISTRY));
        for entry in entries {
            if let Some(server) = &entry.server {
                let _ = server.shutdown();
            }
            if entry.temporary {
                let _ = fs::remove_dir_all(&entry.data_dir);
            }
        }
    });
}
