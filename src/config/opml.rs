//! OPML: import a feed reader's subscription list as `[[source]]` entries, and export the
//! configured sources as OPML 2.0 (`feedmill opml export`, `GET /sources.opml`).

use std::collections::HashSet;

use quick_xml::escape::escape;
use quick_xml::events::{BytesStart, Event};
use serde::Serialize;
use url::Url;

use crate::config::Config;

/// Why an OPML file cannot be imported.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpmlError {
    /// The file is not well-formed XML.
    #[error("{file}: XML error at byte {position}: {message}; is this an OPML file?")]
    Xml {
        /// The file.
        file: String,
        /// Where.
        position: u64,
        /// What.
        message: String,
    },
    /// The root is not `<opml>`.
    #[error("{file}: not an OPML file (the root element is <{root}>, not <opml>)")]
    NotOpml {
        /// The file.
        file: String,
        /// The root element found.
        root: String,
    },
    /// No outline names a feed.
    #[error("{file}: no <outline> with an xmlUrl attribute: there are no feeds to import")]
    NoFeeds {
        /// The file.
        file: String,
    },
}

/// One imported source, in the order of the config file's keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ImportedSource {
    /// A unique name made from the title (or the URL's host).
    pub(crate) name: String,
    /// The feed URL.
    pub(crate) url: String,
    /// The outline's title, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) title: Option<String>,
    /// The folders the outline was in, and its `category` attribute.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) tags: Vec<String>,
}

#[derive(Serialize)]
struct Sources {
    source: Vec<ImportedSource>,
}

/// A config name from free text: lower-case ASCII letters and digits, other runs as `-`.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-')
        .chars()
        .take(40)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

fn attribute(element: &BytesStart, name: &str) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.0.eq_ignore_ascii_case(name))
        .and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok())
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|v| !v.is_empty())
}

