//! [`Shell`]: what the shared layout `templates/base.html` needs from every
//! page — its title, the navigation, the scripts to load. The header's
//! leader/connection slot is filled in the browser by `yak.js` from the
//! page's event stream (`leader` events).

/// A link in the header's navigation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NavLink {
    pub label: &'static str,
    pub href: String,
    /// The page being shown.
    pub active: bool,
}

/// The layout's data. Page templates hold one as `shell`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    /// The page's name: the `<title>` is "<title> · YAK".
    pub title: &'static str,
    pub nav: Vec<NavLink>,
    /// Page scripts, loaded after `yak.js` (paths under `/static/`).
    pub scripts: Vec<&'static str>,
}

/// The pages every UI links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Producer,
    Consumer,
}

/// Where the UIs are, for the navigation: a UI links to itself by `/` and
/// to the other by its configured URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiLinks {
    pub producer: String,
    pub consumer: String,
}

impl Shell {
    pub fn new(page: Page, links: &UiLinks, scripts: Vec<&'static str>) -> Self {
        let link = |label, target: Page, url: &str| NavLink {
            label,
            href: if target == page {
                "/".to_owned()
            } else {
                url.to_owned()
            },
            active: target == page,
        };
        Self {
            title: match page {
                Page::Producer => "Producer",
                Page::Consumer => "Consumer",
            },
            nav: vec![
                link("Producer", Page::Producer, &links.producer),
                link("Consumer", Page::Consumer, &links.consumer),
            ],
            scripts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_to_itself_and_the_other_ui() {
        let links = UiLinks {
            producer: "http://h:5003".to_owned(),
            consumer: "http://h:5004".to_owned(),
        };
        let shell = Shell::new(Page::Consumer, &links, vec!["consumer.js"]);
        assert_eq!(shell.title, "Consumer");
        assert_eq!(shell.nav[0].href, "http://h:5003");
        assert!(!shell.nav[0].active);
        assert_eq!(shell.nav[1].href, "/");
        assert!(shell.nav[1].active);
    }
}
