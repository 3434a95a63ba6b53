//! One story once: the same news from an outlet, a department's repost and a portal's link,
//! in UTF-8, GBK and Windows-1252, beside different stories that share a footer and a source
//! that floods.

use std::collections::HashMap;

use crate::support::{blocking_get, Daemon, FeedServer};

const FOOTER: &str = "Copyright Inner Mongolia Daily News. All rights reserved. Reproduction in any form without written permission is prohibited. (Source: Inner Mongolia Daily News)";

const READING: &str = "Departments across the Inner Mongolia Autonomous Region have organized themed education reading classes this month. Cadres studied the assigned texts in small groups, held discussions on how to apply them, and reported on the results in their daily work. Organizers said the classes would continue through the winter and that each department would publish a summary of what it had changed as a result.";
const BUS: &str = "Two new bus lines connect the city centre of Hohhot with Baita International Airport from Monday, running every twenty minutes between six in the morning and midnight. The city transport bureau said fares would stay the same and that more lines would follow in the spring if passenger numbers grow.";
const SNOW: &str = "Heavy snow closed several county roads across the Xilingol grasslands on Wednesday. Herders were advised to bring livestock into winter shelters, and road crews worked through the night to clear the main highway toward Xilinhot before the next storm arrives.";
const CN_STORY: &str = "内蒙古自治区各部门近日组织开展主题教育读书班，党员干部分组学习指定篇目，围绕如何学以致用展开讨论，并在日常工作中汇报学习成果。组织者表示，读书班将持续整个冬季。";

fn rss(title: &str, encoding: &str, items: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"{encoding}\"?><rss version=\"2.0\"><channel><title>{title}</title><link>http://{title}.example/</link><description>d</description>{}</channel></rss>",
        items.concat()
    )
}

fn item(guid: &str, title: &str, link: &str, date: &str, text: &str) -> String {
    format!(
        "<item><guid>{guid}</guid><title>{title}</title><link>{}</link><pubDate>{date}</pubDate><description>{}</description></item>",
        link.replace('&', "&amp;"),
        text.replace('&', "&amp;").replace('<', "&lt;")
    )
}

fn publish_sources(server: &FeedServer, phase: u8) {
    let xml = "application/rss+xml";
    // The outlet: the story, and two different stories with the same footer.
    server.put(
        "outlet.rss",
        xml,
        rss(
            "imdaily",
            "utf-8",
            &[
                item("im-1", "Inner Mongolia Departments Organize Themed Education Reading Classes to Promote Work Results", "https://imdaily.example/2026/11/27/reading-classes.html", "Fri, 27 Nov 2026 08:30:00 +0800", &format!("<p>{READING}</p><p>{FOOTER}</p>")),
                item("im-2", "Hohhot Opens Two New Bus Lines to the Airport", "https://imdaily.example/2026/11/26/bus.html", "Thu, 26 Nov 2026 17:05:00 +0800", &format!("<p>{BUS}</p><p>{FOOTER}</p>")),
                item("im-3", "First Snow Closes Grassland Roads in Xilingol", "https://imdaily.example/2026/11/25/snow.html", "Wed, 25 Nov 2026 11:40:00 +0800", &format!("<p>{SNOW}</p><p>{FOOTER}</p>")),
            ],
        ),
    );
    let gbk = |text: String| encoding_rs::GBK.encode(&text).0.into_owned();
    server.put(
        "cn.rss",
        xml,
        gbk(rss(
            "nmgnews",
            "gbk",
            &[item(
                "cn-1",
                "内蒙古各部门开展主题教育读书班",
                "https://nmgnews.example/cn/1.html",
                "Fri, 27 Nov 2026 09:00:00 +0800",
                CN_STORY,
            )],
        )),
    );
    if phase == 0 {
        // The others have nothing yet, so that the outlet's entries are seen first.
        for path in ["dept.rss", "portal.rss", "cn-repost.rss", "flood.rss"] {
            server.put(path, xml, rss("empty", "utf-8", &[]));
        }
        return;
    }
    // The department's repost: own guid and link, a header line, other quotes and commas.
    let repost = format!(
        "<p><em>Reposted from Inner Mongolia Daily.</em></p><p>{}</p><p>{FOOTER}</p>",
        READING
            .replace("themed education", "“themed education”")
            .replace("winter and", "winter, and")
    );
    server.put(
        "dept.rss",
        xml,
        rss(
            "dept",
            "utf-8",
            &[item(
                "dept-77",
                "Inner Mongolia Departments Organize “Themed Education” Reading Classes",
                "https://education.nmg.example/news/1127.html",
                "Fri, 27 Nov 2026 14:00:00 +0800",
                &repost,
            )],
        ),
    );
    // The portal links to the outlet's article with tracking parameters and a fragment, in
    // Windows-1252.
    let portal = rss("portal", "windows-1252", &[item("p-9", "Reading classes across the region – read more", "http://IMDAILY.example/2026/11/27/reading-classes.html?utm_source=portal&utm_medium=rss#top", "Fri, 27 Nov 2026 15:00:00 +0800", "Our pick: “reading classes” at the Inner Mongolia Daily. Café au lait not included.")]);
    server.put(
        "portal.rss",
        xml,
        encoding_rs::WINDOWS_1252.encode(&portal).0.into_owned(),
    );
    // A Chinese repost, declared GB2312.
    server.put(
        "cn-repost.rss",
        xml,
        gbk(rss(
            "cnrepost",
            "gb2312",
            &[item(
                "cr-1",
                "转载：主题教育读书班",
                "https://cnrepost.example/a/1.html",
                "Fri, 27 Nov 2026 10:00:00 +0800",
                &format!(
                    "转自内蒙古日报：{}",
                    CN_STORY.replace("主题教育", "“主题教育”")
                ),
            )],
        )),
    );
    // A CMS re-import: 300 new items, newer than everything else.
    let flood: Vec<String> = (0..300)
        .map(|i| {
            item(
                &format!("f{i}"),
                &format!("Archive item {i}"),
                &format!("https://flood.example/{i}"),
                "Sat, 28 Nov 2026 01:00:00 +0000",
                &format!("Archive text number {i}."),
            )
        })
        .collect();
    server.put("flood.rss", xml, rss("flood", "utf-8", &flood));
}

