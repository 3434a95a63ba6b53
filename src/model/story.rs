//! Stories: entries of several sources that carry the same news, and what a commit changed.

/// Which of an entry's two stories: entries with the same canonical link (`dedup = "link"`),
/// or with the same link or nearly the same text (`dedup = "content"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum StoryKind {
    /// The same canonical link.
    Link,
    /// The same canonical link or nearly the same text.
    Text,
}

impl StoryKind {
    /// Both kinds, in the order their tables are kept.
    pub(crate) const BOTH: [StoryKind; 2] = [StoryKind::Link, StoryKind::Text];

    /// The kind's position in tables of two.
    pub(crate) fn index(self) -> usize {
        match self {
            StoryKind::Link => 0,
            StoryKind::Text => 1,
        }
    }
}

/// What one commit changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitSummary {
    /// Entries seen for the first time.
    pub(crate) new: usize,
    /// Known entries whose content changed.
    pub(crate) updated: usize,
    /// The other sources with entries in stories that this commit's entries joined into
    /// one (by name, each once): the feeds that show them may now show them otherwise.
    pub(crate) joined: Vec<String>,
}

impl CommitSummary {
    /// Whether anything visible changed.
    pub(crate) fn changed(&self) -> bool {
        self.new + self.updated > 0
    }
}
