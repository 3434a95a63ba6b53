//! One story once: the same news from an outlet, a department's repost and a portal's link,
//! in UTF-8, GBK and Windows-1252, beside different stories that share a footer and a source
//! that floods.
//!
//! Every case runs on each store engine (`CASE::sled`, `CASE::postgres`: see
//! `support::on_each_engine!`).

use std::collections::HashMap;

use crate::support::{blocking_get, on_each_engine, Daemon, Engine, FeedServer, TestStore};

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

fn one_story_once_with_its_carriers_named(engine: Engine) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    publish_sources(&server, 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = engine.store();
    let daemon = Daemon::start_on(dir.path(), &store.section(), &config(&server));
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

// One story whatever the order: four outlets of one story, where no two of them but the
// neighbours of a chain match (the repost's text is the outlet's, the portal links to the
// outlet's page but carries the wire's text). Fetched in any order, one by one or all at
// once, the combined feed carries the story once.

const FIRE: &str = "A grassland fire that broke out near Xilinhot on Sunday evening was brought under control on Tuesday after two days of work by more than four hundred firefighters and local herders. The county emergency office said no one was hurt, but several winter pastures and two sheep pens were lost, and the families affected are being housed in the township school.";
const WIRE: &str = "Crews in the Xilingol League declared the blaze contained at noon, the regional fire brigade announced, crediting a sudden change in the wind and trenches dug by volunteers overnight. Officials estimated that about three thousand hectares had burned and said an inquiry into the cause, thought to be a discarded cigarette, would report within a month.";
const QUAKE: &str = "A magnitude four earthquake shook Baotou early on Thursday morning, rattling windows across the city but causing no damage, the regional seismological bureau said. Residents in older apartment blocks went out into the streets for an hour before the bureau ruled out a larger shock and schools opened as usual.";
const WIRE_FOOTER: &str = "Distributed by the Northern Wire Service to its member newspapers. All rights reserved. Reproduction in any form without written permission is prohibited. (Source: Inner Mongolia Daily News)";

/// How a feed shows the fire story: per entry shown, its source and the sources it names.
type Shown = Vec<(String, Vec<String>)>;

/// The four carriers of the fire story (each feed titled as its source is named: the feeds
/// name other carriers by title), served from two hosts, so that fetching them all at once
/// runs them side by side under the default `per_host`.
const CARRIERS: [&str; 4] = ["outlet", "wire", "portal", "repost"];

fn publish_fire(one: &FeedServer, two: &FeedServer) {
    let xml = "application/rss+xml";
    one.put(
        "outlet.rss",
        xml,
        rss(
            "outlet",
            "utf-8",
            &[
                item(
                    "im-fire",
                    "Grassland Fire Near Xilinhot Brought Under Control",
                    "https://imdaily.example/2026/12/01/fire.html",
                    "Tue, 01 Dec 2026 08:30:00 +0800",
                    &format!("<p>{FIRE}</p><p>{FOOTER}</p>"),
                ),
                item(
                    "im-bus",
                    "Hohhot Opens Two New Bus Lines to the Airport",
                    "https://imdaily.example/2026/11/26/bus.html",
                    "Thu, 26 Nov 2026 17:05:00 +0800",
                    &format!("<p>{BUS}</p><p>{FOOTER}</p>"),
                ),
                item(
                    "im-snow",
                    "First Snow Closes Grassland Roads in Xilingol",
                    "https://imdaily.example/2026/11/25/snow.html",
                    "Wed, 25 Nov 2026 11:40:00 +0800",
                    &format!("<p>{SNOW}</p><p>{FOOTER}</p>"),
                ),
            ],
        ),
    );
    // The wire's own account of the fire: other words, nothing in common with the outlet's
    // but the facts; and a story of its own with the outlet's footer and its own.
    two.put(
        "wire.rss",
        xml,
        rss(
            "wire",
            "utf-8",
            &[
                item(
                    "w-991",
                    "Xilingol Blaze Contained, Inquiry Opened",
                    "https://wire.example/a/991",
                    "Tue, 01 Dec 2026 09:10:00 +0800",
                    &format!("<p>{WIRE}</p><p>{WIRE_FOOTER}</p>"),
                ),
                item(
                    "w-992",
                    "Earthquake Rattles Baotou, No Damage Reported",
                    "https://wire.example/a/992",
                    "Thu, 03 Dec 2026 07:00:00 +0800",
                    &format!("<p>{QUAKE}</p><p>{WIRE_FOOTER}</p><p>{FOOTER}</p>"),
                ),
            ],
        ),
    );
    // The bridge: the wire's text under a link to the outlet's page (tracking parameters and
    // a fragment on it).
    one.put(
        "portal.rss",
        xml,
        rss(
            "portal",
            "utf-8",
            &[item(
                "p-fire",
                "Blaze contained – from the wires",
                "http://IMDAILY.example/2026/12/01/fire.html?utm_source=portal&utm_medium=rss#top",
                "Tue, 01 Dec 2026 15:00:00 +0800",
                &format!(
                    "<p><em>From the wires:</em></p><p>{}</p><p>{WIRE_FOOTER}</p>",
                    WIRE.replace("the blaze contained", "the “blaze” contained")
                ),
            )],
        ),
    );
    // A department's repost of the outlet's text, under its own link.
    two.put(
        "repost.rss",
        xml,
        rss(
            "repost",
            "utf-8",
            &[item(
                "dept-fire",
                "Reposted: Grassland Fire Brought Under Control",
                "https://emergency.nmg.example/news/1201.html",
                "Tue, 01 Dec 2026 14:00:00 +0800",
                &format!(
                    "<p><em>Reposted from Inner Mongolia Daily.</em></p><p>{}</p><p>{FOOTER}</p>",
                    FIRE.replace("no one was hurt", "no one was hurt,")
                ),
            )],
        ),
    );
}

/// The whole config, `[server]` and `[store]` included (as `Daemon::start` writes them), so
/// that `feedmill fetch` runs on the store the daemon then serves.
fn fire_config(one: &FeedServer, two: &FeedServer) -> String {
    let mut config = String::new();
    for (name, server) in [
        ("outlet", one),
        ("wire", two),
        ("portal", one),
        ("repost", two),
    ] {
        config.push_str(&format!(
            "[[source]]\nname = \"{name}\"\nurl = \"{}\"\n",
            server.url(&format!("{name}.rss"))
        ));
    }
    config.push_str("[[feed]]\nname = \"all\"\n");
    config.push_str("[[feed]]\nname = \"links\"\ndedup = \"link\"\n");
    config.push_str("[[feed]]\nname = \"none\"\ndedup = \"none\"\n");
    config
}

/// `feedmill fetch` of `sources` (all of them when empty) on `store` (for sled, the one in
/// `dir`).
fn fetch(dir: &std::path::Path, store: &TestStore, body: &str, sources: &[&str]) {
    let config = dir.join("feedmill.toml");
    std::fs::write(&config, format!("{}\n{body}", store.section())).expect("config");
    let out = crate::support::feedmill()
        .arg("fetch")
        .arg("-c")
        .arg(&config)
        .args(sources)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "fetch {sources:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the combined feeds of `store` (for sled, the one in `dir`; the default feed, and by
/// link) show of the fire story; on the way, checks that the stories that only share a
/// footer stay apart.
fn fire_stories(dir: &std::path::Path, store: &TestStore, body: &str) -> (Shown, Shown) {
    let daemon = Daemon::start_on(dir, &store.section(), body);
    // Seven entries in all, every one of them rendered.
    daemon.wait_for("the stored entries in the feeds", || {
        Some(json(&daemon, "none").len() == 7 && !json(&daemon, "all").is_empty())
    });
    let fire = |feed: &str| -> Shown {
        let items = json(&daemon, feed);
        // Different stories that share the outlet's footer, or the wire's, stay apart.
        for title in ["Bus Lines", "First Snow", "Earthquake"] {
            let found = by_title(&items, title);
            assert_eq!(found.len(), 1, "{feed}: {title}: {found:?}");
            assert!(
                also(found[0]).is_empty(),
                "{feed}: {title} merged: {found:?}"
            );
        }
        let mut fire: Shown = items
            .iter()
            .filter(|i| {
                let source = i["_feedmill"]["source"]["name"]
                    .as_str()
                    .unwrap_or_default();
                CARRIERS.contains(&source)
                    && !["Bus Lines", "First Snow", "Earthquake"]
                        .iter()
                        .any(|t| i["title"].as_str().is_some_and(|title| title.contains(t)))
            })
            .map(|i| {
                (
                    i["_feedmill"]["source"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    also(i),
                )
            })
            .collect();
        fire.sort();
        fire
    };
    let stories = (fire("all"), fire("links"));
    drop(daemon);
    stories
}

/// What is wrong with the fire story in the default feed and the link feed, if anything: the
/// default feed shows it once, naming the three others; `dedup = "link"` merges only the
/// portal with the outlet, whose link it shares.
fn fire_faults(all: &Shown, links: &Shown) -> Option<String> {
    let carriers = |all: &[(String, Vec<String>)]| {
        let mut carriers: Vec<String> = all
            .iter()
            .flat_map(|(shown, others)| std::iter::once(shown).chain(others))
            .cloned()
            .collect();
        carriers.sort();
        carriers
    };
    let mut wanted: Vec<String> = CARRIERS.iter().map(|c| c.to_string()).collect();
    wanted.sort();
    if all.len() != 1 || carriers(all) != wanted {
        return Some(format!(
            "the story is not once with its carriers named: {all:?}"
        ));
    }
    let with_outlet = |(shown, others): &&(String, Vec<String>)| {
        shown == "outlet" || others.iter().any(|o| o == "outlet")
    };
    let outlet: Vec<_> = links.iter().filter(with_outlet).collect();
    if links.len() != 3 || carriers(links) != wanted || outlet.len() != 1 || outlet[0].1.len() != 1
    {
        return Some(format!(
            "by link, the portal and the outlet are not one story and the others apart: {links:?}"
        ));
    }
    None
}

/// What `check` finds wrong with each of `cases`, checked a few at a time (each case is a
/// few processes that mostly wait on each other: one after the other, 24 of them took
/// minutes on a loaded machine).
fn in_parallel<T: Sync>(cases: &[T], check: impl Fn(&T) -> Option<String> + Sync) -> Vec<String> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let faults = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let at = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(case) = cases.get(at) else {
                    break;
                };
                if let Some(fault) = check(case) {
                    faults.lock().expect("lock").push((at, fault));
                }
            });
        }
    });
    let mut faults = faults.into_inner().expect("lock");
    faults.sort();
    faults.into_iter().map(|(_, fault)| fault).collect()
}

