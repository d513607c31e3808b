//! berth's image store.
