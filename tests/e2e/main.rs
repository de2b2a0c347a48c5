//! End-to-end tests: the server's own `serve` on a real socket, driven by an HTTP client
//! exactly as the README's walk-through drives it.

mod walkthrough;
