//! Atom 1.0 (RFC 4287), written with atom_syndication.

use super::*;

/// The Atom 1.0 document of one render.
pub(super) fn render(
    feed: &FeedConfig,
    stories: &[Story],
    sources: &HashMap<String, SourceInfo>,
    server: &ServerConfig,
    now: DateTime<Utc>,
) -> Vec<u8> {
    let base_url = &server.base_url;
    use atom_syndication as atom;
    let self_url = feed_url(base_url, &feed.name, Format::Atom);
    let link = |href: &str, rel: &str, mime: Option<&str>| atom::Link {
        href: href.to_string(),
        rel: rel.to_string(),
        mime_type: mime.map(str::to_string),
        ..atom::Link::default()
    };
    let atom_entries = stories
        .iter()
        .map(|story| {
            let stored = &story.entry;
            let e = &stored.entry;
            let source = source_of(stored, sources);
            // The other carriers of the story, as `via` links (RFC 4287: a source of the
            // information), titled with their source.
            let via = story.also.iter().filter_map(|other| {
                let href = link_out(other.entry.link.as_deref()?)?.into_owned();
                Some(atom::Link {
                    title: Some(text_out(source_name(&source_of(other, sources))).into_owned()),
                    ..link(&href, "via", Some("text/html"))
                })
            });
            let mut source_links = vec![];
            if let Some(site) = source
                .site_link
                .as_deref()
                .and_then(link_out)
                .map(Cow::into_owned)
            {
                source_links.push(link(&site, "alternate", Some("text/html")));
            }
            let own_url = link_out(&source.url).map(Cow::into_owned);
            if let Some(url) = &own_url {
                source_links.push(link(url, "self", None));
            }
            let mut authors: Vec<String> = e
                .authors
                .iter()
                .map(|name| text_out(name).into_owned())
                .filter(|name| !name.trim().is_empty())
                .collect();
            if authors.is_empty() {
                authors.push(text_out(source_name(&source)).into_owned());
            }
            let alternate = e.link.as_deref().and_then(link_out).map(Cow::into_owned);
            let html_content = |html: &str| atom::Content {
                value: Some(html_out(html).into_owned()),
                content_type: Some("html".to_string()),
                ..atom::Content::default()
            };
            // RFC 4287 §4.1.1: an entry has a content or an alternate link (a summary is
            // not enough; the W3C validator's MissingContentOrAlternate). Without a link, the
            // summary is the content; with neither text nor link, the content is empty
            // text: the validator warns of a blank element but reports no error, a reader
            // shows the title alone, and a reader of this document reads no text, as the
            // source had none.
            let (summary, content) = match (e.content.as_deref(), e.summary.as_deref()) {
                (Some(content), summary) => (summary, Some(html_content(content))),
                (None, Some(summary)) if alternate.is_none() => (None, Some(html_content(summary))),
                (None, summary) if alternate.is_some() => (summary, None),
                (None, _) => (
                    None,
                    Some(atom::Content {
                        value: Some(String::new()),
                        content_type: Some("text".to_string()),
                        ..atom::Content::default()
                    }),
                ),
            };
            let enclosures = media_out(e).map(|media| atom::Link {
                href: media.url.into_owned(),
                rel: "enclosure".to_string(),
                mime_type: media.mime_type.map(str::to_string),
                length: media.length.map(|l| l.to_string()),
                ..atom::Link::default()
            });
            atom::Entry {
                id: stored.key().urn(),
                title: atom::Text::plain(text_out(&e.title).into_owned()),
                updated: fixed(entry_updated(stored, now)),
                published: e.published.and_then(writable).map(fixed),
                authors: authors
                    .into_iter()
                    .map(|name| atom::Person {
                        name,
                        ..atom::Person::default()
                    })
                    .collect(),
                links: alternate
                    .iter()
                    .map(|l| link(l, "alternate", Some("text/html")))
                    .chain(enclosures)
                    .chain(via)
                    .collect(),
                summary: summary.map(|s| atom::Text::html(html_out(s).into_owned())),
                content,
                categories: e
                    .categories
                    .iter()
                    .map(|term| text_out(term))
                    .filter(|term| !term.trim().is_empty())
                    .map(|term| atom::Category {
                        term: term.into_owned(),
                        ..atom::Category::default()
                    })
                    .collect(),
                source: Some(atom::Source {
                    id: own_url.unwrap_or_else(|| source_url(&source, base_url)),
                    title: atom::Text::plain(text_out(source_name(&source)).into_owned()),
                    links: source_links,
                    updated: fixed(sort_time_out(stored)),
                    ..atom::Source::default()
                }),
                ..atom::Entry::default()
            }
        })
        .collect();
    // RFC 4287 §4.1.1: a feed names an author unless every entry does; with no entry yet
    // (a new planet) the W3C validator reports its absence as an error. The site writes it.
    let feed_author = [&server.title, &feed.title, &feed.name]
        .into_iter()
        .map(|name| text_out(name))
        .find(|name| !name.trim().is_empty())
        .unwrap_or(Cow::Borrowed("feedmill"))
        .into_owned();
    let document = atom::Feed {
        id: self_url.clone(),
        title: atom::Text::plain(text_out(&feed.title).into_owned()),
        updated: fixed(document_updated(stories, now)),
        authors: vec![atom::Person {
            name: feed_author,
            ..atom::Person::default()
        }],
        links: [
            link(&self_url, "self", Some("application/atom+xml")),
            link(base_url.as_str(), "alternate", Some("text/html")),
        ]
        .into_iter()
        .chain(server.hub.iter().map(|hub| link(hub.as_str(), "hub", None)))
        .collect(),
        generator: Some(atom::Generator {
            value: "feedmill".to_string(),
            uri: None,
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
        }),
        entries: atom_entries,
        ..atom::Feed::default()
    };
    document.to_string().into_bytes()
}