fn permutations(items: &[&'static str]) -> Vec<Vec<&'static str>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for (i, first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, first);
            out.push(tail);
        }
    }
    out
}

fn one_story_whatever_the_order_of_fetching_one_by_one(engine: Engine) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let one = runtime.block_on(FeedServer::start());
    let two = runtime.block_on(FeedServer::start_on("127.0.0.2"));
    publish_fire(&one, &two);
    let body = fire_config(&one, &two);
    let orders = permutations(&CARRIERS);
    assert_eq!(orders.len(), 24);
    let faults = in_parallel(&orders, |order| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = engine.store();
        for source in order {
            fetch(dir.path(), &store, &body, &[source]);
        }
        let (all, links) = fire_stories(dir.path(), &store, &body);
        fire_faults(&all, &links).map(|fault| format!("fetched in the order {order:?}: {fault}"))
    });
    assert!(
        faults.is_empty(),
        "{} orders of 24:\n{}",
        faults.len(),
        faults.join("\n")
    );
}

fn one_story_when_every_outlet_is_fetched_at_once(engine: Engine) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let one = runtime.block_on(FeedServer::start());
    let two = runtime.block_on(FeedServer::start_on("127.0.0.2"));
    publish_fire(&one, &two);
    let body = fire_config(&one, &two);
    let runs: Vec<usize> = (0..10).collect();
    let faults = in_parallel(&runs, |run| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = engine.store();
        // All four at once (the default per_host: two per host, two hosts).
        fetch(dir.path(), &store, &body, &[]);
        let (all, links) = fire_stories(dir.path(), &store, &body);
        fire_faults(&all, &links).map(|fault| format!("run {run}: {fault}"))
    });
    assert!(
        faults.is_empty(),
        "{} runs of 10:\n{}",
        faults.len(),
        faults.join("\n")
    );
}

