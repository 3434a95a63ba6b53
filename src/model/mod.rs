//! The pipeline's nouns: entries, their keys, what the store keeps of them, sources' state,
//! stories. Plain data and the rules that belong to the data (a key's hash, a sort time, a
//! source's next state); no I/O, and nothing of the stages above it: every stage imports
//! this, and it imports none of them.

mod entry;
mod failure;
mod source;
mod story;

pub use entry::{hex, sort_time, Enclosure, Entry, EntryKey, EntryRef, StoredEntry};
pub use failure::{FailureKind, HopKind, RefreshFailure, STORE_READ_FAILED, STORE_WRITE_FAILED};
pub use source::{
    backoff, Answer, FeedHead, LinkValidators, SourceState, Timing, Validators, MAX_HOLD,
};
pub use story::{CommitSummary, StoryKind};