fn config(server: &FeedServer) -> String {
    let mut config = String::from("[fetch]\nschedule = \"* * * * * *\"\n");
    for (name, path) in [
        ("outlet", "outlet.rss"),
        ("dept", "dept.rss"),
        ("portal", "portal.rss"),
        ("cn", "cn.rss"),
        ("cnrepost", "cn-repost.rss"),
        ("flood", "flood.rss"),
    ] {
        config.push_str(&format!(
            "[[source]]\nname = \"{name}\"\nurl = \"{}\"\n",
            server.url(path)
        ));
    }
    config.push_str("[[feed]]\nname = \"all\"\n");
    config.push_str("[[feed]]\nname = \"links\"\ndedup = \"link\"\nsources = [\"outlet\", \"dept\", \"portal\"]\n");
    config.push_str(
        "[[feed]]\nname = \"none\"\ndedup = \"none\"\nlimit = 500\nmax_per_source = 500\n",
    );
    config.push_str("[[feed]]\nname = \"reading\"\ninclude = [\"(?i)reading class\", \"读书班\"]\nexclude = [\"(?i)read more\"]\n");
    config
}

fn json(daemon: &Daemon, feed: &str) -> Vec<serde_json::Value> {
    let (_, body) = blocking_get(&daemon.url(&format!("/feeds/{feed}.json"))).expect("answers");
    let doc: serde_json::Value = serde_json::from_slice(&body).expect("json");
    doc["items"].as_array().cloned().unwrap_or_default()
}

fn by_title<'a>(items: &'a [serde_json::Value], needle: &str) -> Vec<&'a serde_json::Value> {
    items
        .iter()
        .filter(|i| i["title"].as_str().is_some_and(|t| t.contains(needle)))
        .collect()
}

