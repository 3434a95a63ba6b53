//! RSS 2.0, written with the rss crate.

use super::*;

/// The RSS 2.0 document of one render.
pub(super) fn render(
    feed: &FeedConfig,
    stories: &[Story],
    sources: &HashMap<String, SourceInfo>,
    server: &ServerConfig,
    now: DateTime<Utc>,
) -> Vec<u8> {
    let base_url = &server.base_url;
    let self_url = feed_url(base_url, &feed.name, Format::Rss);
    let items = stories
        .iter()
        .map(|story| {
            let stored = &story.entry;
            let e = &stored.entry;
            let source = source_of(stored, sources);
            let title = Some(text_out(&e.title).into_owned()).filter(|t| !t.trim().is_empty());
            ::rss::Item {
                // An item has a title or a description (RSS 2.0; the W3C validator's
                // ItemMustContainTitleOrDescription): without a title, an empty description.
                description: e
                    .html()
                    .map(|html| html_out(html).into_owned())
                    .or_else(|| Some(String::new()).filter(|_| title.is_none())),
                title,
                link: e.link.as_deref().and_then(link_out).map(Cow::into_owned),
                guid: Some(::rss::Guid {
                    value: stored.key().urn(),
                    permalink: false,
                }),
                pub_date: Some(sort_time_out(stored).to_rfc2822()),
                categories: e
                    .categories
                    .iter()
                    .map(|name| text_out(name))
                    .filter(|name| !name.trim().is_empty())
                    .map(|name| ::rss::Category {
                        name: name.into_owned(),
                        domain: None,
                    })
                    .collect(),
                // RSS allows one enclosure, and requires its length and type: 0 for a
                // length not known (RSS Best Practices), a type from the file name else
                // `application/octet-stream`.
                enclosure: media_out(e).next().map(|media| ::rss::Enclosure {
                    length: media.length.unwrap_or(0).to_string(),
                    mime_type: media.required_type().to_string(),
                    url: media.url.into_owned(),
                }),
                source: Some(::rss::Source {
                    url: source_url(&source, base_url),
                    title: Some(text_out(source_name(&source)).into_owned()),
                }),
                ..::rss::Item::default()
            }
        })
        .collect();
    let channel = ::rss::Channel {
        title: text_out(&feed.title).into_owned(),
        link: base_url.to_string(),
        description: format!(
            "{}: aggregated by feedmill",
            text_out(&feed.title).into_owned()
        ),
        generator: Some(format!("feedmill {}", env!("CARGO_PKG_VERSION"))),
        last_build_date: Some(document_updated(stories, now).to_rfc2822()),
        atom_ext: Some(::rss::extension::atom::AtomExtension {
            links: std::iter::once(::rss::extension::atom::Link {
                href: self_url,
                rel: "self".to_string(),
                mime_type: Some("application/rss+xml".to_string()),
                ..::rss::extension::atom::Link::default()
            })
            .chain(server.hub.iter().map(|hub| ::rss::extension::atom::Link {
                href: hub.to_string(),
                rel: "hub".to_string(),
                ..::rss::extension::atom::Link::default()
            }))
            .collect(),
        }),
        items,
        ..::rss::Channel::default()
    };
    channel.to_string().into_bytes()
}
