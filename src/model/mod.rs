//! The pipeline's nouns: entries, their keys, what the store keeps of them, sources' state,
//! stories. Plain data and the rules that belong to the data (a key's hash, a sort time, a
//! source's next state); no I/O, and nothing of the stages above it: every stage imports
//! this, and it imports none of them.

mod entry;
mod failure;
mod source;
mod story;

pub(crate) use entry::hex;
pub use entry::{sort_time, Enclosure, Entry, EntryKey, EntryRef, StoredEntry};
pub(crate) use failure::{
    human_size, FailureKind, HopKind, RefreshFailure, STORE_READ_FAILED, STORE_WRITE_FAILED,
};
#[cfg(test)]
pub(crate) use source::MAX_HOLD;
pub(crate) use source::{Answer, FeedHead, Timing};
pub use source::{LinkValidators, SourceState, Validators};
pub use story::CommitSummary;
pub(crate) use story::StoryKind;
