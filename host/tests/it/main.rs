//! Integration tests of the hub: each starts a real `hub` process on loopback over a temporary
//! `MODULES_DIR` with real module libraries, and speaks HTTP to it. Run with `cargo xtask test`,
//! which builds the modules and fixtures first.

/// The harness: hub process, module folders, HTTP client.
mod support;

/// Loading: the example module, and every kind of bad manifest or library (issue 2).
mod loading;

/// Calling into modules: routing, requests, panics, timeouts, health, config, logs (issue 2).
mod handlers;

/// The management API: auth, names, enable/disable/reload, the module object (issue 2).
mod management;

/// The OpenAPI document and its validity as modules change (issue 3).
mod openapi;

/// Graceful shutdown on SIGTERM/SIGINT (issue 3).
mod shutdown;

/// PostgreSQL: migrations, prefix check, safety switches, the gateway, outages (issue 4).
mod database;

/// The example modules of `plugins/`.
mod examples;

/// Hot reload: the watcher, the reload protocol, reloads under load (issue 5).
mod reload;

/// HTML views, the home page, static files (issue 6).
mod views;

/// Dependencies between modules: order, unmet and cyclic, enable/disable, graph (issue 7).
mod dependencies;

/// Hardening: bounded inputs, robust loader and watcher, one-step enable/disable, cross-site
/// refusals, error details for the management API only, exact module.json rewrites (issue 12).
mod hardening;

/// A PostgreSQL role per module: grants from `uses`, 42501 on every path, upgrades (issue 12).
mod roles;

/// Migrations past the prefix check, sessions outliving a call, reloads failing after their
/// migrations (issue 12).
mod guards;

/// Identity: who may call what, tokens, sessions, roles, the audit log, audiences (issue 13).
mod identity;

// Typed routes: extractors checked by the hub, every constraint the document states enforced.
mod typed;

/// schemathesis against the hub and its example modules: no failure, every operation succeeds (issue 14).
mod conformance;

/// The web console over HTTP, and the management routes its actions use (issue 15).
mod console;

/// The console in Debian's headless chromium, signed in through the OpenID provider (issue 15).
mod browser;

/// Metrics: the /metrics listener scraped by Debian's prometheus (issue 16).
mod metrics;

/// Usage analytics: hourly counts in PostgreSQL shared by hubs, the usage route (issue 16).
mod usage;

/// Outbound HTTP: allow-lists, private addresses, DRY_RUN, limits, against a real server;
/// secrets (issue 17).
mod outbound;

/// Calls between modules (`req.call`) and blocking work (`ctx.spawn_blocking`) (issue 17).
mod calls;

/// Background jobs: retries, timeouts, restarts, once per period across hubs (issue 17).
mod jobs;

/// Module packages: bad ones refused before anything is written, signed ones installed,
/// upgraded, kept and rolled back (issue 18).
mod packages;

/// Several hubs on one database: membership, drift, gone and stopped hubs (issue 19).
mod fleet;