/// The feeds of an OPML document, nested outlines included; `file` names it in errors.
pub(crate) fn parse(opml: &str, file: &str) -> Result<Vec<ImportedSource>, OpmlError> {
    let mut reader = quick_xml::Reader::from_str(opml);
    let mut folders: Vec<Option<String>> = Vec::new();
    let mut root_seen = false;
    let mut sources = Vec::new();
    let mut names = HashSet::new();
    loop {
        let event = reader.read_event().map_err(|err| OpmlError::Xml {
            file: file.to_string(),
            position: reader.error_position(),
            message: err.to_string(),
        })?;
        let (element, has_children) = match event {
            Event::Start(e) => (e, true),
            Event::Empty(e) => (e, false),
            Event::End(e) => {
                if e.local_name().into_inner() == "outline" {
                    folders.pop();
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let local = element.local_name().into_inner().to_string();
        if !root_seen {
            root_seen = true;
            if !local.eq_ignore_ascii_case("opml") {
                return Err(OpmlError::NotOpml {
                    file: file.to_string(),
                    root: local,
                });
            }
            continue;
        }
        if local != "outline" {
            continue;
        }
        let title = attribute(&element, "title").or_else(|| attribute(&element, "text"));
        match attribute(&element, "xmlUrl") {
            Some(url) => {
                let mut tags: Vec<String> = folders.iter().flatten().cloned().collect();
                for category in attribute(&element, "category")
                    .iter()
                    .flat_map(|c| c.split(','))
                {
                    let category = category.trim().trim_matches('/').to_string();
                    if !category.is_empty() && !tags.contains(&category) {
                        tags.push(category);
                    }
                }
                let base = title
                    .as_deref()
                    .map(slug)
                    .filter(|s| !s.is_empty())
                    .or_else(|| {
                        Url::parse(&url)
                            .ok()?
                            .host_str()
                            .map(slug)
                            .filter(|s| !s.is_empty())
                    })
                    .unwrap_or_else(|| "source".to_string());
                let mut name = base.clone();
                let mut n = 2;
                while !names.insert(name.clone()) {
                    name = format!("{base}-{n}");
                    n += 1;
                }
                sources.push(ImportedSource {
                    name,
                    url,
                    title,
                    tags,
                });
                if has_children {
                    folders.push(None);
                }
            }
            None if has_children => folders.push(title),
            None => {}
        }
    }
    if sources.is_empty() {
        return Err(OpmlError::NoFeeds {
            file: file.to_string(),
        });
    }
    Ok(sources)
}

/// `[[source]]` TOML for the feeds of an OPML document.
pub(crate) fn import(opml: &str, file: &str) -> Result<String, OpmlError> {
    let sources = parse(opml, file)?;
    let toml = toml::to_string(&Sources { source: sources }).unwrap_or_default();
    Ok(format!(
        "# Imported from {file} by feedmill opml import.\n# Check the names, then add a [[feed]] if there is none yet.\n\n{toml}"
    ))
}

/// The configured sources as an OPML 2.0 document.
pub(crate) fn export(config: &Config) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">\n  <head>\n    <title>feedmill sources</title>\n");
    out.push_str(&format!(
        "    <docs>http://opml.org/spec2.opml</docs>\n    <ownerId>{}</ownerId>\n  </head>\n  <body>\n",
        escape(config.server.base_url.as_str())
    ));
    for source in &config.sources {
        let title = source.title.as_deref().unwrap_or(&source.name);
        out.push_str(&format!(
            "    <outline type=\"rss\" text=\"{}\" title=\"{}\" xmlUrl=\"{}\"",
            escape(title),
            escape(title),
            escape(source.url.as_str())
        ));
        if !source.tags.is_empty() {
            let categories: Vec<String> = source.tags.iter().map(|t| format!("/{t}")).collect();
            out.push_str(&format!(" category=\"{}\"", escape(categories.join(","))));
        }
        out.push_str("/>\n");
    }
    out.push_str("  </body>\n</opml>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NESTED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0">
  <head><title>My feeds</title></head>
  <body>
    <outline text="News &amp; Politics">
      <outline text="Inner Mongolia Daily" title="Inner Mongolia Daily" type="rss" xmlUrl="https://imdaily.example/rss.xml?a=1&amp;b=2"/>
      <outline text="Regional">
        <outline text="内蒙古日报" type="rss" xmlUrl="https://nmgnews.example/rss"/>
      </outline>
    </outline>
    <outline text="Caf&#233; &lt;Blog&gt;" type="rss" xmlUrl="https://cafe.example/feed" category="/food,/life"/>
    <outline text="Inner Mongolia Daily" type="rss" xmlUrl="https://imdaily.example/other.xml"/>
    <outline text="A folder with nothing"/>
  </body>
</opml>"#;

    #[test]
    fn nested_outlines_and_entities_import() {
        let sources = parse(NESTED, "subs.opml").expect("valid");
        let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "inner-mongolia-daily",
                "nmgnews-example",
                "caf-blog",
                "inner-mongolia-daily-2"
            ]
        );
        assert_eq!(sources[0].url, "https://imdaily.example/rss.xml?a=1&b=2");
        assert_eq!(sources[0].tags, ["News & Politics"]);
        assert_eq!(sources[1].title.as_deref(), Some("内蒙古日报"));
        assert_eq!(sources[1].tags, ["News & Politics", "Regional"]);
        assert_eq!(sources[2].title.as_deref(), Some("Café <Blog>"));
        assert_eq!(sources[2].tags, ["food", "life"]);
    }

    #[test]
    fn imported_toml_is_a_valid_config_once_a_feed_is_added() {
        let toml = import(NESTED, "subs.opml").expect("valid");
        let config = Config::parse(
            std::path::Path::new("/etc/feedmill/feedmill.toml"),
            &format!("{toml}\n[[feed]]\nname = \"all\"\n"),
        )
        .unwrap_or_else(|e| panic!("{e}\n{toml}"));
        assert_eq!(config.sources.len(), 4);
        let exported = export(&config);
        let again = parse(&exported, "export.opml").expect("our own export parses");
        let urls: Vec<&str> = again.iter().map(|s| s.url.as_str()).collect();
        let original: Vec<&str> = config.sources.iter().map(|s| s.url.as_str()).collect();
        assert_eq!(urls, original);
        assert_eq!(again[2].title.as_deref(), Some("Café <Blog>"));
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(matches!(
            parse("<html><body/></html>", "x"),
            Err(OpmlError::NotOpml { .. })
        ));
        assert!(matches!(
            parse("<opml><body><outline text=\"x\"/></body></opml>", "x"),
            Err(OpmlError::NoFeeds { .. })
        ));
        let err = parse("<opml><body><outline xmlUrl=\"a\"></body>", "x").expect_err("broken");
        assert!(err.to_string().contains("XML error"), "{err}");
    }
}
