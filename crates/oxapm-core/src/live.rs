//! A setting that central configuration replaces while other threads read it: readers take a
//! snapshot (`get`) and keep using it; a replacement (`set`) is seen by the next `get`.

use std::sync::{Arc, RwLock};

pub struct Live<T>(Arc<RwLock<Arc<T>>>);

impl<T> Live<T> {
    pub fn new(value: T) -> Self {
        Live(Arc::new(RwLock::new(Arc::new(value))))
    }

    pub fn get(&self) -> Arc<T> {
        // A writer cannot panic halfway through replacing an Arc: a poisoned lock still holds a whole value.
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub fn set(&self, value: T) {
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(value);
    }
}

/// Another handle on the same setting (the export thread's, say).
impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Live(self.0.clone())
    }
}

impl<T: Default> Default for Live<T> {
    fn default() -> Self {
        Live::new(T::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_is_seen_by_every_handle_and_snapshots_stay() {
        let setting = Live::new(1);
        let other = setting.clone();
        let snapshot = setting.get();
        other.set(2);
        assert_eq!((*snapshot, *setting.get()), (1, 2));
    }
}
