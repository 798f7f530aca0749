//! Frees what a publish replaced off the publish's path.
//!
//! A commit replaces every cluster's state in the hub's maps and in the
//! fanout: at 10,000 clusters that is 10,000 scattered frees, some
//! milliseconds that the spokes would otherwise wait for. [`later`] hands
//! the old values to one long-lived thread that drops them.

use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};

type Garbage = Box<dyn Send>;

fn reclaimer() -> Option<&'static std::sync::Mutex<Sender<Garbage>>> {
    static TX: OnceLock<Option<std::sync::Mutex<Sender<Garbage>>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = channel::<Garbage>();
        std::thread::Builder::new()
            .name("fleet-reclaim".into())
            .spawn(move || {
                for garbage in rx {
                    drop(garbage);
                }
            })
            .ok()
            .map(|_| std::sync::Mutex::new(tx))
    })
    .as_ref()
}

/// Drops `value` on the reclaim thread; here when that thread cannot be had.
pub fn later<T: Send + 'static>(value: T) {
    let garbage: Garbage = Box::new(value);
    match reclaimer() {
        Some(tx) => {
            if let Err(back) = tx.lock().expect("reclaim lock").send(garbage) {
                drop(back.0);
            }
        }
        None => drop(garbage),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn what_is_handed_over_is_dropped_on_another_thread() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let here = std::thread::current().id();
        let on = Arc::new(std::sync::Mutex::new(None));
        struct Where(Arc<std::sync::Mutex<Option<std::thread::ThreadId>>>);
        impl Drop for Where {
            fn drop(&mut self) {
                *self.0.lock().unwrap() = Some(std::thread::current().id());
            }
        }
        super::later((
            (0..100)
                .map(|_| Counted(dropped.clone()))
                .collect::<Vec<_>>(),
            Where(on.clone()),
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        // The tuple drops its fields in order: `Where` last.
        while on.lock().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(dropped.load(Ordering::SeqCst), 100);
        let on = on.lock().unwrap().expect("dropped");
        assert_ne!(on, here);
    }
}
