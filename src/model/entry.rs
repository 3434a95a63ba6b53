//! Entries: what a source's item becomes ([`Entry`]), how it is named ([`EntryKey`],
//! [`EntryRef`]), and what the store keeps of it ([`StoredEntry`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One item of a source, normalized and sanitized.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The stable identity within the source: guid/id, else link, else a hash of title + text.
    pub identity: String,
    /// Plain text (no markup).
    pub title: String,
    /// The absolute http(s) link to the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// When the item was published, as the source says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<DateTime<Utc>>,
    /// When the item was last updated, as the source says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<DateTime<Utc>>,
    /// Author names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<String>,
    /// Sanitized HTML summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Sanitized HTML content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Category terms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Media files: RSS `<enclosure>`, Atom `rel="enclosure"`, Media RSS `media:content` and
    /// `media:thumbnail`, JSON Feed `attachments`; unique by URL, in document order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enclosures: Vec<Enclosure>,
}

/// A media file of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enclosure {
    /// The absolute http(s) URL of the file.
    pub url: String,
    /// Its MIME type, as the source says (`audio/mpeg`), when it says one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Its size in bytes, when the source gives a positive one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
}

impl Entry {
    /// The text of the entry as HTML: its content, else its summary.
    pub fn html(&self) -> Option<&str> {
        self.content.as_deref().or(self.summary.as_deref())
    }
}

/// The stable 16-byte key of an entry: a hash of its source and identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntryKey(pub [u8; 16]);

/// A reference to a stored entry, with the time it was first seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRef {
    /// The entry's source.
    pub source: String,
    /// The entry's key.
    pub key: EntryKey,
    /// When it was first seen.
    pub first_seen: DateTime<Utc>,
}

impl EntryKey {
    /// The key of `identity` within `source`.
    pub(crate) fn new(source: &str, identity: &str) -> EntryKey {
        let mut hasher = Sha256::new();
        hasher.update(source.as_bytes());
        hasher.update([0]);
        hasher.update(identity.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&hasher.finalize()[..16]);
        EntryKey(key)
    }

    /// The key as a `urn:uuid:` IRI, the entry's output id: stable across refetches and
    /// restarts, unique per output feed.
    pub(crate) fn urn(&self) -> String {
        let h = hex(&self.0);
        format!(
            "urn:uuid:{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// An entry as stored: the parsed entry plus what we know of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEntry {
    /// The source it came from.
    pub source: String,
    /// The parsed entry, as last fetched.
    pub entry: Entry,
    /// When we first saw it.
    pub first_seen: DateTime<Utc>,
    /// The time it sorts by: published, else updated, else first seen; never in the future.
    pub sort_time: DateTime<Utc>,
    /// The first-seen entry of another source with the same canonical link, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_link_as: Option<EntryRef>,
    /// The first-seen entry of another source with the same link or nearly the same text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_text_as: Option<EntryRef>,
}

impl StoredEntry {
    /// The entry's stable key.
    pub(crate) fn key(&self) -> EntryKey {
        EntryKey::new(&self.source, &self.entry.identity)
    }

    /// A reference to this entry.
    pub(crate) fn to_ref(&self) -> EntryRef {
        EntryRef {
            source: self.source.clone(),
            key: self.key(),
            first_seen: self.first_seen,
        }
    }
}

/// The sort time of an entry first seen at `first_seen`, as of `now`.
pub fn sort_time(entry: &Entry, first_seen: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    [entry.published, entry.updated]
        .into_iter()
        .flatten()
        .find(|t| *t <= now)
        .unwrap_or(first_seen)
}

/// Lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
