//! Write Switchyard page apps: a table of pages, exported as a component.
//!
//! An app lists its pages once; [`export!`] turns that table into both
//! exports of the `switchyard:server/app` world: the default handler
//! (`wasi:http/incoming-handler`, file-system-style routing like Next.js) and
//! the `renderer` (render one page by name, like `app.render`).
//!
//! A page is a function from the [`Request`] to anything [`IntoResponse`]:
//! an askama template, a string, [`Json`], a [`Redirect`], a [`Response`],
//! or any of them with a status, `(404, page)`.
//!
//! ```no_run
//! use askama::Template;
//! use switchyard_app::{App, Json, Pages, Redirect, Request, Result};
//!
//! #[derive(Template)]
//! #[template(source = "<h1>Post {{ id }}</h1>", ext = "html")]
//! struct Post<'a> {
//!     id: &'a str,
//! }
//!
//! fn post(req: &Request) -> Result<Post<'_>> {
//!     Ok(Post { id: req.param("id").unwrap_or_default() })
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct Message {
//!     text: String,
//! }
//!
//! fn send(req: &Request) -> Result<Redirect> {
//!     let message: Message = req.form()?;
//!     Ok(Redirect::see_other(format!("/?sent={}", message.text.len())))
//! }
//!
//! struct Site;
//!
//! impl App for Site {
//!     fn pages() -> Pages {
//!         let greeting = String::from("Hello");
//!         Pages::new()
//!             .page("/", move |_: &Request| Ok(greeting.clone()))
//!             .page("/posts/[id]", post)
//!             .page("/api/messages", send)
//!             .page("/api/pages", |_: &Request| {
//!                 Ok(Json(switchyard_app::pages::<Site>().patterns().collect::<Vec<_>>()))
//!             })
//!     }
//! }
//!
//! switchyard_app::export!(Site);
//! ```
//!
//! Pages named `/404` and `/_error` replace the default not-found and error
//! responses, as in Next.js; a page returning [`NotFound`] gets the `/404`
//! page.

pub mod bindings;
#[doc(hidden)]
pub mod exports;
mod pages;

pub use pages::{PageFn, Pages};
pub use switchyard_guest::*;

use std::sync::OnceLock;

/// A page app: the table of its pages.
pub trait App: 'static {
    /// The app's pages, built once per instance: read them at run time
    /// with [`pages`].
    fn pages() -> Pages;
}

/// The app's page table, built on first use (one app per component).
pub fn pages<A: App>() -> &'static Pages {
    static PAGES: OnceLock<Pages> = OnceLock::new();
    PAGES.get_or_init(A::pages)
}

/// Export an [`App`] as the component's default handler and renderer.
#[macro_export]
macro_rules! export {
    ($app:ty) => {
        type __SwitchyardExports = $crate::exports::Exports<$app>;
        $crate::bindings::export_app!(__SwitchyardExports);
    };
}
