//! JSON Feed 1.1, written with serde.

use super::*;

#[derive(Serialize)]
struct JsonFeed<'a> {
    version: &'static str,
    title: Cow<'a, str>,
    home_page_url: &'a str,
    feed_url: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<JsonHub<'a>>,
    items: Vec<JsonItem<'a>>,
}

#[derive(Serialize)]
struct JsonHub<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct JsonItem<'a> {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    title: Cow<'a, str>,
    content_html: Cow<'a, str>,
    date_published: String,
    date_modified: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<JsonAuthor<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<JsonAttachment<'a>>,
    /// JSON Feed extensions start with an underscore.
    _feedmill: JsonExtension<'a>,
}

/// A media file; JSON Feed 1.1 requires `url` and `mime_type`.
#[derive(Serialize)]
struct JsonAttachment<'a> {
    url: Cow<'a, str>,
    mime_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_in_bytes: Option<u64>,
}

#[derive(Serialize)]
struct JsonAuthor<'a> {
    name: Cow<'a, str>,
}

#[derive(Serialize)]
struct JsonExtension<'a> {
    about: &'static str,
    source: JsonSource,
    /// The other carriers of the story.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    also: Vec<JsonAlso<'a>>,
}

#[derive(Serialize)]
struct JsonAlso<'a> {
    source: String,
    title: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct JsonSource {
    name: String,
    title: String,
    feed_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    home_page_url: Option<String>,
}

/// The JSON Feed 1.1 document of one render.
pub(super) fn render(
    feed: &FeedConfig,
    stories: &[Story],
    sources: &HashMap<String, SourceInfo>,
    server: &ServerConfig,
    now: DateTime<Utc>,
) -> Vec<u8> {
    let base_url = &server.base_url;
    let items = stories
        .iter()
        .map(|story| {
            let stored = &story.entry;
            let e = &stored.entry;
            let source = source_of(stored, sources).into_owned();
            JsonItem {
                id: stored.key().urn(),
                url: e.link.as_deref().and_then(link_out),
                title: text_out(&e.title),
                content_html: html_out(e.html().unwrap_or_default()),
                date_published: sort_time_out(stored).to_rfc3339(),
                date_modified: entry_updated(stored, now).to_rfc3339(),
                authors: e
                    .authors
                    .iter()
                    .map(|name| text_out(name))
                    .filter(|name| !name.trim().is_empty())
                    .map(|name| JsonAuthor { name })
                    .collect(),
                tags: e
                    .categories
                    .iter()
                    .map(|tag| text_out(tag))
                    .filter(|tag| !tag.trim().is_empty())
                    .collect(),
                attachments: media_out(e)
                    .map(|media| JsonAttachment {
                        mime_type: media.required_type().to_string(),
                        size_in_bytes: media.length,
                        url: media.url,
                    })
                    .collect(),
                _feedmill: JsonExtension {
                    about: "https://example.org/feedmill#json-extension",
                    source: JsonSource {
                        feed_url: source_url(&source, base_url),
                        name: source.name,
                        title: text_out(&source.title).into_owned(),
                        home_page_url: source
                            .site_link
                            .as_deref()
                            .and_then(link_out)
                            .map(Cow::into_owned),
                    },
                    also: story
                        .also
                        .iter()
                        .map(|other| JsonAlso {
                            source: text_out(&source_of(other, sources).title).into_owned(),
                            title: text_out(&other.entry.title),
                            url: other.entry.link.as_deref().and_then(link_out),
                        })
                        .collect(),
                },
            }
        })
        .collect();
    let document = JsonFeed {
        version: "https://jsonfeed.org/version/1.1",
        title: text_out(&feed.title),
        home_page_url: base_url.as_str(),
        feed_url: feed_url(base_url, &feed.name, Format::Json),
        hubs: server
            .hub
            .iter()
            .map(|hub| JsonHub {
                kind: "WebSub",
                url: hub.as_str(),
            })
            .collect(),
        items,
    };
    escape_json_html(&serde_json::to_vec_pretty(&document).unwrap_or_default())
}

/// Writes `<`, `>` and `&` in JSON strings as `\u003c`, `\u003e` and `\u0026` (as Go's
/// encoder does): the same JSON to any parser, but a feed title like `<script>` can no longer
/// break out of a page that embeds the document. Outside strings JSON has no such bytes.
fn escape_json_html(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + json.len() / 16);
    for &byte in json {
        match byte {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            _ => out.push(byte),
        }
    }
    out
}