fn also(item: &serde_json::Value) -> Vec<String> {
    let mut sources: Vec<String> = item["_feedmill"]["also"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["source"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    sources.sort();
    sources
}

#[test]
fn one_story_once_with_its_carriers_named() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    publish_sources(&server, 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start(dir.path(), &config(&server));
    daemon.wait_for("the outlets' stories", || {
        Some(json(&daemon, "none").len() == 4)
    });
    publish_sources(&server, 1);
    // Feeds are published one by one as a render goes, and a commit can land between two
    // of them: wait until every feed asserted on below has seen every source's items (the
    // feeds after "none" in the config are rendered after it).
    daemon.wait_for("every feed to show every source's items", || {
        let carriers = |items: &[serde_json::Value], title: &str, source: &str| {
            by_title(items, title)
                .iter()
                .find(|i| i["_feedmill"]["source"]["name"] == source)
                .map(|i| also(i).len())
        };
        let all = json(&daemon, "all");
        let links = json(&daemon, "links");
        let flood = all
            .iter()
            .filter(|i| i["_feedmill"]["source"]["name"] == "flood")
            .count();
        Some(
            json(&daemon, "none").len() == 4 + 3 + 300
                && flood > 0
                && carriers(&all, "Reading Classes", "outlet") == Some(2)
                && carriers(&all, "读书班", "cn") == Some(1)
                && carriers(&links, "Reading", "outlet") == Some(1),
        )
    });

    // The default feed (dedup = "content"): the story once, as the outlet first told it,
    // naming the repost and the portal.
    let all = json(&daemon, "all");
    let reading = by_title(&all, "Reading Classes");
    assert_eq!(reading.len(), 1, "{reading:?}");
    assert_eq!(reading[0]["_feedmill"]["source"]["name"], "outlet");
    assert_eq!(also(reading[0]), ["dept", "portal"]);
    assert!(
        by_title(&all, "read more").is_empty(),
        "the portal's link was not merged"
    );
    // Different stories that share the outlet's footer stay apart.
    assert_eq!(by_title(&all, "Bus Lines").len(), 1);
    assert_eq!(by_title(&all, "First Snow").len(), 1);
    // The Chinese story from a GBK feed, reposted in a GB2312 feed: once.
    let chinese = by_title(&all, "读书班");
    assert_eq!(chinese.len(), 1, "{chinese:?}");
    assert_eq!(chinese[0]["_feedmill"]["source"]["name"], "cn");
    assert_eq!(also(chinese[0]), ["cnrepost"]);
    // The flood takes at most half the document (50 entries by default).
    let flooded = all
        .iter()
        .filter(|i| i["_feedmill"]["source"]["name"] == "flood")
        .count();
    assert_eq!(flooded, 25, "the flooding source's share");
    assert_eq!(all.len(), 25 + 3 + 1);

    // Atom names the other carriers as `via` links.
    let (_, atom) = blocking_get(&daemon.url("/feeds/all.atom")).expect("answers");
    let atom = String::from_utf8(atom).expect("utf-8");
    assert!(
        atom.contains("href=\"https://education.nmg.example/news/1127.html\" rel=\"via\""),
        "{atom}"
    );

    // dedup = "link": the portal's link joins the outlet's entry; the repost stands alone.
    let links = json(&daemon, "links");
    let reading = by_title(&links, "Reading");
    assert_eq!(reading.len(), 2, "{reading:?}");
    let outlet = reading
        .iter()
        .find(|i| i["_feedmill"]["source"]["name"] == "outlet")
        .expect("outlet kept");
    assert_eq!(also(outlet), ["portal"]);

    // dedup = "none" keeps everything.
    let none = json(&daemon, "none");
    assert_eq!(
        by_title(&none, "Reading").len() + by_title(&none, "reading").len(),
        3
    );
    assert_eq!(none.len(), 307);

    // Filters: include on title + text, exclude wins.
    let filtered = json(&daemon, "reading");
    let titles: Vec<&str> = filtered
        .iter()
        .filter_map(|i| i["title"].as_str())
        .collect();
    assert_eq!(filtered.len(), 2, "{titles:?}");
    let mut sources: Vec<&str> = filtered
        .iter()
        .filter_map(|i| i["_feedmill"]["source"]["name"].as_str())
        .collect();
    sources.sort();
    assert_eq!(sources, ["cn", "outlet"]);

    // Ids and carriers are the same after a restart.
    let before: HashMap<String, Vec<String>> = all
        .iter()
        .map(|i| (i["id"].as_str().unwrap_or_default().to_string(), also(i)))
        .collect();
    let daemon = daemon.restart();
    let after: HashMap<String, Vec<String>> = json(&daemon, "all")
        .iter()
        .map(|i| (i["id"].as_str().unwrap_or_default().to_string(), also(i)))
        .collect();
    assert_eq!(before, after);
}
