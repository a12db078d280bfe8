//! Static files embedded in the binaries: no CDN, no external fonts, nothing
//! read from disk at run time. The shared ones live in `templates/static/`
//! (`yak.css`, `yak.js`, `favicon.svg`); each UI adds its page script.
//! Served under `/static/<name>` with an ETag and `no-cache`, so browsers
//! revalidate cheaply and never run a stale script after an upgrade.

use std::hash::{Hash, Hasher};

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH},
    web,
};

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The file name: served at `/static/<name>`.
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

impl Asset {
    pub const fn css(name: &'static str, body: &'static str) -> Self {
        Self {
            name,
            content_type: "text/css; charset=utf-8",
            body: body.as_bytes(),
        }
    }

    pub const fn js(name: &'static str, body: &'static str) -> Self {
        Self {
            name,
            content_type: "text/javascript; charset=utf-8",
            body: body.as_bytes(),
        }
    }

    fn etag(&self) -> String {
        let mut h = std::hash::DefaultHasher::new();
        self.body.hash(&mut h);
        format!("\"{:016x}\"", h.finish())
    }
}

/// The files every UI serves.
pub const SHARED: &[Asset] = &[
    Asset::css("yak.css", include_str!("../../templates/static/yak.css")),
    Asset::js("yak.js", include_str!("../../templates/static/yak.js")),
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../templates/static/favicon.svg"),
    },
];

/// Registers `/static/<name>` for the shared files and `page`'s.
pub fn configure(cfg: &mut web::ServiceConfig, page: &'static [Asset]) {
    for asset in SHARED.iter().chain(page) {
        let etag = asset.etag();
        cfg.route(
            &format!("/static/{}", asset.name),
            web::get().to(move |req: HttpRequest| {
                let etag = etag.clone();
                async move { serve(asset, &etag, &req) }
            }),
        );
    }
}

fn serve(asset: &Asset, etag: &str, req: &HttpRequest) -> HttpResponse {
    let fresh = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((ETAG, etag))
        .insert_header((CACHE_CONTROL, "no-cache"));
    if fresh {
        return response.finish();
    }
    response
        .insert_header((CONTENT_TYPE, asset.content_type))
        .body(asset.body)
}

#[cfg(test)]
mod tests {
    use actix_web::{App, http::StatusCode, test};

    use super::*;

    #[actix_web::test]
    async fn serves_with_etag_and_revalidates() {
        let app = test::init_service(App::new().configure(|c| configure(c, &[]))).await;
        let res = test::call_service(
            &app,
            test::TestRequest::get().uri("/static/yak.css").to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        let etag = res.headers().get(ETAG).unwrap().clone();
        assert!(
            res.headers()
                .get(CONTENT_TYPE)
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("text/css")
        );
        let res = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/static/yak.css")
                .insert_header((IF_NONE_MATCH, etag))
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        let res = test::call_service(
            &app,
            test::TestRequest::get().uri("/static/nope.js").to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
}