fn a_feed_without_the_bridge_shows_the_stories_it_joined_as_one(engine: Engine) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let one = runtime.block_on(FeedServer::start());
    let two = runtime.block_on(FeedServer::start_on("127.0.0.2"));
    publish_fire(&one, &two);
    let xml = "application/rss+xml";
    // The portal has nothing yet, so that the outlet's and the wire's are two stories first.
    let portal = one.served("portal.rss").body;
    one.put("portal.rss", xml, rss("portal", "utf-8", &[]));
    let mut body = String::from("[fetch]\nschedule = \"* * * * * *\"\n");
    body.push_str(&fire_config(&one, &two));
    body.push_str("[[feed]]\nname = \"pair\"\nsources = [\"outlet\", \"wire\"]\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = engine.store();
    let daemon = Daemon::start_on(dir.path(), &store.section(), &body);
    let fire = |daemon: &Daemon| -> Shown {
        let mut fire: Shown = json(daemon, "pair")
            .iter()
            .filter(|i| {
                ["Grassland Fire", "Blaze Contained"]
                    .iter()
                    .any(|t| i["title"].as_str().is_some_and(|title| title.contains(t)))
            })
            .map(|i| {
                let source = i["_feedmill"]["source"]["name"].as_str();
                (source.unwrap_or_default().to_string(), also(i))
            })
            .collect();
        fire.sort();
        fire
    };
    daemon.wait_for("the outlet's and the wire's stories, apart", || {
        Some(fire(&daemon).len() == 2)
    });
    // The bridge arrives: the feed of the two others shows their stories as one, though
    // nothing of theirs changed.
    one.put("portal.rss", xml, portal);
    daemon.wait_for("the outlet's and the wire's stories as one", || {
        let fire = fire(&daemon);
        Some(
            fire.len() == 1
                && (fire[0] == ("outlet".to_string(), vec!["wire".to_string()])
                    || fire[0] == ("wire".to_string(), vec!["outlet".to_string()])),
        )
    });
}

on_each_engine!(
    one_story_once_with_its_carriers_named,
    one_story_whatever_the_order_of_fetching_one_by_one,
    one_story_when_every_outlet_is_fetched_at_once,
    a_feed_without_the_bridge_shows_the_stories_it_joined_as_one,
);
